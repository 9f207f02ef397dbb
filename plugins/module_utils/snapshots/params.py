# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the snapshot option group builds: the shard's place in the bucket and the
transfer.

The options are the ``snapshot`` group of ``options.py`` (doc fragment
``ragops.recovery.snapshot``); the restore Job's entry point reads the same keys.
"""

from __future__ import annotations

import typing as t

from ..errors import RecoveryError
from . import layout, s3
from .manifest import CHUNK_SIZE

Params = t.Mapping[str, t.Any]


def check_name(kind: str, value: str) -> str:
    if not layout.valid_name(value):
        raise RecoveryError(
            "Invalid %s %r: use letters, digits, '.', '_' and '-' only" % (kind, value),
            reason="invalid %s" % kind,
        )
    return value


def location(params: Params) -> layout.ShardLocation:
    shard = check_name("shard", params["shard"])
    return layout.ShardLocation(params["bucket"], params["prefix"] or "", shard)


def transfer(params: Params) -> s3.Transfer:
    part_size = int(params["part_size"]) * s3.MIB
    if part_size <= 0 or part_size % CHUNK_SIZE:
        raise RecoveryError(
            "part_size must be a positive multiple of %d (MiB)"
            % (CHUNK_SIZE // s3.MIB),
            reason="invalid part_size",
        )
    if params["concurrency"] < 1 or params["s3_attempts"] < 1:
        raise RecoveryError(
            "concurrency and s3_attempts must be at least 1",
            reason="invalid transfer options",
        )
    return s3.Transfer(
        part_size=part_size,
        concurrency=int(params["concurrency"]),
        read_timeout=float(params["s3_read_timeout"]),
        attempts=int(params["s3_attempts"]),
    )


def open_store(params: Params) -> s3.S3Store:
    """The store of ``params["bucket"]`` with the group's transfer settings."""
    return s3.open_store(params, params["bucket"], transfer(params))
