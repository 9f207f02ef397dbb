# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local restore: stream the archive from S3 into a staging directory beside the target,
verifying every part and every file on the way, then swap it in and leave a completion
marker with the manifest digest.

The target is never written until everything is verified.  A re-run against a target
whose marker names the same manifest is a no-op; an interrupted run leaves the target as
it was, and a re-run either finishes a fully staged copy (swap only) or starts the
staging afresh.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import json
import os
import time
import typing as t
from dataclasses import dataclass, field

from ..audit import utc_now
from ..errors import RecoveryError, SnapshotInvalid
from . import catalog, layout, store, swap
from .archive import CappedSource, Extractor, stream_limit
from .create import RESTORE_MARKER
from .manifest import Manifest
from .s3 import S3Store, VerifiedReader
from .stage import Stage

with contextlib.suppress(ImportError):  # reported through create.ZSTD_IMPORT_ERROR
    import zstandard

MAX_WINDOW = 1 << 27
Progress = t.Callable[[int, int], None]


def read_marker(dest: str) -> t.Dict[str, t.Any] | None:
    """The completion marker of the last restore into ``dest``, if there is a
    readable one."""
    try:
        with open(os.path.join(dest, RESTORE_MARKER), "rb") as handle:
            value = json.loads(handle.read(65536).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def marker_record(snapshot: catalog.Snapshot, restored_at: str) -> t.Dict[str, t.Any]:
    manifest = t.cast(Manifest, snapshot.manifest)
    return {
        "snapshot_id": snapshot.snapshot_id,
        "shard": manifest.shard,
        "manifest_sha256": snapshot.manifest_sha256,
        "created": manifest.created,
        "restored_at": restored_at,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
    }


@dataclass(frozen=True)
class RestoreRequest:
    location: layout.ShardLocation
    dest: str
    restored_at: str
    keep_previous: bool = True
    progress: Progress = field(default=lambda done, total: None)


@dataclass
class Restored:
    snapshot_id: str
    files: int
    bytes: int
    archive_bytes: int
    duration: float
    refetched_parts: int
    resumed: bool
    previous: str | None

    def to_dict(self) -> t.Dict[str, t.Any]:
        rate = self.bytes / self.duration / 1e6 if self.duration > 0 else 0.0
        return {
            "snapshot_id": self.snapshot_id,
            "files": self.files,
            "bytes": self.bytes,
            "archive_bytes": self.archive_bytes,
            "duration": self.duration,
            "throughput_mb_s": round(rate, 1),
            "refetched_parts": self.refetched_parts,
            "resumed": self.resumed,
            "previous": self.previous,
        }


def _decompress(
    reader: VerifiedReader, staging: str, manifest: Manifest, progress: Progress
) -> None:
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    hashing: Stage[t.Tuple[t.Any, bytes]] = Stage(
        lambda item: item[0].update(item[1]), name="restore-hash"
    )
    try:
        source = t.cast(t.IO[bytes], reader)
        with decompressor.stream_reader(
            source, read_size=1 << 20, read_across_frames=True, closefd=False
        ) as raw:
            capped = CappedSource(raw, stream_limit(manifest))
            Extractor(
                staging,
                manifest,
                lambda done: progress(done, manifest.total_bytes),
                hash_chunk=lambda digest, data: hashing.put((digest, data)),
                drain=hashing.close,
            ).run(capped)
            # The rest is end-of-archive padding; reading it verifies the last parts too.
            while True:
                tail = capped.read(1 << 20)
                if not tail:
                    break
                if tail.strip(b"\0"):
                    raise SnapshotInvalid(
                        "The archive has data after its end",
                        reason="trailing data in archive",
                    )
    except zstandard.ZstdError as error:
        raise SnapshotInvalid(
            "The archive does not decompress: %s" % error, reason="zstd error"
        ) from None
    finally:
        hashing.stop()


def _check_space(staging_parent: str, manifest: Manifest) -> None:
    stats = os.statvfs(staging_parent)
    free = stats.f_bavail * stats.f_frsize
    if free < manifest.total_bytes:
        raise RecoveryError(
            "Failed to restore snapshot %s: it needs %d bytes, %s has %d free"
            % (manifest.snapshot_id, manifest.total_bytes, staging_parent, free),
            resource=staging_parent,
            reason="not enough free space",
            next_step="Free space or restore into a larger volume (mode=job sizes a "
            "new PVC from the manifest).",
        )


def _os_error(error: OSError, snapshot_id: str, where: str) -> RecoveryError:
    reason = (
        "no space left on device"
        if error.errno == errno.ENOSPC
        else (error.strerror or str(error))
    )
    return RecoveryError(
        "Failed to restore snapshot %s into %s: %s" % (snapshot_id, where, reason),
        resource=where,
        reason=reason,
        next_step="Fix the target's filesystem (space, permissions) and run again; "
        "the target was left unchanged.",
    )


def _stage(
    s3: S3Store, request: RestoreRequest, snapshot: catalog.Snapshot, staging: str
) -> int:
    manifest = t.cast(Manifest, snapshot.manifest)
    key = request.location.key(snapshot.snapshot_id, layout.ARCHIVE)
    os.makedirs(staging, mode=0o700)
    with concurrent.futures.ThreadPoolExecutor(
        s3.transfer.concurrency, thread_name_prefix="restore"
    ) as pool:
        reader = VerifiedReader(s3, key, manifest.archive, pool)
        try:
            _decompress(reader, staging, manifest, request.progress)
        finally:
            reader.close()
    with open(os.path.join(staging, RESTORE_MARKER), "w", encoding="utf-8") as handle:
        json.dump(marker_record(snapshot, request.restored_at), handle, sort_keys=True)
    os.chmod(staging, 0o755)
    swap.sync_filesystem(staging)
    return reader.refetched


def restore_snapshot(
    s3: S3Store, request: RestoreRequest, snapshot: catalog.Snapshot
) -> Restored:
    """Stage, verify and swap in one verified snapshot; the target is untouched on
    any failure."""
    manifest = t.cast(Manifest, snapshot.manifest)
    started = time.monotonic()
    staging = swap.staging_path(request.dest, snapshot.manifest_sha256)
    staged = read_marker(staging)
    resumed = bool(staged and staged.get("manifest_sha256") == snapshot.manifest_sha256)
    refetched = 0
    try:
        if not resumed:
            for stale in swap.stale_staging(request.dest):
                swap.remove_tree(stale)
            _check_space(os.path.dirname(staging), manifest)
            refetched = _stage(s3, request, snapshot, staging)
        previous = swap.swap_in(
            staging,
            request.dest,
            RESTORE_MARKER,
            snapshot.snapshot_id + "-" + request.restored_at.replace(":", ""),
            request.keep_previous,
        )
    except OSError as error:
        swap.remove_tree(staging)
        raise _os_error(error, snapshot.snapshot_id, request.dest) from None
    except Exception:
        swap.remove_tree(staging)
        raise
    return Restored(
        snapshot.snapshot_id,
        len(manifest.files),
        manifest.total_bytes,
        manifest.archive.size,
        round(time.monotonic() - started, 3),
        refetched,
        resumed,
        previous,
    )


@dataclass
class Attempt:
    snapshot_id: str
    outcome: str
    reason: str = ""

    def to_dict(self) -> t.Dict[str, str]:
        return {
            "snapshot_id": self.snapshot_id,
            "outcome": self.outcome,
            "reason": self.reason,
        }


def unverified(snapshots: t.Mapping[str, catalog.Snapshot]) -> t.List[Attempt]:
    """Every snapshot skipped because it is not verified, newest first, with the
    catalog's reason."""
    return [
        Attempt(s.snapshot_id, "skipped", "%s: %s" % (s.status, s.reason))
        for s in catalog.newest_first(snapshots.values())
        if not s.verified
    ]


def candidates(
    snapshots: t.Mapping[str, catalog.Snapshot], snapshot_id: str | None, fallback: bool
) -> t.Tuple[t.List[catalog.Snapshot], t.List[Attempt]]:
    """The snapshots to try in order, and the ones skipped up front (a named but
    unverified snapshot)."""
    good = catalog.verified(snapshots.values())
    if snapshot_id is None:
        return (good if fallback else good[:1]), ([] if good else unverified(snapshots))
    chosen = snapshots.get(snapshot_id)
    if chosen is None:
        raise RecoveryError(
            "Snapshot %s does not exist" % snapshot_id,
            reason="unknown snapshot id",
            next_step="List the shard's snapshots with ragops.recovery.snapshot_info.",
        )
    newest = chosen.created
    older = [
        s
        for s in good
        if s is not chosen and (newest is None or (s.created and s.created < newest))
    ]
    older = older if fallback else []
    if chosen.verified:
        return [chosen, *older], []
    return older, [a for a in unverified(snapshots) if a.snapshot_id == snapshot_id]


def load_candidates(
    s3: S3Store,
    location: layout.ShardLocation,
    snapshot_id: str | None,
    fallback: bool,
    future_tolerance: float,
) -> t.Tuple[t.List[catalog.Snapshot], t.List[Attempt]]:
    """The shard's snapshots to try, newest verified first, and the ones skipped up
    front."""
    found = store.load(s3, location, utc_now(), future_tolerance)
    return candidates(found, snapshot_id, fallback)


@dataclass
class Outcome:
    """What a local restore did: the snapshot restored (or that would be), and every
    attempt on the way."""

    changed: bool
    snapshot: catalog.Snapshot | None
    restored: Restored | None = None
    attempts: t.List[Attempt] = field(default_factory=list)
    quarantined: t.List[str] = field(default_factory=list)

    def to_result(self) -> t.Dict[str, t.Any]:
        """The module result: the snapshot, every attempt, what was quarantined and a
        summary."""
        snapshot = self.snapshot.to_dict(utc_now()) if self.snapshot else None
        result: t.Dict[str, t.Any] = {
            "changed": self.changed,
            "snapshot": snapshot,
            "summary": self.summary(),
            "tried": [attempt.to_dict() for attempt in self.attempts],
            "quarantined": self.quarantined,
        }
        if self.restored is not None:
            result["restore"] = self.restored.to_dict()
        return result

    def summary(self) -> str:
        """One line: the snapshot the shard runs on and what was tried to get there."""
        chosen = self.snapshot.snapshot_id if self.snapshot else "none"
        tried = "; ".join(
            "%s %s%s"
            % (
                attempt.snapshot_id,
                attempt.outcome,
                ", quarantined in S3"
                if attempt.snapshot_id in self.quarantined
                else "",
            )
            for attempt in self.attempts
        )
        return "restore: snapshot %s (tried %s)" % (chosen, tried)

    def diff(self, before: str | None) -> t.Dict[str, t.Any]:
        """The snapshot the target held before and holds after (``before`` when
        unchanged)."""
        after = before
        if self.changed:
            after = self.snapshot.snapshot_id if self.snapshot else None
        return {"before": {"snapshot_id": before}, "after": {"snapshot_id": after}}


def _quarantine(
    s3: S3Store,
    request: RestoreRequest,
    snapshot: catalog.Snapshot,
    error: SnapshotInvalid,
    record: t.Mapping[str, t.Any],
    outcome: Outcome,
) -> None:
    marker = dict(
        record,
        reason=error.msg,
        detected_at=request.restored_at,
        manifest_sha256=snapshot.manifest_sha256,
    )
    store.quarantine(s3, request.location, snapshot.snapshot_id, marker)
    outcome.quarantined.append(snapshot.snapshot_id)


def _why_none(request: RestoreRequest, attempts: t.Sequence[Attempt]) -> str:
    """Each candidate and what became of it: skipped (with the catalog's reason) or
    failed (with what failed)."""
    if not attempts:
        return "no snapshot exists under %s" % request.location.url()
    why = "; ".join(
        "%s %s: %s" % (a.snapshot_id, a.outcome, a.reason) for a in attempts
    )
    if all(a.outcome == "skipped" for a in attempts):
        return "none is verified: " + why
    return why


def no_snapshot(request: RestoreRequest, outcome: Outcome) -> RecoveryError:
    tried = _why_none(request, outcome.attempts)
    return RecoveryError(
        "Failed to restore shard %s: no verified snapshot could be restored (%s)"
        % (request.location.shard, tried),
        resource=request.location.url(),
        reason="no usable snapshot",
        next_step="Inspect the snapshots with ragops.recovery.snapshot_info; rebuild "
        "the shard from its source "
        "documents if none is usable.",
        partial={
            "tried": [a.to_dict() for a in outcome.attempts],
            "quarantined": outcome.quarantined,
        },
    )


def restore_latest(
    s3: S3Store,
    request: RestoreRequest,
    order: t.Sequence[catalog.Snapshot],
    quarantine_record: t.Mapping[str, t.Any] | None,
    outcome: Outcome,
) -> Outcome:
    """Try ``order`` until one restores; a snapshot that fails verification is
    quarantined (if asked) and the next is tried.  S3 and disk failures stop at once:
    another snapshot would not help."""
    for snapshot in order:
        try:
            outcome.restored = restore_snapshot(s3, request, snapshot)
        except SnapshotInvalid as error:
            outcome.attempts.append(
                Attempt(snapshot.snapshot_id, "failed verification", error.msg)
            )
            if quarantine_record is not None:
                _quarantine(s3, request, snapshot, error, quarantine_record, outcome)
            continue
        except RecoveryError as error:
            error.partial = dict(
                error.partial,
                tried=[a.to_dict() for a in outcome.attempts],
                quarantined=outcome.quarantined,
                target_unchanged=True,
            )
            raise
        outcome.attempts.append(Attempt(snapshot.snapshot_id, "restored"))
        outcome.snapshot, outcome.changed = snapshot, True
        return outcome
    raise no_snapshot(request, outcome)


def plan_local(
    request: RestoreRequest,
    order: t.Sequence[catalog.Snapshot],
    skipped: t.List[Attempt],
    force: bool,
) -> Outcome:
    """Whether a restore is needed: not when the target's marker already names the
    first candidate."""
    outcome = Outcome(
        changed=bool(order),
        snapshot=order[0] if order else None,
        attempts=list(skipped),
    )
    marker = read_marker(request.dest)
    if (
        order
        and marker
        and not force
        and marker.get("manifest_sha256") == order[0].manifest_sha256
    ):
        outcome.changed = False
    return outcome


def local_restore(
    s3: S3Store,
    request: RestoreRequest,
    order: t.Sequence[catalog.Snapshot],
    skipped: t.List[Attempt],
    quarantine_record: t.Mapping[str, t.Any] | None,
    *,
    check_mode: bool,
    force: bool,
) -> Outcome:
    """Local mode from start to end, as the module and the restore Job both run it."""
    outcome = plan_local(request, order, skipped, force)
    if not order:
        raise no_snapshot(request, outcome)
    if outcome.changed and not check_mode:
        outcome = restore_latest(s3, request, order, quarantine_record, outcome)
    return outcome
