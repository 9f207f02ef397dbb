# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""drill_report through main(): the per-shard verdict, the RTO and RPO against their
objectives, and the reports, the JUnit one read by a JUnit parser and checked against
the schema CI servers read."""

from __future__ import annotations

import functools
import json
import typing as t
from pathlib import Path

import junitparser
import pytest
import xmlschema

from ansible_collections.ragops.recovery.plugins.modules import drill_report
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

JUNIT_SCHEMA = Path(__file__).parents[1] / "module_utils" / "golden" / "junit.xsd"
run = functools.partial(
    run_main,
    drill_report,
    namespace="rag",
    drill_id="d1",
    scratch_namespace="rag-drill-d1",
    started_at="2026-12-07T15:00:00Z",
    rto_objective=600,
    rpo_objective=93600,
)


def restored(shard: str, **figures: t.Any) -> t.Dict[str, t.Any]:
    values = dict(
        shard=shard,
        state="ready",
        restored=True,
        snapshot_id="20261207T020000Z-%s" % shard,
        snapshot_created="2026-12-07T02:00:00Z",
        rpo_seconds=46800.0,
        restore_seconds=41.0,
        start_seconds=4.0,
        error={},
        quarantined=[],
    )
    values.update(figures)
    return values


def validated(shard: str, passed: bool = True) -> t.Dict[str, t.Any]:
    return {
        "passed": passed,
        "verdict": "pass" if passed else "fail",
        "summary": "10 of 10 golden queries passed" if passed else "3 of 10 passed",
        "duration": 2.5,
        "golden_set": {"shard": shard},
    }


def reports(tmp_path: Path) -> t.Dict[str, str]:
    return {
        fmt: str(tmp_path / ("drill." + fmt)) for fmt in ("json", "junit", "markdown")
    }


def cases(path: str) -> t.List[t.Tuple[str, str, bool]]:
    parsed = junitparser.JUnitXml.fromfile(path)
    return [
        (case.classname, case.name, case.is_passed)
        for suite in parsed
        for case in suite
    ]


def test_a_passing_drill_writes_its_reports_and_a_rerun_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = reports(tmp_path)
    args = dict(
        restores=[restored("shard-0"), restored("shard-1")],
        validations=[validated("shard-1"), validated("shard-0")],
        reports=paths,
    )
    result = run(capsys, **args)
    drill = result["drill"]
    assert result["changed"] is True and drill["passed"] is True, result
    assert [s["rto_seconds"] for s in drill["shards"]] == [47.5, 47.5]
    assert drill["table"][2] == (
        "| shard-0 | 20261207T020000Z-shard-0 | 46800s | 48s | 41s | 4s | pass | pass |"
    )
    assert json.loads(Path(paths["json"]).read_text()) == drill
    assert "## Restore drill d1: PASS" in Path(paths["markdown"]).read_text()
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(paths["junit"])
    assert cases(paths["junit"]) == [
        ("restore_drill.%s" % shard, check, True)
        for shard in ("shard-0", "shard-1")
        for check in ("restore", "golden queries", "RTO", "RPO")
    ]
    assert run(capsys, **args)["changed"] is False


def test_a_failing_shard_fails_the_drill_naming_it_after_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = reports(tmp_path)
    error = {"msg": "Failed to restore shard shard-1 in Job rag-drill-d1/j: corrupt"}
    result = run(
        capsys,
        restores=[
            restored("shard-0", restore_seconds=700.0),
            restored("shard-1", state="restore failed", restored=False, error=error),
            restored("shard-2", rpo_seconds=100000.0),
        ],
        validations=[validated("shard-0"), validated("shard-2")],
        reports=paths,
    )
    assert result["failed"] is True
    assert "3 of 3 shards failed" in result["msg"], result["msg"]
    assert "shard-0 (RTO: RTO 706s exceeds the objective 600s)" in result["msg"]
    assert "shard-1 (restore: Failed to restore shard shard-1 in Job" in result["msg"]
    assert "golden queries: not run: the shard was not restored" in result["msg"]
    assert "shard-2 (RPO: RPO 100000s exceeds the objective 93600s)" in result["msg"]
    assert result["drill"]["passed"] is False and result["next_step"]
    failing = [(c, n) for c, n, passed in cases(paths["junit"]) if not passed]
    assert failing == [
        ("restore_drill.shard-0", "RTO"),
        ("restore_drill.shard-1", "restore"),
        ("restore_drill.shard-1", "golden queries"),
        ("restore_drill.shard-1", "RTO"),
        ("restore_drill.shard-2", "RPO"),
    ]
    xmlschema.XMLSchema(str(JUNIT_SCHEMA)).validate(paths["junit"])
    assert (
        "- shard-1: restore: Failed to restore" in Path(paths["markdown"]).read_text()
    )


def test_a_failed_golden_gate_fails_its_shard_and_report_only_does_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        capsys,
        restores=[restored("shard-0")],
        validations=[validated("shard-0", passed=False)],
        report_only=True,
    )
    assert "failed" not in result and result["drill"]["passed"] is False
    assert result["drill"]["shards"][0]["failures"] == [
        "golden queries: golden queries failed: 3 of 10 passed"
    ]
    assert result["reports"] == {} and result["changed"] is False


def test_check_mode_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = reports(tmp_path)
    result = run(
        capsys,
        restores=[restored("shard-0")],
        validations=[validated("shard-0")],
        reports=paths,
        _ansible_check_mode=True,
    )
    assert result["changed"] is True and result["reports"] == paths
    assert list(tmp_path.iterdir()) == []


def test_a_validation_without_its_shard_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(capsys, restores=[restored("shard-0")], validations=[{"passed": True}])
    assert result["failed"] is True and "names no shard" in result["msg"]
