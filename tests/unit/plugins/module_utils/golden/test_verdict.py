# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From answers to a verdict: per-query evaluation, aggregates, findings, thresholds, regression, next step."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden import verdict as v
from ansible_collections.ragops.recovery.plugins.module_utils.golden.evaluation import (
    QueryResult,
    aggregate,
    evaluate_answer,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden.goldenset import (
    GoldenQuery,
    QueryBaseline,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden.query import Answer

MUST = GoldenQuery(
    "q1",
    "t",
    {"a": 3, "b": 1},
    must_pass=True,
    shard="shard-2",
    baseline=QueryBaseline(("a", "b", "c"), (0.9, 0.8, 0.7)),
)
OTHER = GoldenQuery("q2", "t", {"d": 1})


def result(
    query: GoldenQuery,
    ids: t.Sequence[str] = (),
    scores: t.Sequence[float] | None = None,
    **answer: t.Any,
) -> QueryResult:
    latency = answer.pop("latency", 0.01)
    return evaluate_answer(
        query,
        Answer(
            query.qid,
            tuple(ids),
            tuple(scores) if scores is not None else None,
            latency=latency,
            **answer,
        ),
        3,
    )


def test_evaluate_answer_scores_against_the_recorded_baseline() -> None:
    got = result(MUST, ["b", "a", "a", "x"], [0.85, 0.8, 0.1, 0.5])
    assert (
        got.ranked == ("b", "a", "x")
        and got.scores == (0.85, 0.8, 0.5)
        and got.duplicates == 1
    )
    assert got.metrics.reciprocal_rank == 1.0 and got.metrics.recall == 1.0
    assert got.rank_agreement == pytest.approx(
        (0 + 1 + 2 / 3) / 3
    )  # depths 1..3 against a, b, c
    assert got.score_drift == pytest.approx(0.1)  # a: 0.8 now, 0.9 then
    assert got.score_spread == pytest.approx(0.35)
    assert not got.errored and not got.empty and got.missing == ()


def test_aggregate_averages_over_every_query_errors_included() -> None:
    results = [
        result(MUST, ["a", "b"], [0.9, 0.8], latency=0.1),
        result(OTHER, [], latency=0.3),
        result(
            GoldenQuery("q3", "t", {"e": 1}),
            kind="http",
            error="HTTP 503: down",
            status=503,
            latency=0.2,
        ),
    ]
    summary = aggregate(results, 1.0)
    assert summary["hit_at_k"] == pytest.approx(1 / 3)
    assert summary["precision_at_k"] == pytest.approx((2 / 3) / 3)
    assert summary["must_pass_rate"] == 1.0 and summary["pass_rate"] == pytest.approx(
        1 / 3
    )
    assert summary["error_rate"] == pytest.approx(1 / 3) and summary[
        "empty_rate"
    ] == pytest.approx(1 / 3)
    assert (summary["latency_p50"], summary["latency_p95"], summary["latency_max"]) == (
        0.2,
        0.3,
        0.3,
    )
    assert summary["rank_agreement"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert summary["score_drift"] == pytest.approx(0.0) and summary[
        "score_spread"
    ] == pytest.approx(0.1)


def test_relevance_means_leave_out_unjudged_queries_as_trec_eval_does() -> None:
    # trec_eval -c averages over the queries of its qrels: a query with only grade-0
    # judgments counts (with 0), a query without any judgment does not.
    unjudged = GoldenQuery("q8", "t", {})
    not_relevant = GoldenQuery("q9", "t", {"x": 0})
    summary = aggregate(
        [
            result(MUST, ["a", "b"]),
            result(unjudged, ["y"]),
            result(not_relevant, ["x"]),
        ],
        1.0,
    )
    assert (summary["hit_at_k"], summary["mrr"], summary["recall_at_k"]) == (
        0.5,
        0.5,
        0.5,
    )
    assert summary["precision_at_k"] == pytest.approx((2 / 3) / 2)
    assert summary["pass_rate"] == 1.0
    alone = aggregate([result(unjudged, ["y"])], 1.0)
    assert [alone[name] for name in ("hit_at_k", "ndcg_at_k")] == [None, None]


def test_grade_zero_is_judged_not_relevant() -> None:
    got = result(GoldenQuery("q5", "t", {"a": 0, "b": 1}, must_pass=True), ["a", "b"])
    assert (got.metrics.hit, got.metrics.recall, got.metrics.reciprocal_rank) == (
        1.0,
        1.0,
        0.5,
    )
    assert got.metrics.relevant_retrieved == 1 and got.missing == ()
    verdict = judge([got, result(GoldenQuery("q6", "t", {"c": 0}), ["c"])])
    assert verdict.passed and not verdict.failing
    assert [(f.check, f.qid) for f in verdict.findings] == [("no_relevant_ids", "q6")]
    missed = result(GoldenQuery("q7", "t", {"a": 0, "b": 1}), [])
    assert v.failure_reasons(missed, 1.0) == ["no results (expected b)"]


def test_no_must_pass_queries_means_no_must_pass_rate() -> None:
    assert aggregate([result(OTHER, ["d"])], 1.0)["must_pass_rate"] is None


def test_criteria_ranges_are_checked() -> None:
    with pytest.raises(
        RecoveryError,
        match=r"^Invalid thresholds.ndcg_at_k=1.5: it must be between 0 and 1$",
    ):
        v.criteria_from_options(
            {"ndcg_at_k": 1.5}, min_recall=1.0, tolerance=0.05, baseline={}
        )
    with pytest.raises(
        RecoveryError,
        match=r"thresholds\.max_error_rate=-0\.1: it must be between 0 and 1",
    ):
        v.criteria_from_options(
            {"max_error_rate": -0.1}, min_recall=1.0, tolerance=0.05, baseline={}
        )
    with pytest.raises(
        RecoveryError, match=r"thresholds.max_latency_p95=-1.0: it must be 0 or more"
    ):
        v.criteria_from_options(
            {"max_latency_p95": -1.0}, min_recall=1.0, tolerance=0.05, baseline={}
        )
    with pytest.raises(RecoveryError, match=r"query_min_recall=2"):
        v.criteria_from_options({}, min_recall=2, tolerance=0.05, baseline={})
    with pytest.raises(RecoveryError, match=r"tolerance=-0\.5"):
        v.criteria_from_options({}, min_recall=1.0, tolerance=-0.5, baseline={})
    criteria = v.criteria_from_options(
        {"ndcg_at_k": 0.8, "max_error_rate": 0.0, "mrr": None},
        min_recall=0.5,
        tolerance=0.1,
        baseline={"mrr": 1.0},
    )
    assert criteria.minimums == {"ndcg_at_k": 0.8} and criteria.maximums == {
        "error_rate": 0.0
    }


def judge(results: list[QueryResult], **options: t.Any) -> v.RoundVerdict:
    criteria = v.criteria_from_options(
        options.pop("thresholds", {"max_error_rate": 0.0, "max_empty_rate": 0.0}),
        min_recall=options.pop("min_recall", 1.0),
        tolerance=options.pop("tolerance", 0.05),
        baseline=options.pop("baseline", {}),
        **options,
    )
    return v.judge(results, aggregate(results, criteria.min_recall), criteria)


def test_a_healthy_round_passes_without_findings() -> None:
    verdict = judge(
        [result(MUST, ["a", "b", "c"]), result(OTHER, ["d"])],
        baseline={"mrr": 1.0, "hit_at_k": 1.0},
    )
    assert verdict.passed and verdict.findings == () and verdict.failing == ()


def test_a_failing_must_pass_query_fails_the_round_but_another_only_warns() -> None:
    verdict = judge(
        [result(OTHER, ["x"]), result(MUST, ["a", "x", "y"])], thresholds={}
    )
    assert not verdict.passed
    assert [f.to_dict() for f in verdict.findings] == [
        {
            "level": "fail",
            "check": "must_pass",
            "qid": "q1",
            "message": "q1 (must pass) failed: b not in the top 3 (recall 0.5 < 1)",
        },
        {
            "level": "warn",
            "check": "query",
            "qid": "q2",
            "message": "q2 failed: d not in the top 3 (recall 0 < 1)",
        },
    ]
    assert [r.query.qid for r in verdict.failing] == ["q1", "q2"]
    assert judge([result(OTHER, ["x"])], thresholds={}).passed


def test_query_min_recall_relaxes_the_per_query_rule() -> None:
    assert judge([result(MUST, ["a", "x", "y"])], min_recall=0.5).passed


def test_errors_and_empty_answers_are_reasons_and_rates() -> None:
    verdict = judge(
        [
            result(MUST, kind="http", error="HTTP 503: checksum mismatch", status=503),
            result(OTHER, []),
        ]
    )
    messages = [f.message for f in verdict.findings]
    assert messages == [
        "q1 (must pass) failed: http: HTTP 503: checksum mismatch",
        "empty_rate 0.5 is above the limit 0",
        "error_rate 0.5 is above the limit 0",
        "q2 failed: no results (expected d)",
    ]


def test_thresholds_and_unmeasurable_metrics() -> None:
    thresholds = {
        "ndcg_at_k": 0.9,
        "rank_agreement": 0.8,
        "max_latency_p95": 0.001,
        "must_pass_rate": 1.0,
    }
    verdict = judge([result(OTHER, ["x", "y", "d"])], thresholds=thresholds)
    assert [(f.check, f.metric) for f in verdict.findings if f.level == v.FAIL] == [
        ("threshold", "ndcg_at_k"),
        ("threshold", "rank_agreement"),
        ("threshold", "latency_p95"),
    ]
    assert verdict.findings[1].message == (
        "rank_agreement could not be measured (no query gave what it needs), "
        "so its threshold 0.8 is not met"
    )


def test_cache_hit_rate_counts_answers_that_say_and_has_a_limit() -> None:
    results = [
        result(MUST, ["a", "b"], cached=True),
        result(OTHER, ["d"], cached=False),
        result(OTHER, ["d"]),
        result(
            GoldenQuery("q3", "t", {"e": 1}),
            kind="http",
            error="HTTP 503: down",
            status=503,
        ),
    ]
    assert aggregate(results, 1.0)["cache_hit_rate"] == pytest.approx(
        0.5
    )  # q1 of q1, q2; q2 again and q3 say nothing
    assert aggregate([result(MUST, ["a", "b"])], 1.0)["cache_hit_rate"] is None
    answered = results[:2]
    assert judge(answered, thresholds={"max_cache_hit_rate": 0.5}).passed
    verdict = judge(answered, thresholds={"max_cache_hit_rate": 0.25})
    assert [(f.level, f.metric, f.message) for f in verdict.findings] == [
        ("fail", "cache_hit_rate", "cache_hit_rate 0.5 is above the limit 0.25")
    ]
    unknown = judge([result(MUST, ["a", "b"])], thresholds={"max_cache_hit_rate": 0.0})
    assert not unknown.passed and unknown.findings[0].message.startswith(
        "cache_hit_rate could not be measured"
    )
    with pytest.raises(
        RecoveryError,
        match=r"thresholds.max_cache_hit_rate=1.5: it must be between 0 and 1",
    ):
        v.criteria_from_options(
            {"max_cache_hit_rate": 1.5}, min_recall=1.0, tolerance=0.05, baseline={}
        )


def test_regression_beyond_the_tolerance_fails() -> None:
    results = [
        result(MUST, ["a", "b"]),
        result(OTHER, ["x", "d"]),
    ]  # mrr (1 + 0.5) / 2 = 0.75
    assert judge(results, baseline={"mrr": 0.8}).passed
    verdict = judge(results, baseline={"mrr": 0.81})
    assert [f.message for f in verdict.findings] == [
        "mrr 0.75 dropped 0.06 below the baseline 0.81 (tolerance 0.05)"
    ]
    assert v.baseline_comparison(
        aggregate(results, 1.0), v.Criteria(baseline={"mrr": 0.81})
    ) == {"mrr": {"baseline": 0.81, "current": 0.75, "change": 0.75 - 0.81}}


def test_a_baseline_that_does_not_fit_is_noted_not_compared() -> None:
    verdict = judge(
        [result(OTHER, ["x"])],
        thresholds={},
        baseline={"mrr": 1.0},
        baseline_note="recorded at k=3",
    )
    assert verdict.passed and [f.to_dict() for f in verdict.findings][-1] == {
        "level": "warn",
        "check": "baseline",
        "message": "recorded at k=3",
    }


def test_duplicates_and_queries_without_expected_ids_are_warned() -> None:
    verdict = judge([result(GoldenQuery("q9", "t", {}), ["x", "x"])], thresholds={})
    assert verdict.passed
    assert [f.check for f in verdict.findings] == ["duplicates", "no_expected_ids"]


@pytest.mark.parametrize(
    ("results", "shard", "expected"),
    [
        (
            [result(MUST, kind="http", error="HTTP 503", status=503)],
            "shard-2",
            "Keep shard shard-2 out of service (do not mark it serving). "
            "The endpoint is failing (http): check its health",
        ),
        (
            [result(MUST, kind="http", error="HTTP 401", status=401)],
            None,
            "Do not send traffic back to this system yet. The endpoint rejected the request (HTTP 401): check the "
            "credentials in secret_headers.",
        ),
        (
            [result(MUST, kind="bad_response", error="ids_path found nothing")],
            None,
            "Do not send traffic back to this system yet. The answers could not be read: check ids_path",
        ),
        (
            [result(MUST, kind="exception", error="UnicodeEncodeError: 'latin-1' ...")],
            None,
            "Do not send traffic back to this system yet. Sending the queries or reading "
            "their answers failed in the module (each error, with its type, is in the "
            "failing queries): check the request options (url, headers, body)",
        ),
        (
            [result(MUST, [])],
            "shard-2",
            "Keep shard shard-2 out of service (do not mark it serving). Answers miss "
            "expected documents: the index is damaged or stale. Restore the latest verified snapshot",
        ),
    ],
)
def test_next_step_follows_what_failed(
    results: list[QueryResult], shard: str | None, expected: str
) -> None:
    assert v.next_step(judge(results), shard).startswith(expected)


def test_next_step_for_a_quality_regression_only() -> None:
    verdict = judge([result(MUST, ["a", "b"])], baseline={"precision_at_k": 1.0})
    assert not verdict.passed and verdict.failing == ()
    assert "Quality is below the thresholds or the baseline" in v.next_step(
        verdict, None
    )
