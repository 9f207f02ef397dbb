# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention of a shard's snapshots, and the incident hold that suspends it.

Pruning deletes only the snapshots it planned, never while a hold is set: the hold is
read again before each snapshot is deleted, so a hold set while a prune runs stops it
before its next snapshot (one whose deletion began is finished).  The plan itself
(:func:`catalog.retention_plan`) always keeps the newest verified snapshots.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..audit import timestamp, utc_now
from ..errors import RecoveryError
from . import catalog, clock, layout, store
from .s3 import S3Store

Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class PruneRequest:
    """How much to keep, and how the module runs."""

    retention_days: int = 14
    keep_verified: int = 3
    future_tolerance: int = 300
    check_mode: bool = False
    diff: bool = False


@dataclass
class Pruned:
    """The module result, and the warnings the module gives with it."""

    result: Obj
    warnings: t.List[str] = field(default_factory=list)


def change_hold(
    s3: S3Store,
    where: layout.ShardLocation,
    action: str,
    record: t.Mapping[str, t.Any],
    request: PruneRequest,
) -> Obj:
    """``set`` or ``release`` the shard's own hold; a hold on every shard is left
    alone."""
    before = store.read_hold(s3, where)
    own = before is not None and before.get("key") == where.hold_key
    if action == "set":
        record = dict(record, since=timestamp())
        changed = not own and (request.check_mode or store.set_hold(s3, where, record))
        after = dict(record, key=where.hold_key) if changed else before
    else:
        changed = own and (request.check_mode or store.release_hold(s3, where))
        after = (
            (None if own else before)
            if request.check_mode
            else store.read_hold(s3, where)
        )
    result: Obj = {
        "changed": bool(changed),
        "hold": after,
        "pruned": [],
        "kept": [],
        "deleted_keys": [],
        "anchor": None,
    }
    if request.diff:
        result["diff"] = {"before": {"hold": before}, "after": {"hold": after}}
    return result


def prune(s3: S3Store, where: layout.ShardLocation, request: PruneRequest) -> Pruned:
    """Delete what the retention plan does not keep, unless an incident hold is set."""
    if request.retention_days < 1 or request.keep_verified < 1:
        raise RecoveryError(
            "retention_days and keep_verified must be at least 1",
            reason="invalid retention",
        )
    now = utc_now()
    snapshots = store.load(s3, where, now, request.future_tolerance)
    clock.check_listing(
        now,
        s3.server_date,
        snapshots,
        request.future_tolerance,
        "prune the snapshots",
        where.shard,
    )
    plan = catalog.retention_plan(
        snapshots.values(), request.retention_days, request.keep_verified
    )
    hold = store.read_hold(s3, where)
    warnings = []
    if hold is not None:
        warnings.append(
            "Not pruning shard %s: incident hold %s is set (incident %s)"
            % (where.shard, hold["key"], hold.get("incident_id") or "unknown")
        )
        held = [(s, "incident hold") for s in catalog.newest_first(snapshots.values())]
        plan = catalog.PrunePlan(keep=held, anchor=plan.anchor)
    keys = [
        where.key(s.snapshot_id, name)
        for s in plan.delete
        for name in catalog.deletion_order(s)
    ]
    if plan.delete and not request.check_mode:
        keys, plan, late = delete_unless_held(s3, where, plan)
        if late is not None:
            hold = late
            warnings.append(
                "Stopped pruning shard %s: incident hold %s was set while the prune "
                "ran (incident %s); the snapshots not yet deleted are kept"
                % (where.shard, late["key"], late.get("incident_id") or "unknown")
            )
    result = _prune_result(plan, hold, keys)
    if request.diff:
        ids = sorted(snapshots)
        gone = {s.snapshot_id for s in plan.delete}
        result["diff"] = {
            "before": {"snapshots": ids},
            "after": {"snapshots": [i for i in ids if i not in gone]},
        }
    return Pruned(result, warnings)


def delete_unless_held(
    s3: S3Store, where: layout.ShardLocation, plan: catalog.PrunePlan
) -> t.Tuple[t.List[str], catalog.PrunePlan, Obj | None]:
    """Delete the planned snapshots one at a time, reading the hold again before each:
    a hold set while the prune ran (a recovery of the shard started meanwhile, and
    may be reading one of them) stops it before its next snapshot.  The keys
    deleted, the plan as carried out, and the hold that stopped it (None)."""
    keys: t.List[str] = []
    for index, snapshot in enumerate(plan.delete):
        hold = store.read_hold(s3, where)
        if hold is not None:
            spared = [
                (s, "incident hold set while pruning") for s in plan.delete[index:]
            ]
            done = catalog.PrunePlan(
                delete=plan.delete[:index], keep=plan.keep + spared, anchor=plan.anchor
            )
            return keys, done, hold
        one = catalog.PrunePlan(delete=[snapshot])
        try:
            keys += store.delete_planned(s3, where, one)
        except RecoveryError as error:
            error.partial = {"deleted": keys + list(error.partial.get("deleted") or [])}
            raise
    return keys, plan, None


def _prune_result(plan: catalog.PrunePlan, hold: Obj | None, keys: t.List[str]) -> Obj:
    pruned = [
        {
            "snapshot_id": s.snapshot_id,
            "status": s.status,
            "created": timestamp(s.created) if s.created else None,
        }
        for s in plan.delete
    ]
    kept = [
        {"snapshot_id": s.snapshot_id, "status": s.status, "reason": why}
        for s, why in plan.keep
    ]
    return {
        "changed": bool(plan.delete),
        "hold": hold,
        "deleted_keys": keys,
        "anchor": timestamp(plan.anchor) if plan.anchor else None,
        "pruned": pruned,
        "kept": kept,
    }
