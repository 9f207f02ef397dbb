# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots of the shard taken while its recovery starts: waited for, never restored.

A snapshot Job (the nightly safety net's, :mod:`.createjob`) that is still reading the
shard's volume when a restore of the shard starts, or that ended after the incident's
hold on pruning was set, read a shard that was failing: its archive may hold the damage
the recovery is repairing, and it would be the newest verified snapshot.  The restore
waits for such a Job to end, so that it never takes the claim over from under it, marks
what the Job published ``QUARANTINED`` (nothing is deleted), and chooses among the
snapshots from before.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..audit import default_actor, timestamp
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished
from ..k8s.resources import Ref
from ..waiter import Waiter
from . import layout, store
from .s3 import S3Store

# The module the snapshot Jobs run (createjob.RUNNER), which tells them from restore Jobs.
SNAPSHOT_RUNNER = (
    "ansible_collections.ragops.recovery.plugins.module_utils.snapshots.createrun"
)
SNAPSHOT_ANNOTATION = "ragops.io/snapshot-id"


@dataclass(frozen=True)
class Taken:
    """A snapshot Job of the shard that overlapped the incident, and its snapshot."""

    job: str
    snapshot_id: str


def runs_a_snapshot(obj: Obj) -> bool:
    """A pod (or a Job's pod template) that snapshots a shard, not one that restores it."""
    spec = obj.get("spec") or {}
    spec = (spec.get("template") or {}).get("spec") or spec
    return any(
        SNAPSHOT_RUNNER in (container.get("args") or [])
        for container in spec.get("containers") or []
    )


def ended_at(job: Obj) -> str:
    """When the Job completed or failed (RFC 3339), "" while it runs."""
    status = job.get("status") or {}
    if status.get("completionTime"):
        return str(status["completionTime"])
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("lastTransitionTime") or "")
    return ""


def overlapping(jobs: t.Sequence[Obj], since: str) -> t.List[Obj]:
    """The snapshot Jobs still running, or that ended at or after ``since`` (the
    hold's time, RFC 3339 UTC; "" counts only the running ones)."""
    return [
        job
        for job in jobs
        if runs_a_snapshot(job)
        and (not job_finished(job) or (since and ended_at(job) >= since))
    ]


def snapshot_jobs(
    client: K8sClient, namespace: str, shard_label: str, shard: str
) -> t.List[Obj]:
    """The shard's snapshot Jobs that still have pods, found through their pods (the
    shipped Role reads Jobs by name only)."""
    pods = client.list("Pod", namespace, label_selector="%s=%s" % (shard_label, shard))
    names = sorted(
        {
            (pod["metadata"].get("labels") or {}).get("job-name", "")
            for pod in pods
            if runs_a_snapshot(pod)
        }
        - {""}
    )
    found = [client.get_or_none(Ref("Job", name, namespace)) for name in names]
    return [job for job in found if job is not None]


def wait_for_end(
    client: K8sClient, namespace: str, names: t.Sequence[str], waiter: Waiter
) -> None:
    """Until every Job named has ended (or is gone)."""
    if not names:
        return

    def running() -> t.List[str]:
        found = [client.get_or_none(Ref("Job", name, namespace)) for name in names]
        return [
            job["metadata"]["name"] for job in found if job and not job_finished(job)
        ]

    waiter.until(
        "the snapshot Job(s) %s of the shard to end" % ", ".join(names),
        running,
        lambda left: not left,
        next_step="kubectl -n %s get jobs %s; the restore starts once they end"
        % (namespace, " ".join(names)),
    )


def quarantine_record(job: str, shard: str, incident_id: str) -> t.Dict[str, str]:
    return {
        "incident_id": incident_id,
        "by": default_actor(),
        "detected_at": timestamp(),
        "reason": "taken by Job %s while shard %s was being recovered (incident %s): "
        "its data may hold the damage the recovery repairs" % (job, shard, incident_id),
    }


def set_aside(
    client: K8sClient,
    s3: S3Store,
    location: layout.ShardLocation,
    where: t.Tuple[str, str, str],
    waiter: Waiter,
) -> t.List[Taken]:
    """Wait for the shard's snapshot Jobs that overlap its incident and quarantine
    what they published; ``where`` is the namespace, the shard label and the
    incident id."""
    namespace, shard_label, incident_id = where
    hold = store.read_hold(s3, location) or {}
    found = snapshot_jobs(client, namespace, shard_label, location.shard)
    jobs = overlapping(found, str(hold.get("since") or ""))
    wait_for_end(client, namespace, [job["metadata"]["name"] for job in jobs], waiter)
    taken = []
    for job in jobs:
        name = job["metadata"]["name"]
        annotations = job["metadata"].get("annotations") or {}
        snapshot_id = str(annotations.get(SNAPSHOT_ANNOTATION) or "")
        if not snapshot_id or store.complete(s3, location, snapshot_id) is None:
            continue  # nothing published under a final name
        record = quarantine_record(name, location.shard, incident_id)
        store.quarantine(s3, location, snapshot_id, record)
        taken.append(Taken(name, snapshot_id))
    return taken
