#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_info
short_description: List a shard's snapshots, verify their manifests and report the recovery point
version_added: 0.1.0
description:
  - Lists the shard's snapshots under C(<prefix>/<shard>/) (paged, so the cost grows with the shard's
    snapshots, not with the bucket) and reads each manifest.
  - A snapshot is V(verified) when its manifest is complete and valid, names this shard and snapshot,
    the archive exists with the size the manifest gives, its creation time is not in the future beyond
    O(future_tolerance), and no restore has quarantined it.
  - Every other snapshot is reported with its status (V(incomplete), V(invalid), V(future),
    V(quarantined)) and the reason it was skipped. A manifest that is not valid JSON, or has a field
    missing, of another type or out of range, makes its snapshot V(invalid); it never fails the task.
  - Reports the newest verified snapshot and its age (the recovery point), and the incident hold if set.
  - Fails rather than report a recovery point on an implausible clock, so that a recovery-point check
    never acts on a false age. This host's clock may differ from the S3 store's (the C(Date) of its
    listing) by at most O(future_tolerance) seconds, ahead or behind; a store that sends no C(Date)
    is checked against the newest object it lists, which this host's clock may not be behind.
  - Reads only; never changes anything.
author:
  - ragops.recovery maintainers (@ragops)
options:
  snapshot_id:
    description:
      - Report only this snapshot.
    type: str
  query:
    description:
      - JMESPath expression applied to the list of snapshots (newest first); its result, which must
        be a list, is returned as RV(snapshots). For example V([?verified && age_seconds < `86400`]).
      - RV(recovery_point) and RV(unverified) always consider every snapshot.
    type: str
  future_tolerance:
    description:
      - Seconds a snapshot's creation time may lie in the future (clock skew) before it is skipped,
        and the most this host's clock may differ from the S3 store's.
    type: int
    default: 300
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.s3_auth
  - ragops.recovery.snapshot
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Read-only; runs unchanged in check mode.
  diff_mode:
    support: none
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
  - module: ragops.recovery.snapshot_create
  - module: ragops.recovery.snapshot_restore
"""

EXAMPLES = r"""
- name: Find the recovery point of shard-2
  ragops.recovery.snapshot_info:
    shard: shard-2
    bucket: rag-snapshots
  register: snaps

- name: Fail when the newest verified snapshot is older than a day
  ansible.builtin.assert:
    that:
      - snaps.recovery_point is not none
      - snaps.recovery_point.age_seconds < 86400
    fail_msg: "Recovery point objective missed: {{ snaps.recovery_point }}"

- name: Only verified snapshots from the last week
  ragops.recovery.snapshot_info:
    shard: shard-2
    bucket: rag-snapshots
    query: "[?verified && age_seconds < `604800`]"
"""

RETURN = r"""
snapshots:
  description: The shard's snapshots, newest first (filtered by O(query) when given).
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: Id of the snapshot.
      type: str
    status:
      description: One of V(verified), V(incomplete), V(invalid), V(future), V(quarantined).
      type: str
    verified:
      description: Whether the snapshot can be restored.
      type: bool
    reason:
      description: Why the snapshot is not verified; null when it is.
      type: str
    quarantined:
      description: Whether a C(QUARANTINED) marker exists for it.
      type: bool
    created:
      description: Creation time from the manifest (UTC).
      type: str
    age_seconds:
      description: Seconds since it was created.
      type: int
    objects:
      description: Names of its objects.
      type: list
      elements: str
    manifest_sha256:
      description: SHA-256 of its manifest.
      type: str
    files:
      description: Number of files (when the manifest is valid).
      type: int
    bytes:
      description: Total size of the files (when the manifest is valid).
      type: int
    archive_size:
      description: Size of C(data.tar.zst) (when the manifest is valid).
      type: int
newest_verified:
  description: The newest verified snapshot (same fields as RV(snapshots)), or null.
  returned: always
  type: dict
recovery_point:
  description: Id, creation time and age of the newest verified snapshot; null when there is none.
  returned: always
  type: dict
  sample: {"snapshot_id": "20261127T221003Z-1a2b", "created": "2026-11-27T22:10:03Z", "age_seconds": 3600}
unverified:
  description: Snapshots that are not verified (skipped by a restore), with status and reason.
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "20261127T230000Z-9f3c", "status": "incomplete", "reason": "no manifest.json"}]
hold:
  description: The incident hold (C(<prefix>/<shard>/HOLD) or C(<prefix>/HOLD)), or null.
  returned: always
  type: dict
  sample: {"incident_id": "INC-1042", "reason": "shard-2 restore", "since": "2026-11-27T22:10:03Z"}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils import errors


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "snapshot_id": {"type": "str"},
            "query": {"type": "str"},
            "future_tolerance": {"type": "int", "default": 300},
        },
        groups=("s3", "snapshot", "k8s"),
    )


def select(snapshots: t.List[base.Result], query: str | None) -> t.List[t.Any]:
    if not query:
        return snapshots
    import jmespath

    try:
        selected = jmespath.search(query, snapshots)
    except jmespath.exceptions.JMESPathError as error:
        raise errors.RecoveryError(
            "Invalid query %r: %s" % (query, error), reason="JMESPath error"
        ) from None
    if not isinstance(selected, list):
        raise errors.RecoveryError(
            "The query %r must return a list, it returned %s"
            % (query, type(selected).__name__),
            reason="query result is not a list",
            next_step="Use a filter such as [?verified].",
        )
    return selected


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        catalog,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import clock
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import store

    params = module.params
    s3 = module.s3_store(transfer=snapshot_params.transfer(params))
    where = snapshot_params.location(params)
    now = audit.utc_now()
    snapshot_id = params["snapshot_id"]
    if snapshot_id:
        snapshot_id = snapshot_params.check_name("snapshot_id", snapshot_id)
    loaded = store.load(s3, where, now, params["future_tolerance"], only=snapshot_id)
    clock.check_listing(
        now,
        s3.server_date,
        loaded,
        params["future_tolerance"],
        "read the recovery point",
        where.shard,
    )
    found = catalog.newest_first(loaded.values())
    views = [snapshot.to_dict(now) for snapshot in found]
    unverified = [
        {"snapshot_id": v["snapshot_id"], "status": v["status"], "reason": v["reason"]}
        for v in views
        if not v["verified"]
    ]
    return {
        "changed": False,
        "snapshots": select(views, params["query"]),
        "newest_verified": next((view for view in views if view["verified"]), None),
        "recovery_point": catalog.recovery_point(found, now),
        "unverified": unverified,
        "hold": store.read_hold(s3, where),
    }


def jmespath_library() -> base.Libraries:
    try:
        import jmespath  # noqa: F401
    except ImportError as error:
        return {"jmespath": error}
    return {"jmespath": None}


def main() -> None:
    module = base.RecoveryModule(argument_spec(), libraries=jmespath_library)
    module.run(run_module)


if __name__ == "__main__":
    main()
