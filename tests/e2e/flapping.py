"""A shard whose validation flaps: a real HTTP proxy in front of a real shard's query API that forwards
each golden query the first time it is asked and answers 503 when it is asked again (as a shard whose
index fails again after one good round of queries)."""

from __future__ import annotations

import json
import threading
import typing as t
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlappingShard:
    """``url`` is the proxy's base URL; ``forwarded`` and ``refused`` count the queries of each kind.
    With ``flapping=False`` every query is forwarded (the shard is steady)."""

    def __init__(self, upstream: str, *, flapping: bool = True) -> None:
        self.upstream = upstream.rstrip("/")
        self.flapping = flapping
        self.asked: set[str] = set()
        self.forwarded = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self) -> FlappingShard:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        query = str((json.loads(body or b"{}") or {}).get("query"))
        with self.lock:
            again = query in self.asked
            self.asked.add(query)
            if again and self.flapping:
                self.refused += 1
                return 503, json.dumps({"error": "index unusable (the proxy's flap)"}).encode()
            self.forwarded += 1
        request = urllib.request.Request(self.upstream + path, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as upstream:
                return upstream.status, upstream.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = proxy.answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: t.Any) -> None:
                pass

        return Handler
