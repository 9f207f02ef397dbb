# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rounds against a real endpoint with a fake clock between them, and the three reports of a validation."""

from __future__ import annotations

import json
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden import query as q
from ansible_collections.ragops.recovery.plugins.module_utils.golden import reports
from ansible_collections.ragops.recovery.plugins.module_utils.golden import verdict as v
from ansible_collections.ragops.recovery.plugins.module_utils.golden.goldenset import (
    GoldenQuery,
    GoldenSet,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden.suite import (
    Outcome,
    Plan,
    run_validation,
)
from ansible_collections.ragops.recovery.tests.unit.golden_endpoint import (
    Endpoint,
    Reply,
    Seen,
    lab_answer,
)

JUNIT_SCHEMA = Path(__file__).with_name("junit.xsd")
QUERIES = (
    GoldenQuery("q1", "alpha", {"a": 3, "b": 1}, must_pass=True, shard="shard-1"),
    GoldenQuery("q2", "beta | pipe", {"c": 1}),
    GoldenQuery("q3", "gamma", {"d": 1}),
)
HEALTHY = {"alpha": ["a", "b", "x"], "beta | pipe": ["c"], "gamma": ["y", "d"]}
RELEVANCE_FIGURES = ("hit", "recall", "precision", "reciprocal_rank", "ndcg")


class FakeClock:
    """Real time for the queries, fake time for the pauses between rounds (tests never sleep)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        import time

        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


def plan(url: str, **overrides: t.Any) -> Plan:
    api = q.QueryApi(
        url=url + "?secret=abc",
        method="POST",
        headers={},
        body={"query": "${query}", "k": "${k}"},
        ids=q.compile_path("results[].id", "ids_path"),
        scores=q.compile_path("results[].score", "scores_path"),
        timeout=2.0,
        transport=q.make_transport(url, True, None, False),
    )
    criteria = overrides.pop(
        "criteria",
        v.criteria_from_options(
            {"max_error_rate": 0.0}, min_recall=1.0, tolerance=0.05, baseline={}
        ),
    )
    golden = GoldenSet("sets/golden.yml", "golden", QUERIES, k=3)
    fields: dict[str, t.Any] = {
        "golden": golden,
        "queries": QUERIES,
        "k": 3,
        "api": api,
        "criteria": criteria,
        "round_interval": 5.0,
        "deadline": 60.0,
    }
    fields.update(overrides)
    return Plan(**fields)


def answering(script: list[dict[str, list[str]] | None]) -> t.Callable[[Seen], Reply]:
    """Answers per round (a round is three requests); None stands for a round of HTTP 503."""
    seen: list[int] = []

    def handle(request: Seen) -> Reply:
        seen.append(1)
        answers = script[min((len(seen) - 1) // len(QUERIES), len(script) - 1)]
        if answers is None:
            return Reply(503, {"error": "index unusable"})
        return lab_answer(answers[request.body["query"]])

    return handle


def validate_on(
    clock: FakeClock, script: list[dict[str, list[str]] | None], **overrides: t.Any
) -> Outcome:
    with Endpoint(answering(script)) as endpoint:
        return run_validation(plan(endpoint.url, **overrides), clock)


def validate(script: list[dict[str, list[str]] | None], **overrides: t.Any) -> Outcome:
    return validate_on(FakeClock(), script, **overrides)


def test_consecutive_passing_rounds_with_pauses_on_the_clock() -> None:
    clock = FakeClock()
    outcome = validate_on(clock, [HEALTHY], rounds=3, max_rounds=3)
    assert outcome.passed and outcome.streak == 3 and len(outcome.rounds) == 3
    assert clock.sleeps == [5.0, 5.0]
    assert outcome.findings == ()


def test_a_warming_system_gets_its_streak_within_max_rounds() -> None:
    outcome = validate([None, HEALTHY], rounds=2, max_rounds=4)
    assert [r.verdict.passed for r in outcome.rounds] == [False, True, True]
    assert outcome.passed


def test_rounds_stop_once_the_streak_cannot_be_reached() -> None:
    outcome = validate([HEALTHY, None, HEALTHY], rounds=2, max_rounds=3)
    assert [r.verdict.passed for r in outcome.rounds] == [True, False]
    assert not outcome.passed
    assert outcome.findings[0].to_dict() == {
        "level": "fail",
        "check": "rounds",
        "value": 0.0,
        "limit": 2.0,
        "message": "needed 2 consecutive passing rounds, got 0 after 2 round(s)",
    }


def test_the_deadline_ends_the_rounds() -> None:
    outcome = validate([HEALTHY], rounds=3, max_rounds=3, deadline=4.0)
    assert len(outcome.rounds) == 1 and outcome.deadline_hit and not outcome.passed
    assert outcome.findings[0].message.endswith(
        "after 1 round(s) (the overall deadline ended the run)"
    )


@pytest.fixture(scope="module")
def failed() -> dict[str, t.Any]:
    broken = {"alpha": [], "beta | pipe": ["c"], "gamma": ["d"]}
    criteria = v.criteria_from_options(
        {"max_error_rate": 0.0, "max_empty_rate": 0.0, "ndcg_at_k": 0.9},
        min_recall=1.0,
        tolerance=0.05,
        baseline={"hit_at_k": 1.0},
    )
    outcome = validate([broken], criteria=criteria, shard="shard-1")
    validation = reports.validation_dict(outcome, "2026-11-27T22:10:03Z")
    validation["next_step"] = v.next_step(outcome.last.verdict, "shard-1")
    return validation


def test_the_validation_result(failed: dict[str, t.Any]) -> None:
    assert failed["passed"] is False and failed["verdict"] == "fail"
    assert failed["endpoint"]["url"].endswith("/search") and "secret" not in json.dumps(
        failed
    )
    assert failed["golden_set"] == {
        "source": "sets/golden.yml",
        "name": "golden",
        "queries": 3,
        "selected": 3,
        "k": 3,
        "shard": "shard-1",
    }
    # Full precision, so a consumer can compare exactly; only Markdown rounds.
    assert failed["metrics"]["hit_at_k"] == 2 / 3
    assert failed["metrics"]["empty_rate"] == 1 / 3
    assert failed["baseline"] == {
        "hit_at_k": {"baseline": 1.0, "current": 2 / 3, "change": 2 / 3 - 1}
    }
    assert failed["failing_queries"] == [
        {
            "qid": "q1",
            "must_pass": True,
            "shard": "shard-1",
            "reasons": ["no results (expected a, b)"],
        }
    ]
    assert failed["summary"] == (
        "2 of 3 golden queries passed; must-pass failed: q1; ndcg_at_k 0.6667 is below "
        "the threshold 0.9; empty_rate 0.3333 is above the limit 0; hit_at_k 0.6667 dropped "
        "0.3333 below the baseline 1 (tolerance 0.05)"
    )
    assert (
        failed["queries"][2]["ids"] == ["d"] and failed["queries"][2]["passed"] is True
    )
    assert failed["next_step"].startswith("Keep shard shard-1 out of service")


def test_json_report_is_the_validation(failed: dict[str, t.Any]) -> None:
    assert json.loads(reports.render_json(failed)) == failed


def test_junit_report_validates_and_has_a_case_per_query_and_per_check(
    failed: dict[str, t.Any],
) -> None:
    text = reports.render_junit(failed)
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(text)
    root = ET.fromstring(text)
    queries, checks = root.findall("testsuite")
    assert [c.get("name") for c in queries.findall("testcase")] == ["q1", "q2", "q3"]
    assert (queries.get("tests"), queries.get("failures"), queries.get("errors")) == (
        "3",
        "1",
        "0",
    )
    failure = queries.find("testcase/failure")
    assert failure is not None and failure.get("type") == "must_pass"
    assert failure.get("message") == "expected a, b; got nothing (recall 0.0)"
    assert [
        (c.get("name"), c.find("failure") is not None)
        for c in checks.findall("testcase")
    ] == [
        ("threshold empty_rate", True),
        ("threshold error_rate", False),
        ("threshold ndcg_at_k", True),
        ("baseline hit_at_k", True),
    ]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        "7",
        "4",
        "0",
    )
    assert queries.get("timestamp") == "2026-11-27T22:10:03"


def test_junit_marks_errored_queries_as_errors() -> None:
    outcome = validate([None])
    root = ET.fromstring(
        reports.render_junit(reports.validation_dict(outcome, "2026-11-27T22:10:03Z"))
    )
    errors = root.findall("testsuite/testcase/error")
    assert len(errors) == 3 and errors[0].get("type") == "http"
    assert errors[0].get("message") == "http: HTTP 503: index unusable"


def test_markdown_report_for_the_incident_channel(failed: dict[str, t.Any]) -> None:
    text = reports.render_markdown(failed)
    assert text.startswith("## Golden-query validation: FAIL\n")
    assert "| q1 | yes | shard-1 | no results (expected a, b) |" in text
    assert "| ndcg_at_k | 0.6667 | >= 0.9 |  |" in text
    assert "| hit_at_k | 0.6667 |  | 1.0 (-0.3333) |" in text
    assert "**Next step:** Keep shard shard-1 out of service" in text
    assert "| q3 | pass | 1.0 | 1.0 | 1.0 |" in text


def test_a_query_without_judgments_has_no_relevance_figures() -> None:
    queries = (
        QUERIES[0],
        GoldenQuery("q2", "beta | pipe", {}),
        GoldenQuery("q3", "gamma", {"d": 0, "y": 2}),
    )
    validation = reports.validation_dict(
        validate([HEALTHY], queries=queries), "2026-11-27T22:10:03Z"
    )
    rows = {row["qid"]: row for row in validation["queries"]}
    assert [rows["q2"][name] for name in RELEVANCE_FIGURES] == [None] * 5
    assert rows["q3"]["relevance"] == {"d": 0, "y": 2}
    assert rows["q3"]["reciprocal_rank"] == 1.0
    assert rows["q3"]["precision"] == 1 / 3
    # q1 and q3 are rated; q2 is left out of the means.
    assert (
        validation["metrics"]["mrr"] == 1.0 and validation["metrics"]["hit_at_k"] == 1
    )
    assert "| q2 | pass | n/a | n/a | n/a |" in reports.render_markdown(validation)


def test_markdown_escapes_cells_and_shortens_long_tables(
    failed: dict[str, t.Any],
) -> None:
    many = dict(
        failed,
        queries=[dict(failed["queries"][0], qid="a|b %d" % i) for i in range(60)],
    )
    text = reports.render_markdown(many)
    assert "| a\\|b 0 |" in text and "10 more queries are in the JSON report." in text


def test_reports_are_written_where_asked(
    failed: dict[str, t.Any], tmp_path: Path
) -> None:
    paths = {
        "json": str(tmp_path / "out" / "golden.json"),
        "junit": str(tmp_path / "golden.xml"),
        "markdown": None,
    }
    assert reports.write_reports(failed, paths) == {
        "json": paths["json"],
        "junit": paths["junit"],
    }
    assert json.loads(Path(paths["json"]).read_text()) == failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden.xml", "out"]
    with pytest.raises(
        RecoveryError, match=r"^Failed to write the markdown report to /proc/golden.md"
    ):
        reports.write_reports(failed, {"markdown": "/proc/golden.md"})


def test_public_url_drops_credentials_and_query() -> None:
    assert (
        reports.public_url(
            "https://user:pw@search.example.com:9200/docs/_search?api_key=k"
        )
        == "https://search.example.com:9200/docs/_search"
    )
