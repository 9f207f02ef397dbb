# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore Job's entry point: configuration from the environment, JSON lines out, exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import jobrun
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.create import (
    CreateRequest,
    create_snapshot,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    make_tree,
    store,
)

SECRET = "job-secret-key-value"


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def fake(s3_api: FakeS3) -> FakeS3:
    return s3_api


def environment(monkeypatch: pytest.MonkeyPatch, dest: Path) -> None:
    config = {
        "shard": "shard-1",
        "bucket": "snaps",
        "endpoint_url": "http://127.0.0.1:1",
        "dest": str(dest),
    }
    monkeypatch.setenv("RAGOPS_RESTORE", json.dumps(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def test_the_job_restores_and_logs_progress_and_a_result(
    tmp_path: Path,
    fake: FakeS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = make_tree(tmp_path / "src", files=4)
    create_snapshot(
        store(fake), CreateRequest(LOCATION, str(source), "s1", "2026-11-27T10:00:00Z")
    )
    environment(monkeypatch, tmp_path / "volume")
    assert jobrun.main() == 0
    out = capsys.readouterr().out
    events = lines(out)
    assert events[-1]["event"] == "result" and events[-1]["snapshot_id"] == "s1"
    assert any(
        e["event"] == "progress" and e["bytes_done"] == e["bytes_total"] for e in events
    )
    assert (tmp_path / "volume" / "index" / "meta.json").exists() and SECRET not in out


def test_the_job_reports_an_error_and_exits_1(
    tmp_path: Path,
    fake: FakeS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment(monkeypatch, tmp_path / "volume")
    assert jobrun.main() == 1
    event = lines(capsys.readouterr().out)[-1]
    assert event["event"] == "error" and "no verified snapshot" in str(event["msg"])
