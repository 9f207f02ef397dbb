"""The timeline callback records a real playbook run."""

from __future__ import annotations

import json
import os
import subprocess
import typing as t
from pathlib import Path

import yaml
from harness import BIN, ROOT, Cluster, Runner, task


def test_timeline_files_describe_every_task(cluster: Cluster, runner: Runner, tmp_path: Path) -> None:
    runner.env.update({"CALLBACKS": "ragops.recovery.timeline", "RAGOPS_TIMELINE_DIR": str(tmp_path / "tl"),
                       "RAGOPS_TIMELINE_TITLE": "INC-9 drill"})
    done = runner.play([task("Take the lock", "incident_lock", incident_id="INC-9", holder="drill"),
                        task("Read shards", "shard_info", registry="missing")])
    assert "Timeline written to" in done.stdout
    data = json.loads((tmp_path / "tl" / "timeline.json").read_text())
    assert data["title"] == "INC-9 drill"
    assert [(s["task"], s["status"], s["summary"]) for s in data["steps"]] == [
        ("Take the lock", "changed", "create"), ("Read shards", "ok", "ok")]
    markdown = (tmp_path / "tl" / "timeline.md").read_text()
    assert "```mermaid" in markdown and "Take the lock :active," in markdown


def runner_events(private_data_dir: Path) -> list[dict[str, t.Any]]:
    """The job events ansible-runner recorded, in order (artifacts/<ident>/job_events/<counter>-<uuid>.json)."""
    files = (private_data_dir / "artifacts").glob("*/job_events/*.json")
    events = [json.loads(path.read_text()) for path in files]
    return sorted(events, key=lambda event: int(event["counter"]))


def test_timeline_summary_is_a_job_event_under_ansible_runner(tmp_path: Path) -> None:
    """As AWX runs a job: ansible-runner records the callback's summary as an event of its own, and the
    set_stats data as the artifact_data of playbook_on_stats."""
    pdd = tmp_path / "job"
    (pdd / "project").mkdir(parents=True)
    (pdd / "env").mkdir()
    playbook = [{"name": "INC-RUNNER drill", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Quarantine", "ansible.builtin.debug": {"msg": "shard-2 quarantined"}, "changed_when": True},
        {"name": "Record the outcome", "ansible.builtin.set_stats": {"data": {"ragops_recovery": {
            "localhost": {"outcome": "recovered"}}}}}]}]
    (pdd / "project" / "drill.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    envvars = {"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
               "ANSIBLE_CALLBACKS_ENABLED": "ragops.recovery.timeline",
               "RAGOPS_TIMELINE_DIR": str(tmp_path / "timeline"), "ANSIBLE_LOCALHOST_WARNING": "0"}
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    done = subprocess.run([str(BIN / "ansible-runner"), "run", str(pdd), "-p", "drill.yml", "--ident", "1"],
                          env=dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", ""))),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    events = runner_events(pdd)
    names = [event["event"] for event in events]
    stats = names.index("playbook_on_stats")
    assert events[stats]["event_data"]["artifact_data"] == {"ragops_recovery": {"localhost": {"outcome": "recovered"}}}
    summary = [event for event in events[stats + 1:] if "Recovery timeline" in event.get("stdout", "")]
    assert len(summary) == 1, names
    assert summary[0]["event"] == "verbose"
    assert "'INC-RUNNER drill': 2 tasks" in summary[0]["stdout"] and "1 changed" in summary[0]["stdout"]
    assert str(tmp_path / "timeline" / "timeline.md") in summary[0]["stdout"]
    assert json.loads((tmp_path / "timeline" / "timeline.json").read_text())["title"] == "INC-RUNNER drill"
