"""HTTP serving for the lab programs: routing, the health endpoints every program has, a threaded
server and a graceful stop on SIGTERM."""

from __future__ import annotations

import _thread
import contextlib
import email.utils
import json
import re
import signal
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ragops_lab.runtime.env import ConfigError, PodEnv
from ragops_lab.runtime.log import JsonLog

SHUTDOWN_POLL_SECONDS = 0.05


class HttpError(Exception):
    """Raised by a route handler to answer with an error status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body if isinstance(body, dict) else {"error": str(body)}
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; a 400 for anything else."""
        try:
            parsed = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HttpError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise HttpError(400, "request body must be a JSON object")
        return parsed


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


Handler = Callable[[Request], Response]


Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class Router:
    """Method + path routing with `{name}` path parameters."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> Router:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))
        return self

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed = True
                continue
            return handler(replace(request, params=match.groupdict()))
        raise HttpError(405 if allowed else 404, f"no route for {request.method} {request.path}")


def add_health(router: Router, readiness: Readiness) -> Router:
    """The liveness and readiness endpoints every lab program serves."""

    def readyz(_: Request) -> Response:
        ready, detail = readiness()
        return Response(200 if ready else 503, {"ready": ready, **detail})

    router.add("GET", "/healthz", lambda _: ok({"status": "ok"}))
    return router.add("GET", "/readyz", readyz)


@dataclass
class App:
    """A program's HTTP surface plus the background loops that run beside it."""

    name: str
    router: Router
    log: JsonLog
    stopping: threading.Event = field(default_factory=threading.Event)
    background: Sequence[Callable[[threading.Event], None]] = ()


# Request heads larger than these are refused, as http.server refuses them.
MAX_LINE = 65536
MAX_HEADERS = 100


def _handler_class(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Each answer goes out as one write of its head and body: with Nagle's algorithm off, a head
        # and a body written apart travel as two segments and wake the client twice.
        disable_nagle_algorithm = True

        def parse_request(self) -> bool:
            """The request line and headers of an ordinary HTTP/1.x request, read as plain lines.

            http.server hands every header block to the email package's parser, which costs more CPU
            than the rest of a small request; anything other than `METHOD TARGET HTTP/1.x` goes
            through http.server's own parsing (and its error answers).
            """
            words = self.raw_requestline.split()  # type: ignore[attr-defined]  # set by handle_one_request
            if len(words) != 3 or words[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
                return super().parse_request()
            self.command, self.path, self.request_version = (w.decode("iso-8859-1") for w in words)
            self.requestline = " ".join((self.command, self.path, self.request_version))
            headers = _read_headers(self.rfile)
            if isinstance(headers, tuple):
                self.close_connection = True
                self.send_error(*headers)
                return False
            self.headers = headers  # type: ignore[assignment]
            connection = headers.get("connection", "").lower()
            self.close_connection = connection == "close" or (
                self.request_version == "HTTP/1.0" and connection != "keep-alive")
            if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
                return self.handle_expect_100()
            return True

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(urllib.parse.parse_qsl(parts.query)),
                headers=headers,
                body=self.rfile.read(length) if length else b"",
            )
            self._send(_dispatch(app, request))

        def _send(self, response: Response) -> None:
            payload = json.dumps(response.body).encode()
            head = ["%s %d %s" % (self.protocol_version, response.status, _reason(response.status)),
                    "Server: " + self.version_string(), "Date: " + _http_date(),
                    "Content-Type: application/json", "Content-Length: %d" % len(payload)]
            head += ["%s: %s" % item for item in response.headers.items()]
            if self.close_connection:
                head.append("Connection: close")
            try:
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "strict") + payload)
            except (BrokenPipeError, ConnectionResetError):
                app.log.warning("client_went_away", path=self.path)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Access logs stay out of the pod log; programs log the events that matter."""

    return Handler


def _read_headers(rfile: Any) -> dict[str, str] | tuple[int, str]:
    """A request's header fields by lower-case name (repeated fields joined by commas, as RFC 9110
    allows), or the error status and message for a head that cannot be read."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long"
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, colon, value = line.decode("iso-8859-1").partition(":")
        name = name.strip().lower()
        if not colon or not name or name != name.split()[0]:
            return HTTPStatus.BAD_REQUEST, "malformed header line"
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers"


def _reason(status: int) -> str:
    return BaseHTTPRequestHandler.responses.get(status, ("",))[0]


def _http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def _dispatch(app: App, request: Request) -> Response:
    try:
        return app.router.dispatch(request)
    except HttpError as err:
        return Response(err.status, err.body, err.headers)
    except Exception as exc:  # a handler bug must become a logged 500, not a dead connection
        app.log.error("request_failed", method=request.method, path=request.path, error=repr(exc))
        return Response(500, {"error": f"internal error: {exc}"})


class _Server(ThreadingHTTPServer):
    # The default accept queue of 5 overflows when a caller fans out dozens of queries at once,
    # which a real service's listen backlog would absorb.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        # Not threading.Thread.start(), which waits until the new thread has run: during a burst of
        # connections that wait (for the GIL, behind the threads already serving) holds up each next
        # accept by up to milliseconds. The connection's thread is a daemon either way.
        _thread.start_new_thread(self.process_request_thread, (request, client_address))

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the kept-alive connections too, as a stopped process's end: a client's next request on
        one fails instead of reaching a server that stopped."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class RunningApp:
    """An App served on a background thread; used by `run_app` and by tests."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        self.server = _Server((host, port), _handler_class(app))
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        # a short poll keeps shutdown (SIGTERM, tests) quick; the cost is a few idle wake-ups a second
        serve = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,),
                                 name=f"{app.name}-http", daemon=True)
        self._threads = [serve]
        self._threads += [
            threading.Thread(target=loop, args=(app.stopping,), name=f"{app.name}-bg", daemon=True)
            for loop in app.background
        ]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self.app.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        for thread in self._threads:
            thread.join(timeout)


def run_app(app: App, pod: PodEnv) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully; returns the exit code."""
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        running = RunningApp(app, pod.ip, pod.port)
    except OSError as exc:
        app.log.error("bind_failed", address=f"{pod.ip}:{pod.port}", error=str(exc))
        return 1
    app.log.info("listening", address=f"{pod.ip}:{pod.port}", pod=pod.name, namespace=pod.namespace)
    stop_requested.wait()
    app.log.info("stopping", reason="signal")
    running.stop()
    app.log.info("stopped")
    return 0


def main_guard(program: str, body: Callable[[], int]) -> int:
    """Run a program's main body, turning configuration errors into a clear log line and exit 2."""
    try:
        return body()
    except ConfigError as exc:
        JsonLog(program).error("invalid_config", error=str(exc))
        return 2
