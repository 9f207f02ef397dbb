#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_restore
short_description: Restore a vectorstore shard from a verified snapshot in S3
version_added: 0.1.0
description:
  - Chooses the snapshot O(snapshot_id), or else the newest verified one (see M(ragops.recovery.snapshot_info)).
  - In V(local) mode, streams the archive from S3 into an empty staging directory next to O(dest), checking
    every downloaded part against the manifest's chunk hashes and every file's size and SHA-256 while it is
    written. Only regular files and directories listed in the manifest are written; absolute paths, C(..),
    links, devices and unlisted members are refused, and bytes and members are capped by the manifest.
  - Only after everything is verified and flushed to disk is the staging directory swapped into place
    (an atomic exchange where the kernel supports it). The old data is kept beside the target as
    C(.<name>.ragops-previous-<snapshot>-<time>) unless O(keep_previous=false). A completion marker
    C(.ragops-restore.json) in the target holds the manifest's SHA-256.
  - A run against a target whose marker names the same manifest reports no change. An interrupted run
    leaves the target untouched; the next run finishes a fully staged copy or stages afresh.
  - When the chosen snapshot fails verification it is marked quarantined in S3 (a C(QUARANTINED) object
    beside it; nothing is deleted) and the next older verified snapshot is tried; RV(tried) says so.
  - In V(job) mode (Kubernetes), creates a new PVC sized from the manifest plus O(size_headroom) percent,
    runs a restore Job that uses V(local) mode inside O(image), waits for it with progress, points the
    shard's StatefulSet, Deployment or pod at the new PVC and waits until the shard's pod is Ready. The old
    PVC is never deleted; it is labelled C(ragops.io/evidence=<incident id>).
author:
  - ragops.recovery maintainers (@ragops)
options:
  mode:
    description:
      - V(local) restores into O(dest) on the host that runs the module; V(job) restores inside the cluster.
      - V(job) mode waits for the restore Job and then for the shard's pod, each for at most O(wait_timeout)
        seconds. With O(wait=false) it only creates the new PVC and starts the restore Job, returns the Job's
        name and state in C(run) of RV(job), and repoints nothing. Running the task again with O(wait=true) finishes
        the restore; it picks up the same Job (or its outcome), repoints the shard and waits until it is Ready.
    type: str
    choices: [local, job]
    default: local
  dest:
    description:
      - The shard's data directory to restore into (V(local) mode). Its parent must exist.
      - A mount point (a volume root) is only restored into when it is empty.
    type: path
  snapshot_id:
    description:
      - Restore this snapshot. By default the newest verified snapshot is restored.
    type: str
  fallback:
    description:
      - When the chosen snapshot fails verification, try the next older verified snapshot.
    type: bool
    default: true
  quarantine:
    description:
      - Mark a snapshot that fails verification as quarantined in S3, so that later runs skip it.
    type: bool
    default: true
  future_tolerance:
    description:
      - Seconds a snapshot's creation time may lie in the future before it is skipped.
    type: int
    default: 300
  keep_previous:
    description:
      - Keep the data that the restore replaces beside the target (evidence). With V(false) it is removed.
    type: bool
    default: true
  force:
    description:
      - Restore even when the target's completion marker already names the chosen snapshot's manifest.
    type: bool
    default: false
  incident_id:
    description:
      - Incident the restore belongs to; recorded in quarantine markers and, in V(job) mode, in the
        evidence label of the old PVC. Required in V(job) mode.
    type: str
    default: ""
  workload:
    description:
      - V(job) mode. The shard's workload as C(Kind/name), for example V(StatefulSet/vectorstore),
        V(Deployment/vectorstore-2) or V(Pod/vectorstore-2).
    type: str
  claim:
    description:
      - V(job) mode. The shard's current PVC. Defaults to C(data-<pod>) for a StatefulSet pod, otherwise
        the PVC mounted by the shard's pod at O(data_volume).
    type: str
  data_volume:
    description:
      - V(job) mode. Name of the pod's volume that holds the shard's data.
    type: str
    default: data
  storage_class:
    description:
      - V(job) mode. Storage class of the new PVC; the old PVC's class by default.
    type: str
  size_headroom:
    description:
      - V(job) mode. Percent added to the snapshot's data size when sizing the new PVC.
    type: int
    default: 20
  image:
    description:
      - V(job) mode. Image of the restore Job; it must contain this collection and its Python
        requirements (the collection's execution environment).
    type: str
    default: ghcr.io/ragops/recovery-ee:0.1.0
  s3_secret:
    description:
      - V(job) mode. Secret with C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and optionally
        C(AWS_SESSION_TOKEN)) for the Job. By default the module writes the credentials it was given into
        a Secret C(ragops-restore-<shard>-s3), labelled as managed by this collection.
    type: str
  shard_label:
    description:
      - V(job) mode. Pod label whose value is the shard id.
    type: str
    default: ragops.io/shard
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.s3_auth
  - ragops.recovery.snapshot
  - ragops.recovery.k8s_auth
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details: Chooses the snapshot and reports whether a restore would run; downloads and writes nothing.
  diff_mode:
    support: full
    details: The snapshot the target holds before and after (local), or the shard's claim (job).
  idempotent:
    support: full
    details: The completion marker (local) or the PVC's restore annotation (job) is checked first.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.snapshot_info
  - module: ragops.recovery.snapshot_create
"""

EXAMPLES = r"""
- name: Restore the newest verified snapshot of shard-2 on the host that holds its data
  ragops.recovery.snapshot_restore:
    shard: shard-2
    bucket: rag-snapshots
    dest: /var/lib/vectorstore/shard-2
    incident_id: INC-1042
  register: restored

- name: Restore shard-2 into a new PVC in the cluster and repoint its pod
  ragops.recovery.snapshot_restore:
    mode: job
    shard: shard-2
    bucket: rag-snapshots
    namespace: rag-prod
    workload: StatefulSet/vectorstore
    incident_id: INC-1042
    wait_timeout: 1800
"""

RETURN = r"""
snapshot:
  description: The snapshot restored (or that would be, in check mode); null when none is usable.
  returned: always
  type: dict
  sample: {"snapshot_id": "20261127T221003Z-1a2b", "created": "2026-11-27T22:10:03Z", "files": 48}
restore:
  description: What the restore did; absent when nothing was restored.
  returned: when a restore ran
  type: dict
  sample: {"files": 48, "bytes": 1073741824, "duration": 6.1, "throughput_mb_s": 176.0, "refetched_parts": 0,
           "resumed": false, "previous": "/var/lib/vectorstore/.shard-2.ragops-previous-20261127T221003Z-1a2b"}
tried:
  description: Every snapshot tried or skipped, in order, with the outcome and reason.
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "20261128T020000Z-aa01", "outcome": "failed verification",
            "reason": "File index/seg-3.bin does not match its SHA-256 in the manifest"},
           {"snapshot_id": "20261127T020000Z-bb02", "outcome": "restored", "reason": ""}]
quarantined:
  description: Snapshots marked quarantined by this run.
  returned: always
  type: list
  elements: str
job:
  description:
    - V(job) mode. The new PVC, the restore Job, the workload repointed and the evidence PVC.
    - With O(wait=false), C(run) holds the Job's name, its C(state) (V(running), V(succeeded) or V(failed))
      and its last C(progress) line; nothing is repointed yet.
  returned: in job mode
  type: dict
  sample: {"plan": {"claim": "data-vectorstore-2-r-20261127t221003z-1a2b",
                    "job": "ragops-restore-shard-2-20261127t221003z-1a2b"},
           "run": {"name": "ragops-restore-shard-2-20261127t221003z-1a2b", "duration": 41.2,
                   "bytes": 1073741824, "files": 48, "throughput_mb_s": 180.3},
           "pod": "vectorstore-2-r-20261127t221003z-1a2b",
           "previous": {"kind": "StatefulSet", "name": "vectorstore", "claim": "data-vectorstore-2"}}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils.audit import default_actor
from ansible_collections.ragops.recovery.plugins.module_utils.errors import RecoveryError
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import K8sClient
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.transport import KUBERNETES_IMPORT_ERROR, connect
from ansible_collections.ragops.recovery.plugins.module_utils.module import RecoveryModule, recovery_errors
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import catalog, job, restore, store
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import options as snapshot_options
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import Manifest
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import S3Store
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import Waiter


def argument_spec() -> dict[str, dict[str, t.Any]]:
    spec = snapshot_options.snapshot_spec()
    spec.update({
        "mode": {"type": "str", "choices": ["local", "job"], "default": "local"},
        "dest": {"type": "path"},
        "snapshot_id": {"type": "str"},
        "fallback": {"type": "bool", "default": True},
        "quarantine": {"type": "bool", "default": True},
        "future_tolerance": {"type": "int", "default": 300},
        "keep_previous": {"type": "bool", "default": True},
        "force": {"type": "bool", "default": False},
        "incident_id": {"type": "str", "default": ""},
        "workload": {"type": "str"},
        "claim": {"type": "str"},
        "data_volume": {"type": "str", "default": "data"},
        "storage_class": {"type": "str"},
        "size_headroom": {"type": "int", "default": 20},
        "image": {"type": "str", "default": "ghcr.io/ragops/recovery-ee:0.1.0"},
        "s3_secret": {"type": "str", "no_log": False},
        "shard_label": {"type": "str", "default": "ragops.io/shard"},
    })
    return spec


def _order(s3: S3Store, params: t.Mapping[str, t.Any]) -> t.Tuple[t.List[catalog.Snapshot], t.List[restore.Attempt]]:
    where = snapshot_options.location(params)
    snapshot_id = params["snapshot_id"] and snapshot_options.check_name("snapshot_id", params["snapshot_id"])
    found = store.load(s3, where, snapshot_options.utc_now(), params["future_tolerance"])
    return restore.candidates(found, snapshot_id, params["fallback"])


def _result(outcome: restore.Outcome, before: t.Dict[str, t.Any] | None, diff: bool) -> dict[str, t.Any]:
    now = snapshot_options.utc_now()
    result: dict[str, t.Any] = {
        "changed": outcome.changed,
        "snapshot": outcome.snapshot.to_dict(now) if outcome.snapshot else None,
        "tried": [attempt.to_dict() for attempt in outcome.attempts],
        "quarantined": outcome.quarantined,
    }
    if outcome.restored is not None:
        result["restore"] = outcome.restored.to_dict()
    if diff:
        after = outcome.snapshot.snapshot_id if outcome.snapshot else None
        result["diff"] = {"before": {"snapshot_id": (before or {}).get("snapshot_id")},
                          "after": {"snapshot_id": after if outcome.changed else (before or {}).get("snapshot_id")}}
    return result


def run_local(module: RecoveryModule, s3: S3Store) -> dict[str, t.Any]:
    params = module.params
    if not params["dest"]:
        raise RecoveryError("mode=local needs dest, the directory to restore into", reason="missing dest")
    order, skipped = _order(s3, params)
    request = restore.RestoreRequest(snapshot_options.location(params), params["dest"],
                                     catalog.format_time(snapshot_options.utc_now()), params["keep_previous"])
    before = restore.read_marker(params["dest"])
    record = {"incident_id": params["incident_id"], "by": default_actor()} if params["quarantine"] else None
    outcome = restore.local_restore(s3, request, order, skipped, record, check_mode=module.check_mode,
                                    force=params["force"])
    return _result(outcome, before, module._diff)


RUNNER_OPTIONS = ("shard", "bucket", "prefix", "endpoint_url", "region", "s3_validate_certs", "part_size",
                  "concurrency", "s3_read_timeout", "s3_attempts", "future_tolerance", "quarantine")


def job_request(params: t.Mapping[str, t.Any]) -> job.JobRequest:
    if not params["workload"] or not params["incident_id"]:
        raise RecoveryError("mode=job needs workload (for example StatefulSet/vectorstore) and incident_id",
                            reason="missing job options")
    if not params["s3_secret"] and not params["access_key"]:
        raise RecoveryError("mode=job needs S3 credentials for the Job: access_key and secret_key, or s3_secret",
                            reason="no credentials for the restore Job")
    credentials = {"AWS_ACCESS_KEY_ID": params["access_key"], "AWS_SECRET_ACCESS_KEY": params["secret_key"],
                   "AWS_SESSION_TOKEN": params["session_token"]}
    return job.JobRequest(
        namespace=params["namespace"], shard=params["shard"], workload=params["workload"],
        shard_label=params["shard_label"], data_volume=params["data_volume"], image=params["image"],
        incident_id=params["incident_id"], headroom=params["size_headroom"], storage_class=params["storage_class"],
        s3_secret=params["s3_secret"], credentials={k: v for k, v in credentials.items() if v},
        runner={name: params[name] for name in RUNNER_OPTIONS})


def _job_result(changed: bool, snapshot: catalog.Snapshot, target: job.Target, plan: job.Plan,
                attempts: t.List[restore.Attempt], quarantined: t.List[str], diff: bool) -> dict[str, t.Any]:
    outcome = restore.Outcome(changed, snapshot, attempts=attempts, quarantined=quarantined)
    result = _result(outcome, None, False)
    result["job"] = {"plan": plan.to_dict(), "previous": {"kind": target.kind, "name": target.name,
                                                          "pod": target.pod_name,
                                                          "claim": target.claim["metadata"]["name"]}}
    if diff:
        after = plan.claim_name if changed else target.claim["metadata"]["name"]
        result["diff"] = {"before": {"claim": target.claim["metadata"]["name"]}, "after": {"claim": after}}
    return result


def _job_failure(s3: S3Store, params: t.Mapping[str, t.Any], snapshot: catalog.Snapshot,
                 error: RecoveryError) -> t.Tuple[t.List[restore.Attempt], t.List[str]]:
    """What a failed restore Job tried and quarantined.

    The log read is the Job's last pod: a retried pod finds the snapshot already quarantined by the first
    one and only says it skipped it, so the bucket decides whether this snapshot was quarantined.
    """
    tried = [restore.Attempt(**a) for a in error.partial.get("tried") or []]
    marked = list(error.partial.get("quarantined") or [])
    if snapshot.snapshot_id not in marked and store.is_quarantined(s3, snapshot_options.location(params),
                                                                   snapshot.snapshot_id):
        marked.append(snapshot.snapshot_id)
        tried = [restore.Attempt(snapshot.snapshot_id, "failed verification",
                                 "quarantined by the restore (%s)" % error.resource)]
    return tried, marked


def run_job(module: RecoveryModule, s3: S3Store, client: K8sClient) -> dict[str, t.Any]:
    params = module.params
    request = job_request(params)
    order, attempts = _order(s3, params)
    quarantined: t.List[str] = []
    waiter = Waiter(timeout=params["wait_timeout"], interval=params["wait_sleep"])
    for snapshot in order:
        manifest = t.cast(Manifest, snapshot.manifest)
        target = job.find_target(client, request.namespace, request.workload, request.shard_label, request.shard,
                                 request.data_volume)
        plan = job.make_plan(target, request.namespace, request.shard, snapshot.snapshot_id,
                             snapshot.manifest_sha256, manifest.total_bytes, request.headroom, request.incident_id,
                             request.s3_secret)
        restored = job.already_restored(target, snapshot.manifest_sha256)
        if restored or module.check_mode:
            return _job_result(not restored, snapshot, target, plan, attempts, quarantined, module._diff)
        if not params["wait"]:
            result = _job_result(True, snapshot, target, plan, attempts, quarantined, module._diff)
            result["job"].update(job.restore_started(client, request, plan, target))
            return result
        try:
            done = job.restore_in_cluster(client, request, plan, target, waiter)
        except RecoveryError as error:
            tried, marked = _job_failure(s3, params, snapshot, error)
            attempts += tried
            quarantined += marked
            if not marked or not params["fallback"]:
                error.partial = dict(error.partial, tried=[a.to_dict() for a in attempts], quarantined=quarantined)
                raise
            continue
        attempts.append(restore.Attempt(snapshot.snapshot_id, "restored"))
        result = _job_result(True, snapshot, target, plan, attempts, quarantined, module._diff)
        result["job"].update(done)
        return result
    raise restore.no_snapshot(restore.RestoreRequest(snapshot_options.location(params), "", ""),
                              restore.Outcome(False, None, attempts=attempts, quarantined=quarantined))


def main() -> None:
    module = RecoveryModule(argument_spec(), groups=["s3", "k8s", "wait"],
                            libraries=dict(snapshot_options.libraries(zstd=True),
                                           kubernetes=KUBERNETES_IMPORT_ERROR),
                            required_if=[["mode", "local", ["dest"]]])
    with recovery_errors(module):
        s3 = snapshot_options.open_store(module.params)
        if module.params["mode"] == "job":
            result = run_job(module, s3, K8sClient(connect(module.params)))
        else:
            result = run_local(module, s3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
