# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident status' pure parts: the runbook's next step, the Jobs' kinds and
progress, the generator's flags, the incident in focus, the artifacts' kinds."""

from __future__ import annotations

import json
import os
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.generator import state
from ansible_collections.ragops.recovery.plugins.module_utils.incident import (
    artifacts,
    jobs,
    nextstep,
    status,
)

Obj = t.Dict[str, t.Any]
INCIDENT = "ragops.io/incident-id"


def job(
    name: str,
    *,
    labels: Obj | None = None,
    annotations: Obj | None = None,
    conditions: t.Sequence[Obj] = (),
    created: str = "2026-11-27T22:10:00Z",
) -> Obj:
    """A Job as the API server returns it (the fields the status reads)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "rag",
            "creationTimestamp": created,
            "labels": dict(
                {"app.kubernetes.io/managed-by": "ragops.recovery"}, **(labels or {})
            ),
            "annotations": dict(annotations or {}),
        },
        "status": {
            "startTime": created,
            "active": 0 if conditions else 1,
            "conditions": list(conditions),
        },
    }


FAILED = {
    "type": "Failed",
    "status": "True",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
}
COMPLETE = {"type": "Complete", "status": "True"}


def restore_job(**kwargs: t.Any) -> Obj:
    annotations = {
        "ragops.io/snapshot-id": "20261127T021500Z",
        "ragops.io/manifest-sha256": "ab" * 32,
        INCIDENT: "INC-1",
    }
    return job(
        "ragops-restore-shard-2-20261127t021500z",
        labels={"ragops.io/shard": "shard-2"},
        annotations=annotations,
        **kwargs,
    )


def reindex_job(**kwargs: t.Any) -> Obj:
    made = job(
        "ragops-reindex-shard-2-20261127t021500z",
        labels={"ragops.io/reindex-job": "ragops-reindex-shard-2-20261127t021500z"},
        annotations={"ragops.io/since": "2026-11-27T02:15:00Z", INCIDENT: "INC-1"},
        **kwargs,
    )
    env = [{"name": "SHARD", "value": "shard-2"}, {"name": "SINCE", "value": "x"}]
    made["spec"] = {"template": {"spec": {"containers": [{"env": env}]}}}
    return made


def lines(*events: Obj) -> str:
    return "\n".join(json.dumps(event) for event in events) + "\n"


# --- the Jobs -----------------------------------------------------------------------


def test_each_job_kind_is_told_by_what_its_maker_writes_on_it() -> None:
    migration = job("migrate-2", labels={"ragops.io/migration-version": "2"})
    snapshot = job("snap", annotations={"ragops.io/snapshot-id": "s-1"})
    assert [
        jobs.job_kind(j)
        for j in (restore_job(), reindex_job(), migration, snapshot, job("x"))
    ] == ["restore", "reindex", "migration", "snapshot", "other"]


def test_a_running_restore_shows_the_bytes_its_log_reported_last() -> None:
    log = lines(
        {"event": "progress", "bytes_done": 1048576, "bytes_total": 4194304},
        {"event": "progress", "bytes_done": 2097152, "bytes_total": 4194304},
    )
    view = jobs.job_view(restore_job(), "not json\n" + log)
    assert (view.kind, view.state, view.shard, view.incident_id) == (
        "restore",
        "running",
        "shard-2",
        "INC-1",
    )
    assert view.progress is not None
    assert view.progress.to_dict() == {
        "done": 2097152,
        "total": 4194304,
        "unit": "bytes",
        "percent": 50.0,
        "text": "2.0 MiB of 4.0 MiB (50 %)",
    }


def test_a_running_snapshot_job_shows_the_bytes_its_log_reported_last() -> None:
    snapshot = job(
        "snapshot-shard-1-x",
        annotations={"ragops.io/snapshot-id": "s-1"},
        labels={"ragops.io/shard": "shard-1"},
    )
    log = lines({"event": "progress", "bytes_done": 512, "bytes_total": 2048})
    view = jobs.job_view(snapshot, log)
    assert (view.kind, view.shard) == ("snapshot", "shard-1")
    assert view.progress is not None and view.progress.text == (
        "512 B of 2.0 KiB (25 %)"
    )


def test_a_failed_restore_carries_the_error_its_log_ended_with() -> None:
    log = lines(
        {"event": "progress", "bytes_done": 10, "bytes_total": 100},
        {"event": "error", "msg": "Failed to verify data.tar.zst: sha256 mismatch"},
    )
    view = jobs.job_view(restore_job(conditions=[FAILED]), log)
    assert view.state == "failed"
    assert view.failure == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    )
    assert view.error == "Failed to verify data.tar.zst: sha256 mismatch"
    assert view.progress is not None and view.progress.percent == 10.0


def test_a_finished_restore_shows_the_bytes_restored() -> None:
    log = lines({"event": "result", "restore": {"bytes": 2048, "files": 3}})
    view = jobs.job_view(restore_job(conditions=[COMPLETE]), log)
    assert view.state == "succeeded"
    assert (
        view.progress is not None and view.progress.text == "2.0 KiB of 2.0 KiB (100 %)"
    )


def test_a_reindex_shows_documents_and_no_log_means_no_progress() -> None:
    log = lines(
        {"level": "info", "event": "progress", "done": 20, "total": 69},
        {"level": "info", "event": "completed", "done": 69, "total": 69},
    )
    done = jobs.job_view(reindex_job(conditions=[COMPLETE]), log)
    assert done.progress is not None
    assert done.progress.text == "69 of 69 documents (100 %)"
    assert jobs.job_view(reindex_job(), "").progress is None
    assert jobs.job_view(reindex_job()).progress is None


def test_progress_without_a_total_says_so() -> None:
    assert jobs.Progress(5, None, "documents").text == "5 of ? documents"
    assert jobs.Progress(512, None, "bytes").text == "512 B of ?"
    assert jobs.Progress(3 * 1024**3, 6 * 1024**3, "bytes").text == (
        "3.0 GiB of 6.0 GiB (50 %)"
    )


# --- the generator ------------------------------------------------------------------


def generator(env: t.Sequence[Obj], annotations: Obj | None = None) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "generator", "generation": 3, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "api", "env": env}]}},
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }


def test_the_generator_on_its_primary_is_not_in_safe_mode() -> None:
    seen = state.flags_state(
        generator([{"name": "PROVIDER", "value": "primary"}]),
        state.FlagNames(),
        primary="primary",
        source="Deployment rag/generator",
    )
    assert seen.on_primary and not seen.safe_mode and seen.ready
    assert seen.to_dict()["flags"] == {"PROVIDER": "primary"}


def test_backup_fallback_throttle_and_weights_are_safe_mode() -> None:
    env = [
        {"name": "PROVIDER", "value": "backup"},
        {"name": "FALLBACK_MODE", "value": "cache"},
        {"name": "THROTTLE_RPS", "value": "50"},
        {"name": "LONG_REQUEST_QUEUE", "value": "on"},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "p"}}},
    ]
    recorded = {
        "ragops.io/previous-provider": '{"PROVIDER":"primary"}',
        "ragops.io/previous-throttle": "{}",
    }
    seen = state.flags_state(
        generator(env, recorded), state.FlagNames(), primary="primary", source="d"
    )
    assert seen.safe_mode and seen.provider == "backup" and seen.fallback == "cache"
    assert seen.throttle == {"rps": "50", "long_request_queue": "on"}
    assert seen.changed_groups == ["provider", "throttle"]
    ramp = state.flags_state(
        generator([{"name": "PROVIDER_WEIGHTS", "value": "primary:25,backup:75"}]),
        state.FlagNames(),
        primary="primary",
        source="d",
    )
    assert ramp.weights == {"primary": 25, "backup": 75} and ramp.safe_mode


def test_malformed_weights_are_reported_not_raised() -> None:
    seen = state.flags_state(
        generator([{"name": "PROVIDER_WEIGHTS", "value": "primary=all"}]),
        state.FlagNames(),
        primary="primary",
        source="d",
    )
    assert seen.weights == {} and "Invalid provider weights" in str(seen.weights_error)


def test_flags_in_a_configmap_are_read_there() -> None:
    configmap = {
        "kind": "ConfigMap",
        "metadata": {"name": "flags"},
        "data": {"PROVIDER": "backup", "THROTTLE_RPS": "off"},
    }
    seen = state.flags_state(
        configmap, state.FlagNames(), primary="primary", source="ConfigMap rag/flags"
    )
    assert seen.provider == "backup" and seen.throttle == {} and seen.ready is None


# --- the incident in focus, the lock, the artifacts ---------------------------------


def test_the_incident_shown_is_given_else_the_locks_else_the_registrys_last() -> None:
    shards = [
        {
            "shard": "shard-0",
            "state": "serving",
            "incident_id": "INC-OLD",
            "since": "3",
        },
        {
            "shard": "shard-2",
            "state": "quarantined",
            "incident_id": "INC-2",
            "since": "1",
        },
    ]
    held = {"held": True, "incident_id": "INC-LOCK"}
    assert status.focus("INC-9", held, shards) == ("INC-9", "given")
    assert status.focus("", held, shards) == ("INC-LOCK", "lock")
    assert status.focus("", {"held": False}, shards) == ("INC-2", "registry")
    assert status.focus("", {"held": False}, shards[:1]) == ("INC-OLD", "registry")
    assert status.focus("", {"held": False}, []) == ("", "none")


def test_a_lock_past_its_expiry_is_stale() -> None:
    from datetime import datetime, timezone

    lease = {
        "metadata": {"annotations": {INCIDENT: "INC-1"}},
        "spec": {
            "holderIdentity": "alice@bastion",
            "acquireTime": "2026-11-27T22:00:00.000000Z",
            "renewTime": "2026-11-27T22:00:00.000000Z",
            "leaseDurationSeconds": 600,
        },
    }
    before = datetime(2026, 11, 27, 22, 5, tzinfo=timezone.utc)
    after = datetime(2026, 11, 27, 22, 11, tzinfo=timezone.utc)
    assert status.lock_view(lease, "l", before)["stale"] is False
    view = status.lock_view(lease, "l", after)
    assert view["held"] and view["stale"] and view["holder"] == "alice@bastion"
    assert view["expires_at"] == "2026-11-27T22:10:00.000000Z"
    assert status.lock_view(None, "l", after) == {
        "name": "l",
        "exists": False,
        "held": False,
        "stale": False,
    }


def test_report_folders_list_the_incidents_files_by_kind(tmp_path: t.Any) -> None:
    incident = tmp_path / "reports" / "INC-1"
    (incident / "20261127T221000Z").mkdir(parents=True)
    for name in (
        "postmortem-shard-2.md",
        "golden-restore.md",
        "20261127T221000Z/stack-before.json",
    ):
        (incident / name).write_text("x")
    (tmp_path / "reports" / "INC-2").mkdir()
    (tmp_path / "reports" / "INC-2" / "postmortem.md").write_text("other incident")
    found = artifacts.list_reports([str(tmp_path / "reports"), "/nonexistent"], "INC-1")
    kinds = {os.path.relpath(a.location, incident): a.kind for a in found}
    assert kinds == {
        "20261127T221000Z/stack-before.json": "evidence",
        "golden-restore.md": "report",
        "postmortem-shard-2.md": "postmortem",
    }
    assert artifacts.kind_of("evidence/INC-1/evidence-shard-2.manifest.json") == (
        "evidence-manifest"
    )
    # A run's records bundle holds its postmortem entry.
    records = "evidence/INC-1/postmortem-shard-2-20261127T221000Z"
    assert artifacts.kind_of(records + ".tar.gz") == "postmortem"
    assert artifacts.kind_of(records + ".manifest.json") == "evidence-manifest"
    assert artifacts.evidence_prefix("/evidence/", "INC-1") == "evidence/INC-1/"


# --- the next step ------------------------------------------------------------------


def situation(**kwargs: t.Any) -> nextstep.Situation:
    values: Obj = {
        "stack": "rag-lab",
        "namespace": "rag",
        "registry": "rag-shard-registry",
        "incident_id": "INC-1",
        "lock": nextstep.LockView("ragops-recovery-lock", None, "", None, None, False),
        "shards": [nextstep.ShardView("shard-0", "serving")],
        "jobs": [],
        "generator": None,
    }
    values.update(kwargs)
    return nextstep.Situation(**values)


HELD = nextstep.LockView(
    "ragops-recovery-lock", "alice@bastion", "INC-1", "t0", "t1", False
)
QUARANTINED = nextstep.ShardView("shard-2", "quarantined", "INC-1", "index errors")


def test_nothing_left_to_do_on_a_healthy_stack() -> None:
    step = nextstep.next_step(situation())
    assert step.action.startswith("Nothing left to do for incident INC-1")
    assert step.command is None


def test_a_held_lock_means_wait_and_says_what_the_recovery_is_doing() -> None:
    running = jobs.job_view(
        restore_job(), lines({"event": "progress", "bytes_done": 1, "bytes_total": 4})
    )
    step = nextstep.next_step(
        situation(
            lock=HELD,
            shards=[nextstep.ShardView("shard-2", "restoring", "INC-1")],
            jobs=[running],
        )
    )
    assert step.action.startswith("Wait: alice@bastion is recovering")
    assert "restore Job ragops-restore-shard-2-20261127t021500z is running" in (
        step.action
    )
    assert "(25 %)" in step.action
    assert step.command == (
        "kubectl -n rag logs -f job/ragops-restore-shard-2-20261127t021500z"
    )
    quarantined = nextstep.next_step(situation(lock=HELD, shards=[QUARANTINED]))
    assert "tries a graceful re-open, then a restore" in quarantined.action


def test_a_stale_lock_is_cleared_by_hand_after_checking_its_holder() -> None:
    stale = nextstep.LockView("l", "alice@bastion", "INC-1", "t0", "t1", True)
    step = nextstep.next_step(situation(lock=stale, shards=[QUARANTINED]))
    assert step.action.startswith("Check that alice@bastion no longer works")
    assert step.command is not None and "patch lease l" in step.command


def test_a_quarantined_shard_without_a_recovery_is_recovered() -> None:
    step = nextstep.next_step(situation(shards=[QUARANTINED]))
    assert step.scenario == "A"
    assert step.action.startswith("Recover shard-2: a graceful re-open first")
    assert step.command == (
        "ansible-playbook ragops.recovery.vectorstore_shard_recovery -i <inventory> "
        "-l rag-lab -e incident_id=INC-1 -e shard=shard-2"
    )


@pytest.mark.parametrize("state_", ["restoring", "validating"])
def test_a_shard_left_half_way_is_resumed_by_a_rerun(state_: str) -> None:
    shard = nextstep.ShardView("shard-2", state_, "INC-7", "golden queries")
    step = nextstep.next_step(situation(shards=[shard]))
    assert step.action == (
        "Run the recovery of shard-2 for incident INC-7 again: it resumes at the restore"
    )
    assert step.command is not None and "-e incident_id=INC-7" in step.command


def test_a_failed_restore_is_named_until_a_later_one_succeeds() -> None:
    log = lines({"event": "error", "msg": "sha256 mismatch"})
    failed = jobs.job_view(restore_job(conditions=[FAILED]), log)
    step = nextstep.next_step(situation(shards=[QUARANTINED], jobs=[failed]))
    assert step.action.startswith("Read the failed restore's log")
    assert step.reason == (
        "restore Job ragops-restore-shard-2-20261127t021500z failed: sha256 mismatch"
    )
    later = jobs.job_view(restore_job(conditions=[COMPLETE]))
    again = nextstep.next_step(situation(shards=[QUARANTINED], jobs=[failed, later]))
    assert again.action.startswith("Recover shard-2")


def test_a_job_running_without_the_lock_is_waited_for() -> None:
    running = jobs.job_view(reindex_job())
    step = nextstep.next_step(situation(jobs=[running]))
    assert step.action.startswith("Wait for the reindex Job")
    assert step.scenario == "A"


def test_failed_reindex_and_failed_migration_say_how_to_retry() -> None:
    reindexed = jobs.job_view(reindex_job(conditions=[FAILED]))
    step = nextstep.next_step(situation(jobs=[reindexed]))
    assert "shard_reindex for shard-2 again" in step.action
    migration = jobs.job_view(
        job(
            "migrate-2",
            labels={"ragops.io/migration-version": "2"},
            conditions=[FAILED],
        )
    )
    step = nextstep.next_step(situation(jobs=[migration]))
    assert step.scenario == "C" and "bootstrap_recovery" in str(step.command)


def test_the_generator_in_safe_mode_is_failed_back() -> None:
    backup = state.GeneratorState(
        "d", True, "primary", provider="backup", throttle={"rps": "50"}
    )
    step = nextstep.next_step(situation(generator=backup))
    assert step.scenario == "B"
    assert step.reason == (
        "the generator runs in safe mode: provider backup; throttled rps=50"
    )
    assert "generator_failback" in str(step.command)
    ramp = state.GeneratorState(
        "d", True, "primary", provider="primary", weights={"primary": 25, "backup": 75}
    )
    step = nextstep.next_step(situation(generator=ramp))
    assert step.reason == (
        "a failback stopped half-way: provider primary; weights primary 25 %, backup 75 %"
    )


def test_shards_come_before_the_generator_and_a_bad_entry_before_all() -> None:
    backup = state.GeneratorState("d", True, "primary", provider="backup")
    step = nextstep.next_step(situation(shards=[QUARANTINED], generator=backup))
    assert step.scenario == "A"
    broken = nextstep.ShardView("shard-1", "invalid", reason="not JSON")
    step = nextstep.next_step(situation(shards=[QUARANTINED, broken], lock=HELD))
    assert step.action.startswith("Repair the registry entry of shard-1")


def test_an_unreadable_lock_stops_the_rule_with_what_to_fix() -> None:
    step = nextstep.next_step(
        situation(
            shards=[QUARANTINED],
            unreadable=[("lock", "Failed to read Lease: forbidden", "Grant get")],
        )
    )
    assert step.action.startswith("Make the lock readable first")
    assert step.command == "Grant get"
    evidence_only = situation(unreadable=[("evidence", "S3 down", None)])
    assert nextstep.next_step(evidence_only).action.startswith("Nothing left to do")
