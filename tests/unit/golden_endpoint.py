# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real search API on 127.0.0.1 for the golden-query tests: real HTTP, answers decided per request."""

from __future__ import annotations

import json
import socket
import struct
import threading
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    """One request as the endpoint received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: t.Any


@dataclass
class Reply:
    """What to answer: a status, a JSON-able body (or raw bytes), and how long to wait first."""

    status: int = 200
    body: t.Any = None
    delay: float = 0.0
    content_type: str = "application/json"
    drop: bool = False  # close the connection with a reset instead of answering
    headers: t.Mapping[str, str] = field(default_factory=dict)


Handler = t.Callable[[Seen], Reply]


def lab_answer(
    ids: t.Sequence[str], scores: t.Sequence[float] | None = None, **extra: t.Any
) -> Reply:
    """An answer shaped like the lab retriever's: ``{"results": [{"id", "score"}], ...}``."""
    scores = (
        scores
        if scores is not None
        else [round(1.0 - i / 100.0, 4) for i in range(len(ids))]
    )
    return Reply(
        body={
            "results": [{"id": doc, "score": score} for doc, score in zip(ids, scores)],
            **extra,
        }
    )


def by_query(answers: t.Mapping[str, Reply], default: Reply | None = None) -> Handler:
    """Answer each query text with its own reply."""

    def handle(seen: Seen) -> Reply:
        text = seen.body.get("query") if isinstance(seen.body, dict) else None
        return answers.get(
            t.cast(str, text), default or Reply(404, {"error": "unknown query"})
        )

    return handle


@dataclass
class Endpoint:
    """Serves ``handler`` until closed; counts requests and the most ever in flight at once."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    server: t.Any = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/search" % self.server.server_address[1]

    def __enter__(self) -> Endpoint:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, seen: Seen) -> Reply:
        with self.lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.handler(seen)
            if reply.delay:
                self.stop.wait(reply.delay)
            return reply
        finally:
            with self.lock:
                self.in_flight -= 1


def _handler_class(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            reply = endpoint.answer(
                Seen(self.command, self.path, dict(self.headers.items()), body)
            )
            if reply.drop:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            payload = (
                reply.body
                if isinstance(reply.body, bytes)
                else json.dumps(reply.body).encode()
            )
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (a timeout test): nothing left to tell it

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: t.Any) -> None:
            pass

    return Handler
