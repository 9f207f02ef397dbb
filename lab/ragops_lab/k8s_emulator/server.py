"""HTTP transport and lifecycle: a threaded server that can run in the background of a test."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .app import Emulator
from .errors import ApiError
from .faults import FaultRule, rule_from_json
from .http import Request, Response, Stream
from .kubeconfig import kubeconfig_text, write_private
from .registry import Registry
from .tls import issue

# Idle keep-alive connections are dropped after this many seconds.
CONNECTION_TIMEOUT = 300
# A TLS ClientHello starts with the handshake record type.
TLS_HANDSHAKE_RECORD = b"\x16"
HANDSHAKE_TIMEOUT = 10


class _Server(ThreadingHTTPServer):
    """Tracks its connections and handler threads so that stop() leaves nothing behind."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator, verbose: bool,
                 tls: ssl.SSLContext | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.verbose = verbose
        self.tls = tls
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()

    @property
    def host_port(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else host
        return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="k8s-emulator-conn", daemon=True)
        with self._lock:
            self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _maybe_tls(self, connection: socket.socket) -> socket.socket:
        """Plain HTTP and TLS share the port: a ClientHello gets a TLS session."""
        if self.tls is None:
            return connection
        connection.settimeout(HANDSHAKE_TIMEOUT)
        if connection.recv(1, socket.MSG_PEEK) != TLS_HANDSHAKE_RECORD:
            return connection
        wrapped = self.tls.wrap_socket(connection, server_side=True)
        with self._lock:
            self._connections.discard(connection)
            self._connections.add(wrapped)
        return wrapped

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            try:
                request = self._maybe_tls(request)
            except (OSError, ssl.SSLError):
                self.shutdown_request(request)
                return
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def close_connections(self, timeout: float) -> None:
        with self._lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this they meet delayed ACKs.
    disable_nagle_algorithm = True
    timeout = CONNECTION_TIMEOUT
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _request(self) -> Request:
        parts = urlsplit(self.path)
        return Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )

    def _serve(self) -> None:
        result: Response | Stream
        try:
            request = self._request()
            result = self.server.emulator.serve(request, self.server.host_port)
        except ApiError as error:
            result = Response.error(error)
        except Exception as exc:  # any bug must still produce an API error
            sys.stderr.write(f"k8s emulator: internal error on {self.command} {self.path}: {exc!r}\n")
            result = Response.error(ApiError(500, f"Internal error occurred: {exc}"))
        if isinstance(result, Stream):
            self._send_stream(result)
        else:
            self._send(result)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _client_alive(self) -> bool:
        """False once the peer has closed its end (a cancelled watch).

        Clients send nothing while a watch streams, so anything readable on a TLS
        connection is its close; plain sockets can be peeked for the end of stream.
        """
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return True
            if isinstance(self.connection, ssl.SSLSocket):
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK))
        except OSError:
            return False

    def _send_stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in stream.chunks(self._client_alive):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class EmulatorServer:
    """The emulator on a background thread; use as a context manager in tests.

    ``EmulatorServer(token="t")`` listens on a free loopback port once started; ``url``
    is then ``http://127.0.0.1:<port>``. The same port speaks TLS (``https_url``) with a
    certificate from a CA made at start (``ca_pem``), because kubectl sends tokens only
    over TLS; the kubeconfig it writes uses that.
    """

    def __init__(
        self,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        forbidden_token: str | None = None,
        log_dir: str | Path | None = None,
        verbose: bool = False,
        tls: bool = True,
    ) -> None:
        self.token = token
        self.certificate = issue([host]) if tls else None
        self.emulator = Emulator(token, forbidden_token, Path(log_dir) if log_dir else None)
        self._address = (host, port)
        self._verbose = verbose
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self._httpd.host_port}"

    @property
    def https_url(self) -> str:
        if self.certificate is None:
            raise RuntimeError("the emulator was started without TLS")
        return self.url.replace("http://", "https://", 1)

    @property
    def ca_pem(self) -> bytes:
        if self.certificate is None:
            raise RuntimeError("the emulator was started without TLS")
        return self.certificate.ca_pem

    @property
    def registry(self) -> Registry:
        """Direct access to the objects, for seeding state without HTTP."""
        return self.emulator.registry

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        context = self.certificate.server_context() if self.certificate else None
        self._httpd = _Server(self._address, self.emulator, self._verbose, context)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="k8s-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end watches and open connections, and join every thread."""
        if self._httpd is None:
            return
        self.emulator.stop()
        self._httpd.shutdown()
        self._httpd.close_connections(timeout)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def kubeconfig(self, namespace: str = "default", context: str = "lab") -> str:
        """Over TLS when available: kubectl would not send the token over plain HTTP."""
        if self.certificate is None:
            return kubeconfig_text(self.url, self.token, namespace, context)
        return kubeconfig_text(self.https_url, self.token, namespace, context, self.certificate.ca_pem)

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", context: str = "lab") -> Path:
        return write_private(Path(path), self.kubeconfig(namespace, context))

    def add_fault(self, **spec: Any) -> FaultRule:
        """Same fields as POST /_emulator/faults: verb, resource, namespace, name, status, times..."""
        rule = rule_from_json(spec)
        self.emulator.faults.add(rule)
        return rule

    def clear_faults(self) -> None:
        self.emulator.faults.clear()

    def set_log(self, namespace: str, pod: str, container: str, text: str,
                previous: bool = False, append: bool = False) -> None:
        self.emulator.logs.set((namespace, pod, container, previous), text, append)

    def reset(self) -> None:
        self.emulator.registry.reset()
        self.emulator.faults.clear()
        self.emulator.logs.clear()
