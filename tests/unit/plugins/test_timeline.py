# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from ansible import context
from ansible.module_utils.common.collections import ImmutableDict

from ansible_collections.ragops.recovery.plugins.callback.timeline import CallbackModule
from ansible_collections.ragops.recovery.plugins.plugin_utils.timeline import (
    Step,
    status_of,
    summarize,
    to_json,
    to_markdown,
    to_summary,
)

START = 1795000000.0


def steps() -> list[Step]:
    return [
        Step(
            "Take the lock",
            "ragops.recovery.incident_lock",
            "rag-prod",
            START,
            START + 1.25,
            "changed",
            "create",
        ),
        Step(
            "Quarantine: shard-2",
            "ragops.recovery.shard_mark",
            "rag-prod",
            START + 1.3,
            START + 2.0,
            "failed",
            "Refusing to move shard | x",
        ),
        Step(
            "Skipped",
            "ansible.builtin.debug",
            "rag-prod",
            START + 2.0,
            START + 2.0,
            "skipped",
            "cond",
        ),
    ]


def test_summary_prefers_message_then_module_keys_and_hides_secrets() -> None:
    assert (
        summarize({"msg": "Failed to read\n  ConfigMap"}) == "Failed to read ConfigMap"
    )
    assert (
        summarize({"transition": "serving -> quarantined", "changed": True})
        == "serving -> quarantined"
    )
    assert summarize({"msg": "token abc leaked", "changed": True}) == "changed"
    assert (
        summarize({"skip_reason": "Conditional result was False"})
        == "Conditional result was False"
    )
    assert len(summarize({"msg": "x" * 500})) == 160


def test_status_distinguishes_changed_from_ok() -> None:
    assert status_of({"changed": True}, "ok") == "changed"
    assert status_of({"changed": False}, "ok") == "ok"
    assert status_of({"changed": True}, "failed") == "failed"


def test_json_has_totals_span_and_durations() -> None:
    data = json.loads(to_json("INC-1", steps()))
    assert data["totals"] == {
        "ok": 0,
        "changed": 1,
        "failed": 1,
        "skipped": 1,
        "unreachable": 0,
    }
    assert data["duration"] == 2.0
    assert data["steps"][0]["duration"] == 1.25
    assert data["steps"][0]["start"].endswith("Z")


def test_markdown_table_and_gantt_escape_what_would_break_them() -> None:
    text = to_markdown("INC-1: shard-2", steps())
    assert "| Refusing to move shard \\| x |" in text
    assert "    title INC-1 - shard-2" in text
    assert (
        "    Quarantine - shard-2 :crit, %d, %d"
        % (int((START + 1.3) * 1000), int((START + 2.0) * 1000))
        in text
    )
    assert "Skipped :" not in text
    assert text.count("```") == 2


def timeline_callback(directory: str) -> t.Any:
    callback = CallbackModule()
    # The options as the plugin loader resolves them from the environment.
    callback._plugin_options = {"directory": directory, "title": "INC-1"}
    callback.steps = steps()
    return callback


def test_callback_writes_the_timeline_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=False))
    timeline_callback(str(tmp_path / "tl")).v2_playbook_on_stats(None)
    assert sorted(p.name for p in (tmp_path / "tl").iterdir()) == [
        "timeline.json",
        "timeline.md",
    ]


def test_callback_writes_nothing_in_check_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True))
    timeline_callback(str(tmp_path / "tl")).v2_playbook_on_stats(None)
    assert not (tmp_path / "tl").exists()


def test_summary_gives_totals_longest_step_first_failure_and_files() -> None:
    text = to_summary("INC-1 drill", steps(), ["tl/timeline.md", "tl/timeline.json"])
    lines = text.splitlines()
    assert lines[0].startswith(
        "Recovery timeline 'INC-1 drill': %d tasks in " % len(steps())
    )
    assert "1 changed, 1 failed" in lines[0]
    assert lines[1] == "Longest: Take the lock on rag-prod (1.2 s, changed)"
    assert (
        lines[2]
        == "First failure: Quarantine: shard-2 on rag-prod: Refusing to move shard | x"
    )
    assert lines[-1] == "Timeline written to tl/timeline.md, tl/timeline.json"


def test_summary_of_a_run_without_tasks() -> None:
    assert to_summary("t", [], ["a.md"]) == (
        "Recovery timeline 't': no task ran.\nTimeline written to a.md"
    )
