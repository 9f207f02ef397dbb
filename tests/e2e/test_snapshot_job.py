"""Job mode in the lab: a corrupt shard restored from its snapshot by a restore Job into a new volume,
which then takes over the claim the StatefulSet expects, and the StatefulSet's own pod serving again on
it; the old volume kept as evidence (Retain, labelled).  Also: a corrupt newest snapshot is quarantined by
the Job and the older one restored in the same run; ``wait: false`` only starts the Job; a shard run by a
Deployment keeps its claim and pod template, its claim bound to the restored volume."""

from __future__ import annotations

import json
import shutil
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Cluster, Runner, task
from lab_support import running_lab

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS, BATCH, CORE, object_path
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
SHARD = "shard-2"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        yield running


def lab_runner(lab: Lab, workdir: Path) -> tuple[Runner, dict[str, t.Any]]:
    cluster = Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE)
    s3 = lab.s3()
    auth = {"kubeconfig": str(lab.paths.kubeconfig), "endpoint_url": s3.url, "access_key": s3.access_key,
            "secret_key": s3.secret_key}
    return Runner(cluster, workdir), auth


def get(lab: Lab, group: str, plural: str, name: str) -> dict[str, t.Any]:
    return t.cast(t.Dict[str, t.Any], lab.api().get(object_path(group, plural, stack.NAMESPACE, name)) or {})


def claim_directory(lab: Lab, claim: str) -> Path:
    """The local directory behind a bound claim (the hostPath of its PersistentVolume)."""
    return faults.claim_directory(lab.api(), stack.NAMESPACE, claim)


def volume(lab: Lab, name: str) -> dict[str, t.Any]:
    return t.cast(t.Dict[str, t.Any], lab.api().get("%s/persistentvolumes/%s" % (CORE, name)) or {})


def volume_of(lab: Lab, claim: str) -> str:
    return str(get(lab, CORE, "persistentvolumeclaims", claim).get("spec", {}).get("volumeName") or "")


def assert_kept_as_evidence(lab: Lab, name: str, incident: str) -> None:
    kept = volume(lab, name)
    assert kept["spec"]["persistentVolumeReclaimPolicy"] == "Retain", kept
    assert kept["metadata"]["labels"]["ragops.io/evidence"] == incident, kept["metadata"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".ragops")}


def test_a_corrupt_shard_is_restored_onto_its_own_claim_and_serves_again(lab: Lab, tmp_path: Path) -> None:
    runner, auth = lab_runner(lab, tmp_path)
    s3 = lab.s3()
    volume_dir = faults.shard_volume(lab.api(), SHARD)
    old_volume = volume_of(lab, "data-vectorstore-2")
    good = tmp_path / "good"
    shutil.copytree(volume_dir, good)
    common = {"shard": SHARD, "bucket": s3.bucket, "prefix": "e2e-job"}
    made = runner.play([task("snapshot", "snapshot_create", path=str(volume_dir), snapshot_id="s-1", **common)],
                       auth=auth)
    assert made.results["snapshot"]["changed"] is True, made.stdout

    faults.corrupt_shard(lab, SHARD)
    assert tree(volume_dir) != tree(good)
    restore = task("restore", "snapshot_restore", mode="job", workload="StatefulSet/vectorstore",
                   incident_id="INC-77", wait_timeout=180, wait_sleep=1, **common)
    planned = runner.play([restore], auth=auth, check=True, diff=True)
    plan = planned.results["restore"]
    assert plan["changed"] is True and plan["job"]["plan"]["claim"] == "data-vectorstore-2-r-s-1", planned.stdout
    assert plan["job"]["plan"]["bind_claim"] == "data-vectorstore-2"
    assert plan["job"]["plan"]["steps"][0]["object"] == "PersistentVolume " + old_volume
    assert not get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2-r-s-1")

    done = runner.play([restore], auth=auth)
    result = done.results["restore"]
    assert result["changed"] is True, json.dumps(result)[:3000]
    job = result["job"]
    assert job["pod"] == "vectorstore-2" and job["run"]["bytes"] > 0 and job["run"]["duration"] > 0
    assert all(step["status"] == "done" for step in job["steps"]), job["steps"]
    claim = get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2")
    assert claim["metadata"]["annotations"]["ragops.io/snapshot-id"] == "s-1"
    assert claim["spec"]["volumeName"] == job["volume"] != old_volume
    assert_kept_as_evidence(lab, old_volume, "inc-77")
    assert job["evidence"]["volume"] == old_volume
    assert tree(volume_dir) != tree(good)  # the evidence is untouched
    assert tree(claim_directory(lab, "data-vectorstore-2")) == tree(good)
    pod = get(lab, CORE, "pods", "vectorstore-2")
    assert [o["kind"] for o in pod["metadata"]["ownerReferences"]] == ["StatefulSet"] and pod_is_ready(pod)
    service = get(lab, CORE, "services", "vectorstore-2")
    assert service["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": "vectorstore-2"}
    assert not get(lab, BATCH, "jobs", "ragops-restore-shard-2-s-1")
    assert not get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2-r-s-1")
    assert s3.secret_key not in done.stdout and s3.secret_key not in json.dumps(done.results)

    again = runner.play([restore], auth=auth)
    assert again.results["restore"]["changed"] is False, again.stdout


def snapshot(runner: Runner, auth: dict[str, t.Any], path: Path, snapshot_id: str, **common: t.Any) -> None:
    made = runner.play([task("snapshot", "snapshot_create", path=str(path), snapshot_id=snapshot_id, **common)],
                       auth=auth)
    assert made.results["snapshot"]["changed"] is True, made.stdout


def flip_a_byte(lab: Lab, key: str) -> None:
    """Damage a snapshot's archive in the bucket; its size (all the manifest check sees) stays the same."""
    s3 = lab.s3()
    client = s3.client()
    data = bytearray(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(data))


def test_a_corrupt_newest_snapshot_is_quarantined_by_the_job_and_the_older_one_restored(
        lab: Lab, tmp_path: Path) -> None:
    runner, auth = lab_runner(lab, tmp_path)
    s3 = lab.s3()
    volume = faults.shard_volume(lab.api(), "shard-1")
    good = tmp_path / "good"
    shutil.copytree(volume, good)
    common = {"shard": "shard-1", "bucket": s3.bucket, "prefix": "e2e-job-fallback"}
    snapshot(runner, auth, volume, "s-1", **common)
    snapshot(runner, auth, volume, "s-2", **common)
    flip_a_byte(lab, "e2e-job-fallback/shard-1/s-2/data.tar.zst")
    faults.corrupt_shard(lab, "shard-1")

    done = runner.play([task("restore", "snapshot_restore", mode="job", workload="StatefulSet/vectorstore",
                             incident_id="INC-78", wait_timeout=180, wait_sleep=1, **common)], auth=auth)
    result = done.results["restore"]
    assert result["changed"] is True, json.dumps(result)[:3000]
    assert [(a["snapshot_id"], a["outcome"]) for a in result["tried"]] == [
        ("s-2", "failed verification"), ("s-1", "restored")], result["tried"]
    assert result["quarantined"] == ["s-2"] and result["snapshot"]["snapshot_id"] == "s-1"
    listing = {item["Key"] for item in s3.client().list_objects_v2(
        Bucket=s3.bucket, Prefix="e2e-job-fallback/shard-1/s-2/")["Contents"]}
    assert {"e2e-job-fallback/shard-1/s-2/data.tar.zst", "e2e-job-fallback/shard-1/s-2/QUARANTINED"} <= listing
    assert get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-1-r-s-2"), "the failed attempt's PVC is kept"
    assert tree(claim_directory(lab, "data-vectorstore-1")) == tree(good)
    assert result["job"]["pod"] == "vectorstore-1"


def test_without_wait_the_job_is_only_started_and_a_second_run_finishes(lab: Lab, tmp_path: Path) -> None:
    runner, auth = lab_runner(lab, tmp_path)
    s3 = lab.s3()
    volume = faults.shard_volume(lab.api(), "shard-3")
    old_volume = volume_of(lab, "data-vectorstore-3")
    common = {"shard": "shard-3", "bucket": s3.bucket, "prefix": "e2e-job-nowait"}
    snapshot(runner, auth, volume, "s-1", **common)
    faults.corrupt_shard(lab, "shard-3")
    restore = {"mode": "job", "workload": "StatefulSet/vectorstore", "incident_id": "INC-79", "wait_timeout": 180,
               "wait_sleep": 1, **common}

    started = runner.play([task("restore", "snapshot_restore", wait=False, **restore)], auth=auth)
    result = started.results["restore"]
    assert result["changed"] is True and "restore" not in result, json.dumps(result)[:3000]
    assert result["job"]["run"]["name"] == "ragops-restore-shard-3-s-1"
    assert result["job"]["run"]["state"] in ("running", "succeeded")
    assert get(lab, BATCH, "jobs", "ragops-restore-shard-3-s-1")
    assert volume_of(lab, "data-vectorstore-3") == old_volume  # nothing of the shard changed yet

    finished = runner.play([task("restore", "snapshot_restore", **restore)], auth=auth)
    result = finished.results["restore"]
    assert result["changed"] is True and result["job"]["pod"] == "vectorstore-3", json.dumps(result)[:3000]
    assert volume_of(lab, "data-vectorstore-3") == result["job"]["volume"] != old_volume
    assert_kept_as_evidence(lab, old_volume, "inc-79")
    assert runner.play([task("restore", "snapshot_restore", **restore)], auth=auth).results["restore"][
        "changed"] is False


DEPLOYMENT_LABEL = "lab.ragops.io/test-shard"


def shard_deployment(name: str, shard: str, claim: str) -> list[dict[str, t.Any]]:
    """A shard served by a Deployment on a PVC of its own (the lab's shard image, built from the corpus)."""
    labels = {"app.kubernetes.io/name": name, DEPLOYMENT_LABEL: name}
    container = {"image": "ragops-lab/shard", "env": [{"name": "SHARD_ID", "value": shard},
                                                      {"name": "DATA_DIR", "value": "/data"}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": claim, "namespace": stack.NAMESPACE},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": stack.NAMESPACE},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "initContainers": [dict(container, name="build-index",
                                              args=["build", "--shard", shard, "--out", "/data", "--if-missing"])],
                      "containers": [dict(container, name="shard", ports=[{"name": "http", "containerPort": 8080}],
                                          readinessProbe={"httpGet": {"path": "/readyz", "port": "http"},
                                                          "periodSeconds": 1})],
                      "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}}}]


def ready_pod(lab: Lab, name: str, timeout: float = 90.0) -> dict[str, t.Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (DEPLOYMENT_LABEL, name))[0]
        ready = [p for p in pods if pod_is_ready(p)]
        if ready:
            return t.cast(t.Dict[str, t.Any], ready[0])
        time.sleep(1)
    raise AssertionError("no Ready pod of Deployment %s after %.0f s" % (name, timeout))


def test_a_shard_run_by_a_deployment_keeps_its_claim_on_the_restored_volume(lab: Lab, tmp_path: Path) -> None:
    runner, auth = lab_runner(lab, tmp_path)
    s3 = lab.s3()
    api = lab.api()
    claim, deployment = shard_deployment("vs-dep", "shard-0", "data-vs-dep")
    api.create(object_path(CORE, "persistentvolumeclaims", stack.NAMESPACE), claim)
    api.create(object_path(APPS, "deployments", stack.NAMESPACE), deployment)
    pod = ready_pod(lab, "vs-dep")
    volume = claim_directory(lab, "data-vs-dep")
    old_volume = volume_of(lab, "data-vs-dep")
    template_before = get(lab, APPS, "deployments", "vs-dep")["spec"]["template"]
    good = tmp_path / "good"
    shutil.copytree(volume, good)
    common = {"shard": "vs-dep", "bucket": s3.bucket, "prefix": "e2e-job-deployment"}
    snapshot(runner, auth, volume, "s-1", **common)
    segment = next(p for p in sorted(volume.rglob("*")) if p.is_file() and not p.name.startswith(".ragops"))
    faults.flip_bytes(segment)

    done = runner.play([task("restore", "snapshot_restore", mode="job", workload="Deployment/vs-dep",
                             shard_label=DEPLOYMENT_LABEL, incident_id="INC-80", wait_timeout=180, wait_sleep=1,
                             **common)], auth=auth)
    result = done.results["restore"]
    assert result["changed"] is True, json.dumps(result)[:3000]
    assert result["job"]["plan"]["bind_claim"] == "data-vs-dep"
    assert get(lab, APPS, "deployments", "vs-dep")["spec"]["template"] == template_before
    serving = ready_pod(lab, "vs-dep")
    assert serving["metadata"]["name"] != pod["metadata"]["name"]
    assert serving["metadata"]["name"] == result["job"]["pod"]
    assert [o["kind"] for o in serving["metadata"]["ownerReferences"]] == ["ReplicaSet"]
    assert volume_of(lab, "data-vs-dep") == result["job"]["volume"] != old_volume
    assert tree(claim_directory(lab, "data-vs-dep")) == tree(good)
    assert_kept_as_evidence(lab, old_volume, "inc-80")
