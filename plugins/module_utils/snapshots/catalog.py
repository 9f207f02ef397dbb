# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A shard's snapshots as the runbook sees them (pure): which are verified, why others
are skipped, the recovery point, and a retention plan that never removes the last
verified snapshots.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..audit import timestamp
from ..errors import SnapshotInvalid
from . import layout
from .manifest import Manifest, digest, parse
from .s3 import ObjectInfo

VERIFIED = "verified"
INCOMPLETE = "incomplete"
INVALID = "invalid"
FUTURE = "future"
QUARANTINED = "quarantined"


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 time (``2026-11-27T22:10:03Z``) as an aware UTC datetime, or None
    when it is not one or has no UTC equivalent."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not parsed.tzinfo:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, AttributeError, OverflowError):
        return None


def shifted(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds``, held at the first or last representable time."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        bound = datetime.max if seconds > 0 else datetime.min
        return bound.replace(tzinfo=timezone.utc)


@dataclass
class Snapshot:
    """One snapshot id under the shard's prefix: its objects, its manifest if
    readable, and its status."""

    snapshot_id: str
    objects: t.Dict[str, ObjectInfo]
    status: str = INCOMPLETE
    reason: str = ""
    manifest: Manifest | None = None
    manifest_sha256: str = ""
    created: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    @property
    def last_modified(self) -> datetime | None:
        times = [parse_time(o.last_modified) for o in self.objects.values()]
        return max((moment for moment in times if moment), default=None)

    def to_dict(self, now: datetime) -> t.Dict[str, t.Any]:
        view: t.Dict[str, t.Any] = {
            "snapshot_id": self.snapshot_id,
            "status": self.status,
            "verified": self.verified,
            "reason": self.reason or None,
            "quarantined": layout.QUARANTINE_MARKER in self.objects,
            "created": timestamp(self.created) if self.created else None,
            "age_seconds": int((now - self.created).total_seconds())
            if self.created
            else None,
            "objects": sorted(self.objects),
            "manifest_sha256": self.manifest_sha256 or None,
        }
        if self.manifest is not None:
            summary = self.manifest.summary()
            view.update(
                {
                    key: summary[key]
                    for key in (
                        "files",
                        "directories",
                        "bytes",
                        "archive_size",
                        "archive_sha256",
                        "source",
                    )
                }
            )
        return view


def group(
    listing: t.Iterable[ObjectInfo], location: layout.ShardLocation
) -> t.Dict[str, Snapshot]:
    """The listing of a shard's prefix as snapshots; keys that are not snapshot
    objects are ignored."""
    snapshots: t.Dict[str, Snapshot] = {}
    for item in listing:
        parts = location.split(item.key)
        if parts is not None:
            snapshot_id, name = parts
            snapshots.setdefault(snapshot_id, Snapshot(snapshot_id, {})).objects[
                name
            ] = item
    return snapshots


def _verify(snapshot: Snapshot, raw: bytes, shard: str) -> Manifest:
    manifest = parse(raw, shard, snapshot.snapshot_id)
    archive = snapshot.objects.get(layout.ARCHIVE)
    if archive is None:
        raise SnapshotInvalid(
            "archive missing", reason="the manifest exists but data.tar.zst does not"
        )
    if archive.size != manifest.archive.size:
        raise SnapshotInvalid(
            "archive size mismatch",
            reason="data.tar.zst has %d bytes, the manifest says %d"
            % (archive.size, manifest.archive.size),
        )
    return manifest


def classify(
    snapshot: Snapshot, raw: bytes | None, shard: str, now: datetime, tolerance: float
) -> Snapshot:
    """Fill in status and reason from the manifest's bytes (None: not read because
    there is none)."""
    if layout.MANIFEST not in snapshot.objects or raw is None:
        snapshot.status, snapshot.reason = (
            INCOMPLETE,
            "no manifest.json (upload unfinished or failed)",
        )
        return snapshot
    snapshot.manifest_sha256 = digest(raw)
    try:
        snapshot.manifest = _verify(snapshot, raw, shard)
    except SnapshotInvalid as error:
        snapshot.status, snapshot.reason = INVALID, error.reason or error.msg
        return snapshot
    snapshot.created = parse_time(snapshot.manifest.created)
    if snapshot.created is None or snapshot.created < EPOCH:
        snapshot.created = None
        snapshot.status, snapshot.reason = (
            INVALID,
            "created %r is not a time since 1970" % snapshot.manifest.created,
        )
    elif snapshot.created > shifted(now, tolerance):
        snapshot.status = FUTURE
        snapshot.reason = "created %s is in the future (clock skew beyond %ss)" % (
            snapshot.manifest.created,
            tolerance,
        )
    elif layout.QUARANTINE_MARKER in snapshot.objects:
        snapshot.status, snapshot.reason = (
            QUARANTINED,
            "marked corrupt by an earlier restore",
        )
    else:
        snapshot.status, snapshot.reason = VERIFIED, ""
    return snapshot


def newest_first(snapshots: t.Iterable[Snapshot]) -> t.List[Snapshot]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(
        snapshots,
        key=lambda s: (s.created or s.last_modified or epoch, s.snapshot_id),
        reverse=True,
    )


def verified(snapshots: t.Iterable[Snapshot]) -> t.List[Snapshot]:
    return [snapshot for snapshot in newest_first(snapshots) if snapshot.verified]


def recovery_point(
    snapshots: t.Iterable[Snapshot], now: datetime
) -> t.Dict[str, t.Any] | None:
    """The newest verified snapshot and its age: how much data a restore right now
    would lose."""
    candidates = verified(snapshots)
    if not candidates:
        return None
    newest = candidates[0]
    created = t.cast(
        datetime, newest.created
    )  # every verified snapshot has a creation time
    return {
        "snapshot_id": newest.snapshot_id,
        "created": timestamp(created),
        "age_seconds": int((now - created).total_seconds()),
    }


@dataclass
class PrunePlan:
    """Which snapshots go and which stay, each with the reason."""

    delete: t.List[Snapshot] = field(default_factory=list)
    keep: t.List[t.Tuple[Snapshot, str]] = field(default_factory=list)
    anchor: datetime | None = None


def _keep_reason(
    snapshot: Snapshot, index: int, keep_verified: int, cutoff: datetime
) -> str | None:
    """Why a snapshot stays (None: it may go)."""
    if snapshot.verified:
        if index < keep_verified:
            return "one of the %d newest verified snapshots" % keep_verified
        return (
            "within retention"
            if snapshot.created and snapshot.created >= cutoff
            else None
        )
    if snapshot.status == INCOMPLETE:
        modified = snapshot.last_modified
        return (
            "unfinished but recent (may still be uploading)"
            if modified is None or modified >= cutoff
            else None
        )
    return {
        QUARANTINED: "quarantined snapshots are evidence; remove them by hand after "
        "the postmortem",
        FUTURE: "future-dated: check the clock of the host that created it",
        INVALID: "invalid manifest: kept for inspection",
    }.get(snapshot.status, "unknown status")


def retention_plan(
    snapshots: t.Iterable[Snapshot], retention_days: float, keep_verified: int
) -> PrunePlan:
    """Expire snapshots older than ``retention_days`` before the newest verified one
    (not the clock), always keeping the ``keep_verified`` newest verified ones; with
    no verified snapshot nothing goes."""
    ordered = newest_first(snapshots)
    good = verified(ordered)
    plan = PrunePlan(anchor=good[0].created if good else None)
    if plan.anchor is None:
        plan.keep = [
            (snapshot, "no verified snapshot exists: nothing is pruned")
            for snapshot in ordered
        ]
        return plan
    cutoff = shifted(plan.anchor, -86400 * retention_days)
    rank = {snapshot.snapshot_id: index for index, snapshot in enumerate(good)}
    for snapshot in ordered:
        reason = _keep_reason(
            snapshot, rank.get(snapshot.snapshot_id, 0), keep_verified, cutoff
        )
        if reason is None:
            plan.delete.append(snapshot)
        else:
            plan.keep.append((snapshot, reason))
    return plan


def deletion_order(snapshot: Snapshot) -> t.List[str]:
    """The object names of a planned snapshot to delete: the manifest first, so that
    a partly deleted snapshot reads as incomplete, never as complete; only names that
    belong to the snapshot format."""
    names = [name for name in layout.SNAPSHOT_OBJECTS if name in snapshot.objects]
    return names
