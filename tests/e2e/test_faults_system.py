"""Faults of the system under recovery and of concurrency during real runs of Scenario A.

One lab for the module (its shards snapshotted first, as the nightly safety net leaves them); each test
breaks a shard of its own, runs playbooks/vectorstore_shard_recovery.yml by ansible-playbook against the lab
while the fault happens, and checks that nothing was lost (tests/e2e/nothing_lost.py):

- the restore Job's pod killed mid-restore (its process SIGKILLed, or the pod deleted) while the S3 proxy
  holds its read of the archive: the Job's next pod restores the snapshot byte for byte; killed once more
  than the Job retries, the run fails saying so and a re-run of the incident starts the Job again;
- the shard's claim mounted by a pod an operator started by hand: refused naming the pod, nothing written
  to the volume, the pod left running; once it is gone a re-run restores the shard;
- the nightly snapshot of the shard under way (its upload held by the S3 proxy) when the recovery starts:
  the restore waits for the snapshot Job, marks what it published QUARANTINED and restores the snapshot
  from before;
- an object of another owner under the name of the restore's claim or Job: refused naming it and the next
  step, left untouched; once it is gone a re-run restores the shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import nothing_lost
import pytest
from harness import ROOT, Runner
from test_shard_recovery import (  # noqa: F401 - pytest finds the fixtures lab and runner by name
    PLAYBOOK,
    Obj,
    claim_of,
    lab_fixture,
    recover,
    recovery_options,
    reports_dir,
    runner_fixture,
)
from test_shard_recovery_paths import eventually, lock_holder, task_result

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.drills import shard_recovery
from ragops_lab.faultproxy import FaultProxy, Rule
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

sys.path.insert(0, str(ROOT / "build" / "collections"))
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.job import dns_name

pytestmark = pytest.mark.lab
RESTORE_TASK = "Restore the newest verified snapshot onto a new volume under the shard's controller"
ARCHIVE = "data.tar.zst"
RESTORE_MARKER = ".ragops-restore.json"
SNAPSHOT_ANNOTATION = "ragops.io/snapshot-id"
# Long enough that the killed pod never gets its archive, short enough not to hold the module's S3 proxy open.
STALL_SECONDS = 90.0
# How much of the archive the held read gets first: enough to have the restore extracting.
STALL_OFFSET = 1 << 16


@pytest.fixture(scope="module")
def s3_proxy(lab: Lab) -> Iterator[FaultProxy]:
    """A fault proxy in front of the lab's S3, which the runs of this module reach it through."""
    with FaultProxy(lab.s3().url) as running:
        yield running


def through(proxy: FaultProxy) -> dict[str, str]:
    """The extra variables that send the stack's S3 traffic (the restore Job's too) through ``proxy``; the
    re-index is left out so that the shard's volume holds exactly what the restore wrote."""
    return {"ragops_s3_endpoint": proxy.url, "shard_recovery_reindex": "false"}


# --- the restore Job and its pods -------------------------------------------------------------------------------


def restore_pods(lab: Lab, shard: str) -> list[Obj]:
    """The pods of the shard's restore Jobs, oldest first."""
    pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
    found = [p for p in pods if "ragops-restore" in (p["metadata"].get("labels") or {}).get("job-name", "")]
    return sorted(found, key=lambda p: p["metadata"].get("creationTimestamp") or "")


def running_process(pod: Obj) -> int:
    """The pid of the pod's running container (the lab's container ids are ``lab://<pid>``), 0 if none."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if (status.get("state") or {}).get("running") and status.get("containerID"):
            return int(str(status["containerID"]).removeprefix("lab://"))
    return 0


def stalled_restore_pod(lab: Lab, shard: str, stall: Rule, seen: t.Collection[str]) -> Obj:
    """A pod of the restore Job not seen before, running, whose read of the archive the proxy holds."""
    def found() -> Obj | None:
        fresh = [p for p in restore_pods(lab, shard) if p["metadata"]["uid"] not in seen and running_process(p)]
        return fresh[-1] if fresh and stall.applied > len(seen) else None
    return t.cast(Obj, eventually("a restore pod of %s reading its archive" % shard, found, timeout=240))


def kill(lab: Lab, pod: Obj, how: str) -> None:
    """End a pod mid-restore: its process SIGKILLed (an OOM kill, a node's runtime), or the pod deleted."""
    name = pod["metadata"]["name"]
    if how == "process-killed":
        os.kill(running_process(pod), signal.SIGKILL)
    else:
        lab.api().delete(object_path(CORE, "pods", stack.NAMESPACE, name))

    def ended() -> bool:
        current = lab.api().get(object_path(CORE, "pods", stack.NAMESPACE, name))
        return current is None or (current.get("status") or {}).get("phase") == "Failed"
    eventually("pod %s to end" % name, ended)


def job_of(lab: Lab, name: str) -> Obj:
    return lab.api().get(object_path(BATCH, "jobs", stack.NAMESPACE, name)) or {}


# --- what the shard's volume holds --------------------------------------------------------------------------------


def snapshot_manifest(lab: Lab, shard: str, snapshot_id: str) -> Obj:
    s3 = lab.s3()
    key = "snapshots/%s/%s/manifest.json" % (shard, snapshot_id)
    return t.cast(Obj, json.loads(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()))


def differences(volume: Path, manifest: Obj) -> list[str]:
    """Every file of the manifest missing from ``volume`` or not byte for byte as it was snapshotted, and any
    leftover of a restore (a staging folder) or file the snapshot did not hold."""
    found = []
    listed = {entry["path"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        path = volume / entry["path"]
        if not path.is_file():
            found.append("%s is missing" % entry["path"])
            continue
        data = path.read_bytes()
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            found.append("%s differs from the snapshot" % entry["path"])
    for path in volume.rglob("*"):
        relative = str(path.relative_to(volume))
        if path.is_file() and relative not in listed and relative != RESTORE_MARKER:
            found.append("%s was not in the snapshot" % relative)
        if "ragops-staging" in path.name:
            found.append("%s is a restore's staging left behind" % relative)
    return found


def restored_exactly(lab: Lab, shard: str) -> str:
    """The snapshot the shard's claim was restored from, once the shard serves from a volume holding exactly
    that snapshot, the lock released."""
    claim = claim_of(lab, shard)
    found = lab.api().get(object_path(CORE, "persistentvolumeclaims", stack.NAMESPACE, claim)) or {}
    snapshot_id = str((found["metadata"].get("annotations") or {}).get(SNAPSHOT_ANNOTATION))
    volume = faults.claim_directory(lab.api(), stack.NAMESPACE, claim)
    assert differences(volume, snapshot_manifest(lab, shard, snapshot_id)) == []
    entry = stack.registry_entry(lab.api(), shard)
    assert entry["state"] == "serving" and entry["reason"] == "golden set passed after restore", entry
    pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
    assert any(pod_is_ready(p) for p in pods if p["spec"].get("restartPolicy") != "Never")
    assert lock_holder(lab) == {}
    return snapshot_id


def settled(lab: Lab) -> None:
    """Every pod of the stack Ready before the next fault: each test starts from a healthy stack."""
    eventually("every pod of the stack Ready", lambda: not stack.not_ready(lab.api()))


# --- 1. the restore Job's pod killed mid-restore -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["process-killed", "pod-deleted"])
def test_the_restore_jobs_pod_killed_mid_restore_is_retried_and_restores_exactly(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy, how: str) -> None:
    shard, incident = "shard-0", "INC-S1-%s" % how
    settled(lab)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    s3_proxy.clear()
    stall = s3_proxy.add(Rule("stall", key_suffix=ARCHIVE, offset=STALL_OFFSET, stall_seconds=STALL_SECONDS))
    started = runner.start(PLAYBOOK, extra=recovery_options(lab, shard, incident, **through(s3_proxy)))
    try:
        first = stalled_restore_pod(lab, shard, stall, ())
        job = first["metadata"]["labels"]["job-name"]
        kill(lab, first, how)
        assert started.wait(timeout=600) == 0, (runner.workdir / "started.log").read_text()[-5000:]
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait(timeout=30)

    # The Job's next pod read the archive again: the proxy held only the first pod's read.
    reads = [met for _, method, path, met in s3_proxy.requests if method == "GET" and ARCHIVE in path]
    s3_proxy.clear()
    assert stall.applied == 1 and reads[0] == "stall" and "" in reads[1:], reads
    assert job_of(lab, job) == {}, "the restore's Job is removed once its volume serves the shard"
    restored_exactly(lab, shard)
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before)


def test_a_restore_job_whose_every_pod_is_killed_fails_clearly_and_a_rerun_restores(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy) -> None:
    """Killed once more than the Job retries (backoffLimit 1): the Job fails; the re-run starts it again."""
    shard, incident = "shard-1", "INC-S1-every-pod"
    settled(lab)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    s3_proxy.clear()
    stall = s3_proxy.add(Rule("stall", key_suffix=ARCHIVE, offset=STALL_OFFSET, stall_seconds=STALL_SECONDS,
                              times=2))
    options = recovery_options(lab, shard, incident, **through(s3_proxy))
    started = runner.start(PLAYBOOK, extra=options)
    try:
        seen: list[str] = []
        for _ in range(2):
            pod = stalled_restore_pod(lab, shard, stall, seen)
            seen.append(pod["metadata"]["uid"])
            kill(lab, pod, "process-killed")
        code = started.wait(timeout=600)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait(timeout=30)
    output = (runner.workdir / "started.log").read_text()

    assert code != 0, output[-5000:]
    assert "BackoffLimitExceeded" in output and "ended without a result" in output, output[-5000:]
    assert "a failed Job of ours is replaced by a new attempt" in output, output[-5000:]
    assert stack.registry_entry(lab.api(), shard)["state"] != "serving"
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before, alive={incident})

    s3_proxy.clear()
    rerun = runner.run(PLAYBOOK, extra=options)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    restored_exactly(lab, shard)
    nothing_lost.check(lab, before)


# --- 2. the shard's claim still mounted by another pod ------------------------------------------------------------


def inspection_pod(name: str, claim: str) -> Obj:
    """A pod an operator started by hand to look at the shard's volume: no controller, the claim mounted."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": stack.NAMESPACE},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "inspect", "image": "localhost/ragops-recovery-ee:0.1.0",
                                     "args": ["python3", "-c", "import time; time.sleep(3600)"],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def tree_digest(volume: Path) -> dict[str, str]:
    """Every file under ``volume`` with the SHA-256 of its bytes."""
    return {str(path.relative_to(volume)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(volume.rglob("*")) if path.is_file()}


def test_a_claim_still_mounted_by_another_pod_is_refused_naming_it_then_a_rerun_restores(
        lab: Lab, runner: Runner) -> None:
    shard, incident = "shard-2", "INC-S2"
    settled(lab)
    old_claim = claim_of(lab, shard)
    name = "inspect-%s" % shard
    path = object_path(CORE, "pods", stack.NAMESPACE)
    lab.api().call("POST", path, inspection_pod(name, old_claim))
    eventually("pod %s running" % name,
               lambda: running_process(lab.api().get(object_path(CORE, "pods", stack.NAMESPACE, name)) or {}))
    faults.inject(lab, "corrupt-shard", [shard])
    volume = faults.claim_directory(lab.api(), stack.NAMESPACE, old_claim)
    before, files = nothing_lost.record(lab, reports_dir(lab)), tree_digest(volume)

    refused = recover(runner, lab, shard, incident)

    assert refused.returncode != 0, refused.stdout[-5000:]
    expected = "it is still mounted by Pod %s/%s (no controller), which is not run by StatefulSet/vectorstore" % (
        stack.NAMESPACE, name)
    assert expected in refused.stdout and "describe pod %s" % name in refused.stdout, refused.stdout[-5000:]
    # Nothing written to the volume in use, the pod left running, the shard out of service on its old claim.
    assert tree_digest(volume) == files
    assert running_process(lab.api().get(object_path(CORE, "pods", stack.NAMESPACE, name)) or {})
    assert faults.claim_directory(lab.api(), stack.NAMESPACE, claim_of(lab, shard)) == volume
    assert stack.registry_entry(lab.api(), shard)["state"] == "quarantined"
    nothing_lost.check(lab, before)

    lab.api().delete(object_path(CORE, "pods", stack.NAMESPACE, name))
    eventually("pod %s gone" % name, lambda: lab.api().get(object_path(CORE, "pods", stack.NAMESPACE, name)) is None)
    rerun = recover(runner, lab, shard, incident, shard_recovery_reindex="false")

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    restored_exactly(lab, shard)
    assert tree_digest(volume) == files  # the old volume, kept as evidence, as it was
    nothing_lost.check(lab, before)


# --- 3. a recovery started while the nightly snapshot of the shard runs ------------------------------------------


NIGHTLY = ROOT / "playbooks" / "snapshot_nightly.yml"
# How long the store stays silent on the nightly's upload of the shard's archive: the recovery starts meanwhile.
NIGHTLY_STALL_SECONDS = 40.0
QUARANTINE_MARKER = "QUARANTINED"


def snapshot_job(lab: Lab, shard: str) -> Obj | None:
    """The shard's snapshot Job of the nightly run, if it started."""
    jobs = lab.api().list(BATCH, "jobs", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
    found = [job for job in jobs if job["metadata"]["name"].startswith("ragops-snapshot-")]
    return found[-1] if found else None


def marker(lab: Lab, shard: str, snapshot_id: str) -> Obj:
    s3 = lab.s3()
    key = "snapshots/%s/%s/%s" % (shard, snapshot_id, QUARANTINE_MARKER)
    return t.cast(Obj, json.loads(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()))


def test_a_recovery_started_during_the_nightly_snapshot_waits_for_it_and_never_restores_it(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> None:
    shard, incident = "shard-3", "INC-S3"
    settled(lab)
    earlier = set(shard_recovery.snapshot_objects(lab, shard))
    s3_proxy.clear()
    silent = s3_proxy.add(Rule("stall", method="PUT", key_suffix=ARCHIVE, key_contains="/%s/" % shard,
                               stall_seconds=NIGHTLY_STALL_SECONDS))
    settings = {"ragops_s3_endpoint": s3_proxy.url, "snapshot_nightly_wait_timeout": 300}
    nightly = Runner(runner.cluster, tmp_path_factory.mktemp("nightly"))
    started = nightly.start(NIGHTLY, extra=["-i", str(lab.paths.inventory), "-e", json.dumps(settings)])
    try:
        eventually("the nightly's upload of %s" % shard, lambda: silent.applied or started.poll() is not None,
                   timeout=240)
        assert started.poll() is None, (nightly.workdir / "started.log").read_text()[-5000:]
        taken = t.cast(Obj, snapshot_job(lab, shard))
        faults.inject(lab, "corrupt-shard", [shard])
        before = nothing_lost.record(lab, reports_dir(lab))

        recovered = recover(runner, lab, shard, incident, shard_recovery_reindex="false")

        nightly_code = started.wait(timeout=600)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait(timeout=30)
    s3_proxy.clear()

    assert recovered.returncode == 0, recovered.stdout[-5000:]
    in_flight = taken["metadata"]["annotations"][SNAPSHOT_ANNOTATION]
    restore = task_result(recovered, RESTORE_TASK)
    assert restore["snapshot"]["snapshot_id"] in earlier, restore
    reason = "taken by Job %s while the shard's recovery started" % taken["metadata"]["name"]
    assert restore["tried"][0] == {"snapshot_id": in_flight, "outcome": "skipped", "reason": reason}, restore
    postmortem = (reports_dir(lab) / incident / ("postmortem-%s.md" % shard)).read_text()
    assert "| snapshots skipped | %s (skipped: %s; quarantined in S3, kept as evidence) |" % (in_flight, reason) \
        in postmortem, postmortem
    # What the nightly published for the shard is kept, and marked so that no restore takes it for verified.
    kept = shard_recovery.snapshot_objects(lab, shard)[in_flight]
    assert {"manifest.json", ARCHIVE, QUARANTINE_MARKER} <= set(kept), kept
    why = marker(lab, shard, in_flight)
    assert why["incident_id"] == incident and taken["metadata"]["name"] in why["reason"], why
    restored_exactly(lab, shard)
    nothing_lost.check(lab, before)
    output = (nightly.workdir / "started.log").read_text()
    assert nightly_code in (0, 2) and "%s:" % shard in output, output[-5000:]


# --- 5. an object the collection does not own under the name of the restore's claim or Job ----------------------


def newest_verified(lab: Lab, shard: str) -> str:
    """The snapshot a restore of ``shard`` chooses: the newest with a manifest and no quarantine marker."""
    found = shard_recovery.snapshot_objects(lab, shard)
    return max(i for i, names in found.items() if "manifest.json" in names and QUARANTINE_MARKER not in names)


def foreign_claim(name: str) -> Obj:
    """A claim someone else made, without the collection's labels."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}


def foreign_job(name: str) -> Obj:
    """A Job someone else made (suspended: it runs nothing), without the collection's labels."""
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "other", "image": "localhost/ragops-recovery-ee:0.1.0",
                 "args": ["python3", "-c", "print('not a restore')"]}]}}}}


def untouched(obj: Obj) -> Obj:
    """What its owner made: the same object (uid), its labels and its spec (the volume controllers still
    write its status and their annotations)."""
    meta = obj["metadata"]
    return {"uid": meta["uid"], "labels": meta.get("labels"), "spec": obj.get("spec")}


FOREIGN = {
    # kind: (the collection of its kind, the name the restore of shard/snapshot would use, its body, its shard)
    "PersistentVolumeClaim": (CORE, "persistentvolumeclaims",
                              lambda shard, sid: dns_name("data-vectorstore-" + shard[-1], "r", sid),
                              foreign_claim, "shard-0"),
    "Job": (BATCH, "jobs", lambda shard, sid: dns_name("ragops-restore", shard, sid), foreign_job, "shard-1"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_an_object_of_the_restores_name_that_is_not_ours_is_refused_naming_it(
        lab: Lab, runner: Runner, kind: str) -> None:
    group, plural, name_of, body_of, shard = FOREIGN[kind]
    incident = "INC-S5-%s" % kind.lower()
    settled(lab)
    name = name_of(shard, newest_verified(lab, shard))
    before = nothing_lost.record(lab, reports_dir(lab))  # the other owner's object is theirs to delete
    lab.api().call("POST", object_path(group, plural, stack.NAMESPACE), body_of(name))
    path = object_path(group, plural, stack.NAMESPACE, name)
    if kind == "PersistentVolumeClaim":  # bound first: binding writes its spec.volumeName
        eventually("claim %s bound" % name,
                   lambda: ((lab.api().get(path) or {}).get("status") or {}).get("phase") == "Bound")
    theirs = t.cast(Obj, lab.api().get(path))
    faults.inject(lab, "corrupt-shard", [shard])

    refused = recover(runner, lab, shard, incident)

    assert refused.returncode != 0, refused.stdout[-5000:]
    text = " ".join(refused.stdout.split())
    expected = ("Refusing to use %s %s/%s: it already exists and was not made by ragops.recovery (it lacks the labels "
                "app.kubernetes.io/managed-by=ragops.recovery, ragops.io/shard=%s)" % (kind, stack.NAMESPACE, name,
                                                                                       shard))
    assert expected in text, text[-5000:]
    assert "Next: Find out what it is (kubectl get %s %s -n %s -o yaml)" % (kind.lower(), name, stack.NAMESPACE) \
        in text, text[-5000:]
    current = t.cast(Obj, lab.api().get(path))
    assert untouched(current) == untouched(theirs), "it was changed"
    assert stack.registry_entry(lab.api(), shard)["state"] == "quarantined"
    nothing_lost.check(lab, before)

    # Its owner renames it out of the way (here: deletes it); the re-run of the incident restores the shard.
    lab.api().delete(path)
    eventually("%s %s gone" % (kind, name), lambda: lab.api().get(path) is None)
    rerun = recover(runner, lab, shard, incident, shard_recovery_reindex="false")
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    restored_exactly(lab, shard)
    nothing_lost.check(lab, before)
