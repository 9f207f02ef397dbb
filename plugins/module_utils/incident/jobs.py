# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery Jobs of a stack: which kind each is, how it stands, how far it got.

Every Job the collection starts carries ``app.kubernetes.io/managed-by:
ragops.recovery``; its kind is told by what the code that made it writes on it (see
:func:`job_kind`).  Progress comes from the log of the Job's newest pod, as the code
that waits for the Job reads it: bytes for a restore or a snapshot, documents for a
re-index.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import ApiError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import INCIDENT_ANNOTATION, MANAGED_BY, VERSION_KEY
from ..shards import reindex
from ..snapshots import job as restore_job
from ..snapshots import jobkit

SHARD_LABEL = "ragops.io/shard"
KINDS = ("restore", "snapshot", "reindex", "migration", "other")


def job_kind(job: Obj) -> str:
    """``restore``, ``snapshot``, ``reindex``, ``migration`` or ``other``.

    A restore Job is annotated with the snapshot it restores and its manifest's digest;
    a Job annotated with a snapshot id alone writes that snapshot.
    """
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if restore_job.MANIFEST_ANNOTATION in annotations:
        return "restore"
    if restore_job.SNAPSHOT_ANNOTATION in annotations:
        return "snapshot"
    if reindex.JOB_LABEL in labels:
        return "reindex"
    if VERSION_KEY in labels:
        return "migration"
    return "other"


def shard_of(job: Obj) -> str | None:
    """The shard a Job works on: its shard label (restore), else the ``SHARD`` env of
    its container (re-index)."""
    meta = job.get("metadata") or {}
    labelled = (meta.get("labels") or {}).get(SHARD_LABEL)
    if labelled:
        return str(labelled)
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        for item in container.get("env") or []:
            if item.get("name") == "SHARD" and item.get("value"):
                return str(item["value"])
    return None


def failure_reason(job: Obj) -> str | None:
    """The reason and message of the Job's ``Failed`` condition."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            parts = (condition.get("reason"), condition.get("message"))
            return ": ".join(str(part) for part in parts if part) or "Failed"
    return None


def _size(count: t.Any) -> str:
    """A byte count as a person reads it: ``512 B``, ``12.0 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return ("%d %s" if unit == "B" else "%.1f %s") % (value, unit)
        value /= 1024.0
    return "%.1f GiB" % value


@dataclass(frozen=True)
class Progress:
    """How far a Job got: ``done`` of ``total`` units (``bytes`` or ``documents``)."""

    done: int
    total: int | None
    unit: str

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(100.0 * self.done / self.total, 1)

    @property
    def text(self) -> str:
        """``12.0 MiB of 26.6 MiB (45 %)``, ``69 of 69 documents (100 %)``."""
        total = "?" if self.total is None else self.total
        if self.unit == "bytes":
            amount = "%s of %s" % (
                _size(self.done),
                _size(total) if total != "?" else total,
            )
        else:
            amount = "%d of %s %s" % (self.done, total, self.unit)
        return (
            amount if self.percent is None else "%s (%.0f %%)" % (amount, self.percent)
        )

    def to_dict(self) -> Obj:
        return {
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "percent": self.percent,
            "text": self.text,
        }


def restore_progress(log: str) -> t.Tuple[Progress | None, str | None]:
    """Bytes restored (or, for a snapshot Job, read) so far, and the error the Job
    ended with, from its log."""
    seen = jobkit.JobProgress()
    seen.read(log)
    error = (seen.result or {}).get("msg") if seen.result else None
    if (seen.result or {}).get("event") == "result":
        restored = (seen.result or {}).get("restore") or {}
        size = int(restored.get("bytes") or seen.progress.get("bytes_total") or 0)
        return Progress(size, size, "bytes"), None
    if not seen.progress:
        return None, error
    progress = Progress(
        int(seen.progress.get("bytes_done") or 0),
        _int_or_none(seen.progress.get("bytes_total")),
        "bytes",
    )
    return progress, error


def reindex_progress(log: str) -> Progress | None:
    """Documents re-indexed so far, from the indexer's log."""
    found = reindex.parse_progress(log)
    if found["total"] is None and not found["done"]:
        return None
    return Progress(int(found["done"] or 0), _int_or_none(found["total"]), "documents")


def _int_or_none(value: t.Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class JobView:
    """One recovery Job as the status shows it."""

    name: str
    kind: str
    state: str
    shard: str | None
    incident_id: str
    started: str | None
    completed: str | None
    failure: str | None = None
    progress: Progress | None = None
    error: str | None = None

    def to_dict(self) -> Obj:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "shard": self.shard,
            "incident_id": self.incident_id,
            "started": self.started,
            "completed": self.completed,
            "failure": self.failure,
            "error": self.error,
            "progress": self.progress.to_dict() if self.progress else None,
        }


def job_view(job: Obj, log: str | None = None) -> JobView:
    """The Job with the progress its ``log`` (when read) shows."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    kind = job_kind(job)
    progress, error = None, None
    if log is not None and kind in ("restore", "snapshot"):
        progress, error = restore_progress(log)
    elif log is not None and kind == "reindex":
        progress = reindex_progress(log)
    return JobView(
        name=str(meta.get("name", "")),
        kind=kind,
        state=reindex.job_state(job),
        shard=shard_of(job),
        incident_id=(meta.get("annotations") or {}).get(INCIDENT_ANNOTATION, ""),
        started=status.get("startTime"),
        completed=status.get("completionTime"),
        failure=failure_reason(job),
        progress=progress,
        error=error,
    )


def _shown(job: JobView, incident_id: str) -> bool:
    """Running Jobs always; finished ones of the incident (all failed ones without
    one)."""
    if job.state == "running":
        return True
    if incident_id:
        return job.incident_id == incident_id
    return job.state == "failed"


@dataclass(frozen=True)
class JobListing:
    shown: t.List[JobView]
    hidden: int

    def to_dict(self) -> Obj:
        return {"items": [job.to_dict() for job in self.shown], "hidden": self.hidden}


def read_jobs(client: K8sClient, namespace: str, incident_id: str) -> JobListing:
    """The collection's Jobs in ``namespace`` worth showing, oldest first, with
    progress."""
    selector = ",".join("%s=%s" % item for item in MANAGED_BY.items())
    found = client.list("Job", namespace, label_selector=selector)
    found.sort(key=lambda j: str((j.get("metadata") or {}).get("creationTimestamp")))
    shown: t.List[JobView] = []
    for job in found:
        view = job_view(job)
        if not _shown(view, incident_id):
            continue
        if view.kind in ("restore", "snapshot", "reindex"):
            view = job_view(job, _log(client, namespace, view.name))
        shown.append(view)
    return JobListing(shown, len(found) - len(shown))


def _log(client: K8sClient, namespace: str, name: str) -> str | None:
    try:
        return jobkit.job_log(client, namespace, name)
    except ApiError:
        return None
