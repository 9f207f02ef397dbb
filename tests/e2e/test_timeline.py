"""The timeline callback records a real playbook run."""

from __future__ import annotations

import json
from pathlib import Path

from harness import Cluster, Runner, task


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
