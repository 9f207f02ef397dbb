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
  - Files and directories get the manifest's permission bits; setuid, setgid and sticky bits are never
    restored, and the files belong to the user the module runs as (the archive's uid and gid are not used).
  - Only after everything is verified and flushed to disk is the staging directory swapped into place
    (an atomic exchange where the kernel supports it). The old data is kept beside the target as
    C(.<name>.ragops-previous-<snapshot>-<time>) unless O(keep_previous=false). A completion marker
    C(.ragops-restore.json) in the target holds the manifest's SHA-256.
  - A run against a target whose marker names the same manifest reports no change. An interrupted run
    leaves the target untouched; the next run finishes a fully staged copy or stages afresh.
  - When the chosen snapshot fails verification (a damaged file, or a tar header or manifest field that
    does not parse) it is marked quarantined in S3 (a C(QUARANTINED) object beside it; nothing is deleted),
    the staging directory is removed and the next older verified snapshot is tried; RV(tried) says so.
  - When no snapshot can be restored the task fails naming every candidate with its status and reason
    (V(invalid), V(incomplete), V(future), V(quarantined), or what failed verification).
  - In V(job) mode (Kubernetes), creates a new PVC sized from the manifest plus O(size_headroom) percent (at
    least the request of the shard's claim, which the restored volume must fit), runs a restore Job that uses
    V(local) mode inside O(image) and waits for it with progress.
  - A shard run by a StatefulSet or a Deployment then ends under its controller, on the claim it mounts
    (for a StatefulSet the name its C(volumeClaimTemplates) give, C(<template>-<set>-<ordinal>)). In order,
    each step checked first so that a re-run continues where a run stopped - the old volume's reclaim
    policy is set to C(Retain) and it is labelled C(ragops.io/evidence=<incident id>) (the evidence); the
    restored volume is set to C(Retain) too; the finished restore Job and its PVC are deleted; the restored
    volume is pre-bound to the shard's claim; the shard's claim is deleted (its volume stays) and the pods
    that mount it, so that their controller starts them again; the claim is created again on the restored
    volume; once the controller's pod is Ready the restored volume gets its class's reclaim policy back and
    the claim is annotated with the manifest's SHA-256 (what a later run checks). Nothing is changed about
    the shard before the restored volume is verified and known to fit the claim; a failure afterwards says
    how to continue or to put the old volume back.
  - In V(job) mode, before the snapshot is chosen, a snapshot Job of the shard that still runs, or that ended
    after the incident's hold on pruning was set, is waited for (it read a failing shard) and what it published
    is marked quarantined and listed in RV(tried) as V(skipped); it is never restored.
  - In V(job) mode, a pod that still mounts the shard's claim and is not run by the shard's workload (a debug
    pod, a backup agent) stops the restore before its Job runs and again before the claim is released, named
    in the error; nothing of the shard is changed. A restore Job of an earlier run that failed (its pods killed
    more often than it retries them, or a cause since fixed) is started again, its failed pods kept for their
    logs until the restore is done.
  - A shard run by a bare pod (V(Pod/<name>)) is replaced by a fresh pod on the new PVC, the Services that
    selected only the old pod select the fresh one, and the old pod is labelled C(ragops.io/serving=false)
    and C(ragops.io/replaced-by=<fresh pod>); the old PVC is labelled C(ragops.io/evidence=<incident id>).
  - Volumes are cluster-scoped; job mode reads, labels and patches PersistentVolumes, which the ClusterRole
    C(ragops-recovery-volumes) of C(meta/rbac/shard-recovery.yaml) allows (see C(docs/rbac.md)).
author:
  - ragops.recovery maintainers (@ragops)
options:
  mode:
    description:
      - V(local) restores into O(dest) on the host that runs the module; V(job) restores inside the cluster.
      - V(job) mode waits for the restore Job and then for the shard's pod, each for at most O(wait_timeout)
        seconds. With O(wait=false) it only creates the new PVC and starts the restore Job, returns the Job's
        name and state in C(run) of RV(job), and changes nothing of the shard. Running the task again with
        O(wait=true) finishes the restore; it picks up the same Job (or its outcome), puts the shard on the
        restored volume and waits until it is Ready.
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
      - With O(mode=job), also when the chosen snapshot was deleted from the bucket while its restore Job
        read it (its manifest is gone once the Job failed); RV(tried) lists it as V(skipped) with the reason.
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
        evidence label of the old volume (or of the old PVC of a bare pod). Required in V(job) mode.
    type: str
  workload:
    description:
      - V(job) mode. The shard's workload as C(Kind/name), for example V(StatefulSet/vectorstore),
        V(Deployment/vectorstore-2) or V(Pod/vectorstore-2).
    type: str
  claim:
    description:
      - V(job) mode. The shard's claim, whose volume the restore replaces. By default the PVC mounted
        by the shard's pod at O(data_volume) (C(data-<pod>) for a StatefulSet's pod).
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
      - The default is the tag C(make ee) gives the execution environment it builds from this
        collection; push that image to a registry the cluster pulls from and give its reference
        here (the playbooks pass the inventory's C(ragops_ee_image)).
    type: str
    default: localhost/ragops-recovery-ee:0.1.0
  s3_secret:
    description:
      - V(job) mode. Secret with C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and optionally
        C(AWS_SESSION_TOKEN)) for the Job. By default the module writes the credentials it was given into
        a Secret C(ragops-restore-<shard>-s3), labelled as managed by this collection.
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
    details: Chooses the snapshot and reports whether a restore would run; downloads and writes nothing.
  diff_mode:
    support: full
    details: The snapshot the target holds before and after (local), or the shard's claim and the snapshot it
      holds (job).
  idempotent:
    support: full
    details: The completion marker (local) or the claim's manifest annotation (job) is checked first; in job mode
      every step of putting the restored volume under the controller is checked before it is taken.
  action_group:
    support: full
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
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

- name: Restore shard-2 in the cluster and put it back under its StatefulSet on the restored volume
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
summary:
  description:
    - One line naming the snapshot restored (or that would be) and every snapshot tried with its
      outcome, for a recovery's account of what it tried.
    - In check mode in V(job) mode, what the restore would create instead (the snapshot, the new PVC
      and its size, the restore Job, the PVC kept as evidence), for a recovery's plan.
  returned: always
  type: str
  sample: "restore: snapshot 20261127T020000Z-bb02 (tried 20261128T020000Z-aa01 failed verification,
    quarantined in S3; 20261127T020000Z-bb02 restored)"
tried:
  description:
    - Every snapshot tried or skipped, in order, with the outcome and reason.
    - "A named snapshot that is not verified, or every snapshot when none is, is V(skipped) with its
      catalog status and reason, for example V(invalid: files[0].mtime is missing or not a int)."
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
    - V(job) mode. The plan (the restore's PVC and size, the Job, the pod, and for a shard under a controller
      C(bind_claim), the claim the restored volume ends on, and C(steps), each step with its object), the
      shard as it was (C(previous)), and what was done.
    - For a shard under a controller, C(steps) lists every step taken with its C(status) (V(done) or
      V(already done)), C(volume) the restored volume and C(evidence) the old volume kept as evidence.
    - For a bare pod, C(repointed) lists the fresh pod and the Services changed, C(evidence) the old PVC.
    - With O(wait=false), C(run) holds the Job's name, its C(state) (V(running), V(succeeded) or V(failed))
      and its last C(progress) line; nothing is changed of the shard yet.
  returned: in job mode
  type: dict
  sample: {"plan": {"claim": "data-vectorstore-2-r-20261127t221003z-1a2b", "size": "1024Mi",
                    "job": "ragops-restore-shard-2-20261127t221003z-1a2b", "pod": "vectorstore-2",
                    "bind_claim": "data-vectorstore-2", "snapshot_id": "20261127T221003Z-1a2b"},
           "run": {"name": "ragops-restore-shard-2-20261127t221003z-1a2b", "duration": 41.2,
                   "bytes": 1073741824, "files": 48, "throughput_mb_s": 180.3},
           "steps": [{"step": "keep evidence", "object": "PersistentVolume pvc-0b1c",
                      "change": "reclaim policy Retain; label ragops.io/evidence=inc-1042", "status": "done"},
                     {"step": "claim", "object": "PersistentVolumeClaim rag-prod/data-vectorstore-2",
                      "change": "created on volume pvc-7d2e", "status": "done"}],
           "volume": "pvc-7d2e", "pod": "vectorstore-2",
           "evidence": {"volume": "pvc-0b1c", "claim": "data-vectorstore-2", "label": "ragops.io/evidence=inc-1042"},
           "previous": {"kind": "StatefulSet", "name": "vectorstore", "pod": "vectorstore-2",
                        "claim": "data-vectorstore-2"}}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import job
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import s3

# The options a restore Job gets from the module besides the transfer's (its
# credentials come from a Secret).
RUNNER_OPTIONS = ("future_tolerance", "quarantine")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_SESSION_TOKEN": "session_token",
}


def job_options() -> argspec.Spec:
    """The options of ``mode=job``: the shard's workload and the restore Job."""
    return {
        "workload": {"type": "str"},
        "claim": {"type": "str"},
        "data_volume": {"type": "str", "default": "data"},
        "storage_class": {"type": "str"},
        "size_headroom": {"type": "int", "default": 20},
        "image": {"type": "str", "default": argspec.EE_IMAGE},
        "s3_secret": {"type": "str", "no_log": False},
    }


def argument_spec() -> argspec.ArgumentSpec:
    options: argspec.Spec = {
        "mode": {"type": "str", "choices": ["local", "job"], "default": "local"},
        "dest": {"type": "path"},
        "snapshot_id": {"type": "str"},
        "fallback": {"type": "bool", "default": True},
        "quarantine": {"type": "bool", "default": True},
        "future_tolerance": {"type": "int", "default": 300},
        "keep_previous": {"type": "bool", "default": True},
        "force": {"type": "bool", "default": False},
        "incident_id": {"type": "str"},
    }
    return argspec.ArgumentSpec(
        options=dict(options, **job_options()),
        groups=("s3", "snapshot", "k8s", "wait", "shard"),
        required_if=[
            ["mode", "local", ["dest"]],
            ["mode", "job", ["workload", "incident_id"]],
            # The restore Job needs S3 credentials of its own.
            ["mode", "job", ["s3_secret", "access_key"], True],
        ],
    )


def snapshot_id(params: t.Mapping[str, t.Any]) -> str | None:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    given = params["snapshot_id"]
    return snapshot_params.check_name("snapshot_id", given) if given else None


def run_local(module: base.RecoveryModule, store: s3.S3Store) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        restore,
    )

    params = module.params
    where = snapshot_params.location(params)
    order, skipped = restore.load_candidates(
        store,
        where,
        snapshot_id(params),
        params["fallback"],
        params["future_tolerance"],
    )
    request = restore.RestoreRequest(
        where, params["dest"], audit.timestamp(), params["keep_previous"]
    )
    before = (restore.read_marker(params["dest"]) or {}).get("snapshot_id")
    record = None
    if params["quarantine"]:
        record = {
            "incident_id": params["incident_id"] or "",
            "by": audit.default_actor(),
        }
    outcome = restore.local_restore(
        store,
        request,
        order,
        skipped,
        record,
        check_mode=module.check_mode,
        force=params["force"],
    )
    result = outcome.to_result()
    if module._diff:
        result["diff"] = outcome.diff(before)
    return result


def job_request(params: t.Mapping[str, t.Any]) -> job.JobRequest:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import job
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        jobkit,
    )

    credentials = {
        env: params[name] for env, name in CREDENTIALS.items() if params[name]
    }
    return argspec.from_params(
        job.JobRequest,
        params,
        headroom=params["size_headroom"],
        credentials=credentials,
        runner={
            name: params[name] for name in (*jobkit.TRANSFER_OPTIONS, *RUNNER_OPTIONS)
        },
    )


def run_job(module: base.RecoveryModule, store: s3.S3Store) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        jobmode,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    params = module.params
    request = argspec.from_params(
        jobmode.JobModeRequest,
        params,
        job=job_request(params),
        location=snapshot_params.location(params),
        snapshot_id=snapshot_id(params),
        check_mode=module.check_mode,
        diff=module._diff,
    )
    outcome = jobmode.restore_by_job(
        module.k8s_client(), store, request, module.waiter()
    )
    return outcome.to_result()


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    store = module.s3_store(transfer=snapshot_params.transfer(module.params))
    if module.params["mode"] == "job":
        return run_job(module, store)
    return run_local(module, store)


def main() -> None:
    module = base.RecoveryModule(argument_spec(), libraries=argspec.zstd_library)
    module.run(run_module)


if __name__ == "__main__":
    main()
