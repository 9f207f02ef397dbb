# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shard_reindex through main(), and the progress parser over indexer log lines."""

from __future__ import annotations

import functools
import json

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.shards.reindex import (
    parse_progress,
)
from ansible_collections.ragops.recovery.plugins.modules import shard_reindex
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

JOBS = "/apis/batch/v1/namespaces/rag/jobs"
PODS = "/api/v1/namespaces/rag/pods"
JOB = "ragops-reindex-shard-2-20250115t000000z"
# The Job of incident INC-1: the name ends in a digest of the incident id.
JOB_OF_INC_1 = JOB + "-c1bcc963"
LOG = "\n".join(
    json.dumps(line)
    for line in (
        {"event": "started"},
        {"event": "progress", "done": 50, "total": 80},
        {"event": "progress", "done": 80, "total": 80},
        {"event": "completed", "done": 80, "total": 80},
    )
)


run = functools.partial(
    run_main,
    shard_reindex,
    namespace="rag",
    shard="shard-2",
    since="2025-01-15T00:00:00Z",
    image="indexer:1",
    wait_timeout=1,
    wait_sleep=0,
)


def finish(k8s_api: FakeTransport, condition: str, name: str = JOB) -> None:
    job = k8s_api.objects[JOBS + "/" + name]
    job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    k8s_api.add(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name + "-x",
                "namespace": "rag",
                "labels": {"ragops.io/reindex-job": name},
            },
        },
    )
    k8s_api.logs[PODS + "/" + name + "-x/log"] = LOG


def test_parse_progress_takes_the_last_event() -> None:
    assert parse_progress(LOG + "\nnot json") == {
        "done": 80,
        "total": 80,
        "completed": True,
    }
    assert parse_progress("") == {"done": 0, "total": None, "completed": False}


def test_check_mode_creates_nothing(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = run(capsys, _ansible_check_mode=True)
    assert (
        planned["changed"] is True
        and planned["reindex"]["job"] == JOB
        and not k8s_api.objects
    )


def test_started_tracked_then_unchanged(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    started = run(capsys, wait=False, incident_id="INC-1")
    assert started["changed"] is True and started["reindex"]["state"] == "running"
    job = k8s_api.objects[JOBS + "/" + JOB_OF_INC_1]
    env = {
        v["name"]: v["value"]
        for v in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env == {"SINCE": "2025-01-15T00:00:00Z", "SHARD": "shard-2"}
    assert (
        job["spec"]["template"]["metadata"]["labels"]["ragops.io/reindex-job"]
        == JOB_OF_INC_1
    )
    finish(k8s_api, "Complete", JOB_OF_INC_1)
    done = run(capsys, incident_id="INC-1")
    assert done["changed"] is False
    assert done["reindex"]["state"] == "succeeded" and done["reindex"]["done"] == 80


def test_a_later_incident_re_indexes_again_from_the_same_snapshot(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, wait=False, incident_id="INC-1")
    finish(k8s_api, "Complete", JOB_OF_INC_1)
    later = run(capsys, wait=False, incident_id="INC-2")
    assert later["changed"] is True and later["reindex"]["state"] == "running"
    assert later["reindex"]["job"] not in (JOB, JOB_OF_INC_1)
    assert later["reindex"]["job"].startswith(
        "ragops-reindex-shard-2-20250115t000000z-"
    )
    annotations = k8s_api.objects[JOBS + "/" + later["reindex"]["job"]]["metadata"][
        "annotations"
    ]
    assert annotations["ragops.io/incident-id"] == "INC-2"


def test_failed_job_fails_with_next_step(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, wait=False)
    finish(k8s_api, "Failed")
    result = run(capsys)
    assert result["failed"] is True and result["msg"].startswith(
        "Failed to re-index shard shard-2"
    )
    assert "kubectl logs" in result["next_step"]
