#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drill_restore
short_description: Restore a shard's newest verified snapshot into a restore drill's scratch namespace
version_added: 0.1.0
description:
  - Chooses the shard's newest verified snapshot (or O(snapshot_id)) and restores it into a new PVC of
    O(scratch_namespace) with the restore Job that M(ragops.recovery.snapshot_restore) runs in V(job)
    mode, sized from the manifest plus O(size_headroom) percent and at least the production claim's
    request. No older snapshot is tried, since a drill reports whether the newest one restores.
  - Then starts a shard pod from the production workload's own pod template (O(workload) in
    O(namespace)) on the restored PVC, and a Service in front of it, and waits until the pod is Ready.
  - Nothing in O(namespace) is written; the workload (and for a Deployment its data claim) is only read.
  - A restore Job that fails (a snapshot that fails verification, which the Job marks quarantined in
    S3 with O(quarantine)) does not fail the task; RV(shard) says so, for
    M(ragops.recovery.drill_report) to fail the drill naming the shard.
  - With O(wait=false) only the PVC, the credentials Secret and the restore Job are created, so that
    the restores of several shards run together; a second call with O(wait=true) waits for the Job and
    starts the shard.
  - The times are the cluster's, to the second - RV(shard.restore_seconds) from the restore Job's
    creation to its completion, RV(shard.start_seconds) from the shard pod's creation to its Ready
    condition - and RV(shard.rpo_seconds) is the snapshot's age when the task started.
author:
  - ragops.recovery maintainers (@ragops)
options:
  scratch_namespace:
    description:
      - The drill's scratch namespace (see M(ragops.recovery.drill_namespace)). Never O(namespace).
    type: str
    required: true
  drill_id:
    description: The drill's id; labels everything created and is the restore's incident id.
    type: str
    required: true
  snapshot_id:
    description:
      - Restore this snapshot, as chosen by an earlier call (the newest verified one by default).
    type: str
  workload:
    description:
      - The shards' workload in O(namespace) as C(Kind/name) (V(StatefulSet/vectorstore) or
        V(Deployment/<name>)), whose pod template the drill's shard pod runs.
    type: str
    required: true
  data_volume:
    description:
      - The pod's volume (or the StatefulSet's C(volumeClaimTemplate)) that holds the shard's data.
    type: str
    default: data
  storage_class:
    description: Storage class of the new PVC; the production claim's class by default.
    type: str
  size_headroom:
    description: Percent added to the snapshot's data size when sizing the new PVC.
    type: int
    default: 20
  image:
    description:
      - Image of the restore Job; it must contain this collection and its Python requirements (the
        collection's execution environment, see M(ragops.recovery.snapshot_restore)'s O(image)).
    type: str
    default: localhost/ragops-recovery-ee:0.1.0
  quarantine:
    description:
      - Let the restore Job mark a snapshot that fails verification as quarantined in S3, so that a
        real restore skips it.
    type: bool
    default: true
  future_tolerance:
    description: Seconds a snapshot's creation time may lie in the future before it is skipped.
    type: int
    default: 300
  address_annotation:
    description:
      - A Service annotation holding C(host:port) where the controller reaches the Service (written by a
        proxy or an ingress controller; the lab's node agent writes V(lab.ragops.io/address)). The task
        waits for it.
      - By default RV(shard.url) is the cluster's DNS name of the Service, which a controller running in
        the cluster (AWX, a CI runner pod) reaches.
    type: str
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.s3_auth
  - ragops.recovery.snapshot
  - ragops.recovery.k8s_auth
  - ragops.recovery.wait
  - ragops.recovery.shard
attributes:
  check_mode:
    support: full
    details: Chooses the snapshot and plans the PVC, the Job and the pod; creates nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Objects the drill already created are kept and its restore Job's outcome is read again.
  action_group:
    support: full
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
seealso:
  - module: ragops.recovery.drill_namespace
  - module: ragops.recovery.drill_report
  - module: ragops.recovery.snapshot_restore
"""

EXAMPLES = r"""
- name: Start the restore of shard-2 into the drill's namespace
  ragops.recovery.drill_restore:
    namespace: rag-prod
    scratch_namespace: rag-prod-drill-20261207t1500z
    drill_id: 20261207t1500z
    shard: shard-2
    bucket: rag-snapshots
    workload: StatefulSet/vectorstore
    wait: false
  register: started

- name: Wait for it and start the shard on the restored volume
  ragops.recovery.drill_restore:
    namespace: rag-prod
    scratch_namespace: rag-prod-drill-20261207t1500z
    drill_id: 20261207t1500z
    shard: shard-2
    bucket: rag-snapshots
    workload: StatefulSet/vectorstore
    snapshot_id: "{{ started.shard.snapshot_id }}"
    wait_timeout: 1800
"""

RETURN = r"""
shard:
  description: The shard's restore in the drill.
  returned: always
  type: dict
  contains:
    shard:
      description: The shard.
      type: str
      sample: shard-2
    namespace:
      description: The scratch namespace.
      type: str
      sample: rag-prod-drill-20261207t1500z
    state:
      description:
        - V(ready) (restored and its pod Ready), V(restoring) (the Job started, O(wait=false)),
          V(planned) (check mode), V(restore failed) or V(no snapshot).
      type: str
      sample: ready
    restored:
      description: Whether the snapshot was restored and the shard pod is Ready.
      type: bool
      sample: true
    snapshot_id:
      description: The snapshot chosen; null when none is verified.
      type: str
      sample: 20261207T020000Z-1a2b
    snapshot_created:
      description: When the snapshot was taken (UTC).
      type: str
      sample: "2026-12-07T02:00:00Z"
    rpo_seconds:
      description: The snapshot's age when the task started (the recovery point), in seconds.
      type: float
      sample: 46800.0
    restore_seconds:
      description: From the restore Job's creation to its completion, in seconds.
      type: float
      sample: 41.0
    start_seconds:
      description: From the shard pod's creation to its Ready condition, in seconds.
      type: float
      sample: 4.0
    url:
      description: Base URL of the shard's Service (see O(address_annotation)); empty until it is ready.
      type: str
      sample: http://vectorstore-shard-2.rag-prod-drill-20261207t1500z.svc:8080
    plan:
      description: The objects of the restore (C(claim), C(size), C(job), C(pod), C(snapshot_id)).
      type: dict
      sample: {"claim": "data-vectorstore-shard-2", "size": "1024Mi",
               "job": "ragops-restore-shard-2-20261207t020000z-1a2b", "pod": "vectorstore-shard-2",
               "snapshot_id": "20261207T020000Z-1a2b"}
    error:
      description: Why the shard was not restored (C(msg), C(reason), C(next_step)); empty when it was.
      type: dict
      sample: {"msg": "Failed to restore shard shard-2 in Job ...: File index/seg-3.bin does not match its SHA-256"}
    tried:
      description: The snapshots tried or skipped, with the outcome and reason.
      type: list
      elements: dict
    quarantined:
      description: Snapshots the restore Job marked quarantined.
      type: list
      elements: str
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils import errors

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import shards

# The options a restore Job gets from the module besides the transfer's.
RUNNER_OPTIONS = ("future_tolerance", "quarantine")


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "scratch_namespace": {"type": "str", "required": True},
            "drill_id": {"type": "str", "required": True},
            "snapshot_id": {"type": "str"},
            "workload": {"type": "str", "required": True},
            "data_volume": {"type": "str", "default": "data"},
            "storage_class": {"type": "str"},
            "size_headroom": {"type": "int", "default": 20},
            "image": {"type": "str", "default": argspec.EE_IMAGE},
            "quarantine": {"type": "bool", "default": True},
            "future_tolerance": {"type": "int", "default": 300},
            "address_annotation": {"type": "str"},
        },
        groups=("s3", "snapshot", "k8s", "wait", "shard"),
    )


def shard_request(params: t.Mapping[str, t.Any]) -> shards.ShardRequest:
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import scratch
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import shards
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        jobkit,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    credentials = jobkit.credentials_of(params)
    if "AWS_ACCESS_KEY_ID" not in credentials:
        raise errors.RecoveryError(
            "drill_restore needs access_key and secret_key: the restore Job gets them "
            "in a Secret of the scratch namespace",
            reason="no S3 credentials for the restore Job",
            next_step="Give access_key and secret_key (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), for example through module_defaults for "
            "group/ragops.recovery.s3.",
        )
    where = scratch.check(
        scratch.Scratch(
            params["scratch_namespace"], params["drill_id"], params["namespace"]
        )
    )
    snapshot_id = params["snapshot_id"]
    return argspec.from_params(
        shards.ShardRequest,
        params,
        scratch=where.name,
        location=snapshot_params.location(params),
        snapshot_id=snapshot_params.check_name("snapshot_id", snapshot_id)
        if snapshot_id
        else None,
        headroom=params["size_headroom"],
        credentials=credentials,
        runner={
            name: params[name] for name in (*jobkit.TRANSFER_OPTIONS, *RUNNER_OPTIONS)
        },
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import shards
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    params = module.params
    request = shard_request(params)
    store = module.s3_store(transfer=snapshot_params.transfer(params))
    outcome = shards.restore_shard(
        module.k8s_client(),
        store,
        request,
        module.waiter(),
        now=audit.utc_now(),
        wait=params["wait"],
        check_mode=module.check_mode,
    )
    return {"changed": outcome.changed, "shard": outcome.to_dict()}


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
