# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode from start to end: the newest verified snapshot restored by a Job in the
cluster.

A snapshot whose restore Job finds it corrupt is quarantined (by the Job, in the bucket)
and, with ``fallback``, the next older verified one is tried; so is one deleted from the
bucket while its Job read it (its manifest gone).  Any other failure stops at once,
since another snapshot would not help.  :func:`restore_by_job` returns a
:class:`JobOutcome` whose :meth:`~JobOutcome.to_result` is the module's result.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..waiter import Waiter
from . import catalog, inflight, job, layout, rebind, restore, store
from .manifest import Manifest
from .s3 import S3Store


@dataclass(frozen=True)
class JobModeRequest:
    """Which snapshot to restore into the shard's workload, and how the module runs."""

    job: job.JobRequest
    location: layout.ShardLocation
    snapshot_id: str | None = None
    fallback: bool = True
    future_tolerance: int = 300
    wait: bool = True
    check_mode: bool = False
    diff: bool = False


@dataclass
class JobOutcome:
    """The snapshot chosen, the objects planned for it and what the restore did."""

    changed: bool
    snapshot: catalog.Snapshot
    target: job.Target
    plan: job.Plan
    attempts: t.List[restore.Attempt]
    quarantined: t.List[str]
    request: job.JobRequest
    diff: bool = False
    check_mode: bool = False
    run: Obj = field(default_factory=dict)

    def to_result(self) -> Obj:
        """The module result: ``restore.Outcome``'s, with the Job's plan and what it
        did."""
        outcome = restore.Outcome(
            self.changed,
            self.snapshot,
            attempts=self.attempts,
            quarantined=self.quarantined,
        )
        claim = self.target.claim["metadata"]["name"]
        previous = {
            "kind": self.target.kind,
            "name": self.target.name,
            "pod": self.target.pod_name,
            "claim": claim,
        }
        plan: Obj = dict(self.plan.to_dict())
        if self.plan.bind_claim and not self.run.get("steps"):
            where = job.rebind_of(self.request, self.plan)
            plan["steps"] = rebind.planned(where, self.target.claim)
        result = outcome.to_result()
        result["job"] = dict({"plan": plan, "previous": previous}, **self.run)
        if self.check_mode and self.changed:
            result["summary"] = self.planned_summary(claim)
        if self.diff:
            result["diff"] = self._diff(claim)
        return result

    def planned_summary(self, claim: str) -> str:
        """One line naming what a restore would create, for a plan in check mode."""
        restore = (
            "restore (check mode): would restore snapshot %s into a new PVC %s of %s by the Job %s"
            % (
                self.snapshot.snapshot_id,
                self.plan.claim_name,
                self.plan.claim_size,
                self.plan.job_name,
            )
        )
        if self.plan.bind_claim:
            return (
                "%s, then bind its volume to the claim %s of %s; the old volume would be kept "
                "(Retain) as evidence"
                % (
                    restore,
                    self.plan.bind_claim,
                    "%s/%s" % (self.target.kind, self.target.name),
                )
            )
        return "%s; the PVC %s would be kept as evidence" % (restore, claim)

    def _diff(self, claim: str) -> Obj:
        """The shard's claim and the snapshot it holds, before and after."""
        annotations = self.target.claim["metadata"].get("annotations") or {}
        before = {
            "claim": claim,
            "snapshot_id": annotations.get(job.SNAPSHOT_ANNOTATION),
        }
        if not self.changed:
            return {"before": before, "after": before}
        after = {
            "claim": self.plan.bind_claim or self.plan.claim_name,
            "snapshot_id": self.snapshot.snapshot_id,
        }
        return {"before": before, "after": after}


def _failure(
    s3: S3Store,
    location: layout.ShardLocation,
    snapshot: catalog.Snapshot,
    error: RecoveryError,
) -> t.Tuple[t.List[restore.Attempt], t.List[str]]:
    """What a failed restore Job tried and quarantined.

    The log read is the Job's last pod: a retried pod finds the snapshot already
    quarantined by the first one and only says it skipped it, so the bucket decides
    whether this snapshot was quarantined.
    """
    tried = [restore.Attempt(**a) for a in error.partial.get("tried") or []]
    marked = list(error.partial.get("quarantined") or [])
    snapshot_id = snapshot.snapshot_id
    if snapshot_id not in marked and store.is_quarantined(s3, location, snapshot_id):
        marked.append(snapshot_id)
        reason = "quarantined by the restore (%s)" % error.resource
        tried = [restore.Attempt(snapshot_id, "failed verification", reason)]
    return tried, marked


def _deleted(
    s3: S3Store, location: layout.ShardLocation, snapshot: catalog.Snapshot
) -> bool:
    """Whether the snapshot's manifest is gone from the bucket since it was chosen:
    deleted while its restore Job read it (by a prune that had read the hold just
    before an incident set it, or by hand).  Another snapshot may still restore."""
    try:
        return not s3.exists(location.key(snapshot.snapshot_id, layout.MANIFEST))
    except RecoveryError:
        return False


def _plan(
    client: K8sClient,
    request: JobModeRequest,
    snapshot: catalog.Snapshot,
    attempts: t.List[restore.Attempt],
    quarantined: t.List[str],
) -> JobOutcome:
    """The outcome of restoring ``snapshot``, before anything is done: nothing
    changed yet."""
    manifest = t.cast(Manifest, snapshot.manifest)
    target = job.find_target(client, request.job)
    plan = job.make_plan(
        target,
        request.job,
        snapshot.snapshot_id,
        snapshot.manifest_sha256,
        manifest.total_bytes,
    )
    return JobOutcome(
        False,
        snapshot,
        target,
        plan,
        attempts,
        quarantined,
        request.job,
        request.diff,
        request.check_mode,
    )


def _set_aside(
    client: K8sClient, s3: S3Store, request: JobModeRequest, waiter: Waiter
) -> t.List[restore.Attempt]:
    """The shard's snapshots whose Jobs overlapped its incident: waited for and
    quarantined (not in check mode, which only reads)."""
    if request.check_mode:
        return []
    where = (request.job.namespace, request.job.shard_label, request.job.incident_id)
    taken = inflight.set_aside(client, s3, request.location, where, waiter)
    return [
        restore.Attempt(
            found.snapshot_id,
            "skipped",
            "taken by Job %s while the shard's recovery started" % found.job,
        )
        for found in taken
    ]


def restore_by_job(
    client: K8sClient, s3: S3Store, request: JobModeRequest, waiter: Waiter
) -> JobOutcome:
    """Restore the newest verified snapshot (or the one named) by a Job, falling
    back; snapshots taken while the shard's recovery started are never chosen."""
    set_aside = _set_aside(client, s3, request, waiter)
    order, attempts = restore.load_candidates(
        s3,
        request.location,
        request.snapshot_id,
        request.fallback,
        request.future_tolerance,
    )
    attempts = [*set_aside, *attempts]
    quarantined = [attempt.snapshot_id for attempt in set_aside]
    for snapshot in order:
        outcome = _plan(client, request, snapshot, attempts, quarantined)
        if job.already_restored(outcome.target, snapshot.manifest_sha256):
            return outcome
        outcome.changed = True
        if request.check_mode:
            return outcome
        if not request.wait:
            outcome.run = job.restore_started(
                client, request.job, outcome.plan, outcome.target
            )
            return outcome
        try:
            outcome.run = job.restore_in_cluster(
                client, request.job, outcome.plan, outcome.target, waiter
            )
        except RecoveryError as error:
            tried, marked = _failure(s3, request.location, snapshot, error)
            gone = not marked and _deleted(s3, request.location, snapshot)
            if gone:
                reason = (
                    "deleted from the bucket while its restore (%s) read it; nothing "
                    "was restored from it" % error.resource
                )
                tried = [restore.Attempt(snapshot.snapshot_id, "skipped", reason)]
            attempts += tried
            quarantined += marked
            if not (marked or gone) or not request.fallback:
                error.partial = dict(
                    error.partial,
                    tried=[a.to_dict() for a in attempts],
                    quarantined=quarantined,
                )
                raise
            continue
        attempts.append(restore.Attempt(snapshot.snapshot_id, "restored"))
        return outcome
    raise restore.no_snapshot(
        restore.RestoreRequest(request.location, "", ""),
        restore.Outcome(False, None, attempts=attempts, quarantined=quarantined),
    )
