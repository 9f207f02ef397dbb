# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot Job's entry point: the same streaming snapshot as ``snapshot_create``'s
``mode=local``, run inside the execution-environment image as ``python3 -m
ansible_collections.ragops.recovery.plugins.module_utils.snapshots.createrun``.

Configuration comes from ``RAGOPS_SNAPSHOT`` (JSON, no secrets) and the credentials
from the usual ``AWS_*`` variables (filled from a Secret).  When it reads a live volume
the shard is quiesced first and resumed at the end, whatever happened.  A snapshot
already published under the id (a retried pod) is reported, not taken again.  The log
is one JSON object per line: ``progress`` events and a final ``result`` or ``error``;
the exit code is 0 or 1.
"""

from __future__ import annotations

import os
import typing as t

from ..audit import timestamp
from ..errors import RecoveryError
from ..shards import admin, quiesce
from . import create, store
from . import params as snapshot_params
from .jobrun import DEFAULTS as RESTORE_DEFAULTS
from .jobrun import emit, params_from, throttled_progress

CONFIG_VARIABLE = "RAGOPS_SNAPSHOT"
DEFAULTS = {
    **{
        key: RESTORE_DEFAULTS[key]
        for key in (
            "prefix",
            "part_size",
            "concurrency",
            "s3_read_timeout",
            "s3_attempts",
            "s3_validate_certs",
        )
    },
    "compression_level": 3,
    "compression_threads": 0,
    "source": {},
    "quiesce": None,
}


def take(
    params: t.Mapping[str, t.Any], call: admin.HttpCall = admin.http_call
) -> t.Dict[str, t.Any]:
    """Snapshot ``params["path"]`` (quiesced when asked); the fields of the
    ``result`` line."""
    s3 = snapshot_params.open_store(params)
    where = snapshot_params.location(params)
    snapshot_id = snapshot_params.check_name("snapshot_id", params["snapshot_id"])
    found = store.complete(s3, where, snapshot_id)
    if found is not None:
        return {"changed": False, "snapshot": found, "quiesce": None}
    request = create.CreateRequest(
        where,
        params["path"],
        snapshot_id,
        timestamp(),
        level=params["compression_level"],
        threads=params["compression_threads"],
        source=params["source"],
        progress=throttled_progress(),
    )
    hold = None
    if params["quiesce"]:
        hold = quiesce.quiesce(call, quiesce.QuiesceApi(**params["quiesce"]))
        emit(event="quiesced", url=hold.to_dict()["url"])
    try:
        created = create.create_snapshot(s3, request)
    finally:
        if hold is not None:
            quiesce.resume(call, hold)
    result = created.to_result(where.url(snapshot_id))
    result["quiesce"] = hold.to_dict() if hold is not None else None
    return result


def main() -> int:
    try:
        result = take(params_from(os.environ, CONFIG_VARIABLE, DEFAULTS))
    except RecoveryError as error:
        emit(event="error", **error.to_result())
        return 1
    emit(event="result", **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
