# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-module tests of the in-cluster snapshots through main(): snapshot_create in job
mode and the nightly CronJob of snapshot_schedule, over an in-memory API and S3."""

from __future__ import annotations

import base64
import functools
import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.modules import (
    snapshot_create,
    snapshot_schedule,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
NS = "rag"
CORE = "/api/v1/namespaces/rag"
CRONJOBS = "/apis/batch/v1/namespaces/rag/cronjobs"
S3 = {
    "endpoint_url": "http://minio.rag:9000",
    "access_key": "AKIDTEST",
    "secret_key": SECRET,
}
run = functools.partial(run_main, hidden=[SECRET], namespace=NS, **S3)


def shard(fake: FakeTransport) -> None:
    fake.add(
        CORE + "/pods",
        {
            "kind": "Pod",
            "metadata": {
                "name": "vectorstore-2",
                "labels": {"ragops.io/shard": "shard-2"},
            },
            "spec": {
                "nodeName": "node-1",
                "volumes": [
                    {
                        "name": "data",
                        "persistentVolumeClaim": {"claimName": "data-vectorstore-2"},
                    }
                ],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.9",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
    )
    fake.add(
        CORE + "/persistentvolumeclaims",
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "data-vectorstore-2"}},
    )


def finish(fake: FakeTransport, job: str, lines: t.List[t.Dict[str, t.Any]]) -> None:
    """The Job's pod ran and logged ``lines``; the Job is complete."""
    fake.objects["/apis/batch/v1/namespaces/rag/jobs/" + job]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]
    }
    fake.add(
        CORE + "/pods",
        {"kind": "Pod", "metadata": {"name": job + "-x", "labels": {"job-name": job}}},
    )
    fake.logs[CORE + "/pods/%s-x/log" % job] = "\n".join(map(json.dumps, lines))


def test_create_in_job_mode_checks_starts_then_waits_for_the_same_job(
    k8s_api: FakeTransport, s3_api: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    shard(k8s_api)
    args = {"mode": "job", "shard": "shard-2", "bucket": "snaps", "wait_sleep": 0}
    planned = run(snapshot_create, capsys, _ansible_check_mode=True, **args)
    assert planned["changed"] is True and k8s_api.writes() == []
    assert planned["job"]["source"]["method"] == "live"
    assert planned["job"]["pod"] == "vectorstore-2"

    started = run(snapshot_create, capsys, wait=False, **args)
    snapshot_id = started["snapshot"]["snapshot_id"]
    job = started["job"]["plan"]["job"]
    assert started["job"]["run"] == {"name": job, "state": "running", "progress": {}}
    assert job == "ragops-snapshot-shard-2-" + snapshot_id.lower()
    body = k8s_api.objects["/apis/batch/v1/namespaces/rag/jobs/" + job]
    config = json.loads(
        body["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
    )
    assert config["endpoint_url"] == "http://minio.rag:9000"
    assert config["quiesce"]["url"] == "http://10.0.0.9:8080"

    snapshot = {"snapshot_id": snapshot_id, "files": 3, "url": "s3://snaps/..."}
    finish(k8s_api, job, [{"event": "result", "changed": True, "snapshot": snapshot}])
    done = run(snapshot_create, capsys, snapshot_id=snapshot_id, **args)
    assert done["changed"] is True and done["snapshot"] == snapshot
    assert done["job"]["run"]["state"] == "succeeded"


def test_job_mode_needs_s3_credentials_for_the_job(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_main(
        snapshot_create, capsys, mode="job", shard="shard-2", bucket="snaps"
    )
    assert result["failed"] is True and "s3_secret, access_key" in result["msg"]


def cronjob(fake: FakeTransport) -> t.Dict[str, t.Any]:
    return fake.objects[CRONJOBS + "/ragops-snapshot-nightly"]


def test_schedule_check_apply_rerun_change_and_remove(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(
        CORE + "/serviceaccounts",
        {"kind": "ServiceAccount", "metadata": {"name": "ragops-recovery"}},
    )
    extra = {"target": "localhost", "ragops_s3_bucket": "snaps"}
    planned = run(
        snapshot_schedule,
        capsys,
        extra_vars=extra,
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert planned["changed"] is True and planned["diff"]["before"] == {}
    assert CRONJOBS + "/ragops-snapshot-nightly" not in k8s_api.objects
    assert ("dryRun", "All") in k8s_api.writes()[0][2]

    made = run(snapshot_schedule, capsys, extra_vars=extra)
    assert made["changed"] is True and made["secret"] == {
        "name": "ragops-snapshot-nightly-s3",
        "managed": True,
        "changed": True,
    }
    body = cronjob(k8s_api)
    pod = body["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "localhost/ragops-recovery-ee:0.1.0"
    assert pod["serviceAccountName"] == "ragops-recovery"
    assert container["args"][:6] == [
        "ansible-playbook",
        "ragops.recovery.snapshot_nightly",
        "-i",
        "localhost,",
        "-c",
        "local",
    ]
    assert json.loads(container["args"][7]) == dict(
        extra, ansible_python_interpreter="{{ ansible_playbook_python }}"
    )
    env = {item["name"]: item for item in container["env"]}
    assert env["K8S_AUTH_IN_CLUSTER"]["value"] == "true"
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.rag:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "ragops-snapshot-nightly-s3"
    )
    assert body["spec"]["concurrencyPolicy"] == "Forbid"
    secret = k8s_api.objects[CORE + "/secrets/ragops-snapshot-nightly-s3"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert SECRET not in json.dumps(body)

    # The API server keeps the Secret's values base64-encoded in data.
    secret["data"] = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in secret.pop("stringData").items()
    }
    writes = len(k8s_api.writes())
    again = run(snapshot_schedule, capsys, extra_vars=extra)
    assert again["changed"] is False and len(k8s_api.writes()) == writes

    moved = run(
        snapshot_schedule,
        capsys,
        extra_vars=extra,
        schedule="30 3 * * *",
        _ansible_diff=True,
    )
    assert moved["changed"] is True and moved["secret"]["changed"] is False
    assert moved["diff"]["before"]["schedule"] == "0 2 * * *"
    assert moved["diff"]["after"]["schedule"] == "30 3 * * *"
    assert cronjob(k8s_api)["spec"]["schedule"] == "30 3 * * *"

    gone = run(snapshot_schedule, capsys, state="absent")
    assert gone["changed"] is True and gone["cronjob"] is None
    assert CRONJOBS + "/ragops-snapshot-nightly" not in k8s_api.objects
    assert run(snapshot_schedule, capsys, state="absent")["changed"] is False


def test_schedule_refuses_a_missing_service_account(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(snapshot_schedule, capsys, service_account="nobody")
    assert result["failed"] is True
    assert "ServiceAccount rag/nobody does not exist" in result["msg"]
    assert "meta/rbac/snapshots.yaml" in result["next_step"]
    assert k8s_api.writes() == []
