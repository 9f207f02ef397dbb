"""A webhook receiver for the end-to-end tests: a local HTTP server, started by the test, that records every
POST (path, headers by lower-case name, JSON body) and answers the status it is told to, 200 by default. The
lab's pods run as local processes and the modules run on the controller, so the playbooks reach it on
127.0.0.1."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager

Obj = t.Dict[str, t.Any]
# A Slack incoming webhook's URL carries its token in its path.
SLACK_PATH = "/services/T0E2E/B0E2E/e2e-slack-webhook-token"


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Obj] = []
        self.status = 200

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)

    def bodies(self, path: str) -> list[Obj]:
        return [item["body"] for item in self.received if item["path"] == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append({"path": self.path, "headers": headers,
                                     "body": json.loads(self.rfile.read(length))})
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


@contextmanager
def receiving() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(path: str = "/hook") -> str:
    """A local URL nothing listens on: a receiver that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d%s" % (port, path)
