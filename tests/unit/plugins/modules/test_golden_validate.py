# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""golden_validate through main(): arguments in, one JSON result out, against a real endpoint on 127.0.0.1."""

from __future__ import annotations

import functools
import json
import math
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.recovery.plugins.module_utils.golden import query
from ansible_collections.ragops.recovery.plugins.modules import golden_validate
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.golden_endpoint import (
    Endpoint,
    Reply,
    Seen,
    by_query,
    lab_answer,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

GOLDEN = {
    "version": 1,
    "k": 3,
    "baseline": {"hit_at_k": 1.0, "recall_at_k": 1.0, "mrr": 1.0},
    "queries": [
        {
            "qid": "q001",
            "text": "restore notes",
            "expected_ids": ["doc-1"],
            "must_pass": True,
            "shard": "shard-1",
        },
        {
            "qid": "q002",
            "text": "firewall notes",
            "expected_ids": ["doc-2", "doc-3"],
            "relevance": {"doc-2": 3, "doc-3": 1},
            "shard": "shard-2",
        },
        {
            "qid": "q003",
            "text": "kafka lag",
            "expected_ids": ["doc-4"],
            "must_pass": True,
            "shard": "shard-2",
        },
    ],
}
run = functools.partial(run_main, golden_validate)
HEALTHY = {
    "restore notes": lab_answer(["doc-1", "doc-9", "doc-8"], [0.9, 0.5, 0.4]),
    "firewall notes": lab_answer(["doc-2", "doc-3", "doc-7"], [0.8, 0.7, 0.3]),
    "kafka lag": lab_answer(["doc-4", "doc-6"], [0.95, 0.2]),
}


@pytest.fixture
def golden_file(tmp_path: Path) -> Path:
    path = tmp_path / "golden.yml"
    path.write_text(yaml.safe_dump(GOLDEN, sort_keys=False))
    return path


@pytest.fixture
def healthy() -> t.Iterator[Endpoint]:
    with Endpoint(by_query(HEALTHY)) as endpoint:
        yield endpoint


def test_a_healthy_system_passes_in_check_mode_and_writes_the_reports(
    golden_file: Path,
    healthy: Endpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reports = {
        "json": str(tmp_path / "r.json"),
        "junit": str(tmp_path / "r.xml"),
        "markdown": str(tmp_path / "r.md"),
    }
    result = run(
        capsys,
        golden_set=str(golden_file),
        url=healthy.url,
        reports=reports,
        _ansible_check_mode=True,
    )
    assert result["changed"] is False and "failed" not in result
    validation = result["validation"]
    assert (
        validation["passed"] is True
        and validation["summary"] == "3 of 3 golden queries passed"
    )
    assert validation["metrics"]["ndcg_at_k"] == 1.0 and validation["metrics"][
        "precision_at_k"
    ] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3, abs=1e-4)
    assert validation["baseline"]["mrr"] == {
        "baseline": 1.0,
        "current": 1.0,
        "change": 0.0,
    }
    assert result["reports"] == reports
    report = json.loads(Path(reports["json"]).read_text())
    assert report["verdict"] == "pass" and report["metrics"] == validation["metrics"]
    # Every digit in JSON, so a consumer can compare exactly; Markdown rounds.
    assert [query["precision"] for query in report["queries"]] == [1 / 3, 2 / 3, 1 / 3]
    assert report["metrics"]["precision_at_k"] == math.fsum([1 / 3, 2 / 3, 1 / 3]) / 3
    assert "| precision_at_k | 0.4444 |" in Path(reports["markdown"]).read_text()
    # a case per query, then per check: error_rate, empty_rate and the three baseline metrics
    assert Path(reports["junit"]).read_text().count("<testcase ") == 3 + 5
    assert {"query": "restore notes", "k": 3} in [seen.body for seen in healthy.seen]


def test_a_broken_shard_fails_the_gate_with_the_failing_queries_and_the_next_step(
    golden_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(seen: Seen) -> Reply:
        if seen.body["query"] == "kafka lag":
            return Reply(
                503,
                {
                    "error": "checksum mismatch in vectors.bin: expected 3f2a, found 91c0"
                },
            )
        return HEALTHY[seen.body["query"]]

    with Endpoint(broken) as endpoint:
        result = run(
            capsys,
            golden_set=str(golden_file),
            url=endpoint.url,
            shard="shard-2",
            reports={"markdown": str(tmp_path / "r.md")},
        )
    assert result["failed"] is True
    assert result["msg"] == (
        "Golden-query validation failed: 1 of 2 golden queries passed; must-pass failed: q003; "
        "error_rate 0.5 is above the limit 0"
    )
    assert result["next_step"].startswith(
        "Keep shard shard-2 out of service (do not mark it serving). The endpoint "
        "is failing (http)"
    )
    assert result["validation"]["failing_queries"] == [
        {
            "qid": "q003",
            "must_pass": True,
            "shard": "shard-2",
            "reasons": [
                "http: HTTP 503: checksum mismatch in vectors.bin: expected 3f2a, found 91c0"
            ],
        }
    ]
    assert result["validation"]["golden_set"]["selected"] == 2
    assert (
        result["validation"]["findings"][-1]["check"] == "baseline"
    )  # a subset is not compared with the set
    assert "| q003 | yes | shard-2 | http: HTTP 503" in (tmp_path / "r.md").read_text()


def test_report_only_returns_a_failed_verdict_as_a_warning(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Endpoint(lambda seen: lab_answer([])) as endpoint:
        result = run(
            capsys, golden_set=str(golden_file), url=endpoint.url, report_only=True
        )
    assert "failed" not in result and result["validation"]["passed"] is False
    assert result["validation"]["metrics"]["empty_rate"] == 1.0
    assert "Golden-query validation failed (report_only): 0 of 3" in json.dumps(
        result["warnings"]
    )


def test_cached_answers_give_the_cache_hit_rate_and_fail_its_limit(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def from_cache(seen: Seen) -> Reply:
        answer = HEALTHY[seen.body["query"]]
        return Reply(body={**answer.body, "cached": seen.body["query"] != "kafka lag"})

    with Endpoint(from_cache) as endpoint:
        result = run(
            capsys,
            golden_set=str(golden_file),
            url=endpoint.url,
            cached_path="cached",
            thresholds={"max_cache_hit_rate": 0.5},
        )
    assert result["failed"] is True
    assert result["msg"] == (
        "Golden-query validation failed: 3 of 3 golden queries passed; "
        "cache_hit_rate 0.6667 is above the limit 0.5"
    )
    assert result["validation"]["metrics"]["cache_hit_rate"] == 2 / 3
    assert [query["cached"] for query in result["validation"]["queries"]] == [
        True,
        True,
        False,
    ]


def test_secret_headers_reach_the_endpoint_but_never_the_result(
    golden_file: Path, healthy: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        capsys,
        golden_set=str(golden_file),
        url=healthy.url + "?api_key=abc123",
        headers={"X-Tenant": "blue"},
        secret_headers={"Authorization": "Bearer sup3r-s3cret-t0ken"},
    )
    assert healthy.seen[0].headers["Authorization"] == "Bearer sup3r-s3cret-t0ken"
    assert healthy.seen[0].headers["X-Tenant"] == "blue"
    text = json.dumps(result)
    assert "sup3r-s3cret-t0ken" not in text
    # Only the echo of the arguments has the URL as given; what the module itself returns drops the query string.
    assert "abc123" not in json.dumps(
        {key: value for key, value in result.items() if key != "invocation"}
    )
    assert result["validation"]["endpoint"]["url"] == healthy.url


def test_a_hanging_endpoint_fails_on_time(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Endpoint(lambda seen: Reply(body={"results": []}, delay=30)) as endpoint:
        result = run(
            capsys, golden_set=str(golden_file), url=endpoint.url, query_timeout=0.2
        )
    assert result["failed"] is True
    assert {q["error_kind"] for q in result["validation"]["queries"]} == {"timeout"}
    assert "The endpoint is failing (timeout)" in result["next_step"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"ids_path": "results[.id"},
            "Invalid JMESPath expression in ids_path: 'results[.id'",
        ),
        (
            {"thresholds": {"ndcg_at_k": 1.2}},
            "Invalid thresholds.ndcg_at_k=1.2: it must be between 0 and 1",
        ),
        (
            {"thresholds": {"max_error_rate": 2}},
            "Invalid thresholds.max_error_rate=2.0: it must be between 0 and 1",
        ),
        ({"tolerance": 1.5}, "Invalid tolerance=1.5: it must be between 0 and 1"),
        ({"concurrency": 0}, "Invalid concurrency=0: it must be greater than 0"),
        (
            {"rounds": 3, "max_rounds": 2},
            "Invalid max_rounds=2: it must be at least rounds=3",
        ),
        ({"body": {"q": "${question}"}}, "Invalid placeholder in body: 'question'"),
        ({"qids": ["q404"]}, "Failed to select queries: q404 not in the golden set"),
        (
            {"baseline": {"ndcg": 0.9}},
            "Invalid baseline option: baseline: unknown metric 'ndcg'",
        ),
    ],
)
def test_bad_options_fail_before_any_query(
    golden_file: Path,
    healthy: Endpoint,
    capsys: pytest.CaptureFixture[str],
    args: dict[str, t.Any],
    message: str,
) -> None:
    result = run(capsys, golden_set=str(golden_file), url=healthy.url, **args)
    assert result["failed"] is True and result["msg"].startswith(message), result["msg"]
    assert healthy.seen == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("queries: [", "Failed to parse the golden set"),
        ("queries: []", "1 problem, first: queries: the golden set has no queries"),
        (
            "queries:\n- {qid: a, text: t, expected_ids: [d]}\n- {qid: a, text: u, expected_ids: [d]}",
            "first: queries[1]: duplicate qid 'a' (first at queries[0])",
        ),
        (
            "queries:\n- {qid: a, text: t, expected: [d]}",
            "2 problems, first: queries[0] (qid a): unknown key expected",
        ),
    ],
)
def test_bad_golden_files_fail_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "golden.yml"
    path.write_text(content)
    result = run(capsys, golden_set=str(path), url="http://127.0.0.1:9/search")
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert "docs/golden.md" in result["next_step"] or "YAML" in result["next_step"]


def test_exactly_one_golden_set_source(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = run(
        capsys,
        golden_set=str(golden_file),
        golden_configmap={"name": "g"},
        url="http://127.0.0.1:9/",
    )
    assert "mutually exclusive" in both["msg"]
    neither = run(capsys, url="http://127.0.0.1:9/")
    assert (
        "one of the following is required: golden_set, golden_configmap"
        in neither["msg"]
    )


def test_missing_jmespath_is_reported(
    monkeypatch: pytest.MonkeyPatch,
    golden_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        query, "JMESPATH_IMPORT_ERROR", ImportError("No module named 'jmespath'")
    )
    result = run(capsys, golden_set=str(golden_file), url="http://127.0.0.1:9/")
    assert result["failed"] is True and "jmespath" in result["msg"]


def test_the_golden_set_can_live_in_a_configmap(
    k8s_api: FakeTransport, healthy: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(
        "/api/v1/namespaces/rag/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-golden-set", "namespace": "rag"},
            "data": {"golden.yml": yaml.safe_dump(GOLDEN)},
        },
    )
    result = run(
        capsys,
        golden_configmap={"name": "rag-golden-set"},
        namespace="rag",
        url=healthy.url,
    )
    assert result["validation"]["passed"] is True
    assert (
        result["validation"]["golden_set"]["source"]
        == "configmap rag-golden-set key golden.yml"
    )
    missing = run(
        capsys,
        golden_configmap={"name": "rag-golden-set", "key": "other.yml"},
        namespace="rag",
        url=healthy.url,
    )
    assert (
        missing["msg"]
        == "Failed to read the golden set: ConfigMap rag/rag-golden-set has no key other.yml"
    )


def test_capture_records_the_baseline_once(
    golden_file: Path,
    healthy: Endpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "captured" / "golden.yml"
    args = {
        "golden_set": str(golden_file),
        "url": healthy.url,
        "mode": "capture",
        "capture_dest": str(dest),
    }
    planned = run(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert planned["changed"] is True and not dest.exists()
    assert "baseline:" in planned["diff"]["after"] and planned["diff"]["before"] == ""
    written = run(capsys, **args)
    assert written["changed"] is True and written["capture"]["queries"] == 3
    assert written["capture"]["baseline"] == {
        "hit_at_k": 1.0,
        "recall_at_k": 1.0,
        "precision_at_k": 0.4444,
        "mrr": 1.0,
        "ndcg_at_k": 1.0,
        "must_pass_rate": 1.0,
    }
    captured = yaml.safe_load(dest.read_text())
    assert captured["queries"][1]["baseline"] == {
        "ids": ["doc-2", "doc-3", "doc-7"],
        "scores": [0.8, 0.7, 0.3],
    }
    assert run(capsys, **args)["changed"] is False
    again = run(
        capsys,
        golden_set=str(dest),
        url=healthy.url,
        thresholds={"rank_agreement": 1.0},
    )
    assert again["validation"]["metrics"]["rank_agreement"] == 1.0
    assert again["validation"]["metrics"]["score_drift"] == 0.0


def test_capture_refuses_an_unhealthy_system_and_can_seed_expected_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production = tmp_path / "prod.yml"
    production.write_text(
        "queries:\n- {qid: p1, text: restore notes}\n- {qid: p2, text: kafka lag}\n"
    )
    dest = tmp_path / "golden.yml"
    with Endpoint(by_query(HEALTHY)) as endpoint:
        seeded = run(
            capsys,
            golden_set=str(production),
            url=endpoint.url,
            mode="capture",
            capture_dest=str(dest),
            capture_expected_top=1,
        )
    assert seeded["changed"] is True
    assert [q["expected_ids"] for q in yaml.safe_load(dest.read_text())["queries"]] == [
        ["doc-1"],
        ["doc-4"],
    ]
    with Endpoint(lambda seen: Reply(500, {"error": "boom"})) as endpoint:
        refused = run(
            capsys,
            golden_set=str(production),
            url=endpoint.url,
            mode="capture",
            capture_dest=str(tmp_path / "other.yml"),
        )
    assert refused["msg"].startswith(
        "Refusing to record a baseline: 2 of 2 queries failed or came back empty "
        "(p1: HTTP 500: boom"
    )
    assert not (tmp_path / "other.yml").exists()


def test_a_registered_result_serves_as_the_baseline(
    golden_file: Path, healthy: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run(capsys, golden_set=str(golden_file), url=healthy.url)["validation"][
        "metrics"
    ]
    assert before["latency_p50"] is not None and before["rank_agreement"] is None
    again = run(
        capsys,
        golden_set=str(golden_file),
        url=healthy.url,
        qids=["q001"],
        baseline=before,
    )
    assert again["failed"] is True
    assert (
        "precision_at_k 0.3333 dropped 0.1111 below the baseline 0.4444" in again["msg"]
    )
    assert sorted(again["validation"]["baseline"]) == [
        "hit_at_k",
        "mrr",
        "must_pass_rate",
        "ndcg_at_k",
        "precision_at_k",
        "recall_at_k",
    ]


def test_thousands_of_queries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 2000
    queries = [
        {
            "qid": "q%04d" % i,
            "text": "question %d" % i,
            "expected_ids": ["doc-%d" % i],
            "must_pass": i % 10 == 0,
        }
        for i in range(count)
    ]
    path = tmp_path / "large.yml"
    path.write_text(yaml.safe_dump({"k": 5, "queries": queries}))

    def answer(seen: Seen) -> Reply:
        number = int(seen.body["query"].split()[1])
        return lab_answer(["doc-%d" % number, "doc-x"])

    with Endpoint(answer) as endpoint:
        result = run(
            capsys,
            golden_set=str(path),
            url=endpoint.url,
            concurrency=16,
            reports={
                "junit": str(tmp_path / "large.xml"),
                "markdown": str(tmp_path / "large.md"),
            },
        )
    validation = result["validation"]
    assert validation["passed"] is True and len(validation["queries"]) == count
    assert (
        validation["metrics"]["precision_at_k"] == 0.2
        and validation["metrics"]["must_pass_rate"] == 1.0
    )
    assert (tmp_path / "large.xml").read_text().count("<testcase ") == count + 2
    assert (
        "1950 more queries are in the JSON report."
        in (tmp_path / "large.md").read_text()
    )
    assert validation["duration"] < 30


def test_one_shards_queries_are_compared_with_that_shards_own_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = dict(GOLDEN, shard_baselines={"shard-2": {"recall_at_k": 1.0, "mrr": 1.0}})
    path = tmp_path / "golden.yml"
    path.write_text(yaml.safe_dump(golden, sort_keys=False))
    with Endpoint(by_query(HEALTHY)) as endpoint:
        passed = run(capsys, golden_set=str(path), url=endpoint.url, shard="shard-2")
    assert passed["validation"]["passed"] is True
    assert passed["validation"]["baseline"]["mrr"] == {
        "baseline": 1.0,
        "current": 1.0,
        "change": 0.0,
    }
    assert "baseline" not in [f["check"] for f in passed["validation"]["findings"]]

    def demoted(seen: Seen) -> Reply:
        if seen.body["query"] == "firewall notes":
            return lab_answer(["doc-7", "doc-2", "doc-3"], [0.9, 0.8, 0.7])
        return HEALTHY[seen.body["query"]]

    with Endpoint(demoted) as endpoint:
        failed = run(capsys, golden_set=str(path), url=endpoint.url, shard="shard-2")
    assert failed["failed"] is True and "mrr" in failed["msg"], failed["msg"]
    assert failed["validation"]["baseline"]["mrr"]["current"] == 0.75


def test_a_shard_without_a_baseline_of_its_own_says_why_it_is_not_compared(
    golden_file: Path, healthy: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, golden_set=str(golden_file), url=healthy.url, shard="shard-1")
    notes = [f for f in result["validation"]["findings"] if f["check"] == "baseline"]
    assert "no baseline for shard shard-1 (shard_baselines)" in json.dumps(notes)


def test_capturing_one_shards_queries_records_that_shards_baseline(
    golden_file: Path,
    healthy: Endpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "golden.yml"
    common = {"golden_set": str(golden_file), "url": healthy.url, "shard": "shard-2"}
    written = run(capsys, mode="capture", capture_dest=str(dest), **common)
    captured = yaml.safe_load(dest.read_text())
    assert captured["baseline"] == GOLDEN["baseline"]  # the whole set's is kept
    assert captured["shard_baselines"]["shard-2"] == written["capture"]["baseline"]
    assert written["capture"]["baseline"]["mrr"] == 1.0
    gated = run(capsys, **{**common, "golden_set": str(dest)})
    assert gated["validation"]["baseline"]["mrr"]["baseline"] == 1.0


def flapping(passing_requests: int) -> t.Callable[[Seen], Reply]:
    """A shard that answers well for its first requests, then loses a must-pass document."""
    healthy = by_query(HEALTHY)
    count = [0]

    def handle(seen: Seen) -> Reply:
        count[0] += 1
        if count[0] <= passing_requests or seen.body.get("query") != "kafka lag":
            return healthy(seen)
        return lab_answer(["doc-6"], [0.2])

    return handle


def test_one_pass_is_enough_when_the_gate_asks_for_one(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Endpoint(flapping(len(GOLDEN["queries"]))) as endpoint:
        result = run(capsys, golden_set=str(golden_file), url=endpoint.url)
    assert "failed" not in result and result["validation"]["passed"] is True


def test_a_flapping_shard_fails_a_gate_of_two_consecutive_passes(
    golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Endpoint(flapping(len(GOLDEN["queries"]))) as endpoint:
        result = run(
            capsys,
            golden_set=str(golden_file),
            url=endpoint.url,
            rounds=2,
            round_interval=0.0,
        )
        asked = len(endpoint.seen)
    assert result["failed"] is True, result
    validation = result["validation"]
    assert [r["passed"] for r in validation["rounds"]] == [True, False]
    assert validation["rounds_required"] == 2 and validation["consecutive_passes"] == 0
    assert asked == 2 * len(
        GOLDEN["queries"]
    )  # no third round: two in a row is out of reach
    rounds = [f for f in validation["findings"] if f["check"] == "rounds"]
    assert rounds[0]["message"] == (
        "needed 2 consecutive passing rounds, got 0 after 2 round(s)"
    )
    assert "q003" in json.dumps(validation["failing_queries"])
