# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's metrics against trec_eval's (pytrec_eval), per query and as means, on
generated worlds: answers read as the endpoint sends them, ranked, evaluated, averaged."""

from __future__ import annotations

import functools
import json
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ragops.recovery.plugins.module_utils.golden import query as q
from ansible_collections.ragops.recovery.plugins.module_utils.golden.evaluation import (
    QueryResult,
    aggregate,
    evaluate_answer,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden.goldenset import (
    GoldenQuery,
)
from ansible_collections.ragops.recovery.tests.unit.trec_eval_reference import (
    ALL_CASES,
    DOCS,
    MEANS,
    PER_QUERY,
    SCORES,
    WorldQuery,
    cases,
    run_of,
    trec_eval,
    world,
)


@functools.cache
def api(ranking: str) -> q.QueryApi:
    return q.QueryApi(
        url="http://127.0.0.1:9/search",
        method="POST",
        headers={},
        body=None,
        ids=q.compile_path("results[].id", "ids_path"),
        scores=q.compile_path("results[].score", "scores_path"),
        ranking=ranking,
    )


def evaluate(
    queries: t.Sequence[WorldQuery], k: int, ranking: str
) -> t.List[QueryResult]:
    """Each answer as the engine reads (and with ranking=score, re-ranks) it, scored."""
    reader = api(ranking)
    results = []
    for entry in queries:
        if entry.answer is None:
            answer = q.Answer(entry.qid, error="HTTP 503: down", kind=q.HTTP_ERROR)
        else:
            body = {"results": [{"id": doc, "score": s} for doc, s in entry.answer]}
            ids, scores, cached = q.extract(reader, json.dumps(body).encode())
            answer = q.Answer(entry.qid, ids, scores, cached)
        golden = GoldenQuery(entry.qid, "t", entry.relevance)
        results.append(evaluate_answer(golden, answer, k))
    return results


def assert_as_trec_eval(queries: t.Sequence[WorldQuery], k: int, ranking: str) -> None:
    results = evaluate(queries, k, ranking)
    qrels = {entry.qid: entry.relevance for entry in queries}
    reference = trec_eval(qrels, run_of(queries, ranking), k)
    for result in results:
        expected = reference.per_query.get(result.query.qid)
        if expected is None:  # no judgments: trec_eval does not rate the query
            assert not result.query.relevance
            continue
        got = {name: getattr(result.metrics, name) for name in PER_QUERY}
        assert got == expected, result.query.qid
    summary = aggregate(results, 1.0)
    assert {metric: summary[metric] for metric in MEANS} == reference.means


ANSWERS = st.none() | st.lists(
    st.tuples(st.sampled_from(DOCS), st.sampled_from(SCORES)),
    max_size=len(DOCS),
    unique_by=lambda pair: pair[0],
)


@st.composite
def worlds(draw: st.DrawFn) -> t.List[WorldQuery]:
    relevance = st.dictionaries(st.sampled_from(DOCS), st.integers(0, 3), max_size=6)
    count = draw(st.integers(1, 6))
    return [
        WorldQuery("q%d" % number, draw(relevance), draw(ANSWERS))
        for number in range(count)
    ]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    queries=worlds(),
    k=st.integers(1, 8),
    ranking=st.sampled_from(["response", "score"]),
)
def test_metrics_are_trec_eval_s_on_any_world(
    queries: t.List[WorldQuery], k: int, ranking: str
) -> None:
    assert_as_trec_eval(queries, k, ranking)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("ranking", ["response", "score"])
def test_metrics_are_trec_eval_s_on_a_world_with_every_case(
    k: int, ranking: str
) -> None:
    queries = world(seed=20250115 + k, size=112, k=k)
    assert cases(queries, k) == ALL_CASES - ({"fewer than k"} if k == 1 else set())
    assert_as_trec_eval(queries, k, ranking)
