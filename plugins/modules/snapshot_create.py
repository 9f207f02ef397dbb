#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_create
short_description: Snapshot a vectorstore shard's data directory into S3
version_added: 0.1.0
description:
  - Archives the shard's data directory O(path) as one stream (tar, then zstd, then an S3 multipart
    upload) without a temporary copy, hashing every file with SHA-256 on the way.
  - Writes C(<prefix>/<shard>/<snapshot-id>/data.tar.zst), then C(SHA256SUMS), then C(manifest.json)
    last and only if no manifest exists yet; the manifest's presence marks the snapshot complete.
  - A file that changes, appears or disappears while the snapshot is taken fails the task; the upload
    is aborted and nothing is published.
  - Only directories and regular files are archived; a symbolic link, device or socket in O(path) fails
    the task. The restore completion marker C(.ragops-restore.json) is left out.
  - A file or directory name with a backslash, a control character (a newline, a tab, ...) or a byte that
    is not UTF-8 fails the task before anything is uploaded (in check mode too), naming the entry; such
    names would not restore. The manifest is read back as a restore reads it before it is published, so
    a snapshot that the restore would call invalid is never published.
  - In V(local) mode (the default) the module runs where the data is, on the host or inside a pod.
  - In V(job) mode (Kubernetes) a Job next to the shard's volume does the same streaming snapshot inside
    O(image); the data never flows through the controller. The Job reads either a CSI VolumeSnapshot of the
    shard's PVC (restored into a clone PVC owned by the Job) where the cluster serves the
    C(snapshot.storage.k8s.io) API and offers a VolumeSnapshotClass for the claim's CSI driver, or else the
    live PVC mounted read-only on the shard pod's node, with the shard quiesced through its admin endpoint
    (O(quiesce)) while it is copied. RV(job.source) says which was used and why.
  - In V(job) mode the shard's pod (label O(shard_label)) must be Ready; a shard that does not serve may
    hold a damaged index and is not snapshotted.
author:
  - ragops.recovery maintainers (@ragops)
options:
  mode:
    description:
      - V(local) archives O(path) on the host that runs the module; V(job) runs a snapshot Job in the cluster
        next to the shard's volume.
      - V(job) mode waits for the Job for at most O(wait_timeout) seconds. With O(wait=false) it only starts
        the Job and returns its name and state in C(run) of RV(job), and the generated id in RV(snapshot);
        running the task again with that O(snapshot_id) and O(wait=true) waits for the same Job.
    type: str
    choices: [local, job]
    default: local
  path:
    description:
      - The shard's data directory (V(local) mode, required there).
    type: path
  snapshot_id:
    description:
      - Id of the new snapshot. By default a new one is generated from the current UTC time
        (V(20261127T221003Z-1a2b)), so every run creates a snapshot.
      - With a given id, a run finds an existing complete snapshot of that id and reports no change.
    type: str
  compression_level:
    description:
      - zstd compression level (1 fastest, 19 smallest).
    type: int
    default: 3
  compression_threads:
    description:
      - zstd worker threads; V(-1) uses every CPU.
      - V(0) uses one fewer than the CPUs the task may run on, so that hashing, signing and uploading keep a
        CPU (and on one CPU compresses in the thread that reads the files).
    type: int
    default: 0
  source:
    description:
      - V(job) mode. What the Job reads. V(auto) uses a VolumeSnapshot where the cluster offers one for the
        claim's CSI driver and else the live volume, quiesced; V(volume_snapshot) fails when none is offered;
        V(live) always reads the live volume, quiesced.
      - Finding the VolumeSnapshotClass needs C(list) on the cluster-scoped C(volumesnapshotclasses); without
        it, name the class in O(volume_snapshot_class).
    type: str
    choices: [auto, volume_snapshot, live]
    default: auto
  volume_snapshot_class:
    description:
      - V(job) mode. The VolumeSnapshotClass to use; by default the one for the claim's CSI driver (the
        default class first).
    type: str
  claim:
    description:
      - V(job) mode. The shard's PVC; by default the PVC mounted by the shard's pod at O(data_volume).
    type: str
  data_volume:
    description:
      - V(job) mode. Name of the pod's volume that holds the shard's data.
    type: str
    default: data
  data_path:
    description:
      - V(job) mode. The data directory inside the volume; V("") is the volume's root.
    type: str
    default: ""
  image:
    description:
      - V(job) mode. Image of the snapshot Job; it must contain this collection and its Python requirements
        (the collection's execution environment, the same default as M(ragops.recovery.snapshot_restore)).
    type: str
    default: localhost/ragops-recovery-ee:0.1.0
  s3_secret:
    description:
      - V(job) mode. Secret with C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and optionally
        C(AWS_SESSION_TOKEN)) for the Job. By default the module writes the credentials it was given into a
        Secret C(ragops-snapshot-<shard>-s3), labelled as managed by this collection.
    type: str
  job_ttl:
    description:
      - V(job) mode. Seconds the finished Job (with its pod, and the VolumeSnapshot and clone PVC it owns) is
        kept before Kubernetes removes it.
    type: int
    default: 86400
  quiesce:
    description:
      - V(job) mode, live volume. The shard's admin calls that hold its writes while the Job copies the volume
        (the stack contract, C(docs/contract.md)). The hold lasts at most O(quiesce.seconds); the shard lifts it
        by itself then, so a Job that dies never leaves the shard refusing writes.
    type: dict
    default: {}
    suboptions:
      url:
        description:
          - Base URL of the shard's admin endpoint as the Job reaches it; by default the shard pod's address and
            O(quiesce.port).
        type: str
      port:
        description: Port of the shard's admin endpoint on its pod.
        type: int
        default: 8080
      path:
        description: Path of the quiesce call, a C(POST) whose JSON body gives O(quiesce.seconds) as C(seconds).
        type: str
        default: /admin/quiesce
      resume_path:
        description: Path of the resume call (C(POST)).
        type: str
        default: /admin/resume
      seconds:
        description: Longest the shard holds its writes for one snapshot.
        type: int
        default: 3600
      timeout:
        description: Seconds each admin call may take.
        type: float
        default: 30.0
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
    details:
      - V(local) reads the directory and reports what the snapshot would hold; uploads nothing.
      - V(job) finds the shard's pod and claim, chooses the source and reports the Job it would start;
        creates nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Each run creates a new snapshot, unless O(snapshot_id) names one that already exists.
  action_group:
    support: full
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
notes:
  - In V(local) mode the Kubernetes connection and wait options are accepted and not used, so that the
    C(group/ragops.recovery.rag) entry of a play's C(module_defaults) applies to this module too; its S3
    settings go in the C(group/ragops.recovery.s3) entry.
seealso:
  - module: ragops.recovery.snapshot_info
  - module: ragops.recovery.snapshot_restore
  - module: ragops.recovery.snapshot_prune
"""

EXAMPLES = r"""
- name: Snapshot shard-2's data directory
  ragops.recovery.snapshot_create:
    shard: shard-2
    path: /var/lib/vectorstore/shard-2
    bucket: rag-snapshots
    endpoint_url: https://minio.example.com
  register: snap

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ snap.snapshot.url }} ({{ snap.snapshot.files }} files, {{ snap.snapshot.archive_size }} bytes)"

- name: Snapshot shard-2 by a Job next to its volume in the cluster
  ragops.recovery.snapshot_create:
    mode: job
    shard: shard-2
    bucket: rag-snapshots
    namespace: rag-prod
    wait_timeout: 3600
  register: snap

- name: Say what the Job read
  ansible.builtin.debug:
    msg: "{{ snap.job.source.method }}: {{ snap.job.source.reason }}"
"""

RETURN = r"""
snapshot:
  description: The snapshot (in check mode, what it would hold).
  returned: always
  type: dict
  contains:
    snapshot_id:
      description: Id of the snapshot.
      type: str
      sample: 20261127T221003Z-1a2b
    shard:
      description: The shard.
      type: str
      sample: shard-2
    url:
      description: C(s3://) location of the snapshot's objects.
      type: str
      sample: s3://rag-snapshots/snapshots/shard-2/20261127T221003Z-1a2b/
    created:
      description: Creation time (UTC) recorded in the manifest.
      type: str
      sample: "2026-11-27T22:10:03Z"
    files:
      description: Number of regular files.
      type: int
      sample: 48
    directories:
      description: Number of directories.
      type: int
      sample: 3
    bytes:
      description: Total size of the files.
      type: int
      sample: 1073741824
    archive_size:
      description: Size of C(data.tar.zst); absent in check mode.
      type: int
      sample: 402653184
    archive_sha256:
      description: SHA-256 of C(data.tar.zst); absent in check mode.
      type: str
    manifest_sha256:
      description: SHA-256 of C(manifest.json); absent in check mode.
      type: str
    source:
      description: Host and path the snapshot was taken from.
      type: dict
      sample: {"host": "node-1", "path": "/var/lib/vectorstore/shard-2"}
duration:
  description: Seconds the snapshot took.
  returned: when a snapshot was created
  type: float
  sample: 4.2
throughput_mb_s:
  description: File bytes archived per second, in MB/s.
  returned: when a snapshot was created
  type: float
  sample: 250.3
job:
  description:
    - V(job) mode. What the Job read and did; with O(wait=false) (and in check mode) RV(snapshot) holds only the
      planned id, shard and URL.
  returned: in job mode, unless the snapshot already existed
  type: dict
  contains:
    source:
      description:
        - What the Job reads, C(method) V(volume_snapshot) or V(live), C(reason) why, and the
          C(volume_snapshot_class) used.
      type: dict
      sample: {"method": "live", "reason": "the cluster has no VolumeSnapshot API (snapshot.storage.k8s.io):
        the live volume, quiesced"}
    plan:
      description: The Job and, for a VolumeSnapshot, the snapshot and the clone PVC (of the same name).
      type: dict
      sample: {"job": "ragops-snapshot-shard-2-20261127t221003z-1a2b", "snapshot_id": "20261127T221003Z-1a2b"}
    pod:
      description: The shard's pod whose volume was read.
      type: str
    claim:
      description: The shard's PVC.
      type: str
    run:
      description: The Job's name, C(state) (V(running), V(succeeded) or V(failed)), and its C(duration) or last
        C(progress) line.
      type: dict
    quiesce:
      description: For the live volume, the quiesce call, how long the shard held its writes and whether the
        resume call succeeded; null otherwise.
      type: dict
      sample: {"url": "http://10.1.2.3:8080/admin/quiesce", "held_seconds": 4.2, "max_seconds": 3600,
               "resumed": true}
"""

import os
import socket
import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        createjob,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import s3

# The options a snapshot Job gets from the module besides the transfer's (its
# credentials come from a Secret).
RUNNER_OPTIONS = ("compression_level", "compression_threads")


def job_options() -> argspec.Spec:
    """The options of ``mode=job``: the shard's volume and the snapshot Job."""
    quiesce = {
        "url": {"type": "str"},
        "port": {"type": "int", "default": 8080},
        "path": {"type": "str", "default": "/admin/quiesce"},
        "resume_path": {"type": "str", "default": "/admin/resume"},
        "seconds": {"type": "int", "default": 3600},
        "timeout": {"type": "float", "default": 30.0},
    }
    return {
        "source": {
            "type": "str",
            "choices": ["auto", "volume_snapshot", "live"],
            "default": "auto",
        },
        "volume_snapshot_class": {"type": "str"},
        "claim": {"type": "str"},
        "data_volume": {"type": "str", "default": "data"},
        "data_path": {"type": "str", "default": ""},
        "image": {"type": "str", "default": argspec.EE_IMAGE},
        "s3_secret": {"type": "str", "no_log": False},
        "job_ttl": {"type": "int", "default": 86400},
        "quiesce": {"type": "dict", "default": {}, "options": quiesce},
    }


def argument_spec() -> argspec.ArgumentSpec:
    options: argspec.Spec = {
        "mode": {"type": "str", "choices": ["local", "job"], "default": "local"},
        "path": {"type": "path"},
        "compression_level": {"type": "int", "default": 3},
        "compression_threads": {"type": "int", "default": 0},
        "snapshot_id": {"type": "str"},
    }
    return argspec.ArgumentSpec(
        options=dict(options, **job_options()),
        groups=("s3", "snapshot", "k8s", "wait", "shard"),
        required_if=[
            ["mode", "local", ["path"]],
            # The snapshot Job needs S3 credentials of its own.
            ["mode", "job", ["s3_secret", "access_key"], True],
        ],
    )


def run_local(
    module: base.RecoveryModule, s3_store: s3.S3Store, snapshot_id: str
) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        create,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    params = module.params
    where = snapshot_params.location(params)
    source = {"host": socket.gethostname(), "path": os.path.abspath(params["path"])}
    if module.check_mode:
        planned = dict(
            create.describe_tree(create.scan(params["path"])),
            snapshot_id=snapshot_id,
            shard=where.shard,
            url=where.url(snapshot_id),
            source=source,
        )
        return {"changed": True, "snapshot": planned}
    request = create.CreateRequest(
        where,
        params["path"],
        snapshot_id,
        audit.timestamp(),
        level=params["compression_level"],
        threads=params["compression_threads"],
        source=source,
    )
    return create.create_snapshot(s3_store, request).to_result(where.url(snapshot_id))


def job_request(
    module: base.RecoveryModule, snapshot_id: str
) -> createjob.SnapshotJobRequest:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        createjob,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        jobkit,
    )

    params: t.Mapping[str, t.Any] = module.params
    return argspec.from_params(
        createjob.SnapshotJobRequest,
        params,
        snapshot_id=snapshot_id,
        credentials=jobkit.credentials_of(params),
        runner={
            name: params[name] for name in (*jobkit.TRANSFER_OPTIONS, *RUNNER_OPTIONS)
        },
        quiesce=params["quiesce"] or {},
        check_mode=module.check_mode,
    )


def run_job(module: base.RecoveryModule, snapshot_id: str) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        createjob,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )

    where = snapshot_params.location(module.params)
    outcome = createjob.snapshot_by_job(
        module.k8s_client(),
        job_request(module, snapshot_id),
        where.url(snapshot_id),
        module.waiter(),
    )
    return outcome.to_result()


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        layout,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        params as snapshot_params,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import store

    params = module.params
    s3 = module.s3_store(transfer=snapshot_params.transfer(params))
    given = params["snapshot_id"]
    if given is None:
        snapshot_id = layout.new_snapshot_id()
    else:
        snapshot_id = snapshot_params.check_name("snapshot_id", given)
        found = store.complete(s3, snapshot_params.location(params), snapshot_id)
        if found is not None:
            return {"changed": False, "snapshot": found}
    if params["mode"] == "job":
        return run_job(module, snapshot_id)
    return run_local(module, s3, snapshot_id)


def main() -> None:
    module = base.RecoveryModule(argument_spec(), libraries=argspec.zstd_library)
    module.run(run_module)


if __name__ == "__main__":
    main()
