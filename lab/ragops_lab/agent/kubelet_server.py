"""The kubelet's own HTTPS endpoint, which the API server calls for `kubectl logs` (pods/log).

It serves on the Node's address and port (status.daemonEndpoints) with a certificate of the lab CA,
which the API server verifies (--kubelet-certificate-authority), and it accepts only clients that
present a certificate of that CA: the API server's --kubelet-client-certificate.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .process import log_paths

FOLLOW_POLL_SECONDS = 0.2
CHUNK = 65536
# (namespace, pod, container) → whether that container is running now (a follow ends when it stops).
RunningCheck = Callable[[str, str, str], bool]


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
    is_running: RunningCheck


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
        else:
            self._answer(404, b"404 page not found")

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
                elif not self.server.is_running(*container):
                    break
                else:
                    time.sleep(FOLLOW_POLL_SECONDS)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, FileNotFoundError):
            return

    def _chunk(self, data: bytes) -> None:
        """One chunk of a chunked answer; an empty one ends it."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """The API server's calls are not worth a line each in the agent's log."""


class KubeletServer:
    def __init__(self, port: int, cert: Path, key: Path, client_ca: Path, log_dir: Path,
                 is_running: RunningCheck) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.log_dir = log_dir
        self.server.is_running = is_running
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="kubelet-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
