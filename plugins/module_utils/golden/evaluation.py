# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From answers to numbers: each query's metrics and the golden set's aggregate metrics.

Pure: no I/O and no clock.  A query that errored is scored as an empty answer, so the
relevance means average over every judged golden query that was run (trec_eval's ``-c``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from . import metrics as m
from .goldenset import GoldenQuery
from .query import Answer


@dataclass(frozen=True)
class QueryResult:
    """One golden query, what it got, and its metrics at k."""

    query: GoldenQuery
    answer: Answer
    k: int
    ranked: t.Tuple[str, ...]
    scores: t.Optional[t.Tuple[float, ...]]
    metrics: m.RankingMetrics
    duplicates: int
    rank_agreement: t.Optional[float]
    score_drift: t.Optional[float]
    score_spread: t.Optional[float]

    @property
    def errored(self) -> bool:
        return self.answer.error is not None

    @property
    def empty(self) -> bool:
        return not self.errored and not self.ranked

    @property
    def missing(self) -> t.Tuple[str, ...]:
        """Relevant expected ids not in the top k."""
        return tuple(doc for doc in self.query.relevant_ids if doc not in self.ranked)


def evaluate_answer(query: GoldenQuery, answer: Answer, k: int) -> QueryResult:
    """Score one answer: repeats removed, cut at k, compared with the query's
    recorded baseline."""
    ranked = m.unique_in_order(answer.ids)[:k]
    by_id = _first_scores(answer)
    scores = tuple(by_id[doc] for doc in ranked) if by_id is not None else None
    baseline = query.baseline
    agreement = (
        m.average_overlap(ranked, baseline.ids, k)
        if baseline is not None and not answer.error
        else None
    )
    drift = None
    if baseline is not None and baseline.scores is not None and by_id is not None:
        drift = m.score_drift(
            {doc: by_id[doc] for doc in ranked},
            dict(zip(baseline.ids[:k], baseline.scores)),
        )
    return QueryResult(
        query=query,
        answer=answer,
        k=k,
        ranked=tuple(ranked),
        scores=scores,
        metrics=m.evaluate_ranking(ranked, query.relevance, k),
        duplicates=len(answer.ids) - len(m.unique_in_order(answer.ids)),
        rank_agreement=agreement,
        score_drift=drift,
        score_spread=m.score_spread(scores) if scores else None,
    )


def _first_scores(answer: Answer) -> t.Optional[t.Dict[str, float]]:
    if answer.scores is None:
        return None
    by_id: t.Dict[str, float] = {}
    for doc, score in zip(answer.ids, answer.scores):
        by_id.setdefault(doc, score)
    return by_id


def passes_query(result: QueryResult, min_recall: float) -> bool:
    """A query passes when it was answered without error and found enough of its
    relevant documents (a query without any passes when answered)."""
    if result.errored:
        return False
    if not result.query.relevant_ids:
        return True
    return m.at_least(result.metrics.recall, min_recall)


def aggregate(
    results: t.Sequence[QueryResult], min_recall: float
) -> t.Dict[str, t.Optional[float]]:
    """The golden set's metrics: means of the per-query metrics over the judged
    queries, rates, latency and score statistics."""
    count = len(results)
    judged = [r.metrics for r in results if r.query.judged]
    must = [r for r in results if r.query.must_pass]
    latencies = [r.answer.latency for r in results if r.answer.latency is not None]
    agreements = [r.rank_agreement for r in results if r.rank_agreement is not None]
    drifts = [r.score_drift for r in results if r.score_drift is not None]
    spreads = [r.score_spread for r in results if r.score_spread is not None]
    # Only answers that say whether they came from the cache count (none do without
    # cached_path).
    flagged = [
        r.answer.cached
        for r in results
        if not r.errored and r.answer.cached is not None
    ]
    summary: t.Dict[str, t.Optional[float]] = {
        "hit_at_k": m.mean([q.hit for q in judged]),
        "recall_at_k": m.mean([q.recall for q in judged]),
        "precision_at_k": m.mean([q.precision for q in judged]),
        "mrr": m.mean([q.reciprocal_rank for q in judged]),
        "ndcg_at_k": m.mean([q.ndcg for q in judged]),
        "must_pass_rate": (
            sum(1 for r in must if passes_query(r, min_recall)) / len(must)
        )
        if must
        else None,
        "pass_rate": sum(1 for r in results if passes_query(r, min_recall)) / count
        if count
        else None,
        "error_rate": sum(1 for r in results if r.errored) / count if count else None,
        "empty_rate": sum(1 for r in results if r.empty) / count if count else None,
        "cache_hit_rate": sum(1 for cached in flagged if cached) / len(flagged)
        if flagged
        else None,
        "latency_p50": m.percentile(latencies, 50),
        "latency_p95": m.percentile(latencies, 95),
        "latency_max": max(latencies) if latencies else None,
        "rank_agreement": m.mean(agreements),
        "score_drift": max(drifts) if drifts else None,
        "score_spread": m.mean(spreads),
    }
    return summary
