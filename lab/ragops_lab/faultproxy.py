"""An HTTP fault proxy in front of the lab's S3: damage answers the way networks and stores do.

Faults are rules matched per request (method, key suffix or part, ranged or not, a request header present)
and applied a number of times, optionally only after a number of matching requests went through
untouched: a truncated body (the connection closes early), flipped bits in a body, an error status such
as ``503 SlowDown`` or ``429`` with a ``Retry-After`` header, or a stalled connection (headers and a
little data, then silence; an answer without a body, an upload's, is not sent at all).  Requests are
forwarded unchanged, Host header included, so S3 signatures stay valid.  Every request is recorded with
the time it arrived and the fault it met.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SLOW_DOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")
ANY_METHOD = "*"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def error_body(code: str, message: str) -> bytes:
    """An S3 error document, as stores answer a refused request."""
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>"
            % (code, message)).encode()


@dataclass
class Rule:
    """One fault: ``action`` is ``truncate``, ``flip``, ``status``, ``stall``, ``delay`` or ``late``.

    ``method`` ``*`` matches every method; ``key_contains`` matches keys with that text in them (a shard's
    ``/shard-1/``); ``header`` (a prefix, any case) matches requests that carry such a header; the first
    ``after`` matching requests pass untouched.  ``headers`` are added to a
    ``status`` answer (``Retry-After``).  ``delay`` and ``late`` wait for ``release`` (when given) at most
    ``stall_seconds``; ``stall`` stays silent ``stall_seconds``, or until ``release``."""

    action: str
    method: str = "GET"
    key_suffix: str = ""
    key_contains: str = ""
    ranged: bool | None = None
    header: str = ""
    times: int = 1
    after: int = 0
    offset: int = 100
    status: int = 503
    body: bytes = SLOW_DOWN
    headers: tuple[tuple[str, str], ...] = ()
    stall_seconds: float = 30.0
    release: threading.Event | None = None
    applied: int = 0
    passed: int = 0

    def matches(self, method: str, path: str, headers: Any) -> bool:
        if self.applied >= self.times or self.method not in (ANY_METHOD, method):
            return False
        if self.key_suffix and not path.split("?", 1)[0].endswith(self.key_suffix):
            return False
        if self.key_contains and self.key_contains not in path.split("?", 1)[0]:
            return False
        if self.header and not any(name.lower().startswith(self.header.lower()) for name in headers):
            return False
        return self.ranged is None or self.ranged == ("Range" in headers)


@dataclass
class FaultProxy:
    """A threaded proxy on ``host`` (127.0.0.1 unless told) forwarding to ``upstream``
    (``http://host:port``)."""

    upstream: str
    host: str = "127.0.0.1"
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    requests: list[tuple[float, str, str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return "http://%s:%d" % (self.host, self.server.server_address[1])

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()
            self.requests.clear()

    def take(self, method: str, path: str, headers: Any) -> Rule | None:
        """The rule this request meets, if any; every request is recorded in ``requests`` as
        (arrival on the monotonic clock, method, path, the rule's action or "")."""
        with self.lock:
            chosen = None
            for rule in self.rules:
                if not rule.matches(method, path, headers):
                    continue
                if rule.passed < rule.after:
                    rule.passed += 1
                    break
                rule.applied += 1
                self.log.append((rule.action, method, path))
                chosen = rule
                break
            self.requests.append((time.monotonic(), method, path, chosen.action if chosen else ""))
            return chosen

    def start(self) -> FaultProxy:
        self.server = ThreadingHTTPServer((self.host, 0), _handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="faultproxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            target = urlsplit(proxy.upstream)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                return answer.status, [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP], data
            finally:
                connection.close()

        def _send(self, status: int, headers: list[tuple[str, str]], data: bytes, cut: int | None = None) -> None:
            self.send_response(status)  # it sends Date and Server itself: the store's are not repeated
            for key, value in headers:
                if key.lower() not in ("content-length", "date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data if cut is None else data[:cut])
            self.wfile.flush()

        def _serve(self) -> None:
            rule = proxy.take(self.command, self.path, self.headers)
            if rule is not None and rule.action == "delay":
                self._hold(rule)
            if rule is not None and rule.action == "status":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(rule.status, [("Content-Type", "application/xml"), *rule.headers], rule.body)
                return
            status, headers, data = self._forward()
            if rule is not None and rule.action == "stall" and not data:
                # An answer without a body (an upload's) never arrives: the store goes silent, then the
                # connection closes, and the client repeats the request.
                self._silence(rule)
                return
            if rule is not None and rule.action == "late":
                self._hold(rule)
            if rule is None or not data or rule.action in ("delay", "late"):
                self._send(status, headers, data)
            elif rule.action == "flip":
                damaged = bytearray(data)
                damaged[min(rule.offset, len(damaged) - 1)] ^= 0x10
                self._send(status, headers, bytes(damaged))
            elif rule.action == "truncate":
                self._send(status, headers, data, cut=min(rule.offset, len(data) - 1))
                self.close_connection = True
            elif rule.action == "stall":
                self._send(status, headers, data, cut=min(rule.offset, len(data) - 1))
                self._silence(rule)

        def _hold(self, rule: Rule) -> None:
            """Wait until the rule is released, at most its ``stall_seconds``."""
            deadline = time.monotonic() + rule.stall_seconds
            while time.monotonic() < deadline and not proxy.stopping.is_set():
                if rule.release is not None and rule.release.wait(0.05):
                    return
                if rule.release is None:
                    time.sleep(0.05)

        def _silence(self, rule: Rule) -> None:
            """Say nothing more for the rule's ``stall_seconds`` (or until it is released), then close."""
            deadline = time.monotonic() + rule.stall_seconds
            while time.monotonic() < deadline and not proxy.stopping.is_set():
                if rule.release is not None and rule.release.is_set():
                    break
                time.sleep(0.05)
            self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler
