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
  - Reads the hold again before deleting each snapshot, so a hold set while the task runs (a recovery of the
    shard started meanwhile) stops it before its next snapshot; the rest are kept with the reason
    V(incident hold set while pruning), the hold is reported and the task warns.
  - Refuses to prune, and deletes nothing, on an implausible clock. This host's clock may differ from
    the S3 store's (the C(Date) of its listing) by at most O(future_tolerance) seconds, ahead or behind;
    a store that sends no C(Date) is checked against the newest object it lists, which this host's clock
    may not be behind. Setting or releasing a hold does not depend on the clock.
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
      - Seconds a snapshot's creation time may lie in the future before it is treated as future-dated,
        and the most this host's clock may differ from the S3 store's before pruning is refused.
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
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
notes:
  - The Kubernetes connection options are accepted and not used, so that the C(group/ragops.recovery.rag)
    entry of a play's C(module_defaults) applies to this module too; its S3 settings go in the
    C(group/ragops.recovery.s3) entry.
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

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "retention_days": {"type": "int", "default": 14},
            "keep_verified": {"type": "int", "default": 3},
            "future_tolerance": {"type": "int", "default": 300},
            "hold": {"type": "str", "choices": ["set", "release"]},
            "incident_id": {"type": "str", "default": ""},
            "reason": {"type": "str", "default": ""},
        },
        groups=("s3", "snapshot", "k8s"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        retention,
    )

    params = module.params
    s3 = module.s3_store(transfer=snapshot_params.transfer(params))
    where = snapshot_params.location(params)
    request = argspec.from_params(
        retention.PruneRequest, params, check_mode=module.check_mode, diff=module._diff
    )
    if params["hold"]:
        record = {
            "incident_id": params["incident_id"],
            "reason": params["reason"],
            "by": audit.default_actor(),
        }
        return retention.change_hold(s3, where, params["hold"], record, request)
    pruned = retention.prune(s3, where, request)
    for warning in pruned.warnings:
        module.warn(warning)
    return pruned.result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
