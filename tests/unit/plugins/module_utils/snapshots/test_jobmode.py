# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode's choice of snapshot when a restore Job fails: which failures fall back to
the next older verified snapshot and which stop the restore."""

from __future__ import annotations

import types
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    catalog,
    job,
    jobmode,
    layout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    make_tree,
    snapshot,
)

JOB_OF = {"s2": "Job rag/ragops-restore-shard-1-s2"}


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch, s3: S3Store, tmp_path: Path) -> t.List[str]:
    """Two verified snapshots (s2 the newer), planned without a cluster; the snapshots
    a restore Job was run for, in order."""
    for snapshot_id, created in (
        ("s1", "2026-11-26T10:00:00Z"),
        ("s2", "2026-11-27T10:00:00Z"),
    ):
        snapshot(s3, make_tree(tmp_path / snapshot_id, files=1), snapshot_id, created)
    monkeypatch.setattr(jobmode, "_plan", plan_of)
    monkeypatch.setattr(jobmode, "_set_aside", lambda *_: [])
    monkeypatch.setattr(job, "already_restored", lambda *_: False)
    return []


def plan_of(
    client: t.Any,
    request: t.Any,
    chosen: catalog.Snapshot,
    attempts: t.List[t.Any],
    quarantined: t.List[str],
) -> t.Any:
    """The outcome :func:`jobmode._plan` gives, with the snapshot as its plan."""
    return types.SimpleNamespace(
        snapshot=chosen,
        plan=chosen,
        target=None,
        changed=False,
        run={},
        attempts=attempts,
        quarantined=quarantined,
    )


def request() -> jobmode.JobModeRequest:
    return jobmode.JobModeRequest(job=t.cast(t.Any, None), location=LOCATION)


def failing_for(
    snapshot_id: str, started: t.List[str], then: t.Callable[[], None]
) -> t.Callable[..., t.Any]:
    """A restore Job that fails for ``snapshot_id`` after ``then()`` (what happened to
    the bucket meanwhile), and restores any other."""

    def run(client: t.Any, job_request: t.Any, plan: t.Any, *_: t.Any) -> t.Any:
        started.append(plan.snapshot_id)
        if plan.snapshot_id == snapshot_id:
            then()
            raise RecoveryError(
                "Failed to restore shard shard-1 in Job rag/x: Snapshot %s does not exist"
                % snapshot_id,
                resource=JOB_OF[snapshot_id],
            )
        return {"name": "restored"}

    return run


def test_a_snapshot_deleted_while_its_job_read_it_falls_back_to_the_next_verified(
    monkeypatch: pytest.MonkeyPatch, s3: S3Store, fake: FakeS3, jobs: t.List[str]
) -> None:
    pruned = [k for k in fake.objects if "/s2/" in k]
    monkeypatch.setattr(
        job,
        "restore_in_cluster",
        failing_for("s2", jobs, lambda: [fake.objects.pop(k) for k in pruned]),
    )

    outcome = jobmode.restore_by_job(
        t.cast(t.Any, None), s3, request(), t.cast(t.Any, None)
    )

    assert jobs == ["s2", "s1"] and outcome.snapshot.snapshot_id == "s1"
    assert [(a.snapshot_id, a.outcome) for a in outcome.attempts] == [
        ("s2", "skipped"),
        ("s1", "restored"),
    ]
    assert outcome.attempts[0].reason == (
        "deleted from the bucket while its restore (%s) read it; nothing was restored "
        "from it" % JOB_OF["s2"]
    )
    assert outcome.quarantined == []


def test_any_other_failure_of_the_job_stops_the_restore(
    monkeypatch: pytest.MonkeyPatch, s3: S3Store, jobs: t.List[str]
) -> None:
    monkeypatch.setattr(
        job, "restore_in_cluster", failing_for("s2", jobs, lambda: None)
    )

    with pytest.raises(RecoveryError, match="Snapshot s2 does not exist") as failed:
        jobmode.restore_by_job(t.cast(t.Any, None), s3, request(), t.cast(t.Any, None))

    assert jobs == ["s2"] and failed.value.partial["tried"] == []
    assert s3.exists(LOCATION.key("s2", layout.MANIFEST))
