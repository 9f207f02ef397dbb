"""The kubelet's own HTTPS endpoint, which the API server calls for `kubectl logs` (pods/log) and
`kubectl exec` (pods/exec, see execstream.py).

It serves on the Node's address and port (status.daemonEndpoints) with a certificate of the lab CA,
which the API server verifies (--kubelet-certificate-authority), and it accepts only clients that
present a certificate of that CA: the API server's --kubelet-client-certificate.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from . import websocket
from .execstream import PROTOCOLS, ExecOptions, ExecRequestError, ExecSession
from .process import ContainerProcess, log_paths

FOLLOW_POLL_SECONDS = 0.2
CHUNK = 65536


class PodRuntime(Protocol):
    """The pods this node runs, as the endpoint needs them (the kubelet)."""

    def has_pod(self, namespace: str, pod: str) -> bool: ...

    def container_process(self, namespace: str, pod: str, container: str) -> ContainerProcess | None: ...


def tail(data: bytes, lines: int) -> bytes:
    if lines < 0:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def _int(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    log_dir: Path
    pods: PodRuntime


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        segments = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/")]
        if segments == ["healthz"]:
            self._answer(200, b"ok")
        elif len(segments) == 4 and segments[0] == "containerLogs":
            try:
                self._logs(*segments[1:], query=dict(urllib.parse.parse_qsl(parts.query)))
            except ValueError as exc:
                self._answer(400, str(exc).encode())
        elif len(segments) in (4, 5) and segments[0] == "exec":
            # /exec/{namespace}/{pod}/{container}, or with the pod's uid before the container
            self._exec(segments[1], segments[2], segments[-1], urllib.parse.parse_qs(parts.query))
        else:
            self._answer(404, b"404 page not found")

    def do_POST(self) -> None:
        """The kubelet takes exec as GET (WebSocket) or POST (SPDY); everything else is GET only."""
        if urllib.parse.urlsplit(self.path).path.startswith("/exec/"):
            self.do_GET()
        else:
            self._answer(405, b"Method Not Allowed")

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _logs(self, namespace: str, pod: str, container: str, query: dict[str, str]) -> None:
        current, previous = log_paths(self.server.log_dir, namespace, pod, container)
        path = previous if query.get("previous") == "true" else current
        if not path.exists():
            which = "previous terminated container" if path == previous else "container"
            self._answer(400, f'{which} "{container}" in pod "{pod}" not found'.encode())
            return
        data = tail(path.read_bytes(), _int(query, "tailLines", -1))
        limit = _int(query, "limitBytes", 0)
        if limit > 0:
            data = data[:limit]
        if query.get("follow") != "true" or path == previous:
            self._answer(200, data)
            return
        self._follow(path, data, (namespace, pod, container))

    def _follow(self, path: Path, first: bytes, container: tuple[str, str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        offset = path.stat().st_size
        try:
            if first:
                self._chunk(first)
            while True:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(CHUNK)
                offset += len(data)
                if data:
                    self._chunk(data)
                elif self.server.pods.container_process(*container) is None:
                    break
                else:
                    time.sleep(FOLLOW_POLL_SECONDS)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, FileNotFoundError):
            return

    def _exec(self, namespace: str, pod: str, container: str, query: dict[str, list[str]]) -> None:
        """Upgrade to WebSocket and run the command, or answer why not, in the kubelet's order: the
        options, the pod, the container, then the upgrade (so a client that falls back to another
        protocol after a refusal hears the same reason again)."""
        try:
            options = ExecOptions.from_query(query)
        except ExecRequestError as exc:
            self._answer(400, str(exc).encode())
            return
        if not self.server.pods.has_pod(namespace, pod):
            self._answer(404, b"pod does not exist")
            return
        process = self.server.pods.container_process(namespace, pod, container)
        if process is None:
            self._answer(500, f'container not found ("{container}")'.encode())
            return
        protocol = self._websocket_protocol()
        if protocol is None:
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", websocket.accept_key(self.headers["Sec-WebSocket-Key"]))
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        connection = self.connection
        assert isinstance(connection, ssl.SSLSocket)
        ExecSession(connection, protocol, options).run(process)

    def _websocket_protocol(self) -> str | None:
        """The channel protocol of a WebSocket upgrade; None once a refusal has been answered."""
        upgrade = (self.headers.get("Upgrade") or "").strip().lower()
        connection = {token.strip().lower() for token in (self.headers.get("Connection") or "").split(",")}
        if upgrade != "websocket" or "upgrade" not in connection:
            message = "Upgrade request required"
            if upgrade.startswith("spdy/"):
                message = (f"{message}: the lab's node agent serves exec over WebSocket only "
                           f"({', '.join(PROTOCOLS)}), not {self.headers.get('Upgrade')}")
            self._answer(400, message.encode())
            return None
        if self.headers.get("Sec-WebSocket-Version") != "13" or not self.headers.get("Sec-WebSocket-Key"):
            self._answer(400, b"a WebSocket upgrade needs Sec-WebSocket-Version 13 and a Sec-WebSocket-Key")
            return None
        requested = websocket.requested_protocols(self.headers.get_all("Sec-WebSocket-Protocol") or [])
        chosen = websocket.choose_protocol(requested, PROTOCOLS)
        if chosen is None:
            self._answer(400, f"requested protocol(s) are not supported: {requested}; "
                              f"supports {list(PROTOCOLS)}".encode())
        return chosen

    def _chunk(self, data: bytes) -> None:
        """One chunk of a chunked answer; an empty one ends it."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """The API server's calls are not worth a line each in the agent's log."""


class KubeletServer:
    def __init__(self, port: int, cert: Path, key: Path, client_ca: Path, log_dir: Path,
                 pods: PodRuntime) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.log_dir = log_dir
        self.server.pods = pods
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="kubelet-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
