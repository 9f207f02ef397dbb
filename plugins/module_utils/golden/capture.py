# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture: record a healthy system's current answers as the golden set's baseline.

The captured file is the golden set as read, with each run query's ranked ids and scores
under ``baseline``, the cutoff ``k`` and the set's baseline metrics (one shard's, under
``shard_baselines``, when the run selected one shard's queries).  It carries no
timestamp, so capturing an unchanged system again leaves the file unchanged.
"""

from __future__ import annotations

import copy
import typing as t

from ..errors import RecoveryError
from .evaluation import QueryResult, aggregate, evaluate_answer
from .files import read_or_empty, write_atomically
from .goldenset import GoldenSet, dump_yaml, parse_golden_set
from .metrics import BASELINE_METRICS

HEADER = (
    "# Golden set; baseline recorded by ragops.recovery.golden_validate "
    "(mode=capture).\n"
)


def refuse_unhealthy(results: t.Sequence[QueryResult]) -> None:
    """A baseline must come from a healthy system: no errors and no empty answers."""
    bad = [r for r in results if r.errored or r.empty]
    if bad:
        examples = "; ".join(
            "%s: %s" % (r.query.qid, r.answer.error or "no results") for r in bad[:5]
        )
        raise RecoveryError(
            "Refusing to record a baseline: %d of %d queries failed or came back empty "
            "(%s)" % (len(bad), len(results), examples),
            resource="baseline",
            next_step="Capture from a healthy system, or leave those queries out with "
            "qids.",
        )


def captured_document(
    golden: GoldenSet,
    results: t.Sequence[QueryResult],
    k: int,
    expected_top: int,
    min_recall: float,
    shard: str | None = None,
) -> t.Dict[str, t.Any]:
    """The golden set document with the answers in ``results`` recorded as its
    baseline; one shard's queries are that shard's baseline (``shard_baselines``)."""
    by_qid = {r.query.qid: r for r in results}
    document = copy.deepcopy(dict(golden.document))
    for entry in document.get("queries") or []:
        result = by_qid.get(entry.get("qid"))
        if result is None:
            continue
        if expected_top and not entry.get("expected_ids"):
            entry["expected_ids"] = list(result.ranked[:expected_top])
        entry.setdefault("expected_ids", [])
        entry["baseline"] = {"ids": list(result.ranked)}
        if result.scores is not None:
            entry["baseline"]["scores"] = list(result.scores)
    document["k"] = k
    recorded = parse_golden_set(document, golden.source)
    rescored = [
        evaluate_answer(query, by_qid[query.qid].answer, k)
        for query in recorded.queries
        if query.qid in by_qid
    ]
    summary = aggregate(rescored, min_recall)
    # rank_agreement against the answers just recorded is 1 by construction: not a
    # baseline.
    metrics = {
        name: round(t.cast(float, summary[name]), 4)
        for name in BASELINE_METRICS
        if name != "rank_agreement" and summary.get(name) is not None
    }
    if shard:
        document.setdefault("shard_baselines", {})[shard] = metrics
    else:
        document["baseline"] = metrics
    return document


def render(document: t.Mapping[str, t.Any]) -> str:
    return HEADER + dump_yaml(document)


def write_if_changed(path: str, text: str, check_mode: bool) -> t.Tuple[bool, str]:
    """Write ``text`` to ``path`` unless it is already there; (changed, previous
    text)."""
    before = read_or_empty(path)
    if before == text:
        return False, before
    if not check_mode:
        write_atomically(path, text, "captured golden set")
    return True, before
