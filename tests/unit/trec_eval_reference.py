# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""trec_eval itself, through pytrec_eval, as the reference for golden_validate's metrics.

golden_validate's relevance metrics at cutoff k are trec_eval's
``trec_eval -c -M k -m success.k -m recall.k -m P.k -m recip_rank -m ndcg_cut.k``:
``-M k`` evaluates only the top k of each ranking, which only recip_rank needs (the
others are cut at k already), and ``-c`` averages over every query of the qrels, a query
without a ranking scoring 0.  pytrec_eval has neither option, so both are applied here:
recip_rank is kept only when its rank is within k, and a judged query missing from the
run scores 0 in the means.

Also the generated worlds the comparisons run on: judgments with grades 0 to 3 (or
none), answers with ties around the cutoff, shorter than k, empty, failing, without any
relevant document or with nothing else.  Scores are multiples of 1/8, exact in single
precision, because the trec_eval that pytrec_eval bundles (9.0.x) stores scores as
floats where trec_eval 10 and golden_validate use doubles.
"""

from __future__ import annotations

import math
import random
import typing as t
from dataclasses import dataclass

import pytrec_eval

# golden_validate's per-query metric -> trec_eval's measure (k filled in).
PER_QUERY = {
    "hit": "success_%d",
    "recall": "recall_%d",
    "precision": "P_%d",
    "reciprocal_rank": "recip_rank",
    "ndcg": "ndcg_cut_%d",
}
# golden_validate's aggregate metric -> the per-query metric it is the mean of.
MEANS = {
    "hit_at_k": "hit",
    "recall_at_k": "recall",
    "precision_at_k": "precision",
    "mrr": "reciprocal_rank",
    "ndcg_at_k": "ndcg",
}
# Document ids whose byte order is not their numeric or case-blind order, and one that
# is not ASCII: trec_eval breaks ties on them with strcmp.
DOCS = ("d1", "d2", "d9", "d10", "d11", "D9", "doc-a", "DOC-B", "doc-é", "doc-z", "x")
SCORES = (0.25, 0.5, 0.625, 0.75, 1.0, 1.5)

Qrels = t.Dict[str, t.Dict[str, int]]
Run = t.Dict[str, t.Dict[str, float]]


@dataclass(frozen=True)
class Reference:
    per_query: t.Dict[str, t.Dict[str, float]]
    means: t.Dict[str, t.Optional[float]]


def trec_eval(qrels: Qrels, run: Run, k: int) -> Reference:
    """trec_eval's figures for the judged queries of ``qrels`` at cutoff ``k``."""
    judged = {qid: dict(docs) for qid, docs in qrels.items() if docs}
    if not judged:
        return Reference({}, dict.fromkeys(MEANS))
    measures = {"success.%d" % k, "recall.%d" % k, "P.%d" % k, "recip_rank"}
    measures.add("ndcg_cut.%d" % k)
    evaluator = pytrec_eval.RelevanceEvaluator(judged, measures)
    measured = evaluator.evaluate(
        {qid: dict(docs) for qid, docs in run.items() if docs and qid in judged}
    )
    per_query = {}
    for qid in judged:
        got = measured.get(qid)
        if got is None:  # -c: a judged query without a ranking scores 0
            per_query[qid] = dict.fromkeys(PER_QUERY, 0.0)
            continue
        values = {
            name: got[measure.replace("%d", str(k))]
            for name, measure in PER_QUERY.items()
        }
        # -M k: a first relevant document below rank k is not found at all.
        if values["reciprocal_rank"] < 1.0 / k:
            values["reciprocal_rank"] = 0.0
        per_query[qid] = values
    means: t.Dict[str, t.Optional[float]] = {
        metric: math.fsum(values[name] for values in per_query.values())
        / len(per_query)
        for metric, name in MEANS.items()
    }
    return Reference(per_query, means)


def response_run(ids: t.Sequence[str]) -> t.Dict[str, float]:
    """The ranking of an answer in its own order, as a trec_eval run: scores falling
    with the position."""
    return {doc: float(len(ids) - position) for position, doc in enumerate(ids)}


def run_of(queries: t.Sequence[WorldQuery], ranking: str) -> Run:
    """The answers as a trec_eval run: their scores (ranking=score) or their order."""
    run = {}
    for entry in queries:
        if entry.answer:
            run[entry.qid] = (
                dict(entry.answer)
                if ranking == "score"
                else response_run([doc for doc, _score in entry.answer])
            )
    return run


@dataclass(frozen=True)
class WorldQuery:
    """One query of a generated world: its judgments and what the endpoint answers
    (None: an HTTP error)."""

    qid: str
    relevance: t.Dict[str, int]
    answer: t.Optional[t.List[t.Tuple[str, float]]]

    def golden_entry(self) -> t.Dict[str, t.Any]:
        return {
            "qid": self.qid,
            "text": "query %s" % self.qid,
            "expected_ids": list(self.relevance),
            "relevance": dict(self.relevance),
        }


def judgments(rng: random.Random, kind: int) -> t.Dict[str, int]:
    """None, only grade 0, binary, or graded judgments."""
    if kind == 0:
        return {}
    docs = rng.sample(DOCS, rng.randint(1, 5))
    if kind == 1:
        return dict.fromkeys(docs, 0)
    if kind == 2:
        return {doc: rng.choice((0, 1, 1)) for doc in docs} | {docs[0]: 1}
    return {doc: rng.randint(0, 3) for doc in docs} | {docs[0]: rng.randint(2, 3)}


def answer(
    rng: random.Random, kind: int, relevance: t.Mapping[str, int], k: int
) -> t.Optional[t.List[t.Tuple[str, float]]]:
    """An answer of the given kind, in no particular order of score."""
    relevant = [doc for doc, grade in relevance.items() if grade >= 1]
    others = [doc for doc in DOCS if doc not in relevant]
    if kind == 0:
        return None
    if kind == 1:
        return []
    if kind == 2:  # shorter than k (empty when k is 1)
        docs = rng.sample(DOCS, rng.randint(0, k - 1))
    elif kind == 3 and relevant:  # only relevant documents
        docs = rng.sample(relevant, rng.randint(1, len(relevant)))
    elif kind == 4:  # no relevant document at all
        docs = rng.sample(others, rng.randint(1, min(len(others), k + 2)))
    elif kind == 5:  # a tie at ranks k and k + 1 in score order
        return tie_at_the_cutoff(rng, k)
    else:
        docs = rng.sample(DOCS, rng.randint(1, min(len(DOCS), k + 3)))
    return [(doc, rng.choice(SCORES)) for doc in docs]


def tie_at_the_cutoff(rng: random.Random, k: int) -> t.List[t.Tuple[str, float]]:
    """k + 1 or more documents whose k-th and (k+1)-th scores are equal, shuffled."""
    tied = rng.choice(SCORES[1:-1])
    higher = [score for score in SCORES if score > tied]
    lower = [score for score in SCORES if score < tied]
    scores = rng.choices(higher, k=k - 1) + [tied] * rng.randint(2, 3)
    scores += rng.choices(lower, k=rng.randint(0, 2))
    docs = rng.sample(DOCS, min(len(scores), len(DOCS)))
    pairs = list(zip(docs, scores))
    rng.shuffle(pairs)
    return pairs


def world(seed: int, size: int, k: int) -> t.List[WorldQuery]:
    """``size`` queries; every kind of judgments meets every kind of answer."""
    rng = random.Random(seed)
    queries = []
    for number in range(size):
        relevance = judgments(rng, number % 4)
        pairs = answer(rng, (number // 4) % 7, relevance, k)
        if pairs is not None:
            rng.shuffle(pairs)
        queries.append(WorldQuery("q%03d" % number, relevance, pairs))
    return queries


def cases(queries: t.Sequence[WorldQuery], k: int) -> t.Set[str]:
    """Which of the cases the comparison must cover occur in ``queries``."""
    found = set()
    for query in queries:
        grades = query.relevance
        relevant = {doc for doc, grade in grades.items() if grade >= 1}
        if not grades:
            found.add("no judgments")
        elif not relevant:
            found.add("only grade 0")
        if any(grade >= 2 for grade in grades.values()):
            found.add("graded")
        pairs = query.answer
        if pairs is None:
            found.add("error")
            continue
        ids = [doc for doc, _score in pairs]
        ordered = sorted((score for _doc, score in pairs), reverse=True)
        if not ids:
            found.add("empty")
        elif len(ids) < k:
            found.add("fewer than k")
        if len(ordered) > k and ordered[k - 1] == ordered[k]:
            found.add("tie at the cutoff")
        if ids and relevant and not relevant & set(ids):
            found.add("no relevant retrieved")
        if ids and set(ids) <= relevant:
            found.add("all retrieved relevant")
    return found


ALL_CASES = frozenset(
    {
        "no judgments",
        "only grade 0",
        "graded",
        "error",
        "empty",
        "fewer than k",
        "tie at the cutoff",
        "no relevant retrieved",
        "all retrieved relevant",
    }
)
