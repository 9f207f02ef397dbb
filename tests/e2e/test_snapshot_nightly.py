"""The nightly snapshots against the lab: snapshot_create in job mode, the snapshot_nightly playbook run from a
controller and, installed as a CronJob, run inside the cluster by a Job created from it.

The lab has no CSI snapshotter (no snapshot.storage.k8s.io API), so every Job reads the shard's live volume,
mounted read-only, with the shard quiesced through its admin endpoint; that the fallback is reported, and that
the archive holds exactly the volume's files (checked with zstd, GNU tar and sha256sum), is what the first test
shows. Every playbook runs as the ServiceAccount bound to the shipped Role of meta/rbac/snapshots.yaml alone,
and the CronJob's runs as that account too, in the cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import typing as t
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import ROOT, Cluster, Result, Runner, task
from lab_support import running_lab

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
PLAYBOOK = ROOT / "playbooks" / "snapshot_nightly.yml"
SHARDS = ["shard-0", "shard-1", "shard-2", "shard-3"]
EE_IMAGE = "localhost/ragops-recovery-ee:0.1.0"
ACCOUNT = "ragops-recovery-snapshots"  # the lab's account bound to meta/rbac/snapshots.yaml alone
Obj = dict[str, t.Any]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        yield running


def admin(lab: Lab) -> Cluster:
    return Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE)


def snapshots_kubeconfig(lab: Lab) -> Path:
    return lab.rbac_kubeconfigs().by_file["snapshots"]


def module_auth(lab: Lab) -> Obj:
    s3 = lab.s3()
    return {"kubeconfig": str(snapshots_kubeconfig(lab)), "endpoint_url": s3.url, "access_key": s3.access_key,
            "secret_key": s3.secret_key, "region": s3.region}


def nightly(lab: Lab, workdir: Path, *, check: bool = False, **variables: t.Any) -> Result:
    """ansible-playbook ragops.recovery.snapshot_nightly against the lab's inventory, as the snapshots account."""
    settings = {"ragops_kubeconfig": str(snapshots_kubeconfig(lab)), "snapshot_nightly_wait_timeout": 300,
                "snapshot_nightly_retention_days": 7, **variables}
    return Runner(admin(lab), workdir).run(PLAYBOOK, check=check, extra=[
        "-i", str(lab.paths.inventory), "-e", json.dumps(settings)])


def listing(lab: Lab, prefix: str) -> set[str]:
    s3 = lab.s3()
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix + "/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def snapshot_ids(lab: Lab, prefix: str, shard: str) -> set[str]:
    return {key.split("/")[2] for key in listing(lab, f"{prefix}/{shard}") if key.endswith("/manifest.json")}


def manifest(lab: Lab, key: str) -> Obj:
    s3 = lab.s3()
    return t.cast(Obj, json.loads(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()))


def seed(lab: Lab, workdir: Path, shard: str, prefix: str, ages_in_days: t.Sequence[float]) -> list[str]:
    """Verified snapshots of the shard as they would be after earlier nights: a real snapshot of its volume,
    copied under ids whose manifests say they were taken ``ages_in_days`` ago."""
    s3 = lab.s3()
    client = s3.client()
    source = f"{prefix}-source"
    made = Runner(admin(lab), workdir).play([task(
        "seed", "snapshot_create", shard=shard, bucket=s3.bucket, prefix=source, snapshot_id="seed",
        path=str(faults.shard_volume(lab.api(), shard)))], auth=module_auth(lab))
    assert made.results["seed"]["changed"] is True, made.stdout
    original = manifest(lab, f"{source}/{shard}/seed/manifest.json")
    ids = []
    for age in ages_in_days:
        created = datetime.now(UTC) - timedelta(days=age)
        snapshot_id = created.strftime("%Y%m%dT%H%M%SZ") + "-seed"
        for name in ("data.tar.zst", "SHA256SUMS"):
            client.copy_object(Bucket=s3.bucket, Key=f"{prefix}/{shard}/{snapshot_id}/{name}",
                               CopySource={"Bucket": s3.bucket, "Key": f"{source}/{shard}/seed/{name}"})
        body = dict(original, snapshot_id=snapshot_id, created=created.strftime("%Y-%m-%dT%H:%M:%SZ"))
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{shard}/{snapshot_id}/manifest.json",
                          Body=json.dumps(body).encode())
        ids.append(snapshot_id)
    return ids


def job(lab: Lab, name: str) -> Obj:
    return t.cast(Obj, lab.api().get(object_path(BATCH, "jobs", stack.NAMESPACE, name)) or {})


def unpack_and_compare(lab: Lab, key_prefix: str, volume: Path, workdir: Path) -> None:
    """The snapshot restored by hand (docs/snapshots.md) is the volume, file for file, byte for byte."""
    s3 = lab.s3()
    client = s3.client()
    for name in ("data.tar.zst", "SHA256SUMS"):
        client.download_file(s3.bucket, f"{key_prefix}/{name}", str(workdir / name))
    restored = workdir / "restored"
    restored.mkdir()
    subprocess.run(f"zstd -dc {workdir / 'data.tar.zst'} | tar --no-same-owner -xpf - -C {restored}", shell=True,
                   check=True)
    subprocess.run(["sha256sum", "--quiet", "--strict", "-c", str(workdir / "SHA256SUMS")], cwd=restored,
                   check=True)
    files = {str(p.relative_to(volume)): p.read_bytes() for p in volume.rglob("*") if p.is_file()}
    assert {str(p.relative_to(restored)): p.read_bytes() for p in restored.rglob("*") if p.is_file()} == files


def shard_log_events(lab: Lab, pod: str) -> list[str]:
    log = admin(lab).kubectl("logs", pod, "-c", "shard")
    events = []
    for line in log.splitlines():
        try:
            events.append(json.loads(line).get("event", ""))
        except ValueError:
            continue
    return events


def test_a_job_mode_snapshot_reads_the_live_volume_read_only_with_the_shard_quiesced(
        lab: Lab, tmp_path: Path) -> None:
    s3 = lab.s3()
    runner = Runner(admin(lab), tmp_path)
    create = task("snapshot", "snapshot_create", mode="job", shard="shard-0", bucket=s3.bucket, prefix="e2e-jobmode",
                  snapshot_id="job-1", wait_timeout=300, wait_sleep=1)
    planned = runner.play([create], auth=module_auth(lab), check=True)
    plan = planned.results["snapshot"]
    assert plan["changed"] is True and plan["job"]["plan"]["job"] == "ragops-snapshot-shard-0-job-1", planned.stdout
    assert plan["job"]["source"]["method"] == "live"
    assert not job(lab, "ragops-snapshot-shard-0-job-1") and not listing(lab, "e2e-jobmode")

    done = runner.play([create], auth=module_auth(lab))
    result = done.results["snapshot"]
    assert result["changed"] is True, json.dumps(result)[:3000]
    assert result["job"]["source"] == {
        "method": "live",
        "reason": "the cluster has no VolumeSnapshot API (snapshot.storage.k8s.io): the live volume, quiesced"}
    quiesce = result["job"]["quiesce"]
    assert quiesce["resumed"] is True and 0 < quiesce["held_seconds"] < 300, quiesce
    assert quiesce["url"].endswith(":8080/admin/quiesce")
    assert result["snapshot"]["snapshot_id"] == "job-1" and result["snapshot"]["files"] == 5
    events = [e for e in shard_log_events(lab, "vectorstore-0") if e in ("quiesced", "resumed")]
    assert events[-2:] == ["quiesced", "resumed"]
    assert lab.endpoints().shards and s3.secret_key not in done.stdout

    finished = job(lab, "ragops-snapshot-shard-0-job-1")
    assert finished["status"].get("succeeded") == 1
    spec = finished["spec"]["template"]["spec"]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "data-vectorstore-0", "readOnly": True}
    assert spec["containers"][0]["image"] == EE_IMAGE
    assert finished["spec"]["ttlSecondsAfterFinished"] == 86400

    recorded = manifest(lab, "e2e-jobmode/shard-0/job-1/manifest.json")
    assert recorded["source"] == {"host": "lab-node", "path": "/", "claim": "data-vectorstore-0",
                                  "pod": "vectorstore-0", "method": "live"}
    unpack_and_compare(lab, "e2e-jobmode/shard-0/job-1", faults.shard_volume(lab.api(), "shard-0"), tmp_path)

    again = runner.play([create], auth=module_auth(lab))
    assert again.results["snapshot"]["changed"] is False, again.stdout


def test_the_nightly_run_checks_then_snapshots_every_shard_and_keeps_the_newest_verified(
        lab: Lab, tmp_path: Path) -> None:
    prefix = "e2e-nightly"
    old = seed(lab, tmp_path, "shard-1", prefix, [30, 25, 20, 10, 9])
    before = listing(lab, prefix)

    checked = nightly(lab, tmp_path, check=True, snapshot_nightly_prefix=prefix)
    assert checked.returncode != 0, checked.stdout
    assert "Recovery point objective of 26 h missed" in checked.stdout
    assert "shard-0: no verified snapshot" in checked.stdout
    assert re.search(r"shard-1: newest verified snapshot %s is 216\.\d h old" % old[-1], checked.stdout)
    assert listing(lab, prefix) == before, "check mode uploads and deletes nothing"
    assert not [j for j in lab.api().list(BATCH, "jobs", stack.NAMESPACE, "")[0]
                if j["metadata"]["name"].startswith("ragops-snapshot-shard-1-")]

    started = time.time()
    ran = nightly(lab, tmp_path, snapshot_nightly_prefix=prefix, snapshot_nightly_keep_verified=3)
    assert ran.returncode == 0 and ran.failed == 0, ran.stdout[-6000:]
    assert "4 of 4 serving shards snapshotted, 3 old snapshots pruned" in ran.stdout
    for shard in SHARDS:
        taken = snapshot_ids(lab, prefix, shard) - set(old)
        assert len(taken) == 1, (shard, taken)
        created = manifest(lab, f"{prefix}/{shard}/{taken.pop()}/manifest.json")
        assert created["source"]["method"] == "live"
        assert datetime.fromisoformat(created["created"].replace("Z", "+00:00")).timestamp() >= started - 1
    # Tonight's snapshot and the two newest earlier ones stay (3 newest verified), although those are older
    # than the 7 days kept; the three older ones go, every object of theirs and nothing else.
    assert snapshot_ids(lab, prefix, "shard-1") & set(old) == set(old[-2:])
    gone = {key for key in before if any(f"/{snapshot_id}/" in key for snapshot_id in old[:3])}
    assert len(gone) == 9 and not gone & listing(lab, prefix)
    jobs = [j for j in lab.api().list(BATCH, "jobs", stack.NAMESPACE, "")[0]
            if j["metadata"]["name"].startswith("ragops-snapshot-shard-")]
    assert len(jobs) >= 4 and all(j["status"].get("succeeded") == 1 for j in jobs)


def set_registry_state(lab: Lab, shard: str, entry: Obj) -> None:
    path = object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)
    lab.api().merge_patch(path, {"data": {shard: json.dumps(entry)}})


def test_a_shard_out_of_service_is_not_snapshotted_and_its_old_recovery_point_fails_the_run(
        lab: Lab, tmp_path: Path) -> None:
    prefix = "e2e-rpo"
    old = seed(lab, tmp_path, "shard-3", prefix, [3])
    set_registry_state(lab, "shard-3", {"state": "quarantined", "reason": "e2e", "incident_id": "INC-RPO"})
    try:
        ran = nightly(lab, tmp_path, snapshot_nightly_prefix=prefix)
    finally:
        set_registry_state(lab, "shard-3", {"state": "serving"})
    assert ran.returncode != 0 and ran.failed == 1, ran.stdout[-6000:]
    message = ran.stdout[ran.stdout.index("Nightly snapshots of rag-lab"):]
    assert "3 of 3 serving shards snapshotted" in message
    assert re.search(r"Recovery point objective of 26 h missed: shard-3: newest verified snapshot %s is 72\.\d h old"
                     % old[0], message), message
    assert "Not snapshotted (not serving): shard-3 is quarantined" in message
    assert snapshot_ids(lab, prefix, "shard-3") == set(old)
    assert all(len(snapshot_ids(lab, prefix, shard)) == 1 for shard in SHARDS[:3])


def wait_for_job(lab: Lab, name: str, timeout: float = 420.0) -> Obj:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = job(lab, name)
        conditions = {c["type"]: c["status"] for c in (found.get("status") or {}).get("conditions") or []}
        if conditions.get("Complete") == "True" or conditions.get("Failed") == "True":
            return found
        time.sleep(2)
    raise AssertionError("Job %s did not finish in %ss: %s" % (name, timeout, admin(lab).kubectl(
        "logs", "job/" + name, check=False)[-4000:]))


def jobs_created_by(lab: Lab, user: str, since: datetime) -> int:
    """How many Jobs ``user`` created in the lab's namespace since ``since``, from the API server's audit log."""
    count = 0
    for line in (lab.paths.logs / "audit.log").read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        when = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        count += (event.get("verb") == "create" and ref.get("resource") == "jobs" and not ref.get("subresource")
                  and ref.get("namespace") == stack.NAMESPACE and event["user"]["username"] == user
                  and (event.get("responseStatus") or {}).get("code") == 201 and when >= since)
    return count


def far_from_now() -> str:
    """A daily schedule about twelve hours away, so that the controller never starts a run during the test."""
    later = datetime.now(UTC) + timedelta(hours=12)
    return f"{later.minute} {later.hour} * * *"


def test_the_nightly_cronjob_is_installed_runs_in_the_cluster_and_is_removed(lab: Lab, tmp_path: Path) -> None:
    prefix = "e2e-cron"
    schedule = far_from_now()
    settings = {"snapshot_nightly_prefix": prefix, "snapshot_nightly_service_account": ACCOUNT,
                "snapshot_nightly_schedule": schedule}
    installed = nightly(lab, tmp_path, state="present", **settings)
    assert installed.returncode == 0 and installed.changed == 1, installed.stdout[-4000:]
    cronjob = t.cast(Obj, lab.api().get(object_path(BATCH, "cronjobs", stack.NAMESPACE, "ragops-snapshot-nightly")))
    assert cronjob["spec"]["schedule"] == schedule and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == EE_IMAGE and pod["serviceAccountName"] == ACCOUNT
    assert container["args"][:2] == ["ansible-playbook", "ragops.recovery.snapshot_nightly"]
    run_vars = json.loads(container["args"][-1])
    assert run_vars["snapshot_nightly_prefix"] == prefix and run_vars["target"] == "localhost"
    assert run_vars["snapshot_nightly_s3_secret"] == "ragops-snapshot-nightly-s3"
    secret = t.cast(Obj, lab.api().get(object_path(CORE, "secrets", stack.NAMESPACE, "ragops-snapshot-nightly-s3")))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == cronjob["metadata"]["uid"]
    assert lab.s3().secret_key not in json.dumps(cronjob) and lab.s3().secret_key not in installed.stdout

    again = nightly(lab, tmp_path, state="present", **settings)
    assert again.returncode == 0 and again.changed == 0, again.stdout[-4000:]

    # What the CronJob controller does at the scheduled time, as `kubectl create job --from=cronjob/...` does.
    since = datetime.now(UTC) - timedelta(seconds=1)
    admin(lab).kubectl("create", "job", "--from=cronjob/ragops-snapshot-nightly", "nightly-now")
    finished = wait_for_job(lab, "nightly-now")
    log = admin(lab).kubectl("logs", "job/nightly-now")
    assert finished["status"].get("succeeded") == 1, log[-6000:]
    assert "4 of 4 serving shards snapshotted" in log and "failed=0" in log, log[-6000:]
    for shard in SHARDS:
        assert len(snapshot_ids(lab, prefix, shard)) == 1, shard
    # The playbook ran in the cluster as the CronJob's account, which started the four snapshot Jobs itself.
    assert jobs_created_by(lab, f"system:serviceaccount:{stack.NAMESPACE}:{ACCOUNT}", since) == 4

    removed = nightly(lab, tmp_path, state="absent", **settings)
    assert removed.returncode == 0 and removed.changed == 1, removed.stdout[-4000:]
    assert not lab.api().get(object_path(BATCH, "cronjobs", stack.NAMESPACE, "ragops-snapshot-nightly"))
    deadline = time.monotonic() + 60
    while lab.api().get(object_path(CORE, "secrets", stack.NAMESPACE, "ragops-snapshot-nightly-s3")):
        assert time.monotonic() < deadline, "the CronJob's Secret outlived it"
        time.sleep(1)
