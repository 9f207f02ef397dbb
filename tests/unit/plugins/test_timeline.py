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
    Run,
    Step,
    markers,
    milestone_detail,
    shown,
    status_of,
    summarize,
    to_json,
    to_markdown,
    to_summary,
)

START = 1795000000.0
HOST = "rag-prod"


def step(
    task: str,
    action: str,
    at: float,
    took: float,
    status: str,
    summary: str = "ok",
    tags: tuple[str, ...] = (),
    detail: str = "",
) -> Step:
    phase, reached = markers(tags)
    return Step(
        task,
        action,
        HOST,
        START + at,
        START + at + took,
        status,
        summary,
        phase,
        reached,
        detail,
    )


def steps() -> list[Step]:
    return [
        step(
            "Take the lock",
            "ragops.recovery.incident_lock",
            0.5,
            0.75,
            "changed",
            "create",
            ("phase_lock",),
        ),
        step(
            "Validating arguments against arg spec 'main'",
            "ansible.builtin.validate_argument_spec",
            1.3,
            0.0,
            "ok",
            tags=("always",),
        ),
        step(
            "Quarantine: shard-2",
            "ragops.recovery.shard_mark",
            1.3,
            0.7,
            "changed",
            "serving -> quarantined",
            ("phase_safe_mode", "milestone_safe_mode"),
            "serving -> quarantined",
        ),
        step(
            "Note whether to resume",
            "ansible.builtin.set_fact",
            2.0,
            0.01,
            "ok",
            tags=("phase_reopen",),
        ),
        step("Skipped", "ansible.builtin.debug", 2.0, 0.0, "skipped", "cond"),
        step(
            "Restore",
            "ragops.recovery.snapshot_restore",
            2.1,
            4.0,
            "changed",
            "restored",
            ("phase_restore", "milestone_snapshot_chosen"),
            "snapshot s-1",
        ),
        step(
            "Run the golden queries",
            "ragops.recovery.golden_validate",
            6.2,
            1.0,
            "ok",
            "12/12",
            ("milestone_golden_verdict", "phase_validation", "phase_restore"),
            "pass: 12/12",
        ),
        step(
            "Put back into service",
            "ragops.recovery.shard_mark",
            7.3,
            0.5,
            "failed",
            "Refusing to move shard | x",
            ("phase_return_to_service", "milestone_back_in_service"),
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


def test_the_innermost_phase_tag_wins_and_milestones_are_collected() -> None:
    # A task's own tags come first, then those of its blocks.
    assert markers(
        ["phase_validation", "milestone_golden_verdict", "phase_restore"]
    ) == ("validation", ("golden_verdict",))
    assert markers(["always"]) == ("", ())


def test_only_tasks_that_did_something_failed_or_marked_a_milestone_are_shown() -> None:
    assert [s.task for s in steps() if shown(s)] == [
        "Take the lock",
        "Quarantine: shard-2",
        "Restore",
        "Run the golden queries",
        "Put back into service",
    ]
    failed_assert = step("Check", "ansible.builtin.assert", 0, 0, "failed")
    milestone_debug = step(
        "Report",
        "ansible.builtin.debug",
        0,
        0,
        "ok",
        tags=("milestone_back_in_service",),
    )
    assert shown(failed_assert) and shown(milestone_debug)


def test_milestone_detail_names_the_verdict_or_the_snapshot() -> None:
    verdict = {"validation": {"verdict": "pass", "summary": "12/12 queries"}}
    assert milestone_detail(verdict) == "pass: 12/12 queries"
    snapshot = {"snapshot": {"snapshot_id": "s-1", "created": "2026-11-27T02:15:00Z"}}
    assert milestone_detail(snapshot) == "snapshot s-1 (taken 2026-11-27T02:15:00Z)"
    assert milestone_detail({"transition": "a -> b"}) == "a -> b"


def test_json_keeps_every_step_and_adds_phases_milestones_and_times() -> None:
    run = Run("INC-1", started=START, alert=START - 4.0)
    data = json.loads(to_json(run, steps()))
    assert data["totals"] == {
        "ok": 3,
        "changed": 3,
        "failed": 1,
        "skipped": 1,
        "unreachable": 0,
    }
    assert len(data["steps"]) == 8 and data["hidden"] == 3
    assert data["duration"] == 7.8
    assert data["steps"][0]["duration"] == 0.75 and data["steps"][0]["start"].endswith(
        "Z"
    )
    assert data["steps"][2]["phase"] == "safe_mode" and data["steps"][2]["shown"]
    assert [
        (m["milestone"], m["since_start"], m["since_alert"]) for m in data["milestones"]
    ] == [
        ("safe_mode", 2.0, 6.0),
        ("snapshot_chosen", 6.1, 10.1),
        ("golden_verdict", 7.2, 11.2),
    ]
    assert [(p["label"], p["outcome"]) for p in data["phases"]] == [
        ("lock", "changed"),
        ("safe mode", "changed"),
        ("re-open", "ok"),
        ("restore", "changed"),
        ("validation", "ok"),
        ("return to service", "failed"),
    ]
    times = data["times"][HOST]
    assert (times["time_to_safe_mode"], times["time_to_safe_mode_from_alert"]) == (
        2.0,
        6.0,
    )
    # The return to service failed: no time to recover.
    assert times["time_to_recover"] is None


def test_markdown_shows_the_times_milestones_phases_and_only_the_runbooks_steps() -> (
    None
):
    text = to_markdown(Run("INC-1: shard-2", started=START, alert=START - 4.0), steps())
    assert (
        "| rag-prod | 2.0 s from the playbook's start (6.0 s from the alert) "
        "| not reached in this run |"
    ) in text
    assert "| golden verdict |" in text and "| +7.2 s | +11.2 s | rag-prod |" in text
    assert "| Refusing to move shard \\| x |" in text
    assert "Validating arguments" not in text.split("```mermaid", maxsplit=1)[0]
    assert "Note whether to resume" not in text
    assert "3 more Ansible steps are left out" in text
    # A phase in which nothing was shown (a set_fact, a skipped re-open) is left out.
    assert "| re-open |" not in text and "| restore | rag-prod | +2.1 s |" in text
    assert "    title INC-1 - shard-2" in text
    assert "    section safe mode" in text and "    section milestones" in text
    assert (
        "    Put back into service :crit, %d, %d"
        % (int((START + 7.3) * 1000), int((START + 7.8) * 1000))
        in text
    )
    assert (
        "    safe mode reached +2.0 s :milestone, %d, %d"
        % ((START + 2.0) * 1000, (START + 2.0) * 1000)
        in text
    )
    assert "Skipped :" not in text
    assert text.count("```") == 2


def test_a_playbook_without_a_step_says_so_instead_of_not_reached() -> None:
    plain = [step("Read shards", "ragops.recovery.shard_info", 0, 1, "ok")]
    text = to_markdown(Run("status"), plain)
    assert "| rag-prod | this playbook has no safe mode reached step |" in text
    # Without phases the gantt has a section per host, as before.
    assert "    section rag-prod" in text


def test_an_alert_time_that_is_not_a_time_is_said_and_left_out() -> None:
    run = Run(
        "x", started=START, alert=None, alert_error="alert_received_at 'soon' ..."
    )
    text = to_markdown(run, steps())
    assert "The alert's time is not used: alert_received_at 'soon' ..." in text
    assert "from the alert)" not in text


def timeline_callback(directory: str) -> t.Any:
    callback = CallbackModule()
    # The options as the plugin loader resolves them from the environment.
    callback._plugin_options = {
        "directory": directory,
        "title": "INC-1",
        "alert_received_at": None,
    }
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


def test_callback_keeps_the_files_current_as_each_task_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that keeps the run's records reads the steps before it; a killed run
    leaves its timeline."""
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=False))
    callback = timeline_callback(str(tmp_path / "tl"))
    first = callback.steps[:1]
    callback.steps = []
    callback.v2_playbook_on_task_start(None, False)
    assert not (tmp_path / "tl").exists()  # nothing ran yet
    callback.steps = first
    callback.v2_playbook_on_task_start(None, False)
    recorded = json.loads((tmp_path / "tl" / "timeline.json").read_text())
    assert [item["task"] for item in recorded["steps"]] == ["Take the lock"]
    assert sorted(p.name for p in (tmp_path / "tl").iterdir()) == [
        "timeline.json",
        "timeline.md",
    ]


def test_callback_keeps_nothing_during_a_run_in_check_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True))
    timeline_callback(str(tmp_path / "tl")).v2_playbook_on_task_start(None, False)
    assert not (tmp_path / "tl").exists()


def test_summary_gives_totals_longest_step_first_failure_and_files() -> None:
    text = to_summary(
        Run("INC-1 drill"), steps(), ["tl/timeline.md", "tl/timeline.json"]
    )
    lines = text.splitlines()
    assert lines[0].startswith(
        "Recovery timeline 'INC-1 drill': %d tasks in " % len(steps())
    )
    assert "3 ok, 3 changed, 1 failed, 1 skipped" in lines[0]
    assert lines[1] == "Longest: Restore on rag-prod (4.0 s, changed)"
    assert lines[2] == (
        "First failure: Put back into service on rag-prod: Refusing to move shard | x"
    )
    # The times, as each host reached them.
    assert lines[3] == "rag-prod: time to safe mode: 1.5 s from the playbook's start"
    assert lines[4] == "rag-prod: time to recover: not reached in this run"
    assert lines[-1] == "Timeline written to tl/timeline.md, tl/timeline.json"


def test_summary_of_a_run_without_tasks() -> None:
    assert to_summary(Run("t"), [], ["a.md"]) == (
        "Recovery timeline 't': no task ran.\nTimeline written to a.md"
    )


def on(host: str, made: Step) -> Step:
    made.host = host
    return made


def test_a_stack_counts_its_shards_run_as_hosts_of_their_own() -> None:
    """Safe mode when the first shard reached it; back in service when the last did, and
    only when every shard that had that step reached it."""
    run = Run("INC-1", started=START)
    quarantine = ("phase_safe_mode", "milestone_safe_mode")
    serve = ("phase_return_to_service", "milestone_back_in_service")
    both = [
        step("Take the lock", "ragops.recovery.incident_lock", 0.0, 0.5, "changed"),
        on(
            HOST + "/shard-1",
            step("Quarantine", "m", 1.0, 1.0, "changed", tags=quarantine),
        ),
        on(
            HOST + "/shard-2",
            step("Quarantine", "m", 1.5, 1.0, "changed", tags=quarantine),
        ),
        on(HOST + "/shard-1", step("Serve", "m", 9.0, 1.0, "changed", tags=serve)),
        on(HOST + "/shard-2", step("Serve", "m", 12.0, 1.0, "changed", tags=serve)),
        on(HOST + "-b", step("Serve", "m", 20.0, 1.0, "changed", tags=serve)),
    ]
    times = json.loads(to_json(run, both))["times"]
    assert (times[HOST]["time_to_safe_mode"], times[HOST]["time_to_recover"]) == (
        2.0,
        13.0,
    )
    assert times[HOST + "/shard-1"]["time_to_recover"] == 10.0
    assert times[HOST + "-b"]["time_to_recover"] == 21.0
    # shard-2 failed to return: the stack is not back, shard-1 is.
    both[4] = on(HOST + "/shard-2", step("Serve", "m", 12.0, 1.0, "failed", tags=serve))
    times = json.loads(to_json(run, both))["times"]
    assert times[HOST]["time_to_recover"] is None
    assert times[HOST + "/shard-1"]["time_to_recover"] == 10.0
