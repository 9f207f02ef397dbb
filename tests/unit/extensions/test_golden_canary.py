# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import asyncio
import json
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

from ansible_collections.ragops.recovery.extensions.eda.plugins.event_source import (
    golden_canary as canary,
)

GOLDEN = {
    "k": 3,
    "queries": [
        {"qid": "q1", "text": "a", "expected_ids": ["d1"], "shard": "shard-1"},
        {
            "qid": "q2",
            "text": "b",
            "expected_ids": ["d2"],
            "shard": "shard-2",
            "must_pass": True,
        },
        {"qid": "q3", "text": "c", "expected_ids": [], "shard": "shard-2"},
    ],
}


def answer(ids: list[str], scores: list[float]) -> canary.Answer:
    return canary.Answer(ids=ids, scores=scores)


def test_must_pass_queries_come_first() -> None:
    assert [q["qid"] for q in canary.pick_queries(GOLDEN, 2)] == ["q2", "q1"]


def test_each_kind_of_failure_is_named() -> None:
    query = GOLDEN["queries"][0]
    base = answer(["d1", "x"], [0.9, 0.5])
    assert canary.judge(query, canary.Answer(error="HTTP 503"), base, 0.05) == "error"
    assert canary.judge(query, answer([], []), base, 0.05) == "empty"
    assert canary.judge(query, answer(["x"], [0.9]), base, 0.05) == "missing"
    assert canary.judge(query, answer(["d1"], [0.7]), base, 0.05) == "drift"
    # Other documents may come and go: only the expected one's score counts.
    assert canary.judge(query, answer(["y", "d1"], [0.95, 0.92]), base, 0.05) == "ok"


def test_events_only_when_a_shard_changes_state() -> None:
    reported: dict[str, str] = {}
    failing = [canary.Finding("q2", "shard-2", "missing", "got []")]
    first = canary.shard_events(failing, ["shard-1", "shard-2"], reported)
    assert [(e["shard"], e["status"]) for e in first] == [("shard-2", "missing")]
    assert first[0]["failing"][0]["qid"] == "q2" and first[0]["event_id"].endswith("z")
    assert canary.shard_events(failing, ["shard-1", "shard-2"], reported) == []
    worse = [canary.Finding("q2", "shard-2", "empty", "")]
    assert [e["status"] for e in canary.shard_events(worse, ["shard-2"], reported)] == [
        "empty"
    ]
    back = canary.shard_events([], ["shard-1", "shard-2"], reported)
    assert [(e["shard"], e["status"]) for e in back] == [("shard-2", "recovered")]


def test_answers_are_read_from_the_configured_keys() -> None:
    body = {"hits": [{"doc": "d1", "s": 0.5}, "noise"]}
    parsed = canary.parse_answer(body, "hits[].doc", "hits[].s")
    assert (parsed.ids, parsed.scores, parsed.error) == (["d1"], [0.5], "")
    assert canary.parse_answer([], "results[].id", "results[].score").error
    assert canary.parse_answer({"x": 1}, "results[].id", "results[].score").error


def test_source_emits_a_shard_event_when_its_documents_disappear(
    tmp_path: Path,
) -> None:
    """The source against a retriever stand-in: healthy first (the baseline), then shard-2's
    document gone; it puts one event for shard-2 on the queue."""
    calls: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(1)
            broken = len(calls) > 3
            docs = {"a": ["d1"], "b": [] if broken else ["d2"], "c": ["d9"]}[
                query["query"]
            ]
            body = json.dumps({"results": [{"id": d, "score": 0.8} for d in docs]})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: t.Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(GOLDEN))
    url = "http://127.0.0.1:%d/search" % server.server_address[1]
    events: list[dict[str, t.Any]] = []

    class Queue:
        async def put(self, event: dict[str, t.Any]) -> None:
            events.append(event)

    async def run() -> None:
        task = asyncio.ensure_future(
            canary.main(
                Queue(), {"url": url, "golden_set": str(golden), "interval": 0.05}
            )
        )
        deadline = asyncio.get_running_loop().time() + 4
        while not events and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()

    try:
        asyncio.run(run())
    finally:
        server.shutdown()
        server.server_close()
    assert len(events) == 1
    event = events[0]["ragops_canary"]
    assert (event["shard"], event["status"], event["url"]) == ("shard-2", "empty", url)
