"""The Scenario C drill's helpers: what it prints from the playbook's output and postmortem entries.

The drill itself (`make drill SCENARIO=c`) runs the same playbook as tests/e2e/test_bootstrap.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from ragops_lab.drills import bootstrap
from ragops_lab.lab import Lab


def test_failure_message_is_the_last_fatal_message() -> None:
    output = "\n".join([
        'fatal: [rag-lab]: FAILED! => {"changed": false, "msg": "Dependency cycle a \u2192 b \u2192 a"}',
        "TASK [Keep the failure] ***",
        "fatal: [rag-lab]: FAILED! => " + json.dumps({"msg": "Bootstrap recovery of rag-lab failed: cycle"}),
    ])
    assert bootstrap.failure_message(output) == "Bootstrap recovery of rag-lab failed: cycle"
    assert bootstrap.failure_message("fatal: [x]: FAILED! => {not json") == "fatal: [x]: FAILED! => {not json"
    assert bootstrap.failure_message("ok: [rag-lab]") == ""


def test_postmortem_sections_come_from_the_newest_run(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    incident = lab.paths.root / "drill" / "INC-1"
    for run, cause in (("20260101T000000Z", "old"), ("20260101T000100Z", "pending_migration")):
        (incident / run).mkdir(parents=True)
        (incident / run / "postmortem.md").write_text(
            f"# INC-1: bootstrap recovery\n\n| | |\n| --- | --- |\n| outcome | recovered |\n\n"
            f"## Diagnosis\n\n- cause: `{cause}`\n\n## What was done\n\n- migration: none\n\n## Evidence\n\n- x\n")
    shown = bootstrap.postmortem_sections(lab, "INC-1", "", "Diagnosis")
    assert shown.splitlines() == ["| outcome | recovered |", "## Diagnosis", "- cause: `pending_migration`"]
    assert bootstrap.postmortem_sections(lab, "INC-2", "Diagnosis") == "(no postmortem entry written)"
