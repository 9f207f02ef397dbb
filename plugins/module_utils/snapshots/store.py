# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A shard's snapshots in the bucket: read the catalog, quarantine, hold, and delete
planned snapshots."""

from __future__ import annotations

import json
import typing as t
from datetime import datetime

from ..audit import utc_now
from ..errors import NotFound, RecoveryError
from . import catalog, layout
from .s3 import S3Store

MAX_MANIFEST = 256 * 1024 * 1024
MAX_MARKER = 64 * 1024


def load(
    store: S3Store,
    location: layout.ShardLocation,
    now: datetime,
    tolerance: float,
    only: str | None = None,
) -> t.Dict[str, catalog.Snapshot]:
    """Every snapshot of the shard (or only snapshot ``only``), classified; one paged
    listing plus one GET per manifest."""
    prefix = location.shard_prefix + (only + "/" if only else "")
    snapshots = catalog.group(store.list(prefix), location)
    for snapshot in snapshots.values():
        raw = None
        if layout.MANIFEST in snapshot.objects:
            try:
                raw = store.get_bytes(
                    location.key(snapshot.snapshot_id, layout.MANIFEST), MAX_MANIFEST
                )
            except NotFound:
                raw = None  # deleted between the listing and the read
        catalog.classify(snapshot, raw, location.shard, now, tolerance)
    return snapshots


def complete(
    store: S3Store, location: layout.ShardLocation, snapshot_id: str
) -> t.Dict[str, t.Any] | None:
    """The snapshot of that id when it is complete (verified or not), else ``None``:
    a snapshot whose manifest is published is never taken again."""
    now = utc_now()
    found = load(store, location, now, 300, only=snapshot_id).get(snapshot_id)
    if found is None or found.status == catalog.INCOMPLETE:
        return None
    return dict(found.to_dict(now), url=location.url(snapshot_id), shard=location.shard)


def _marker(store: S3Store, key: str) -> t.Dict[str, t.Any] | None:
    try:
        raw = store.get_bytes(key, MAX_MARKER)
    except NotFound:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError:
        value = None
    return (
        dict(value, key=key)
        if isinstance(value, dict)
        else {"key": key, "note": "not JSON"}
    )


def read_hold(
    store: S3Store, location: layout.ShardLocation
) -> t.Dict[str, t.Any] | None:
    """The incident hold on the shard (``<prefix>/<shard>/HOLD``) or on every shard
    (``<prefix>/HOLD``)."""
    base = location.prefix.strip("/")
    return _marker(store, location.hold_key) or _marker(
        store, (base + "/" if base else "") + layout.HOLD
    )


def set_hold(
    store: S3Store, location: layout.ShardLocation, record: t.Mapping[str, t.Any]
) -> bool:
    """Set the shard's hold; False when one was already set (it is kept as it was)."""
    body = json.dumps(dict(record), sort_keys=True).encode("utf-8")
    return store.put_bytes(location.hold_key, body, exclusive=True)


def release_hold(store: S3Store, location: layout.ShardLocation) -> bool:
    """Remove the shard's hold; False when there was none."""
    if not store.exists(location.hold_key):
        return False
    store.delete(location.hold_key)
    return True


def quarantine(
    store: S3Store,
    location: layout.ShardLocation,
    snapshot_id: str,
    record: t.Mapping[str, t.Any],
) -> bool:
    """Mark a snapshot corrupt with a ``QUARANTINED`` object next to it; nothing is
    deleted. False when it was already marked (the first record is kept)."""
    body = json.dumps(dict(record), sort_keys=True).encode("utf-8")
    return store.put_bytes(
        location.key(snapshot_id, layout.QUARANTINE_MARKER), body, exclusive=True
    )


def is_quarantined(
    store: S3Store, location: layout.ShardLocation, snapshot_id: str
) -> bool:
    """Whether the snapshot carries a ``QUARANTINED`` marker now."""
    return store.exists(location.key(snapshot_id, layout.QUARANTINE_MARKER))


def delete_planned(
    store: S3Store, location: layout.ShardLocation, plan: catalog.PrunePlan
) -> t.List[str]:
    """Delete exactly the objects of the snapshots in ``plan.delete``, manifest
    first; the keys deleted."""
    deleted: t.List[str] = []
    for snapshot in plan.delete:
        for name in catalog.deletion_order(snapshot):
            key = location.key(snapshot.snapshot_id, name)
            try:
                store.delete(key)
            except RecoveryError as error:
                error.partial = {"deleted": deleted}
                raise
            deleted.append(key)
    return deleted
