# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every snapshot module shares (doc fragment ``ragops.recovery.snapshot``) and what they build."""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

from ansible_collections.ragops.recovery.plugins.module_utils.errors import RecoveryError
from ansible_collections.ragops.recovery.plugins.module_utils.options import Spec
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import layout
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.create import (
    ZSTD_IMPORT_ERROR,
    ZSTD_REQUIREMENT,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import CHUNK_SIZE
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    BOTO3_IMPORT_ERROR,
    BOTO3_REQUIREMENT,
    MIB,
    S3Store,
    Transfer,
    connect,
)


def snapshot_spec() -> Spec:
    return {
        "shard": {"type": "str", "required": True},
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": "snapshots"},
        "part_size": {"type": "int", "default": 16},
        "concurrency": {"type": "int", "default": 4},
        "s3_read_timeout": {"type": "float", "default": 60.0},
        "s3_attempts": {"type": "int", "default": 5},
    }


def libraries(zstd: bool = False) -> t.Dict[str, t.Optional[BaseException]]:
    """The third-party imports the module needs, for ``RecoveryModule(libraries=...)``."""
    needed: t.Dict[str, t.Optional[BaseException]] = {BOTO3_REQUIREMENT: BOTO3_IMPORT_ERROR}
    if zstd:
        needed[ZSTD_REQUIREMENT] = ZSTD_IMPORT_ERROR
    return needed


def check_name(kind: str, value: str) -> str:
    if not layout.valid_name(value):
        raise RecoveryError("Invalid %s %r: use letters, digits, '.', '_' and '-' only" % (kind, value),
                            reason="invalid %s" % kind)
    return value


def location(params: t.Mapping[str, t.Any]) -> layout.ShardLocation:
    return layout.ShardLocation(params["bucket"], params["prefix"] or "", check_name("shard", params["shard"]))


def transfer(params: t.Mapping[str, t.Any]) -> Transfer:
    part_size = int(params["part_size"]) * MIB
    if part_size <= 0 or part_size % CHUNK_SIZE:
        raise RecoveryError("part_size must be a positive multiple of %d (MiB)" % (CHUNK_SIZE // MIB),
                            reason="invalid part_size")
    if params["concurrency"] < 1 or params["s3_attempts"] < 1:
        raise RecoveryError("concurrency and s3_attempts must be at least 1", reason="invalid transfer options")
    return Transfer(part_size=part_size, concurrency=int(params["concurrency"]),
                    read_timeout=float(params["s3_read_timeout"]), attempts=int(params["s3_attempts"]))


def open_store(params: t.Mapping[str, t.Any]) -> S3Store:
    settings = transfer(params)
    return S3Store(connect(params, settings), params["bucket"], settings)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
