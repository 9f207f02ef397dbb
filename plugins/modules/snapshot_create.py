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
  - Runs where the data is, on the host or inside a Job in the cluster.
author:
  - ragops.recovery maintainers (@ragops)
options:
  path:
    description:
      - The shard's data directory.
    type: path
    required: true
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
      - zstd worker threads; V(0) uses every CPU.
    type: int
    default: 0
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.s3_auth
  - ragops.recovery.snapshot
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Reads the directory and reports what the snapshot would hold; uploads nothing.
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
  - The Kubernetes connection options are accepted and not used, so that the C(group/ragops.recovery.rag)
    entry of a play's C(module_defaults) applies to this module too; its S3 settings go in the
    C(group/ragops.recovery.s3) entry.
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
"""

import os
import socket

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import audit
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import catalog
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import create
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import layout
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    params as snapshot_params,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import s3
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import store


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "path": {"type": "path", "required": True},
            "compression_level": {"type": "int", "default": 3},
            "compression_threads": {"type": "int", "default": 0},
            "snapshot_id": {"type": "str"},
        },
        groups=("s3", "snapshot", "k8s"),
    )


def existing(
    s3: s3.S3Store, where: layout.ShardLocation, snapshot_id: str
) -> base.Result | None:
    """The snapshot of that id when it is complete (verified or not), else ``None``."""
    now = audit.utc_now()
    found = store.load(s3, where, now, 300, only=snapshot_id).get(snapshot_id)
    if found is None or found.status == catalog.INCOMPLETE:
        return None
    return dict(found.to_dict(now), url=where.url(snapshot_id), shard=where.shard)


def run_module(module: base.RecoveryModule) -> base.Result:
    params = module.params
    s3 = module.s3_store(transfer=snapshot_params.transfer(params))
    where = snapshot_params.location(params)
    given = params["snapshot_id"]
    if given is None:
        snapshot_id = layout.new_snapshot_id()
    else:
        snapshot_id = snapshot_params.check_name("snapshot_id", given)
        found = existing(s3, where, snapshot_id)
        if found is not None:
            return {"changed": False, "snapshot": found}
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
        threads=params["compression_threads"] or -1,
        source=source,
    )
    return create.create_snapshot(s3, request).to_result(where.url(snapshot_id))


def main() -> None:
    libraries = {create.ZSTD_REQUIREMENT: create.ZSTD_IMPORT_ERROR}
    base.RecoveryModule(argument_spec(), libraries=libraries).run(run_module)


if __name__ == "__main__":
    main()
