# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""incident_info through main(): a stack in the middle of a recovery, read without a
single write, and the parts it cannot read reported instead of failing."""

from __future__ import annotations

import functools
import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import ApiError
from ansible_collections.ragops.recovery.plugins.modules import incident_info
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.test_incident_status import (
    generator,
    lines,
    restore_job,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

NS = "/api/v1/namespaces/rag"
JOBS = "/apis/batch/v1/namespaces/rag/jobs"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/rag/leases"
run = functools.partial(run_main, incident_info, namespace="rag", stack="rag-lab")


def entry(state: str, **fields: t.Any) -> str:
    return json.dumps(dict(fields, state=state, since="2026-11-27T22:10:09Z"))


@pytest.fixture
def api(k8s_api: FakeTransport) -> FakeTransport:
    """shard-2 being restored for INC-1 under alice's lock, the generator on backup."""
    registry = {
        "shard-0": entry("serving"),
        "shard-2": entry("restoring", incident_id="INC-1", reason="restoring"),
    }
    k8s_api.add(
        NS + "/configmaps",
        {
            "kind": "ConfigMap",
            "metadata": {"name": "rag-shard-registry"},
            "data": registry,
        },
    )
    k8s_api.add(
        LEASES,
        {
            "kind": "Lease",
            "metadata": {
                "name": "ragops-recovery-lock",
                "annotations": {"ragops.io/incident-id": "INC-1"},
            },
            "spec": {
                "holderIdentity": "alice@bastion",
                "acquireTime": "2099-01-01T00:00:00.000000Z",
                "leaseDurationSeconds": 3600,
            },
        },
    )
    job = restore_job()
    k8s_api.add(JOBS, job)
    pod = "%s-x7k2p" % job["metadata"]["name"]
    k8s_api.add(
        NS + "/pods",
        {
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "labels": {"job-name": job["metadata"]["name"]},
                "creationTimestamp": "2026-11-27T22:10:10Z",
            },
            "status": {"phase": "Running"},
        },
    )
    k8s_api.logs[NS + "/pods/%s/log" % pod] = lines(
        {"event": "progress", "bytes_done": 3, "bytes_total": 4}
    )
    k8s_api.add(
        "/apis/apps/v1/namespaces/rag/deployments",
        generator([{"name": "PROVIDER", "value": "backup"}]),
    )
    return k8s_api


def test_a_recovery_in_progress_is_shown_without_a_write(
    api: FakeTransport,
    s3_api: FakeS3,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3_api.objects["evidence/INC-1/evidence-shard-2.tar.gz"] = b"bundle"
    s3_api.objects["evidence/INC-2/evidence-shard-1.tar.gz"] = b"other incident"
    (tmp_path / "INC-1").mkdir()
    (tmp_path / "INC-1" / "golden-reopen.md").write_text("failed")
    result = run(
        capsys,
        bucket=s3_api.bucket,
        access_key="AKIAFAKE",
        secret_key="fake-secret-value",
        report_dirs=[str(tmp_path)],
        _ansible_check_mode=True,
        hidden=["fake-secret-value"],
    )
    assert result["changed"] is False and api.writes() == []
    seen = result["incident"]
    assert (seen["incident_id"], seen["incident_from"]) == ("INC-1", "lock")
    assert seen["lock"]["holder"] == "alice@bastion" and not seen["lock"]["stale"]
    assert [(s["shard"], s["state"]) for s in seen["shards"]] == [
        ("shard-0", "serving"),
        ("shard-2", "restoring"),
    ]
    (job,) = seen["jobs"]["items"]
    assert (job["kind"], job["state"], job["progress"]["percent"]) == (
        "restore",
        "running",
        75.0,
    )
    assert seen["generator"]["provider"] == "backup" and seen["generator"]["safe_mode"]
    assert [a["location"] for a in seen["artifacts"]["evidence"]] == [
        "s3://snaps/evidence/INC-1/evidence-shard-2.tar.gz"
    ]
    assert [a["kind"] for a in seen["artifacts"]["reports"]] == ["report"]
    assert seen["next_step"]["action"].startswith("Wait: alice@bastion is recovering")
    assert seen["errors"] == []


def test_parts_that_cannot_be_read_are_reported_and_the_rest_shown(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = (
        'jobs.batch is forbidden: User "system:serviceaccount:rag:viewer" cannot list '
        'resource "jobs" in API group "batch" in the namespace "rag"'
    )
    api.fail("GET", "/jobs", ApiError(refused, status=403, reason=refused))
    result = run(capsys, generator_deployment="", incident_id="INC-1")
    seen = result["incident"]
    (error,) = seen["errors"]
    assert error["part"] == "jobs" and "forbidden by RBAC" in error["msg"], error
    assert error["next_step"].startswith('Grant verb "list" on resource "jobs"')
    assert seen["generator"] is None and seen["jobs"] == {"items": [], "hidden": 0}
    assert seen["lock"]["holder"] == "alice@bastion"
    assert seen["next_step"]["action"].startswith("Make the jobs readable first")


def test_no_registry_and_no_lock_is_a_quiet_stack(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = run(capsys)["incident"]
    assert seen["registry"]["exists"] is False and seen["shards"] == []
    assert seen["lock"] == {
        "name": "ragops-recovery-lock",
        "exists": False,
        "held": False,
        "stale": False,
    }
    assert seen["generator"]["exists"] is False and seen["incident_id"] == ""
    assert seen["next_step"]["action"].startswith("Nothing left to do on this stack")
