"""The monthly restore drill against the lab: playbooks/restore_drill.yml run by ansible-playbook under the
identity bound to meta/rbac/restore-drill.yaml alone.

One lab for the module (the tests run in order): the nightly snapshots are taken first. Check mode prints
the plan and writes nothing; the production namespace is refused as the scratch namespace; the drill of every
shard passes with an RTO and an RPO per shard, a JUnit report a JUnit parser reads, the scratch namespace
gone and the production namespace as it was; a corrupt newest snapshot fails the drill naming its shard,
with the scratch namespace gone and people told through a local webhook receiver, or kept when asked.
"""

from __future__ import annotations

import typing as t
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import junitparser
import pytest
import xmlschema
from harness import ROOT
from lab_support import running_lab
from webhook_receiver import receiving

from ragops_lab.drills import restore_drill, shard_recovery
from ragops_lab.drills.support import failure_message
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
JUNIT_SCHEMA = ROOT / "tests" / "unit" / "plugins" / "module_utils" / "golden" / "junit.xsd"
SHARDS = ["shard-0", "shard-1", "shard-2", "shard-3"]
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab whose shards all have a snapshot, as the nightly safety net leaves them."""
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        shard_recovery.snapshot_every_shard(running, running.paths.root / "e2e" / "snapshots.log")
        yield running


def drill_dir(lab: Lab) -> Path:
    return lab.paths.root / "drill"


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_check_mode_prints_the_plan_and_writes_nothing(lab: Lab) -> None:
    before = restore_drill.production_objects(lab.api())
    snapshots = {shard: shard_recovery.snapshot_objects(lab, shard) for shard in SHARDS}
    reports = drill_dir(lab) / "reports"
    checked = restore_drill.run_restore_drill(lab, "drill-check", drill_dir(lab) / "check.log", check=True)
    assert checked.returncode == 0, checked.stdout
    for shard in SHARDS:
        assert f"{shard}: restore snapshot " in checked.stdout, checked.stdout
    assert "into a new PVC data-vectorstore-shard-2 of" in checked.stdout, checked.stdout
    assert "scratch namespace rag-lab-drill-drill-check: would be created" in checked.stdout, checked.stdout
    assert restore_drill.drill_namespaces(lab.api()) == []
    assert restore_drill.changed_objects(before, restore_drill.production_objects(lab.api())) == []
    assert {shard: shard_recovery.snapshot_objects(lab, shard) for shard in SHARDS} == snapshots
    assert files_under(reports) == []


def test_the_production_namespace_is_refused_as_the_scratch_namespace(lab: Lab) -> None:
    before = restore_drill.production_objects(lab.api())
    refused = restore_drill.run_restore_drill(lab, "drill-refused", drill_dir(lab) / "refused.log",
                                              scratch_namespace="rag-lab")
    assert refused.returncode != 0, refused.stdout
    assert "must not be the production namespace (rag-lab)" in failure_message(refused.stdout), refused.stdout
    assert restore_drill.changed_objects(before, restore_drill.production_objects(lab.api())) == []


def test_the_drill_passes_with_rto_and_rpo_per_shard_and_leaves_nothing_behind(lab: Lab) -> None:
    before = restore_drill.production_objects(lab.api())
    log_file = drill_dir(lab) / "pass.log"
    done = restore_drill.run_restore_drill(lab, "drill-pass", log_file)
    assert done.returncode == 0, done.stdout
    report = restore_drill.report_of(log_file, "drill-pass")
    assert report["passed"] and report["namespace"] == "rag-lab-drill-drill-pass", report["summary"]
    assert [s["shard"] for s in report["shards"]] == SHARDS
    for shard in report["shards"]:
        assert shard["passed"] and shard["failures"] == [], shard
        assert shard["golden"]["verdict"] == "pass", shard
        # The RPO is the snapshot's age; the RTO the restore, the start and the validation.
        assert 0 <= shard["rpo_seconds"] < 3600, shard
        parts = shard["restore_seconds"] + shard["start_seconds"] + shard["validation_seconds"]
        assert shard["rto_seconds"] == pytest.approx(parts) and shard["rto_seconds"] > 0, shard
    # The table is printed, one row per shard.
    for shard in SHARDS:
        assert f"| {shard} | " in done.stdout, done.stdout
    assert restore_drill.drill_namespaces(lab.api()) == []
    assert restore_drill.changed_objects(before, restore_drill.production_objects(lab.api())) == []


def test_the_junit_report_reads_as_ci_reads_it(lab: Lab) -> None:
    path = drill_dir(lab) / "reports" / "restore-drill-drill-pass" / "restore-drill.xml"
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(str(path))
    parsed = junitparser.JUnitXml.fromfile(str(path))
    cases = [(case.classname, case.name, case.is_passed) for suite in parsed for case in suite]
    assert cases == [(f"restore_drill.{shard}", check, True) for shard in SHARDS
                     for check in ("restore", "golden queries", "RTO", "RPO")]
    assert ET.parse(path).getroot().get("failures") == "0"


def test_a_corrupt_snapshot_fails_the_drill_naming_the_shard(lab: Lab) -> None:
    (corrupted,) = shard_recovery.corrupt_snapshot_archives(lab, "shard-1")
    before = restore_drill.production_objects(lab.api())
    log_file = drill_dir(lab) / "corrupt.log"
    with receiving() as receiver:
        failed = restore_drill.run_restore_drill(lab, "drill-corrupt", log_file, shards="shard-1,shard-3",
                                                 ragops_notify_webhook_url=receiver.url("/hook"))
    assert failed.returncode != 0, failed.stdout
    # People are told: one failed message naming the shard, the reports and the next step; no URL shown.
    [told] = receiver.bodies("/hook")
    assert told["event"] == "failed" and told["scenario"] == "restore_drill", told
    assert told["incident_id"] == "restore-drill-drill-corrupt" and "shard-1" in told["summary"], told
    assert told["links"]["json"].endswith("restore-drill-drill-corrupt/restore-drill.json"), told
    assert "keep_on_failure" in told["next_step"], told
    assert receiver.url("/hook") not in failed.stdout
    message = failure_message(failed.stdout)
    assert "1 of 2 shards failed: shard-1 (restore: Failed to restore shard shard-1" in message, message
    report = restore_drill.report_of(log_file, "drill-corrupt")
    verdicts = {s["shard"]: s for s in report["shards"]}
    assert not verdicts["shard-1"]["passed"] and verdicts["shard-3"]["passed"], report
    assert verdicts["shard-1"]["quarantined"] == [corrupted.split("/")[2]], verdicts["shard-1"]
    junit = junitparser.JUnitXml.fromfile(str(log_file.parent / "reports" / "restore-drill-drill-corrupt"
                                              / "restore-drill.xml"))
    failing = [(case.classname, case.name) for suite in junit for case in suite if not case.is_passed]
    assert ("restore_drill.shard-1", "restore") in failing and all("shard-3" not in c for c, _ in failing)
    assert restore_drill.drill_namespaces(lab.api()) == []
    assert restore_drill.changed_objects(before, restore_drill.production_objects(lab.api())) == []


def test_a_failed_drill_keeps_its_namespace_when_asked(lab: Lab) -> None:
    # shard-1's only snapshot is quarantined now: the drill finds no verified one.
    log_file = drill_dir(lab) / "kept.log"
    failed = restore_drill.run_restore_drill(lab, "drill-kept", log_file, shards="shard-1", keep_on_failure=True)
    assert failed.returncode != 0, failed.stdout
    assert "shard-1 (restore: Failed to restore shard shard-1: no verified snapshot" in failure_message(
        failed.stdout), failed.stdout
    assert restore_drill.drill_namespaces(lab.api()) == ["rag-lab-drill-drill-kept"]
    namespace = lab.api().get("/api/v1/namespaces/rag-lab-drill-drill-kept") or {}
    assert namespace["metadata"]["labels"]["ragops.io/drill-of"] == "rag-lab"
    assert namespace["metadata"]["annotations"]["ragops.io/expires-at"] > namespace["metadata"]["creationTimestamp"]
    assert "kept for inspection" in failed.stdout, failed.stdout
    lab.api().delete("/api/v1/namespaces/rag-lab-drill-drill-kept")
