# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore Job's entry point: the same local restore as the module's ``mode=local``,
run inside the execution-environment image as ``python3 -m
ansible_collections.ragops.recovery.plugins.module_utils.snapshots.jobrun``.

Configuration comes from ``RAGOPS_RESTORE`` (JSON, no secrets) and the credentials from
the usual ``AWS_*`` variables (filled from a Secret).  The log is one JSON object per
line: ``progress`` events (bytes done and total) and a final ``result`` or ``error``;
the exit code is 0 or 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import typing as t

from ..audit import default_actor, timestamp
from ..errors import RecoveryError
from . import params as snapshot_params
from . import restore

PROGRESS_SECONDS = 1.0
DEFAULTS = {
    "prefix": "snapshots",
    "part_size": 16,
    "concurrency": 4,
    "s3_read_timeout": 60.0,
    "s3_attempts": 5,
    "future_tolerance": 300,
    "fallback": True,
    "quarantine": True,
    "incident_id": "",
    "snapshot_id": None,
    "s3_validate_certs": True,
}


def emit(**event: t.Any) -> None:
    sys.stdout.write(json.dumps(dict(event, ts=timestamp()), sort_keys=True) + "\n")
    sys.stdout.flush()


def throttled_progress() -> restore.Progress:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS or done >= total:
            last[0] = now
            emit(event="progress", bytes_done=done, bytes_total=total)

    return report


def params_from(
    environ: t.Mapping[str, str],
    variable: str = "RAGOPS_RESTORE",
    defaults: t.Mapping[str, t.Any] | None = None,
) -> t.Dict[str, t.Any]:
    """The Job's configuration (JSON in ``variable``) over ``defaults`` (the restore
    Job's by default), with the S3 credentials of the environment."""
    config = json.loads(environ.get(variable) or "{}")
    params = dict(DEFAULTS if defaults is None else defaults, **config)
    params.update(
        access_key=environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=environ.get("AWS_SECRET_ACCESS_KEY"),
        session_token=environ.get("AWS_SESSION_TOKEN"),
        profile=None,
    )
    return params


def run(params: t.Mapping[str, t.Any]) -> restore.Outcome:
    s3 = snapshot_params.open_store(params)
    where = snapshot_params.location(params)
    order, skipped = restore.load_candidates(
        s3, where, params["snapshot_id"], params["fallback"], params["future_tolerance"]
    )
    request = restore.RestoreRequest(
        where, params["dest"], timestamp(), progress=throttled_progress()
    )
    record = (
        {"incident_id": params["incident_id"], "by": default_actor()}
        if params["quarantine"]
        else None
    )
    return restore.local_restore(
        s3, request, order, skipped, record, check_mode=False, force=False
    )


def main() -> int:
    try:
        outcome = run(params_from(os.environ))
    except RecoveryError as error:
        emit(event="error", **error.to_result())
        return 1
    emit(
        event="result",
        changed=outcome.changed,
        snapshot_id=outcome.snapshot.snapshot_id if outcome.snapshot else None,
        restore=outcome.restored.to_dict() if outcome.restored else None,
        tried=[attempt.to_dict() for attempt in outcome.attempts],
        quarantined=outcome.quarantined,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
