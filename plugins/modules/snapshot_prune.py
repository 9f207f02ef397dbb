#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_prune
short_description: Apply snapshot retention to a shard, or set or release its incident hold
version_added: 0.1.0
description:
  - Deletes the shard's snapshots that are older than O(retention_days), measured back from the newest
    verified snapshot (not only from the clock, so snapshots that stopped being taken are not all expired),
    while always keeping the O(keep_verified) newest verified snapshots.
  - Never deletes quarantined snapshots (evidence), future-dated ones, or ones with an invalid manifest;
    unfinished uploads (no manifest) go once they are older than the retention. With no verified snapshot
    nothing is deleted.
  - Deletes only the objects of the snapshots it planned (manifest first, then the archive, C(SHA256SUMS)
    and C(QUARANTINED)), never any other key.
  - Never prunes while an incident hold is set, that is while the object C(<prefix>/<shard>/HOLD) (this
    shard) or C(<prefix>/HOLD) (every shard) exists. The task then deletes nothing, reports the hold and warns.
  - With O(hold=set) or O(hold=release) the module sets or removes the shard's hold instead of pruning.
author:
  - ragops.recovery maintainers (@ragops)
options:
  retention_days:
    description:
      - Days of snapshots to keep before the newest verified one. The runbook's range is 7 to 14.
    type: int
    default: 14
  keep_verified:
    description:
      - Minimum number of verified snapshots always kept, whatever their age. At least 1.
    type: int
    default: 3
  future_tolerance:
    description:
      - Seconds a snapshot's creation time may lie in the future before it is treated as future-dated.
    type: int
    default: 300
  hold:
    description:
      - V(set) places the shard's incident hold (kept as it is if one exists); V(release) removes it.
        Either one does not prune.
    type: str
    choices: [set, release]
  incident_id:
    description:
      - Incident recorded in the hold (O(hold=set)).
    type: str
    default: ""
  reason:
    description:
      - Why the hold is set, recorded in it.
    type: str
    default: ""
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.s3_auth
  - ragops.recovery.snapshot
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Lists what would be deleted (or whether the hold would change); deletes and writes nothing.
  diff_mode:
    support: full
    details: The shard's snapshot ids before and after, or the hold before and after.
  idempotent:
    support: full
  action_group:
    support: full
notes:
  - The Kubernetes connection options are accepted and not used, so that one C(module_defaults) block for
    C(group/ragops.recovery.rag) can carry both the Kubernetes and the S3 settings of a play.
seealso:
  - module: ragops.recovery.snapshot_info
  - module: ragops.recovery.snapshot_create
"""

EXAMPLES = r"""
- name: Keep two weeks of snapshots of shard-2, and at least three verified ones
  ragops.recovery.snapshot_prune:
    shard: shard-2
    bucket: rag-snapshots
    retention_days: 14
    keep_verified: 3

- name: Stop pruning shard-2 for the duration of an incident
  ragops.recovery.snapshot_prune:
    shard: shard-2
    bucket: rag-snapshots
    hold: set
    incident_id: INC-1042
    reason: restore in progress

- name: Release the hold after the postmortem
  ragops.recovery.snapshot_prune:
    shard: shard-2
    bucket: rag-snapshots
    hold: release
"""

RETURN = r"""
pruned:
  description: Snapshots deleted (in check mode, that would be), with status and creation time.
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "20261101T020000Z-aa01", "status": "verified", "created": "2026-11-01T02:00:00Z"}]
kept:
  description: Snapshots kept, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "20261127T020000Z-bb02", "status": "verified",
            "reason": "one of the 3 newest verified snapshots"}]
deleted_keys:
  description: Every object key deleted (in check mode, that would be).
  returned: always
  type: list
  elements: str
anchor:
  description: Creation time of the newest verified snapshot, from which ages are measured; null when none.
  returned: always
  type: str
hold:
  description: The incident hold in force (after the change, with O(hold)), or null.
  returned: always
  type: dict
  sample: {"incident_id": "INC-1042", "reason": "restore in progress", "since": "2026-11-27T22:10:03Z",
           "key": "snapshots/shard-2/HOLD"}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils.audit import default_actor
from ansible_collections.ragops.recovery.plugins.module_utils.errors import RecoveryError
from ansible_collections.ragops.recovery.plugins.module_utils.module import RecoveryModule, recovery_errors
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import catalog, layout, store
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import options as snapshot_options
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import S3Store


def argument_spec() -> dict[str, dict[str, t.Any]]:
    spec = snapshot_options.snapshot_spec()
    spec.update({
        "retention_days": {"type": "int", "default": 14},
        "keep_verified": {"type": "int", "default": 3},
        "future_tolerance": {"type": "int", "default": 300},
        "hold": {"type": "str", "choices": ["set", "release"]},
        "incident_id": {"type": "str", "default": ""},
        "reason": {"type": "str", "default": ""},
    })
    return spec


def change_hold(module: RecoveryModule, s3: S3Store, where: layout.ShardLocation) -> dict[str, t.Any]:
    params = module.params
    before = store.read_hold(s3, where)
    own = before is not None and before.get("key") == where.hold_key
    if params["hold"] == "set":
        record = {"incident_id": params["incident_id"], "reason": params["reason"], "by": default_actor(),
                  "since": catalog.format_time(snapshot_options.utc_now())}
        changed = not own and (module.check_mode or store.set_hold(s3, where, record))
        after = dict(record, key=where.hold_key) if changed else before
    else:
        changed = own and (module.check_mode or store.release_hold(s3, where))
        after = store.read_hold(s3, where) if not module.check_mode else (None if own else before)
    result: dict[str, t.Any] = {"changed": bool(changed), "hold": after, "pruned": [], "kept": [], "deleted_keys": [],
                                "anchor": None}
    if module._diff:
        result["diff"] = {"before": {"hold": before}, "after": {"hold": after}}
    return result


def prune(module: RecoveryModule, s3: S3Store, where: layout.ShardLocation) -> dict[str, t.Any]:
    params = module.params
    if params["retention_days"] < 1 or params["keep_verified"] < 1:
        raise RecoveryError("retention_days and keep_verified must be at least 1", reason="invalid retention")
    snapshots = store.load(s3, where, snapshot_options.utc_now(), params["future_tolerance"])
    plan = catalog.retention_plan(snapshots.values(), params["retention_days"], params["keep_verified"])
    hold = store.read_hold(s3, where)
    if hold is not None:
        module.warn("Not pruning shard %s: incident hold %s is set (incident %s)"
                    % (where.shard, hold["key"], hold.get("incident_id") or "unknown"))
        plan = catalog.PrunePlan(keep=[(s, "incident hold") for s in catalog.newest_first(snapshots.values())],
                                 anchor=plan.anchor)
    keys = [where.key(s.snapshot_id, name) for s in plan.delete for name in catalog.deletion_order(s)]
    if plan.delete and not module.check_mode:
        keys = store.delete_planned(s3, where, plan)
    result: dict[str, t.Any] = {
        "changed": bool(plan.delete), "hold": hold, "deleted_keys": keys,
        "anchor": catalog.format_time(plan.anchor) if plan.anchor else None,
        "pruned": [{"snapshot_id": s.snapshot_id, "status": s.status,
                    "created": catalog.format_time(s.created) if s.created else None} for s in plan.delete],
        "kept": [{"snapshot_id": s.snapshot_id, "status": s.status, "reason": why} for s, why in plan.keep],
    }
    if module._diff:
        ids = sorted(snapshots)
        gone = {s.snapshot_id for s in plan.delete}
        result["diff"] = {"before": {"snapshots": ids}, "after": {"snapshots": [i for i in ids if i not in gone]}}
    return result


def run_module(module: RecoveryModule, s3: S3Store) -> dict[str, t.Any]:
    where = snapshot_options.location(module.params)
    return change_hold(module, s3, where) if module.params["hold"] else prune(module, s3, where)


def main() -> None:
    module = RecoveryModule(argument_spec(), groups=["s3", "k8s"], libraries=snapshot_options.libraries())
    with recovery_errors(module):
        result = run_module(module, snapshot_options.open_store(module.params))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
