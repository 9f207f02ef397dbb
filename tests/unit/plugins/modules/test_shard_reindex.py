# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shard_reindex through main(), and the progress parser over indexer log lines."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ragops.recovery.plugins.module_utils.reindex import parse_progress
from ansible_collections.ragops.recovery.plugins.modules import shard_reindex
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

JOBS = "/apis/batch/v1/namespaces/rag/jobs"
PODS = "/api/v1/namespaces/rag/pods"
JOB = "ragops-reindex-shard-2-20250115t000000z"
LOG = "\n".join(json.dumps(line) for line in (
    {"event": "started"}, {"event": "progress", "done": 50, "total": 80},
    {"event": "progress", "done": 80, "total": 80}, {"event": "completed", "done": 80, "total": 80}))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeTransport:
    fake = FakeTransport()
    monkeypatch.setattr(shard_reindex, "connect", lambda params: fake)
    return fake


def run(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    args = dict({"namespace": "rag", "shard": "shard-2", "since": "2025-01-15T00:00:00Z", "image": "indexer:1",
                 "wait_timeout": 1, "wait_sleep": 0}, **args)
    with patch_module_args(args), pytest.raises(SystemExit):
        shard_reindex.main()
    return t.cast(t.Dict[str, t.Any], json.loads(capsys.readouterr().out))


def finish(api: FakeTransport, condition: str) -> None:
    job = api.objects[JOBS + "/" + JOB]
    job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    api.add(PODS, {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": JOB + "-x", "namespace": "rag", "labels": {"ragops.io/reindex-job": JOB}}})
    api.logs[PODS + "/" + JOB + "-x/log"] = LOG


def test_parse_progress_takes_the_last_event() -> None:
    assert parse_progress(LOG + "\nnot json") == {"done": 80, "total": 80, "completed": True}
    assert parse_progress("") == {"done": 0, "total": None, "completed": False}


def test_check_mode_creates_nothing(api: FakeTransport, capsys: pytest.CaptureFixture[str]) -> None:
    planned = run(capsys, _ansible_check_mode=True)
    assert planned["changed"] is True and planned["reindex"]["job"] == JOB and not api.objects


def test_started_tracked_then_unchanged(api: FakeTransport, capsys: pytest.CaptureFixture[str]) -> None:
    started = run(capsys, wait=False, incident_id="INC-1")
    assert started["changed"] is True and started["reindex"]["state"] == "running"
    job = api.objects[JOBS + "/" + JOB]
    env = {v["name"]: v["value"] for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"SINCE": "2025-01-15T00:00:00Z", "SHARD": "shard-2"}
    assert job["spec"]["template"]["metadata"]["labels"]["ragops.io/reindex-job"] == JOB
    finish(api, "Complete")
    done = run(capsys)
    assert done["changed"] is False
    assert done["reindex"]["state"] == "succeeded" and done["reindex"]["done"] == 80


def test_failed_job_fails_with_next_step(api: FakeTransport, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, wait=False)
    finish(api, "Failed")
    result = run(capsys)
    assert result["failed"] is True and result["msg"].startswith("Failed to re-index shard shard-2")
    assert "kubectl logs" in result["next_step"]
