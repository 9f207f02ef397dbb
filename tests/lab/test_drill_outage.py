"""The Scenario B drill (`make drill SCENARIO=b`) from start to end, and what it prints from the
playbooks' output and the ramp's results."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from ragops_lab.drills import provider_outage, support
from ragops_lab.lab import Lab


def test_outcome_message_is_the_msg_of_the_named_debug_task() -> None:
    output = "\n".join([
        "TASK [ragops.recovery.generator_outage : Check the primary provider] ***",
        'ok: [rag-lab] => {"changed": false}',
        "TASK [ragops.recovery.generator_outage : Report the outcome] ***",
        "ok: [rag-lab] => {",
        '    "msg": "Primary primary: outage (HTTP 503). Safe mode: provider backup."',
        "}",
    ])
    assert provider_outage.outcome_message(output, "Report the outcome") == \
        "Primary primary: outage (HTTP 503). Safe mode: provider backup."
    assert provider_outage.outcome_message("PLAY RECAP", "Report the outcome") == "(no outcome printed)"


def test_ramp_lines_show_each_step_and_its_figures(tmp_path: Path) -> None:
    failback = tmp_path / "failback.json"
    metrics = {"precision_at_k": 0.4222222222222222, "error_rate": 0.0, "cache_hit_rate": 0.0, "empty_rate": 0.0}
    failback.write_text(json.dumps({"regressed": True, "steps": [
        {"step": 10, "passed": True, "metrics": metrics},
        {"step": 25, "passed": False, "metrics": dict(metrics, empty_rate=0.2)}]}))
    assert provider_outage.ramp_lines(failback) == [
        " 10 % on the primary: pass; precision@k 0.4222, error rate 0.0000, cache-hit rate 0.0000, empty rate 0.0000",
        " 25 % on the primary: REGRESSION; precision@k 0.4222, error rate 0.0000, cache-hit rate 0.0000, "
        "empty rate 0.2000"]
    assert provider_outage.ramp_lines(tmp_path / "none.json") == [f"({tmp_path / 'none.json'} missing)"]


def test_describe_names_the_provider_or_the_failure() -> None:
    assert provider_outage.describe({"status": 200, "provider": "backup", "mode": "normal", "cached": False,
                                  "citations": ["doc-03700"]}) == \
        "HTTP 200, provider backup, mode normal, cached False, citations ['doc-03700']"
    failed = {"status": 502, "error": {"kind": "server_error", "provider": "primary", "message": "HTTP 503"}}
    assert provider_outage.describe(failed) == "HTTP 502: server_error from primary (HTTP 503)"
    assert provider_outage.describe({"status": None, "error": "timed out"}) == "HTTP None: timed out"


def test_the_outage_drill_switches_measures_fails_back_and_stops_the_lab(tmp_path: Path) -> None:
    if not (support.COLLECTIONS_DIR / "ansible_collections" / "ragops" / "recovery").exists():
        pytest.skip("the collection is not linked into build/collections (make venv)")
    lab = Lab(tmp_path / "state")
    output = io.StringIO()
    assert provider_outage.run(lab, output) == 0, output.getvalue()
    text = output.getvalue()
    assert "HTTP 502: server_error from primary" in text  # the symptom
    safe = re.search(r"time to safe mode: (\d+\.\d)s from the playbook's start \(playbook (\d+\.\d)s\)", text)
    assert safe and 0 < float(safe.group(1)) <= float(safe.group(2)), text
    for step in (10, 25, 50, 100):
        assert re.search(rf"{step:>3} % on the primary: pass; .*cache-hit rate 0\.0", text), text
    assert "flags: {'PROVIDER': 'primary'}" in text and "HTTP 200, provider primary" in text
    assert text.count("```mermaid") == 2  # the outage's and the failback's timeline
    assert "Drill passed." in text and not lab.running_processes()
    # Each playbook's timeline shows the runbook's phases and the moments that matter.
    outage, failback = (timeline_of(lab, part) for part in ("outage", "failback"))
    assert {"lock", "diagnosis", "safe mode", "throttle", "evidence", "validation", "report"} <= phases(outage)
    assert milestones(outage)[0] == "safe_mode" and "golden_verdict" in milestones(outage), milestones(outage)
    assert {"ramp", "report"} <= phases(failback) and "rollback" not in phases(failback)
    assert "back_in_service" in milestones(failback), milestones(failback)
    assert milestones(failback).count("golden_verdict") == 4  # one per ramp step


def timeline_of(lab: Lab, part: str) -> dict[str, list[dict[str, object]]]:
    found = sorted((lab.paths.root / "drill").glob(f"*/{part}/timeline/timeline.json"))
    assert len(found) == 1, found
    return dict(json.loads(found[0].read_text()))


def phases(timeline: dict[str, list[dict[str, object]]]) -> set[object]:
    return {phase["label"] for phase in timeline["phases"]}


def milestones(timeline: dict[str, list[dict[str, object]]]) -> list[object]:
    return [reached["milestone"] for reached in timeline["milestones"]]
