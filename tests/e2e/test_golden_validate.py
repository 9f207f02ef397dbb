"""golden_validate through real ansible-playbook runs against the lab's shard and retriever programs.

The shards serve indexes built from the lab corpus; the retriever reads the shard registry from the
lab's Kubernetes API server; the golden set is the lab's own lab/data/golden.yml, used as shipped.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import xmlschema
import yaml
from golden_lab import (
    GOLDEN,
    SHARDS,
    Program,
    build_index,
    copy_volume,
    corrupt,
    registry_entries,
    start_retriever,
    start_shard,
)
from harness import ROOT, Cluster, Runner, registry_manifest, task

JUNIT_SCHEMA = ROOT / "tests" / "unit" / "plugins" / "module_utils" / "golden" / "junit.xsd"
GOLDEN_SCHEMA = ROOT / "docs" / "golden-set.schema.json"


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shards")
    return {shard: build_index(shard, root / shard) for shard in SHARDS}


@pytest.fixture(scope="module")
def shards(volumes: dict[str, Path]) -> Iterator[dict[str, Program]]:
    running: dict[str, Program] = {}
    try:
        for shard, volume in volumes.items():
            running[shard] = start_shard(shard, volume)
        yield running
    finally:
        for program in running.values():
            program.stop()


@pytest.fixture
def retriever(cluster: Cluster, shards: dict[str, Program]) -> Iterator[Program]:
    cluster.apply(registry_manifest(registry_entries({shard: p.url for shard, p in shards.items()})))
    program = start_retriever(cluster.server.url, cluster.token, cluster.namespace, cluster.ca_file)
    yield program
    program.stop()


@pytest.fixture
def broken_shard(volumes: dict[str, Path], tmp_path: Path) -> Iterator[Program]:
    """A second shard-2 process over a copy of its index, corrupted on disk; its search answers 503."""
    volume = copy_volume(volumes["shard-2"], tmp_path / "broken-shard-2")
    program = start_shard("shard-2", volume)
    error = corrupt(program, volume)
    assert "checksum mismatch in vectors.bin" in error["error"]
    yield program
    program.stop()


def validate(name: str, url: str, **args: t.Any) -> dict[str, t.Any]:
    args.setdefault("golden_set", str(GOLDEN))
    return task(name, "golden_validate", url=url + "/search", **args)


def test_check_mode_still_validates_and_the_healthy_lab_meets_its_baseline(
        retriever: Program, runner: Runner, tmp_path: Path) -> None:
    reports = {"json": str(tmp_path / "golden.json"), "junit": str(tmp_path / "golden.xml"),
               "markdown": str(tmp_path / "golden.md")}
    gate = validate("gate", retriever.url, errors_path="errors", reports=reports,
                    thresholds={"ndcg_at_k": 0.9, "max_latency_p95": 2.0})
    checked = runner.play([gate], check=True)
    assert checked.returncode == 0, checked.stdout
    result = checked.results["gate"]
    assert result["changed"] is False and not result.get("failed")
    validation = result["validation"]
    count = len(yaml.safe_load(GOLDEN.read_text())["queries"])
    assert validation["passed"] is True and validation["summary"] == "%d of %d golden queries passed" % (count, count)
    baseline = yaml.safe_load(GOLDEN.read_text())["baseline"]
    # The baseline is recorded to 4 places; the metrics are reported at full precision.
    assert {name: round(validation["metrics"][name], 4) for name in baseline} == baseline
    assert validation["metrics"]["hit_at_k"] == 1.0 and validation["metrics"]["error_rate"] == 0.0
    assert all(abs(row["change"]) <= 5e-5 for row in validation["baseline"].values())
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(reports["junit"])
    assert Path(reports["markdown"]).read_text().startswith("## Golden-query validation: PASS")
    assert json.loads(Path(reports["json"]).read_text())["metrics"] == validation["metrics"]
    applied = runner.play([gate])
    assert applied.returncode == 0 and applied.changed == 0 and applied.results["gate"]["validation"]["passed"]


def test_the_gate_passes_a_healthy_shard_and_fails_a_corrupt_one_even_in_check_mode(
        shards: dict[str, Program], broken_shard: Program, runner: Runner, tmp_path: Path) -> None:
    reports = {"junit": str(tmp_path / "broken.xml"), "markdown": str(tmp_path / "broken.md")}
    played = runner.play([validate("healthy", shards["shard-2"].url, shard="shard-2"),
                          validate("broken", broken_shard.url, shard="shard-2", reports=reports)], check=True)
    healthy, broken = played.results["healthy"], played.results["broken"]
    golden = yaml.safe_load(GOLDEN.read_text())
    own = len([q for q in golden["queries"] if q.get("shard") == "shard-2"])
    assert own >= 10  # the runbook's 10-50 queries for the shard's own gate
    assert healthy["validation"]["passed"] is True and healthy["validation"]["golden_set"]["selected"] == own
    # Compared with the shard's own baseline, not skipped: the same numbers, to 4 places.
    compared = healthy["validation"]["baseline"]
    assert {name: row["baseline"] for name, row in compared.items()} == golden["shard_baselines"]["shard-2"]
    # The baseline is recorded to 4 places, the metrics measured at full precision.
    assert all(abs(row["change"]) <= 5e-5 for row in compared.values()), compared
    assert broken.get("failed") is True and broken["validation"]["passed"] is False, json.dumps(broken)[:2000]
    assert broken["msg"].startswith("Golden-query validation failed: 0 of %d golden queries passed; must-pass "
                                    "failed: q" % own)
    failing = broken["validation"]["failing_queries"]
    assert len(failing) == own and all(q["shard"] == "shard-2" for q in failing)
    assert failing[0]["must_pass"] is True
    assert failing[0]["reasons"][0].startswith("http: HTTP 503: ")
    assert broken["next_step"].startswith("Keep shard shard-2 out of service (do not mark it serving). The endpoint "
                                          "is failing (http)")
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(reports["junit"])
    markdown = Path(reports["markdown"]).read_text()
    assert markdown.startswith("## Golden-query validation: FAIL") and "**Next step:** Keep shard shard-2" in markdown


def test_a_silently_empty_shard_fails_the_gate(volumes: dict[str, Path], runner: Runner, tmp_path: Path) -> None:
    volume = copy_volume(volumes["shard-1"], tmp_path / "silent-shard-1")
    silent = start_shard("shard-1", volume, CORRUPT_BEHAVIOUR="empty")
    try:
        corrupt(silent, volume)
        played = runner.play([validate("silent", silent.url, shard="shard-1")])
    finally:
        silent.stop()
    result = played.results["silent"]
    assert result["failed"] is True and result["validation"]["metrics"]["empty_rate"] == 1.0
    assert result["validation"]["failing_queries"][0]["reasons"][0].startswith("no results (expected doc-")
    assert "Answers miss expected documents" in result["next_step"]


def test_a_corrupt_shard_behind_the_retriever(cluster: Cluster, shards: dict[str, Program], broken_shard: Program,
                                              runner: Runner) -> None:
    urls = {shard: program.url for shard, program in shards.items()}
    cluster.apply(registry_manifest(registry_entries({**urls, "shard-2": broken_shard.url})))
    retriever = start_retriever(cluster.server.url, cluster.token, cluster.namespace, cluster.ca_file)
    try:
        played = runner.play([validate("partial", retriever.url, report_only=True),
                              validate("strict", retriever.url, errors_path="errors")])
    finally:
        retriever.stop()
    partial, strict = played.results["partial"], played.results["strict"]
    # Partial answers: the shard-2 queries lose their documents, the others still pass.
    assert partial["validation"]["passed"] is False and not partial.get("failed")
    missed = {q["qid"] for q in partial["validation"]["failing_queries"]}
    golden = yaml.safe_load(GOLDEN.read_text())["queries"]
    on_shard_2 = {q["qid"] for q in golden if q.get("shard") == "shard-2"}
    assert on_shard_2 <= missed and all(q.get("shard") in ("shard-2", None) for q in golden if q["qid"] in missed)
    # With errors_path, the retriever's own error report fails every query.
    assert strict["failed"] is True and strict["validation"]["metrics"]["error_rate"] == 1.0
    assert strict["validation"]["queries"][0]["error"].startswith('the endpoint reported errors: {"shard-2": "HTTP 503')


def test_capture_then_validate_against_the_recorded_answers(retriever: Program, runner: Runner,
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "golden-with-baseline.yml"
    capture = validate("capture", retriever.url, mode="capture", capture_dest=str(dest))
    planned = runner.play([capture], check=True)
    assert planned.results["capture"]["changed"] is True and not dest.exists()
    applied = runner.play([capture])
    assert applied.results["capture"]["changed"] is True and dest.exists()
    again = runner.play([capture, validate("against baseline", retriever.url, golden_set=str(dest),
                                           thresholds={"rank_agreement": 1.0, "max_score_drift": 0.0})])
    assert again.results["capture"]["changed"] is False
    validation = again.results["against baseline"]["validation"]
    assert validation["passed"] is True and validation["metrics"]["rank_agreement"] == 1.0
    recorded = yaml.safe_load(dest.read_text())
    assert recorded["queries"][0]["baseline"]["ids"][0] == recorded["queries"][0]["expected_ids"][0]
    assert recorded["baseline"]["ndcg_at_k"] == yaml.safe_load(GOLDEN.read_text())["baseline"]["ndcg_at_k"]


def test_the_golden_set_from_a_configmap(cluster: Cluster, retriever: Program, runner: Runner) -> None:
    cluster.kubectl("create", "configmap", "rag-golden-set", "-n", cluster.namespace,
                    "--from-file=golden.yml=%s" % GOLDEN)
    played = runner.play([task("configmap", "golden_validate", golden_configmap={"name": "rag-golden-set"},
                               url=retriever.url + "/search", qids=["q001", "q002", "q003"])])
    validation = played.results["configmap"]["validation"]
    assert validation["passed"] is True and validation["golden_set"]["selected"] == 3
    assert validation["golden_set"]["source"] == "configmap rag-golden-set key golden.yml"


def test_bad_input_fails_clearly_without_hanging(retriever: Program, runner: Runner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("queries:\n- {qid: a, text: t, expected_ids: [d]}\n- {qid: a, text: u, expected_ids: [d]}\n")
    played = runner.play([
        validate("jmespath", retriever.url, ids_path="results[?"),
        validate("duplicates", retriever.url, golden_set=str(broken)),
        validate("threshold", retriever.url, thresholds={"mrr": 1.5}),
        validate("wrong shape", retriever.url + "/healthz#", method="GET"),
        validate("unreachable", "http://127.0.0.1:9", query_timeout=1, deadline=5),
    ])
    results = played.results
    assert results["jmespath"]["msg"].startswith("Invalid JMESPath expression in ids_path: 'results[?'")
    assert "duplicate qid 'a'" in results["duplicates"]["msg"]
    assert results["threshold"]["msg"] == "Invalid thresholds.mrr=1.5: it must be between 0 and 1"
    assert "ids_path 'results[].id' found nothing" in results["wrong shape"]["validation"]["queries"][0]["error"]
    assert "The answers could not be read" in results["wrong shape"]["next_step"]
    assert {q["error_kind"] for q in results["unreachable"]["validation"]["queries"]} == {"unreachable"}


def test_the_documented_schema_accepts_the_lab_golden_set_and_rejects_what_the_module_rejects() -> None:
    schema = json.loads(GOLDEN_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load(GOLDEN.read_text()))
    good = {"queries": [{"qid": "a", "text": "t", "expected_ids": [42, "doc-1"], "relevance": {"42": 2, "doc-1": 0}}]}
    validator.validate(good)
    for bad in ({"queries": []}, {"queries": [{"qid": 1, "text": "t", "expected_ids": []}]},
                {"queries": [{"qid": "a", "text": "", "expected_ids": []}]},
                {"queries": [{"qid": "a", "text": "t", "expected_ids": ["d", "d"]}]},
                {"queries": [{"qid": "a", "text": "t", "expected_ids": ["d"], "must-pass": True}]},
                {"queries": [{"qid": "a", "text": "t", "expected_ids": ["d"], "relevance": {"d": -1}}]},
                {"k": 0, "queries": [{"qid": "a", "text": "t", "expected_ids": ["d"]}]},
                {"baseline": {"ndcg_at_k": 1.5}, "queries": [{"qid": "a", "text": "t", "expected_ids": ["d"]}]},
                {"version": 2, "queries": [{"qid": "a", "text": "t", "expected_ids": ["d"]}]}):
        assert not validator.is_valid(bad), bad
