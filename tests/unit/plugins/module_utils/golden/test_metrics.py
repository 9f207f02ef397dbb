# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every metric pinned on examples computed by hand with trec_eval's definitions, plus invariants.

test_trec_eval_reference.py compares the same metrics with trec_eval itself."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ragops.recovery.plugins.module_utils.golden import metrics as m

LOG2_3 = math.log2(3)


def close(value: float | None, expected: float) -> bool:
    return value is not None and math.isclose(value, expected, abs_tol=1e-12)


def test_relevant_document_at_rank_two_is_discounted_by_log2_of_three() -> None:
    # trec_eval >= 9.0.4 (ndcg_cut): every rank r is discounted by log2(r + 1).
    got = m.evaluate_ranking(["x", "a", "y"], {"a": 1}, 3)
    assert (got.hit, got.recall, got.reciprocal_rank, got.relevant_retrieved) == (
        1.0,
        1.0,
        0.5,
        1,
    )
    assert close(got.precision, 1 / 3)
    assert close(got.ndcg, 1 / LOG2_3)  # 0.6309: DCG 1/log2(3), ideal 1/log2(2)


def test_relevant_document_at_rank_three() -> None:
    got = m.evaluate_ranking(["x", "y", "a"], {"a": 1}, 3)
    assert close(got.reciprocal_rank, 1 / 3)
    assert close(got.ndcg, 0.5)  # 1/log2(4)


def test_graded_relevance() -> None:
    got = m.evaluate_ranking(["b", "x", "a"], {"a": 3, "b": 1}, 3)
    # DCG = 1/log2(2) + 3/log2(4) = 2.5; ideal = 3/log2(2) + 1/log2(3)
    assert close(got.ndcg, 2.5 / (3 + 1 / LOG2_3))  # 0.6885
    assert (got.hit, got.recall, got.reciprocal_rank) == (1.0, 1.0, 1.0)
    assert close(got.precision, 2 / 3)


def test_ideal_ranking_is_cut_at_k() -> None:
    got = m.evaluate_ranking(["c", "a", "b"], {"a": 3, "b": 2, "c": 1}, 2)
    # top 2: c (1), a (3) -> DCG 1 + 3/log2(3); ideal top 2: 3 + 2/log2(3)
    assert close(got.ndcg, (1 + 3 / LOG2_3) / (3 + 2 / LOG2_3))  # 0.6788
    assert close(got.recall, 2 / 3) and got.precision == 1.0


def test_fewer_results_than_k_count_as_non_relevant() -> None:
    got = m.evaluate_ranking(["a"], {"a": 1, "b": 1}, 5)
    assert close(got.precision, 0.2) and close(got.recall, 0.5)
    assert got.reciprocal_rank == 1.0 and got.hit == 1.0
    assert close(got.ndcg, 1 / (1 + 1 / LOG2_3))  # DCG 1; ideal 1 + 1/log2(3)


def test_empty_answer_scores_zero() -> None:
    got = m.evaluate_ranking([], {"a": 1}, 3)
    assert (got.hit, got.recall, got.precision, got.reciprocal_rank, got.ndcg) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_no_relevant_document_retrieved_scores_zero() -> None:
    got = m.evaluate_ranking(["x", "y", "z"], {"a": 2}, 3)
    assert (
        got.hit,
        got.recall,
        got.precision,
        got.reciprocal_rank,
        got.ndcg,
        got.relevant_retrieved,
    ) == (0.0, 0.0, 0.0, 0.0, 0.0, 0)


def test_query_without_relevant_documents_scores_zero_like_trec_eval() -> None:
    got = m.evaluate_ranking(["x", "y"], {}, 3)
    assert (got.hit, got.recall, got.precision, got.reciprocal_rank, got.ndcg) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_documents_beyond_k_do_not_count() -> None:
    got = m.evaluate_ranking(["x", "y", "a"], {"a": 1}, 2)
    assert (got.hit, got.recall, got.reciprocal_rank, got.ndcg) == (0.0, 0.0, 0.0, 0.0)


def test_ties_in_score_keep_the_answer_order_unless_ranked_like_trec_eval() -> None:
    ids, scores = ["a", "b", "c"], [0.5, 0.5, 0.9]
    # score descending, ties by id descending
    assert m.trec_order(ids, scores) == [("c", 0.9), ("b", 0.5), ("a", 0.5)]
    assert m.evaluate_ranking(["a", "b"], {"a": 1}, 1).hit == 1.0
    tied = [doc for doc, _score in m.trec_order(["a", "b"], [0.5, 0.5])]
    assert m.evaluate_ranking(tied, {"a": 1}, 1).hit == 0.0
    # strcmp order, not numeric: d9 before d10, lower case after upper case
    assert m.trec_order(["d10", "d9", "D9"], [1.0, 1.0, 1.0]) == [
        ("d9", 1.0),
        ("d10", 1.0),
        ("D9", 1.0),
    ]


def test_ties_in_grades_give_the_same_ideal() -> None:
    first = m.evaluate_ranking(["a", "b"], {"a": 2, "b": 2}, 2)
    swapped = m.evaluate_ranking(["b", "a"], {"a": 2, "b": 2}, 2)
    assert first.ndcg == swapped.ndcg == 1.0


def test_repeated_ids_count_once_at_their_best_rank() -> None:
    assert m.unique_in_order(["a", "a", "b", "a"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([0.3, 0.1, 0.2], 50, 0.2),
        ([float(i) for i in range(1, 11)], 50, 5.0),
        ([float(i) for i in range(1, 11)], 95, 10.0),
        ([float(i) for i in range(1, 21)], 95, 19.0),
        ([7.0], 95, 7.0),
    ],
)
def test_nearest_rank_percentile(
    values: list[float], percent: float, expected: float
) -> None:
    assert m.percentile(values, percent) == expected


def test_statistics_of_nothing_are_none() -> None:
    assert m.percentile([], 50) is None and m.mean([]) is None
    assert m.score_spread([]) is None and m.score_drift({"a": 1.0}, {"b": 1.0}) is None


@pytest.mark.parametrize(
    ("current", "baseline", "k", "expected"),
    [
        (["a", "b", "c"], ["a", "b", "c"], 3, 1.0),
        (["a", "b", "c"], ["b", "a", "c"], 3, 2 / 3),  # depths: 0/1, 2/2, 3/3
        (["a", "b", "c"], ["x", "y", "z"], 3, 0.0),
        (["a"], ["a", "b"], 3, 0.75),  # depth 2: 1/1, 1/2
        ([], [], 3, 1.0),
        ([], ["a"], 3, 0.0),
    ],
)
def test_average_overlap(
    current: list[str], baseline: list[str], k: int, expected: float
) -> None:
    assert close(m.average_overlap(current, baseline, k), expected)


def test_score_drift_and_spread() -> None:
    assert close(m.score_drift({"a": 0.9, "b": 0.8}, {"a": 0.85, "c": 0.7}), 0.05)
    assert close(m.score_spread([0.9, 0.7, 0.5]), 0.4)
    assert m.score_spread([0.3]) == 0.0


def test_comparisons_allow_for_rounding() -> None:
    assert m.at_least(2 / 3, 0.6666666666666667) and m.at_least(0.1 + 0.2, 0.3)
    assert (
        not m.at_least(0.66, 0.67)
        and m.at_most(0.1 + 0.2, 0.3)
        and not m.at_most(0.31, 0.3)
    )


DOCS = st.sampled_from(["d%d" % i for i in range(12)])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    ranked=st.lists(DOCS, max_size=12, unique=True),
    relevance=st.dictionaries(DOCS, st.integers(1, 3)),
    k=st.integers(1, 12),
)
def test_metric_invariants(
    ranked: list[str], relevance: dict[str, int], k: int
) -> None:
    got = m.evaluate_ranking(ranked, relevance, k)
    for value in (got.hit, got.recall, got.precision, got.reciprocal_rank, got.ndcg):
        assert 0.0 <= value <= 1.0 + 1e-12
    assert close(got.precision * k, got.relevant_retrieved)
    if relevance:
        assert close(got.recall * len(relevance), got.relevant_retrieved)
    assert got.hit == (1.0 if got.relevant_retrieved else 0.0)
    assert (got.reciprocal_rank > 0) == (got.hit > 0)
    assert m.evaluate_ranking(ranked, relevance, min(k + 1, 12)).recall >= got.recall


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    relevance=st.dictionaries(DOCS, st.integers(1, 3), min_size=1), k=st.integers(1, 12)
)
def test_the_ideal_ranking_scores_one(relevance: dict[str, int], k: int) -> None:
    ideal = sorted(relevance, key=lambda doc: -relevance[doc])
    got = m.evaluate_ranking(ideal, relevance, k)
    assert close(got.ndcg, 1.0) and got.reciprocal_rank == 1.0
    assert close(got.recall, min(1.0, k / len(relevance)))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    first=st.lists(DOCS, max_size=8, unique=True),
    second=st.lists(DOCS, max_size=8, unique=True),
    k=st.integers(1, 8),
)
def test_average_overlap_is_symmetric_and_bounded(
    first: list[str], second: list[str], k: int
) -> None:
    forward = m.average_overlap(first, second, k)
    assert close(forward, m.average_overlap(second, first, k)) and 0.0 <= forward <= 1.0
    assert m.average_overlap(first, first, k) == 1.0
