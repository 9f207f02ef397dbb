# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode of snapshot_create over an in-memory Kubernetes API: the source detection (a
VolumeSnapshot where the cluster offers one, else the live volume, quiesced), the Job and
its objects, and what the module reports."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    ApiError,
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    createjob,
    volumesource,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.test_job import (
    ClusterFake,
)

NS = "rag"
CORE = "/api/v1/namespaces/rag"
SNAPSHOT_API = "/apis/snapshot.storage.k8s.io"
SECRET = "s3cr3t-value-never-logged"
DRIVER = "ebs.csi.aws.com"


def claim(**annotations: str) -> t.Dict[str, t.Any]:
    return {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-vectorstore-2", "annotations": annotations},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "gp3",
            "resources": {"requests": {"storage": "10Gi"}},
        },
        "status": {"capacity": {"storage": "12Gi"}},
    }


def snapshot_class(
    name: str, driver: str = DRIVER, default: bool = False
) -> t.Dict[str, t.Any]:
    annotations = {volumesource.DEFAULT_CLASS_ANNOTATION: "true"} if default else {}
    return {
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": name, "annotations": annotations},
        "driver": driver,
        "deletionPolicy": "Delete",
    }


# --- the decision, pure ----------------------------------------------------------------------


def view(
    present: bool = True,
    classes: t.Sequence[t.Dict[str, t.Any]] | None = (),
    provisioned: bool = True,
) -> volumesource.ClusterView:
    annotations = (
        {"volume.kubernetes.io/storage-provisioner": DRIVER} if provisioned else {}
    )
    return volumesource.ClusterView(
        present, None if classes is None else list(classes), claim(**annotations)
    )


def test_a_volume_snapshot_is_chosen_where_a_class_serves_the_claims_driver() -> None:
    classes = [
        snapshot_class("other", driver="nfs.csi.k8s.io", default=True),
        snapshot_class("b-ebs"),
        snapshot_class("a-ebs"),
    ]
    choice = volumesource.choose("auto", view(classes=classes))
    assert choice.method == "volume_snapshot" and choice.snapshot_class == "a-ebs"
    assert DRIVER in choice.reason
    # The driver's default class wins over the first by name.
    classes.append(snapshot_class("z-ebs", default=True))
    assert volumesource.choose("auto", view(classes=classes)).snapshot_class == "z-ebs"
    assert volumesource.choose("volume_snapshot", view(classes=classes)).to_dict() == {
        "method": "volume_snapshot",
        "reason": "VolumeSnapshotClass z-ebs (CSI driver %s)" % DRIVER,
        "volume_snapshot_class": "z-ebs",
    }


@pytest.mark.parametrize(
    "cluster, why",
    [
        (view(present=False), "no VolumeSnapshot API (snapshot.storage.k8s.io)"),
        (view(classes=[]), "no VolumeSnapshotClass for the claim's CSI driver"),
        (
            view(classes=[snapshot_class("nfs", driver="nfs.csi.k8s.io")]),
            "no VolumeSnapshotClass for the claim's CSI driver",
        ),
        (view(classes=None), "cannot be read (forbidden)"),
        (
            view(classes=[snapshot_class("a")], provisioned=False),
            "names no provisioner",
        ),
    ],
)
def test_without_an_offer_auto_falls_back_to_the_live_volume_and_says_why(
    cluster: volumesource.ClusterView, why: str
) -> None:
    choice = volumesource.choose("auto", cluster)
    assert choice.method == "live" and why in choice.reason, choice.reason
    assert choice.reason.endswith("the live volume, quiesced")
    with pytest.raises(RecoveryError) as raised:
        volumesource.choose("volume_snapshot", cluster)
    assert why in str(raised.value.reason) and "source: auto or live" in str(
        raised.value.next_step
    )


def test_a_named_class_is_used_as_given_and_checked_when_the_classes_are_readable() -> (
    None
):
    assert (
        volumesource.choose("auto", view(classes=None), "csi-snap").snapshot_class
        == "csi-snap"
    )
    nfs = snapshot_class("nfs", driver="nfs.csi.k8s.io")
    choice = volumesource.choose("auto", view(classes=[nfs]), "nfs")
    assert choice.method == "live" and "is for driver nfs.csi.k8s.io" in choice.reason
    missing = volumesource.choose("auto", view(classes=[nfs]), "gone")
    assert "VolumeSnapshotClass gone does not exist" in missing.reason
    assert volumesource.choose("live", view(classes=[nfs])).method == "live"


def client_for(fake: FakeTransport) -> K8sClient:
    return K8sClient(fake, Retrier(sleep=lambda s: None))


def test_detect_asks_the_api_group_then_lists_the_classes() -> None:
    fake = FakeTransport()
    annotated = claim(**{"volume.beta.kubernetes.io/storage-provisioner": DRIVER})
    absent = volumesource.detect(client_for(fake), annotated, "auto")
    assert absent.method == "live" and "no VolumeSnapshot API" in absent.reason
    assert [call[1] for call in fake.calls] == [SNAPSHOT_API]

    fake.objects[SNAPSHOT_API] = {
        "kind": "APIGroup",
        "name": "snapshot.storage.k8s.io",
        "preferredVersion": {"groupVersion": "snapshot.storage.k8s.io/v1"},
    }
    fake.add(SNAPSHOT_API + "/v1/volumesnapshotclasses", snapshot_class("ebs"))
    present = volumesource.detect(client_for(fake), annotated, "auto")
    assert present.method == "volume_snapshot" and present.snapshot_class == "ebs"

    fake.fail(
        "GET",
        "/volumesnapshotclasses",
        ApiError("forbidden", status=403, reason="forbidden"),
    )
    forbidden = volumesource.detect(client_for(fake), annotated, "auto")
    assert forbidden.method == "live" and "forbidden" in forbidden.reason


# --- the Job --------------------------------------------------------------------------------


def shard_pod(ready: bool = True, **spec: t.Any) -> t.Dict[str, t.Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "vectorstore-2", "labels": {"ragops.io/shard": "shard-2"}},
        "spec": dict(
            {
                "nodeName": "node-7",
                "containers": [{"name": "shard", "image": "s"}],
                "volumes": [
                    {
                        "name": "data",
                        "persistentVolumeClaim": {"claimName": "data-vectorstore-2"},
                    }
                ],
            },
            **spec,
        ),
        "status": {
            "phase": "Running",
            "podIP": "10.1.2.3",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def stack(
    fake: FakeTransport, pvc: t.Dict[str, t.Any] | None = None, **pod: t.Any
) -> None:
    fake.add(CORE + "/pods", shard_pod(**pod))
    fake.add(CORE + "/persistentvolumeclaims", pvc or claim())


def request(**changes: t.Any) -> createjob.SnapshotJobRequest:
    base = createjob.SnapshotJobRequest(
        namespace=NS,
        shard="shard-2",
        shard_label="ragops.io/shard",
        data_volume="data",
        image="ee:1",
        snapshot_id="20261127T020000Z-ab12",
        credentials={"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET},
        runner={"shard": "shard-2", "bucket": "b", "compression_level": 3},
        quiesce={"port": 8080, "path": "/admin/quiesce", "seconds": 600},
    )
    return t.cast(
        createjob.SnapshotJobRequest, base.__class__(**dict(base.__dict__, **changes))
    )


def waiter() -> Waiter:
    ticks = iter(range(10_000))
    return Waiter(
        timeout=30,
        interval=1,
        clock=Clock(now=lambda: float(next(ticks)), sleep=lambda s: None),
    )


RESULT = {
    "event": "result",
    "changed": True,
    "snapshot": {"snapshot_id": "20261127T020000Z-ab12", "files": 4},
    "duration": 2.5,
    "throughput_mb_s": 40.0,
    "quiesce": {"held_seconds": 2.6, "resumed": True},
}
URL = "s3://b/snapshots/shard-2/20261127T020000Z-ab12/"


def test_without_a_snapshot_api_the_job_reads_the_live_volume_read_only_quiesced() -> (
    None
):
    fake = ClusterFake([{"event": "progress", "bytes_done": 1}, RESULT])
    stack(fake, securityContext={"fsGroup": 1000})
    outcome = createjob.snapshot_by_job(client_for(fake), request(), URL, waiter())
    result = outcome.to_result()
    assert result["changed"] is True and result["snapshot"]["files"] == 4
    assert result["job"]["source"]["method"] == "live"
    assert "no VolumeSnapshot API" in result["job"]["source"]["reason"]
    assert result["job"]["quiesce"]["resumed"] is True
    assert result["job"]["run"]["state"] == "succeeded"
    job = fake.objects[
        "/apis/batch/v1/namespaces/rag/jobs/ragops-snapshot-shard-2-20261127t020000z-ab12"
    ]
    spec = job["spec"]["template"]["spec"]
    assert spec["volumes"] == [
        {
            "name": "source",
            "persistentVolumeClaim": {
                "claimName": "data-vectorstore-2",
                "readOnly": True,
            },
        }
    ]
    container = spec["containers"][0]
    assert container["volumeMounts"][0]["readOnly"] is True
    assert container["args"] == ["python3", "-m", createjob.RUNNER]
    terms = spec["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0]["values"] == ["node-7"]
    assert spec["securityContext"] == {"fsGroup": 1000}
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    config = json.loads(container["env"][0]["value"])
    assert config["quiesce"] == {
        "url": "http://10.1.2.3:8080",
        "path": "/admin/quiesce",
        "seconds": 600,
    }
    assert config["path"] == "/snapshot" and config["source"]["method"] == "live"
    assert config["source"]["claim"] == "data-vectorstore-2"
    assert SECRET not in json.dumps(job)
    secret = fake.objects[CORE + "/secrets/ragops-snapshot-shard-2-s3"]
    assert secret["stringData"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert SECRET not in json.dumps(result)
    assert not any("volumesnapshots" in key for key in fake.objects)


def present(fake: FakeTransport) -> None:
    fake.objects[SNAPSHOT_API] = {"kind": "APIGroup", "name": "snapshot.storage.k8s.io"}
    fake.add(SNAPSHOT_API + "/v1/volumesnapshotclasses", snapshot_class("ebs"))


def test_where_a_class_is_offered_the_job_reads_a_clone_of_a_volume_snapshot() -> None:
    fake = ClusterFake([RESULT])
    stack(fake, pvc=claim(**{"volume.kubernetes.io/storage-provisioner": DRIVER}))
    present(fake)
    outcome = createjob.snapshot_by_job(
        client_for(fake), request(s3_secret="given"), URL, waiter()
    )
    result = outcome.to_result()
    name = "ragops-snapshot-shard-2-20261127t020000z-ab12"
    assert result["job"]["source"] == {
        "method": "volume_snapshot",
        "reason": "VolumeSnapshotClass ebs (CSI driver %s)" % DRIVER,
        "volume_snapshot_class": "ebs",
    }
    assert result["job"]["plan"]["clone_claim"] == name
    job = fake.objects["/apis/batch/v1/namespaces/rag/jobs/" + name]
    owner = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": job["metadata"]["uid"],
        }
    ]
    snapshot = fake.objects[SNAPSHOT_API + "/v1/namespaces/rag/volumesnapshots/" + name]
    assert snapshot["spec"] == {
        "volumeSnapshotClassName": "ebs",
        "source": {"persistentVolumeClaimName": "data-vectorstore-2"},
    }
    assert snapshot["metadata"]["ownerReferences"] == owner
    clone = fake.objects[CORE + "/persistentvolumeclaims/" + name]
    assert clone["metadata"]["ownerReferences"] == owner
    assert clone["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": name,
    }
    assert clone["spec"]["resources"]["requests"]["storage"] == "12Gi"
    assert clone["spec"]["storageClassName"] == "gp3"
    spec = job["spec"]["template"]["spec"]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": name,
        "readOnly": False,
    }
    assert "affinity" not in spec
    assert json.loads(spec["containers"][0]["env"][0]["value"])["quiesce"] is None
    # The given Secret is used as it is; none is written.
    assert not any("/secrets/" in key for key in fake.objects)
    assert spec["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["name"] == (
        "given"
    )


def test_check_mode_plans_and_creates_nothing_and_wait_false_only_starts() -> None:
    fake = ClusterFake([RESULT])
    stack(fake)
    planned = createjob.snapshot_by_job(
        client_for(fake), request(check_mode=True), URL, waiter()
    ).to_result()
    assert planned["changed"] is True and planned["snapshot"] == {
        "snapshot_id": "20261127T020000Z-ab12",
        "shard": "shard-2",
        "url": URL,
    }
    assert fake.writes() == []

    # An API where the Job does not finish on its own.
    fake = FakeTransport()
    stack(fake)
    started = createjob.snapshot_by_job(
        client_for(fake), request(wait=False), URL, waiter()
    ).to_result()
    assert started["job"]["run"]["state"] == "running"
    assert started["snapshot"]["snapshot_id"] == "20261127T020000Z-ab12"
    writes = len(fake.writes())
    # A second start of the same snapshot creates nothing new.
    createjob.snapshot_by_job(client_for(fake), request(wait=False), URL, waiter())
    assert [w for w in fake.writes()[writes:] if w[0] == "POST"] == []


def test_a_failed_job_fails_the_task_with_the_jobs_own_message() -> None:
    error = {
        "event": "error",
        "msg": "Failed to quiesce the shard at http://10.1.2.3:8080/admin/quiesce: HTTP 404",
        "reason": "not found",
        "next_step": "The shard must answer POST /admin/quiesce",
    }
    fake = ClusterFake([error], succeed=False)
    stack(fake)
    with pytest.raises(RecoveryError) as raised:
        createjob.snapshot_by_job(client_for(fake), request(), URL, waiter())
    assert "Failed to snapshot shard shard-2 in Job rag/ragops-snapshot-shard-2" in (
        raised.value.msg
    )
    assert "HTTP 404" in raised.value.msg
    assert raised.value.next_step == error["next_step"]
    assert raised.value.partial["published"] is False


def test_a_shard_that_does_not_serve_or_a_one_pod_claim_is_refused() -> None:
    fake = ClusterFake([RESULT])
    stack(fake, ready=False)
    with pytest.raises(RecoveryError) as raised:
        createjob.snapshot_by_job(client_for(fake), request(), URL, waiter())
    assert "is not Ready" in raised.value.msg and fake.writes() == []

    fake = ClusterFake([RESULT])
    one_pod = claim()
    one_pod["spec"]["accessModes"] = ["ReadWriteOncePod"]
    stack(fake, pvc=one_pod)
    with pytest.raises(RecoveryError) as raised:
        createjob.snapshot_by_job(client_for(fake), request(), URL, waiter())
    assert "ReadWriteOncePod" in raised.value.msg and fake.writes() == []
    assert "VolumeSnapshotClass" in str(raised.value.next_step)

    fake = ClusterFake([RESULT])
    with pytest.raises(RecoveryError) as raised:
        createjob.snapshot_by_job(client_for(fake), request(), URL, waiter())
    assert "no pod of it" in raised.value.msg
