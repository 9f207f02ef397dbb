# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-module tests of the restore drill through main(): the scratch namespace, a
shard restored into it, and the verdict with its reports, over an in-memory API and
S3."""

from __future__ import annotations

import functools
import json
import typing as t
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.k8s import transport
from ansible_collections.ragops.recovery.plugins.modules import (
    drill_namespace,
    drill_restore,
    snapshot_create,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    make_tree,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
NAMESPACES = "/api/v1/namespaces"
SCRATCH = "rag-drill-d1"
PROD = "/api/v1/namespaces/rag"
HERE = "/api/v1/namespaces/" + SCRATCH
JOBS = "/apis/batch/v1/namespaces/%s/jobs" % SCRATCH
S3 = {
    "endpoint_url": "http://minio.rag:9000",
    "access_key": "AKIDTEST",
    "secret_key": SECRET,
}
run = functools.partial(run_main, hidden=[SECRET], namespace="rag")
DRILL = {"name": SCRATCH, "drill_id": "d1", "wait_sleep": 0}
SHARD = dict(
    S3,
    scratch_namespace=SCRATCH,
    drill_id="d1",
    shard="shard-1",
    bucket="snaps",
    workload="StatefulSet/vectorstore",
    address_annotation="lab.ragops.io/address",
    wait_sleep=0,
    wait_timeout=5,
)


def test_the_scratch_namespace_is_planned_created_kept_and_deleted(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = run(drill_namespace, capsys, _ansible_check_mode=True, **DRILL)
    assert planned["changed"] is True
    assert planned["namespace"]["state"] == "would be created"
    assert NAMESPACES + "/" + SCRATCH not in k8s_api.objects
    created = run(drill_namespace, capsys, ttl=3600, **DRILL)
    assert created["changed"] is True and created["namespace"]["state"] == "created"
    meta = k8s_api.objects[NAMESPACES + "/" + SCRATCH]["metadata"]
    assert meta["labels"]["ragops.io/restore-drill"] == "d1"
    assert meta["labels"]["ragops.io/drill-of"] == "rag"
    assert meta["annotations"]["ragops.io/ttl-seconds"] == "3600"
    assert meta["annotations"]["ragops.io/expires-at"].endswith("Z")
    again = run(drill_namespace, capsys, **DRILL)
    assert again["changed"] is False and again["namespace"]["state"] == "present"
    checked = run(
        drill_namespace, capsys, state="absent", _ansible_check_mode=True, **DRILL
    )
    assert checked["namespace"]["state"] == "would be deleted"
    assert NAMESPACES + "/" + SCRATCH in k8s_api.objects
    deleted = run(drill_namespace, capsys, state="absent", **DRILL)
    assert deleted["changed"] is True and deleted["namespace"]["state"] == "deleted"
    assert NAMESPACES + "/" + SCRATCH not in k8s_api.objects
    gone = run(drill_namespace, capsys, state="absent", **DRILL)
    assert gone["changed"] is False and gone["namespace"]["state"] == "absent"


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_namespace_the_drill_did_not_create_is_refused_both_ways(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    k8s_api.add(NAMESPACES, {"kind": "Namespace", "metadata": {"name": SCRATCH}})
    result = run(drill_namespace, capsys, state=state, **DRILL)
    assert result["failed"] is True, result
    assert "is not the scratch namespace of drill d1 of rag" in result["msg"]
    assert k8s_api.writes() == [] and NAMESPACES + "/" + SCRATCH in k8s_api.objects


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("rag", "Refusing to use the production namespace rag"),
        ("kube-system", "Refusing to use the system namespace kube-system"),
        ("Rag_Drill", "Invalid scratch namespace 'Rag_Drill'"),
    ],
)
def test_the_production_and_system_namespaces_are_refused(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str], name: str, words: str
) -> None:
    for state in ("present", "absent"):
        result = run(drill_namespace, capsys, state=state, **dict(DRILL, name=name))
        assert result["failed"] is True and words in result["msg"], result
        assert result["next_step"]
    assert k8s_api.calls == []


class Cluster(FakeTransport):
    """The fake API server with a kubelet and a proxy: a created pod runs Ready, a
    created Service gets an address."""

    def _store(
        self, path: str, obj: t.Dict[str, t.Any], dry_run: bool, create: bool = False
    ) -> t.Dict[str, t.Any]:
        meta = obj["metadata"]
        if create and obj.get("kind") == "Pod":
            meta["creationTimestamp"] = "2026-12-07T15:00:00Z"
            obj["status"] = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2026-12-07T15:00:04Z",
                    }
                ],
            }
        if create and obj.get("kind") == "Service":
            meta.setdefault("annotations", {})["lab.ragops.io/address"] = (
                "10.0.255.7:8080"
            )
        return super()._store(path, obj, dry_run, create)


@pytest.fixture(name="cluster")
def cluster_fixture(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    fake = Cluster()
    monkeypatch.setattr(transport, "connect", lambda params: fake)
    fake.add(
        "/apis/apps/v1/namespaces/rag/statefulsets",
        {
            "kind": "StatefulSet",
            "metadata": {"name": "vectorstore"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "vectorstore"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "shard",
                                "image": "registry.example.com/shard:1",
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"}
                                ],
                            }
                        ]
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "fast",
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    )
    return fake


def snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str], s3_api: FakeS3) -> str:
    """A snapshot of shard-1 taken an hour ago."""
    created = run_main(
        snapshot_create,
        capsys,
        hidden=[SECRET],
        path=str(make_tree(tmp_path / "data", files=2)),
        shard="shard-1",
        bucket="snaps",
        snapshot_id="20261207T020000Z-aa01",
        **S3,
    )
    snapshot_id = str(created["snapshot"]["snapshot_id"])
    key = "snapshots/shard-1/%s/manifest.json" % snapshot_id
    manifest = json.loads(s3_api.objects[key])
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    manifest["created"] = hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    s3_api.objects[key] = json.dumps(manifest).encode()
    return snapshot_id


def finish(cluster: Cluster, job: str, lines: t.List[t.Dict[str, t.Any]]) -> None:
    """The restore Job's pod ran and logged ``lines``; the Job is finished."""
    body = cluster.objects[JOBS + "/" + job]
    done = "Complete" if lines[-1]["event"] == "result" else "Failed"
    body["metadata"]["creationTimestamp"] = "2026-12-07T14:59:00Z"
    body["status"] = {
        "conditions": [{"type": done, "status": "True"}],
        "completionTime": "2026-12-07T14:59:41Z" if done == "Complete" else None,
    }
    cluster.add(
        HERE + "/pods",
        {"kind": "Pod", "metadata": {"name": job + "-x", "labels": {"job-name": job}}},
    )
    cluster.logs[HERE + "/pods/%s-x/log" % job] = "\n".join(map(json.dumps, lines))


def production_writes(cluster: Cluster) -> t.List[t.Any]:
    return [call for call in cluster.writes() if "/namespaces/rag/" in call[1]]


def test_a_shard_is_planned_then_restored_and_started_in_the_scratch_namespace(
    cluster: Cluster, s3_api: FakeS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = snapshot(tmp_path, capsys, s3_api)
    planned = run(drill_restore, capsys, _ansible_check_mode=True, **SHARD)
    assert planned["changed"] is True and cluster.writes() == []
    shard = planned["shard"]
    assert shard["state"] == "planned" and shard["snapshot_id"] == snapshot_id
    assert shard["plan"]["claim"] == "data-vectorstore-shard-1"
    assert shard["plan"]["size"] == "1024Mi"  # at least the production claim's 1Gi
    assert 3600 <= shard["rpo_seconds"] < 3700

    started = run(drill_restore, capsys, wait=False, **SHARD)
    assert started["changed"] is True and started["shard"]["state"] == "restoring"
    job = started["shard"]["plan"]["job"]
    body = cluster.objects[JOBS + "/" + job]
    assert body["metadata"]["labels"]["ragops.io/restore-drill"] == "d1"
    claim = cluster.objects[HERE + "/persistentvolumeclaims/data-vectorstore-shard-1"]
    assert claim["spec"]["storageClassName"] == "fast"
    assert HERE + "/secrets/ragops-restore-shard-1-s3" in cluster.objects
    assert production_writes(cluster) == []

    finish(cluster, job, [{"event": "result", "restore": {"files": 5}}])
    done = run(drill_restore, capsys, snapshot_id=snapshot_id, **SHARD)["shard"]
    assert done["state"] == "ready" and done["restored"] is True, done
    assert done["restore_seconds"] == 41.0 and done["start_seconds"] == 4.0
    assert done["url"] == "http://10.0.255.7:8080"
    pod = cluster.objects[HERE + "/pods/vectorstore-shard-1"]
    assert pod["metadata"]["labels"]["ragops.io/shard"] == "shard-1"
    assert pod["spec"]["volumes"] == [
        {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "data-vectorstore-shard-1"},
        }
    ]
    service = cluster.objects[HERE + "/services/vectorstore-shard-1"]
    assert service["spec"]["selector"] == {"ragops.io/drill-pod": "vectorstore-shard-1"}
    assert production_writes(cluster) == []


def test_a_failed_restore_job_is_reported_not_raised(
    cluster: Cluster, s3_api: FakeS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = snapshot(tmp_path, capsys, s3_api)
    started = run(drill_restore, capsys, wait=False, **SHARD)
    job = started["shard"]["plan"]["job"]
    # The Job's first pod quarantined the snapshot; its retry only found none verified.
    s3_api.objects["snapshots/shard-1/%s/QUARANTINED" % snapshot_id] = b"{}"
    error = {
        "event": "error",
        "msg": "Failed to restore shard shard-1: no verified snapshot",
    }
    finish(cluster, job, [error])
    done = run(drill_restore, capsys, snapshot_id=snapshot_id, **SHARD)
    shard = done["shard"]
    assert "failed" not in done and shard["state"] == "restore failed", done
    assert shard["restored"] is False and shard["quarantined"] == [snapshot_id]
    assert (
        "Failed to restore shard shard-1 in Job %s/%s" % (SCRATCH, job)
        in shard["error"]["msg"]
    )
    assert HERE + "/pods/vectorstore-shard-1" not in cluster.objects


def test_a_shard_without_a_verified_snapshot_is_reported(
    cluster: Cluster, s3_api: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    done = run(drill_restore, capsys, **SHARD)
    assert done["changed"] is False and done["shard"]["state"] == "no snapshot"
    assert "no verified snapshot could be restored" in done["shard"]["error"]["msg"]
    assert cluster.writes() == []


def test_the_production_namespace_is_refused_as_the_scratch_one(
    cluster: Cluster, s3_api: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(drill_restore, capsys, **dict(SHARD, scratch_namespace="rag"))
    assert result["failed"] is True and "production namespace rag" in result["msg"]
    assert cluster.writes() == []


def test_the_restore_job_needs_s3_credentials_of_its_own(
    cluster: Cluster,
    s3_api: FakeS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    args = {k: v for k, v in SHARD.items() if k not in ("access_key", "secret_key")}
    result = run(drill_restore, capsys, **args)
    assert (
        result["failed"] is True and "needs access_key and secret_key" in result["msg"]
    )
    assert cluster.calls == []
