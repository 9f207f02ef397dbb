"""A prune racing a restore of the snapshot it is pruning, during a real run of Scenario A.

One lab for the module (its shards snapshotted first).  Each test gives a shard an older snapshot that
retention lets a prune delete (a copy of its snapshot created 20 days before it), damages the newest one's
archive, so that the restore falls back to the older one, and orders the two runs with the S3 fault proxy:
the prune (``snapshot_prune``, one verified snapshot and 14 days kept) has read the shard's hold (none)
before the recovery starts, and its answer is held by the proxy until the restore Job is reading the older
snapshot's archive, whose request the proxy holds in turn until the prune has finished.  Nothing may be lost
(tests/e2e/nothing_lost.py) beyond what the prune deleted before any hold was set.
"""

from __future__ import annotations

import json
import threading
import typing as t
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import nothing_lost
import pytest
from harness import Result, Runner, task
from test_faults_system import ARCHIVE, RESTORE_TASK, restored_exactly, settled, snapshot_manifest
from test_shard_recovery import PLAYBOOK, claim_of, lab_fixture, recovery_options, reports_dir, runner_fixture  # noqa: F401 - fixtures
from test_shard_recovery_paths import eventually, task_result

from ragops_lab import faults, stack
from ragops_lab.drills import shard_recovery
from ragops_lab.faultproxy import FaultProxy, Rule
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
RETENTION = {"retention_days": 14, "keep_verified": 1}
# The prune waits this long for an answer (the proxy holds one while the recovery runs up to its restore).
PRUNE_READ_TIMEOUT = 600
# The most the proxy holds the prune's answer or the restore's read; each is released long before.
HELD_SECONDS = 300.0


@pytest.fixture(scope="module")
def proxies(lab: Lab) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Two fault proxies in front of the lab's S3: the recovery's (its restore Jobs' too) and the prune's."""
    with FaultProxy(lab.s3().url) as recovery, FaultProxy(lab.s3().url) as prune:
        yield recovery, prune


def older_copy(lab: Lab, shard: str, snapshot_id: str, days: int) -> str:
    """The snapshot again under an id of ``days`` earlier, its manifest saying so: what the nightly snapshots
    of ``days`` ago left, which retention lets a prune delete.  Its id."""
    s3, manifest = lab.s3(), snapshot_manifest(lab, shard, snapshot_id)
    created = datetime.fromisoformat(manifest["created"].replace("Z", "+00:00")) - timedelta(days=days)
    copy_id = created.strftime("%Y%m%dT%H%M%SZ") + "-" + snapshot_id.rsplit("-", 1)[1]
    client, prefix = s3.client(), "snapshots/%s/" % shard
    for name in ("SHA256SUMS", ARCHIVE):
        client.copy_object(Bucket=s3.bucket, Key=prefix + copy_id + "/" + name,
                           CopySource={"Bucket": s3.bucket, "Key": prefix + snapshot_id + "/" + name})
    manifest.update(snapshot_id=copy_id, created=created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    client.put_object(Bucket=s3.bucket, Key=prefix + copy_id + "/manifest.json",
                      Body=(json.dumps(manifest, indent=1) + "\n").encode())
    return copy_id


def prune(pruner: Runner, lab: Lab, shard: str, endpoint: str) -> Result:
    """``snapshot_prune`` of ``shard`` as a nightly run applies it, through ``endpoint``."""
    s3 = lab.s3()
    auth = {"endpoint_url": endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key,
            "region": s3.region, "kubeconfig": str(pruner.cluster.kubeconfig)}
    pruning = task("prune", "snapshot_prune", shard=shard, bucket=s3.bucket, s3_read_timeout=PRUNE_READ_TIMEOUT,
                   **RETENTION)
    return pruner.play([pruning], auth=auth)


def race(lab: Lab, runner: Runner, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path, shard: str,
         incident: str, older: str, prune_reads_before: int) -> tuple[dict[str, t.Any], Result]:
    """A prune of ``shard`` and a recovery of it, run together: the answer to the prune's read of the hold
    after its first ``prune_reads_before`` (none: the recovery has not started) is held until the restore Job
    is reading snapshot ``older``; then the prune goes on, and once it is done the restore's read goes on.
    The prune's result and the recovery's run."""
    recovery_proxy, prune_proxy = proxies
    prune_released, restore_released = threading.Event(), threading.Event()
    answer_held = prune_proxy.add(Rule("late", key_suffix="/%s/HOLD" % shard, after=prune_reads_before,
                                       release=prune_released, stall_seconds=HELD_SECONDS))
    read_held = recovery_proxy.add(Rule("delay", key_suffix=ARCHIVE, key_contains="/%s/%s/" % (shard, older),
                                        release=restore_released, stall_seconds=HELD_SECONDS))
    pruner = Runner(runner.cluster, tmp_path / "prune")
    pruner.workdir.mkdir()
    options = recovery_options(lab, shard, incident, ragops_s3_endpoint=recovery_proxy.url,
                               shard_recovery_reindex="false")
    with ThreadPoolExecutor(2) as pool:
        try:
            pruned: Future[Result] = pool.submit(prune, pruner, lab, shard, prune_proxy.url)
            eventually("the prune's read of the hold of %s" % shard, lambda: answer_held.applied or pruned.done(),
                       timeout=120)
            assert not pruned.done(), pruned.result().stdout[-5000:]
            recovered: Future[Result] = pool.submit(runner.run, PLAYBOOK, extra=options, timeout=900)
            eventually("the restore Job reading snapshot %s" % older, lambda: read_held.applied or recovered.done(),
                       timeout=600)
            assert not recovered.done(), recovered.result().stdout[-5000:]
            # The prune goes on with the hold it read (none); the recovery has set one since.
            prune_released.set()
            prune_result = pruned.result(timeout=300).results["prune"]
            restore_released.set()
            return prune_result, recovered.result(timeout=900)
        finally:
            prune_released.set()
            restore_released.set()


def test_a_prune_racing_the_restore_of_the_snapshot_it_prunes_is_stopped_by_the_hold_and_the_restore_completes(
        lab: Lab, runner: Runner, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path) -> None:
    shard, incident = "shard-3", "INC-R1"
    settled(lab)
    newest = max(shard_recovery.snapshot_objects(lab, shard))
    older = older_copy(lab, shard, newest, days=20)
    shard_recovery.corrupt_snapshot_archives(lab, shard, newest)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    prune_result, recovery = race(lab, runner, proxies, tmp_path, shard, incident, older, prune_reads_before=0)

    assert prune_result["changed"] is False and prune_result["pruned"] == [], prune_result
    assert {"snapshot_id": older, "status": "verified", "reason": "incident hold set while pruning"} \
        in prune_result["kept"], prune_result
    assert prune_result["hold"]["incident_id"] == incident, prune_result
    assert "was set while the prune ran (incident %s)" % incident in json.dumps(prune_result["warnings"])
    assert recovery.returncode == 0, recovery.stdout[-5000:]
    restore = task_result(recovery, RESTORE_TASK)
    assert restore["snapshot"]["snapshot_id"] == older, restore
    assert [(a["snapshot_id"], a["outcome"]) for a in restore["tried"]][:1] == [(newest, "failed verification")]
    assert restored_exactly(lab, shard) == older
    assert claim_of(lab, shard) == old_claim
    assert stack.registry_entry(lab.api(), shard)["state"] == "serving"
    nothing_lost.check(lab, before)


def test_a_snapshot_pruned_under_the_restore_after_the_prunes_last_check_is_skipped_and_the_next_verified_restored(
        lab: Lab, runner: Runner, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path) -> None:
    """What the hold cannot stop: the prune read it (none) just before deleting a snapshot, and its deletes reach
    the store after the restore Job began reading that snapshot.  The Job fails on the missing archive; the
    restore sees the snapshot gone, says so and restores the next verified one, which the prune, reading the
    hold again before its next snapshot, has kept."""
    shard, incident = "shard-2", "INC-R2"
    settled(lab)
    newest = max(shard_recovery.snapshot_objects(lab, shard))
    older, oldest = older_copy(lab, shard, newest, days=20), older_copy(lab, shard, newest, days=30)
    shard_recovery.corrupt_snapshot_archives(lab, shard, newest)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    # The prune reads the hold once to plan, then again before each snapshot: the answer to that second read
    # (none: the recovery has not started) is what the proxy holds.
    prune_result, recovery = race(lab, runner, proxies, tmp_path, shard, incident, older, prune_reads_before=1)

    # The prune deleted the snapshot it had checked for, then found the hold and kept the next one.
    assert [p["snapshot_id"] for p in prune_result["pruned"]] == [older], prune_result
    assert {"snapshot_id": oldest, "status": "verified", "reason": "incident hold set while pruning"} \
        in prune_result["kept"], prune_result
    # The restore never took the deleted snapshot for restored: it names it and why, and restores the next.
    assert recovery.returncode == 0, recovery.stdout[-5000:]
    restore = task_result(recovery, RESTORE_TASK)
    outcomes = [(a["snapshot_id"], a["outcome"]) for a in restore["tried"]]
    assert outcomes == [(newest, "failed verification"), (older, "skipped"), (oldest, "restored")], restore
    why = restore["tried"][1]["reason"]
    assert why.startswith("deleted from the bucket while its restore (Job %s/" % stack.NAMESPACE), why
    postmortem = (reports_dir(lab) / incident / ("postmortem-%s.md" % shard)).read_text()
    assert "%s (skipped: %s)" % (older, why) in postmortem, postmortem
    assert restored_exactly(lab, shard) == oldest
    assert claim_of(lab, shard) == old_claim
    # Lost: only what retention allowed the prune to delete before the hold was set.
    allowed = ["S3 object snapshots/%s/%s/%s was deleted" % (shard, older, name)
               for name in ("SHA256SUMS", ARCHIVE, "manifest.json")]
    assert sorted(nothing_lost.problems(lab, before)) == sorted(allowed)
