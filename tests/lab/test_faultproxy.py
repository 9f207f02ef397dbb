"""The S3 fault proxy's held requests and answers: ``delay`` reaches the store late, ``late`` answers late."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragops_lab.faultproxy import FaultProxy, Rule


class Store:
    """An upstream that answers every GET with its path and records when each arrived."""

    def __init__(self) -> None:
        self.arrived: list[tuple[str, float]] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                store.arrived.append((self.path, time.monotonic()))
                body = self.path.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]


@pytest.fixture
def store() -> Iterator[Store]:
    running = Store()
    yield running
    running.server.shutdown()
    running.server.server_close()


def get(url: str) -> tuple[bytes, float]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read(), time.monotonic()


@pytest.mark.parametrize("action", ["delay", "late"])
def test_a_held_request_or_answer_waits_for_its_release(store: Store, action: str) -> None:
    released = threading.Event()
    with FaultProxy(store.url) as proxy, ThreadPoolExecutor(1) as pool:
        rule = proxy.add(Rule(action, key_suffix="/held", release=released, stall_seconds=30))
        waiting = pool.submit(get, proxy.url + "/bucket/held")
        while not rule.applied:
            time.sleep(0.01)
        time.sleep(0.3)
        assert not waiting.done()
        # delay: the store has not seen it yet; late: it has, and only its answer waits.
        assert [path for path, _ in store.arrived] == ([] if action == "delay" else ["/bucket/held"])
        assert get(proxy.url + "/bucket/other")[0] == b"/bucket/other"  # other requests pass meanwhile
        opened = time.monotonic()
        released.set()
        body, answered = waiting.result(timeout=10)

    assert body == b"/bucket/held" and answered >= opened
    arrival = dict(store.arrived)["/bucket/held"]
    assert (arrival >= opened) == (action == "delay")


def test_without_a_release_the_hold_ends_after_its_stall_seconds(store: Store) -> None:
    with FaultProxy(store.url) as proxy:
        proxy.add(Rule("delay", key_suffix="/held", stall_seconds=0.5))
        started = time.monotonic()
        body, answered = get(proxy.url + "/bucket/held")
    assert body == b"/bucket/held" and 0.5 <= answered - started < 5
