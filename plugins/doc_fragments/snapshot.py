# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Where a shard's snapshots live and how they move; the spec is the "snapshot" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  shard:
    description:
      - Id of the shard (for example V(shard-2)). Letters, digits, V(.), V(_) and V(-) only.
    type: str
    required: true
  bucket:
    description:
      - S3 bucket holding the snapshots.
    type: str
    required: true
  prefix:
    description:
      - Key prefix under which each shard's snapshots live, as C(<prefix>/<shard>/<snapshot-id>/).
    type: str
    default: snapshots
  part_size:
    description:
      - Size in MiB of each part of a multipart upload. A multiple of 8 (the size of the chunks the
        manifest hashes).
    type: int
    default: 16
  concurrency:
    description:
      - How many parts are uploaded or downloaded in parallel. Memory use is about
        O(part_size) times (O(concurrency) + 1) when creating and 8 MiB times (O(concurrency) + 1)
        when restoring.
    type: int
    default: 4
  s3_read_timeout:
    description:
      - Seconds a request to S3 may wait for data before it counts as a lost connection and is retried.
    type: float
    default: 60
  s3_attempts:
    description:
      - How many times a request to S3 that is safe to repeat is tried (HTTP 429, 5xx such as
        C(503 SlowDown), lost or stalled connections, and parts that arrive damaged).
    type: int
    default: 5
notes:
  - The snapshot format and the layout in the bucket are described in the collection's C(docs/snapshots.md);
    a snapshot can be verified and restored with C(zstd), C(tar) and C(sha256sum) alone.
requirements:
  - zstandard >= 0.22.0 (Python library)
"""
