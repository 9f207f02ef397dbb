# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retrieval metrics with the definitions trec_eval uses, for one ranked answer and over
a set.

Everything here is pure arithmetic on document ids, grades and scores, so every number
the gate decides on can be pinned by hand-computed examples.  Per query, at cutoff
``k``:

* hit (trec_eval ``success_k``): 1 when a relevant document is in the top k, else 0;
* recall (``recall_k``): relevant documents in the top k / relevant documents;
* precision (``P_k``): relevant documents in the top k / k, missing ranks counting as
  non-relevant;
* reciprocal rank (``recip_rank`` cut at k): 1 / rank of the first relevant document in
  the top k;
* nDCG (``ndcg_cut_k``): gains are the relevance grades and the gain at rank r is
  divided by log2(r + 1), as trec_eval computes it since 9.0.4; the ideal ranking is
  every relevant grade in descending order, cut at k.

A document is relevant when its grade is 1 or more (trec_eval's default level); grade 0
is a judgment of not relevant.  A query without relevant documents scores 0 on all of
them.  The means are trec_eval's with ``-c``: over every query that has judgments, an
error or an empty answer scoring 0 instead of vanishing; a query without any judgment is
left out, as trec_eval leaves out a query that its qrels do not name.
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

# Aggregate metrics where higher is better, in the order reports list them.
RELEVANCE_METRICS = ("hit_at_k", "recall_at_k", "precision_at_k", "mrr", "ndcg_at_k")
# Metrics a baseline may hold and a regression is measured on (all in [0, 1], higher is
# better).
BASELINE_METRICS = (*RELEVANCE_METRICS, "must_pass_rate", "rank_agreement")
# trec_eval's default relevance level (its -l): a document graded at least this is
# relevant; a lower grade is a judgment of not relevant.
RELEVANCE_LEVEL = 1
# Comparisons allow for binary floating point: 2/3 stored in a YAML file as 0.6667 still
# meets 0.6667.
EPSILON = 1e-9


@dataclass(frozen=True)
class RankingMetrics:
    """The relevance metrics of one ranked answer at cutoff k."""

    hit: float
    recall: float
    precision: float
    reciprocal_rank: float
    ndcg: float
    relevant_retrieved: int


def is_relevant(grade: int) -> bool:
    return grade >= RELEVANCE_LEVEL


def unique_in_order(ids: t.Sequence[str]) -> t.List[str]:
    """``ids`` without repeats, first occurrence kept: a document counts once, at its
    best rank."""
    seen: t.Set[str] = set()
    kept = []
    for doc in ids:
        if doc not in seen:
            seen.add(doc)
            kept.append(doc)
    return kept


def trec_order(
    ids: t.Sequence[str], scores: t.Sequence[float]
) -> t.List[t.Tuple[str, float]]:
    """The ranking trec_eval evaluates, as (id, score) pairs: descending score, ties
    broken by document id in descending order (trec_eval's ``comp_sim_docno``, a
    ``strcmp`` of the UTF-8 bytes, which orders as Python orders code points).

    A repeated id keeps every occurrence; the first one, which a ranking keeps, has
    its best score.
    """
    return sorted(zip(ids, scores), key=lambda pair: (pair[1], pair[0]), reverse=True)


def discount(rank: int) -> float:
    """trec_eval's nDCG discount: the gain at rank r is divided by log2(r + 1), so
    rank 1 counts in full and rank 2 by 1/log2(3)."""
    return math.log2(rank + 1)


def dcg(gains: t.Iterable[float]) -> float:
    """Discounted cumulative gain of gains listed in rank order."""
    return sum(gain / discount(rank) for rank, gain in enumerate(gains, 1) if gain > 0)


def ndcg(ranked_gains: t.Sequence[float], grades: t.Iterable[int], k: int) -> float:
    """nDCG at k: the DCG of the top k over the DCG of the ideal top k; 0 without
    relevant documents."""
    ideal = dcg(sorted((grade for grade in grades if grade > 0), reverse=True)[:k])
    return dcg(ranked_gains[:k]) / ideal if ideal > 0 else 0.0


def evaluate_ranking(
    ranked: t.Sequence[str], relevance: t.Mapping[str, int], k: int
) -> RankingMetrics:
    """The metrics of ``ranked`` (best first, no repeats) against graded
    ``relevance`` at cutoff ``k``."""
    gains = [relevance.get(doc, 0) for doc in ranked[:k]]
    retrieved = sum(1 for gain in gains if is_relevant(gain))
    relevant = sum(1 for grade in relevance.values() if is_relevant(grade))
    first = next((rank for rank, gain in enumerate(gains, 1) if is_relevant(gain)), 0)
    return RankingMetrics(
        hit=1.0 if retrieved else 0.0,
        recall=retrieved / relevant if relevant else 0.0,
        precision=retrieved / k,
        reciprocal_rank=1.0 / first if first else 0.0,
        ndcg=ndcg(gains, relevance.values(), k),
        relevant_retrieved=retrieved,
    )


def mean(values: t.Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values; the sum is exactly rounded
    (``math.fsum``), so the mean does not depend on the order of the queries."""
    return math.fsum(values) / len(values) if values else None


def percentile(values: t.Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile: always a value that was observed, the same on every
    platform."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(percent / 100.0 * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]


def average_overlap(
    current: t.Sequence[str], baseline: t.Sequence[str], k: int
) -> float:
    """Rank agreement of two top-k lists: the mean over depths d of |top d ∩ top d| / d.

    1 for the same ranking, 0 for disjoint ones; a swap near the top costs more than one
    near the bottom.  The depth is k or the longer list, whichever is shorter; two empty
    lists agree.
    """
    depth = min(k, max(len(current), len(baseline)))
    if depth == 0:
        return 1.0
    total = 0.0
    for d in range(1, depth + 1):
        total += len(set(current[:d]) & set(baseline[:d])) / d
    return total / depth


def score_drift(
    current: t.Mapping[str, float], baseline: t.Mapping[str, float]
) -> float | None:
    """The largest score change of a document found in both answers; None when none
    is."""
    common = set(current) & set(baseline)
    if not common:
        return None
    return max(abs(current[doc] - baseline[doc]) for doc in common)


def score_spread(scores: t.Sequence[float]) -> float | None:
    """Top score minus lowest score of the top k: near 0 when a damaged index scores
    everything alike."""
    return max(scores) - min(scores) if scores else None


def at_least(value: float, minimum: float) -> bool:
    return value + EPSILON >= minimum


def at_most(value: float, maximum: float) -> bool:
    return value - EPSILON <= maximum
