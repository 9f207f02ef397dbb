# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ragops.recovery.golden_canary: an ansible-rulebook event source that runs a few golden
queries against the retriever on an interval and emits an event when their results go
empty or drift from the baseline (the runbook's first symptom of a broken shard)."""

from __future__ import annotations

import asyncio
import json
import time
import typing as t
from dataclasses import dataclass, field

DOCUMENTATION = r"""
---
short_description: Run golden queries against the retriever and emit an event when they fail.
description:
  - Every O(interval) seconds, sends the first O(queries) queries of a golden set (must-pass
    queries first) to the retriever's search API, concurrently.
  - A query fails when the request fails, when the answer has no results (C(empty)), when an
    expected document is missing from the top O(k) (C(missing)), or when the
    score of an expected document differs from the baseline by more than O(score_tolerance)
    (C(drift)). The baseline is the first round in which every query passed.
  - Emits one event per shard (the golden query's C(shard)) when its queries start failing,
    and one C(recovered) event when they pass again; nothing while the state stays the same.
options:
  url:
    description: The retriever's search URL (POST, JSON body).
    type: str
    required: true
  golden_set:
    description: Path of the golden set (docs/golden.md).
    type: str
    required: true
  queries:
    description: How many golden queries each round sends.
    type: int
    default: 5
  interval:
    description: Seconds between two rounds.
    type: float
    default: 30
  timeout:
    description: Seconds a query may take.
    type: float
    default: 5
  k:
    description: Results asked for; the golden set's C(k) by default.
    type: int
  score_tolerance:
    description: Largest change of a query's top score from the baseline that is not drift.
    type: float
    default: 0.05
  ids_path:
    description: Key of the results list in the answer, and of the id in each result.
    type: str
    default: results[].id
  scores_path:
    description: Key of the results list in the answer, and of the score in each result.
    type: str
    default: results[].score
"""

EXAMPLES = r"""
- name: Watch the golden queries
  hosts: all
  sources:
    - ragops.recovery.golden_canary:
        url: http://retriever.rag-prod.svc:8080/search
        golden_set: /runner/golden.yml
        queries: 8
        interval: 30
  rules:
    - name: A shard's golden queries fail
      condition: event.ragops_canary.status in ["empty", "missing", "drift", "error"]
      action:
        debug:
"""

Obj = t.Dict[str, t.Any]
SEVERITY = ("drift", "missing", "empty", "error")


@dataclass
class Answer:
    """What the retriever answered one golden query."""

    ids: t.List[str] = field(default_factory=list)
    scores: t.List[float] = field(default_factory=list)
    error: str = ""


@dataclass
class Finding:
    qid: str
    shard: str
    status: str
    detail: str


def pick_queries(golden: Obj, count: int) -> t.List[Obj]:
    """The must-pass queries first, then the others, in the golden set's order."""
    queries = list(golden.get("queries") or [])
    ordered = [q for q in queries if q.get("must_pass")] + [
        q for q in queries if not q.get("must_pass")
    ]
    return ordered[:count]


def _path(path: str) -> t.Tuple[str, str]:
    """``results[].id`` -> (``results``, ``id``)."""
    outer, inner = path.split("[].", 1) if "[]." in path else (path, "")
    return outer, inner


def parse_answer(body: t.Any, ids_path: str, scores_path: str) -> Answer:
    if not isinstance(body, dict):
        return Answer(error="the answer is not a JSON object")
    outer, id_key = _path(ids_path)
    score_key = _path(scores_path)[1]
    results = body.get(outer)
    if not isinstance(results, list):
        return Answer(error="the answer has no %r list" % outer)
    items = [r for r in results if isinstance(r, dict)]
    return Answer(
        ids=[str(r.get(id_key)) for r in items],
        scores=[float(r.get(score_key) or 0.0) for r in items],
    )


def judge(
    query: Obj, answer: Answer, baseline: t.Optional[Answer], tolerance: float
) -> str:
    """One query's status: ok, error, empty, missing or drift."""
    if answer.error:
        return "error"
    if not answer.ids:
        return "empty"
    if any(doc not in answer.ids for doc in query.get("expected_ids") or []):
        return "missing"
    if baseline is not None:
        # Only the expected documents count: other shards' documents may come and go in
        # the top k while a shard is out of service.
        before = dict(zip(baseline.ids, baseline.scores))
        now = dict(zip(answer.ids, answer.scores))
        for doc in query.get("expected_ids") or []:
            if doc in before and abs(now[doc] - before[doc]) > tolerance:
                return "drift"
    return "ok"


def evaluate(
    queries: t.Sequence[Obj],
    answers: t.Mapping[str, Answer],
    baseline: t.Mapping[str, Answer],
    tolerance: float,
) -> t.List[Finding]:
    findings = []
    for query in queries:
        answer = answers[query["qid"]]
        status = judge(query, answer, baseline.get(query["qid"]), tolerance)
        if status != "ok":
            detail = answer.error or "got %s, expected %s" % (
                answer.ids[:5],
                query.get("expected_ids"),
            )
            findings.append(
                Finding(
                    query["qid"], str(query.get("shard") or "unknown"), status, detail
                )
            )
    return findings


def shard_events(
    findings: t.Sequence[Finding], shards: t.Iterable[str], reported: t.Dict[str, str]
) -> t.List[Obj]:
    """The events to emit: a shard whose worst status changed, or that passes again."""
    events = []
    now = time.gmtime()
    for shard in sorted(set(shards)):
        mine = [f for f in findings if f.shard == shard]
        status = (
            max((f.status for f in mine), key=SEVERITY.index) if mine else "recovered"
        )
        if reported.get(shard, "recovered") == status:
            continue
        reported[shard] = status
        events.append(
            {
                "shard": shard,
                "status": status,
                "failing": [vars(f) for f in mine],
                "detected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
                # Fit for an incident id (Kubernetes names and labels).
                "event_id": time.strftime("%Y%m%dt%H%M%Sz", now),
            }
        )
    return events


async def _ask(session: t.Any, args: Obj, query: Obj, k: int) -> Answer:
    import aiohttp

    body = {"query": query["text"], "k": k}
    try:
        async with session.post(
            args["url"], json=body, timeout=aiohttp.ClientTimeout(total=args["timeout"])
        ) as response:
            if response.status >= 400:
                return Answer(error="HTTP %d" % response.status)
            payload = json.loads(await response.text())
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return Answer(error="%s: %s" % (type(exc).__name__, exc))
    return parse_answer(payload, args["ids_path"], args["scores_path"])


def _settings(args: Obj) -> Obj:
    import yaml

    settings = {
        "queries": 5,
        "interval": 30.0,
        "timeout": 5.0,
        "score_tolerance": 0.05,
        "ids_path": "results[].id",
        "scores_path": "results[].score",
    }
    settings.update({key: value for key, value in args.items() if value is not None})
    with open(settings["golden_set"], encoding="utf-8") as handle:
        settings["golden"] = yaml.safe_load(handle)
    return settings


async def main(queue: t.Any, args: Obj) -> None:
    """Run the rounds forever, putting each event on ansible-rulebook's queue."""
    import aiohttp

    settings = _settings(args)
    queries = pick_queries(settings["golden"], int(settings["queries"]))
    k = int(settings.get("k") or settings["golden"].get("k") or 10)
    baseline: t.Dict[str, Answer] = {}
    reported: t.Dict[str, str] = {}
    shards = [str(q.get("shard") or "unknown") for q in queries]
    async with aiohttp.ClientSession() as session:
        while True:
            found = await asyncio.gather(
                *(_ask(session, settings, q, k) for q in queries)
            )
            answers = {q["qid"]: a for q, a in zip(queries, found)}
            findings = evaluate(queries, answers, baseline, settings["score_tolerance"])
            if not baseline and not findings:
                baseline = answers
            for event in shard_events(findings, shards, reported):
                await queue.put({"ragops_canary": dict(event, url=settings["url"])})
            await asyncio.sleep(float(settings["interval"]))


if __name__ == "__main__":
    # ansible-rulebook's convention: run the source alone, printing its events.

    class _Printer:
        async def put(self, event: Obj) -> None:
            print(json.dumps(event))

    import sys

    asyncio.run(main(_Printer(), json.loads(sys.argv[1])))
