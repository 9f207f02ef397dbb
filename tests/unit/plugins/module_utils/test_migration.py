# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migrations: the template, versions, the run plan, the Job that runs, and what it reports."""

from __future__ import annotations

import copy
import dataclasses
import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    MigrationFailed,
    RecoveryError,
    ResourceTimeout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import (
    Retrier,
    RetryPolicy,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.migration import (
    JobOverrides,
    MigrationSource,
    build_job,
    job_name,
    parse_template,
    plan_run,
    read_migration,
    target_version,
    version_reached,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.migration_job import (
    RunRequest,
    job_pods,
    run_migration,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)
from ansible_collections.ragops.recovery.tests.unit.fake_cluster import (
    BATCH,
    CORE,
    MIGRATION_TEMPLATE,
    NS,
    FakeCluster,
    TickingClock,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

SOURCE = MigrationSource(
    NS,
    "rag-migration-job",
    "job.yaml",
    None,
    None,
    "TARGET_SCHEMA_VERSION",
    None,
    "rag-schema",
    "version",
)


@pytest.fixture
def api() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def cluster(api: FakeTransport) -> FakeCluster:
    return FakeCluster(api)


def client_for(api: FakeTransport) -> K8sClient:
    return K8sClient(api, retrier=Retrier(RetryPolicy(attempts=1)))


def waiter(cluster: FakeCluster, timeout: float = 30) -> Waiter:
    ticking = TickingClock(cluster)
    return Waiter(timeout, 1, Clock(now=ticking.now, sleep=ticking.sleep))


def job(
    name: str, version: str, condition: t.Optional[str] = None
) -> t.Dict[str, t.Any]:
    labels = {
        "app.kubernetes.io/name": "rag-migrate",
        "ragops.io/migration-version": version,
    }
    status = (
        {"conditions": [{"type": condition, "status": "True"}]} if condition else {}
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": copy.deepcopy(MIGRATION_TEMPLATE["spec"]),
        "status": status,
    }


def test_templates_versions_and_names() -> None:
    assert (
        parse_template("kind: Job\nmetadata: {name: m}\n", "here")["metadata"]["name"]
        == "m"
    )
    with pytest.raises(RecoveryError, match="is not a Job manifest"):
        parse_template("kind: Pod\n", "here")
    with pytest.raises(
        RecoveryError, match="Failed to parse the migration Job template in here"
    ):
        parse_template("kind: [Job\n", "here")
    assert target_version(MIGRATION_TEMPLATE, SOURCE) == "2"
    annotated = dict(
        MIGRATION_TEMPLATE,
        metadata={"annotations": {"ragops.io/migration-version": "7"}},
    )
    assert target_version(annotated, SOURCE) == "7"
    with pytest.raises(RecoveryError, match="Cannot tell which version"):
        target_version({"kind": "Job", "spec": {}}, SOURCE)
    assert (
        version_reached("3", "2")
        and version_reached("2", "2")
        and not version_reached("1", "2")
    )
    assert version_reached("2025-01a", "2025-01a") and not version_reached(
        "2025-01a", "2025-02a"
    )
    assert not version_reached(None, "1")
    assert job_name(MIGRATION_TEMPLATE, "2") == "rag-migrate-v2"
    assert (
        job_name({"metadata": {"generateName": "Schema_Upgrade-"}}, "2025.01")
        == "schema-upgrade-v2025-01"
    )
    assert len(job_name(MIGRATION_TEMPLATE, "9" * 80)) <= 40


def test_missing_template_configmap_or_key_is_reported(api: FakeTransport) -> None:
    with pytest.raises(
        RecoveryError, match="ConfigMap rag/rag-migration-job not found"
    ):
        read_migration(client_for(api), SOURCE)
    FakeCluster(api)
    wrong_key = dataclasses.replace(SOURCE, key="migrate.yaml")
    with pytest.raises(
        RecoveryError, match=r"has no key migrate\.yaml \(keys: job\.yaml\)"
    ):
        read_migration(client_for(api), wrong_key)


def test_build_job_applies_overrides_and_labels(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    state = read_migration(client_for(api), SOURCE)
    built = build_job(
        state,
        "rag-migrate-v2",
        JobOverrides(
            image="rag/migrate:2",
            args=["--fast"],
            env={"TARGET_SCHEMA_VERSION": "2", "LOG": "debug"},
            service_account="migrator",
        ),
        "INC-1",
    )
    assert built["metadata"]["labels"] == {
        "app.kubernetes.io/name": "rag-migrate",
        "ragops.io/migration-version": "2",
        "app.kubernetes.io/managed-by": "ragops.recovery",
    }
    assert built["metadata"]["annotations"] == {"ragops.io/incident-id": "INC-1"}
    pod_spec = built["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "migrator"
    container = pod_spec["containers"][0]
    assert (container["image"], container["args"]) == ("rag/migrate:2", ["--fast"])
    assert container["env"] == [
        {"name": "TARGET_SCHEMA_VERSION", "value": "2"},
        {"name": "LOG", "value": "debug"},
    ]
    assert (
        MIGRATION_TEMPLATE["spec"]["template"]["spec"]["containers"][0]["image"]
        == "rag/migrate:1"
    )


def test_run_waits_returns_logs_and_is_not_repeated(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    state = read_migration(client, SOURCE)
    assert state.report()["pending"] is True
    plan = plan_run(client, state, None)
    assert (plan.action, plan.name) == ("create", "rag-migrate-v2")
    report = run_migration(
        client, state, plan, RunRequest(JobOverrides(), "INC-1"), waiter(cluster)
    )
    assert report["status"] == "succeeded" and report["exit_code"] == 0
    assert (
        report["logs"] == ["migration_applied version=2"]
        and report["current_version"] == "2"
    )
    assert api.objects[BATCH + "/jobs/rag-migrate-v2"]["metadata"]["annotations"] == {
        "ragops.io/incident-id": "INC-1"
    }
    again = read_migration(client, SOURCE)
    assert again.applied and plan_run(client, again, None).action == "skip"
    assert (
        run_migration(
            client,
            again,
            plan_run(client, again, None),
            RunRequest(JobOverrides()),
            waiter(cluster),
        )["status"]
        == "applied"
    )


def test_check_mode_creates_nothing(api: FakeTransport, cluster: FakeCluster) -> None:
    client = client_for(api)
    state = read_migration(client, SOURCE)
    report = run_migration(
        client,
        state,
        plan_run(client, state, None),
        RunRequest(JobOverrides(), check_mode=True),
        waiter(cluster),
    )
    assert report["status"] == "planned"
    assert ("POST", BATCH + "/jobs", (("dryRun", "All"),)) in api.calls
    assert not [key for key in api.objects if "/jobs/" in key]


def test_another_running_migration_is_refused_ours_is_adopted(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    api.add(BATCH + "/jobs", job("rag-migrate-manual", "2"))
    with pytest.raises(
        RecoveryError,
        match="another migration Job of the stack is running: rag-migrate-manual",
    ) as e:
        plan_run(client, read_migration(client, SOURCE), None)
    assert "kubectl -n rag wait --for=condition=complete job/rag-migrate-manual" in (
        e.value.next_step or ""
    )
    del api.objects[BATCH + "/jobs/rag-migrate-manual"]
    api.add(BATCH + "/jobs", job("rag-migrate-v2", "2"))
    state = read_migration(client, SOURCE)
    plan = plan_run(client, state, None)
    assert plan.action == "adopt"
    report = run_migration(
        client, state, plan, RunRequest(JobOverrides()), waiter(cluster)
    )
    assert report["status"] == "succeeded" and not [
        call for call in api.writes() if call[1].endswith("/jobs")
    ]


def test_failed_job_is_kept_and_the_next_attempt_gets_a_new_name(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    cluster.failing_versions.add("2")
    state = read_migration(client, SOURCE)
    with pytest.raises(MigrationFailed) as raised:
        run_migration(
            client,
            state,
            plan_run(client, state, None),
            RunRequest(JobOverrides()),
            waiter(cluster),
        )
    result = raised.value.to_result()
    assert (
        result["msg"]
        == "Migration Job rag/rag-migrate-v2 failed (BackoffLimitExceeded): exit code 1"
    )
    assert (
        result["migration"]["logs"] == ["migration_failed"]
        and result["changed"] is True
    )
    assert "the failed Job is kept as evidence" in result["next_step"]
    cluster.failing_versions.clear()
    state = read_migration(client, SOURCE)
    assert state.report()["failed"] == ["rag-migrate-v2"]
    plan = plan_run(client, state, None)
    assert (plan.name, plan.earlier_attempts) == (
        "rag-migrate-v2-attempt-2",
        ("rag-migrate-v2",),
    )
    assert (
        run_migration(client, state, plan, RunRequest(JobOverrides()), waiter(cluster))[
            "status"
        ]
        == "succeeded"
    )
    assert BATCH + "/jobs/rag-migrate-v2" in api.objects


def test_timeout_reports_the_running_job_and_what_to_do(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    state = read_migration(client, SOURCE)
    cluster.tick = lambda: None  # type: ignore[method-assign]  # the Job never finishes
    with pytest.raises(ResourceTimeout) as raised:
        run_migration(
            client,
            state,
            plan_run(client, state, None),
            RunRequest(JobOverrides()),
            waiter(cluster, 3),
        )
    result = raised.value.to_result()
    assert (
        result["msg"]
        == "Timed out after 3s waiting for migration Job rag/rag-migrate-v2 to finish"
    )
    assert (
        result["last_seen"]["status"] == "active"
        and result["migration"]["status"] == "running"
    )
    assert "it is never started twice" in result["next_step"]


def test_completed_job_without_the_version_recorded_fails(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    api.add(BATCH + "/jobs", job("rag-migrate-v2", "2", "Complete"))
    with pytest.raises(
        MigrationFailed,
        match="completed, but ConfigMap rag/rag-schema records version 1, not 2",
    ):
        plan_run(client, read_migration(client, SOURCE), None)


def test_without_a_version_record_a_completed_job_is_the_record(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = client_for(api)
    inline = MigrationSource(
        NS,
        None,
        "job.yaml",
        json.loads(json.dumps(MIGRATION_TEMPLATE)),
        "2",
        "X",
        None,
        "",
        "v",
    )
    state = read_migration(client, inline)
    assert state.current is None and not state.applied
    api.add(BATCH + "/jobs", job("rag-migrate-v2", "2", "Complete"))
    assert read_migration(client, inline).applied


def test_job_pods_by_owner_or_job_name_label(api: FakeTransport) -> None:
    owned = {
        "metadata": {
            "name": "p1",
            "labels": {"app": "m"},
            "ownerReferences": [{"uid": "u1"}],
            "creationTimestamp": "2",
        }
    }
    other = {
        "metadata": {
            "name": "p2",
            "labels": {"app": "m"},
            "ownerReferences": [{"uid": "u2"}],
        }
    }
    api.add(CORE + "/pods", owned)
    api.add(CORE + "/pods", other)
    found = job_pods(
        client_for(api),
        NS,
        {
            "metadata": {"name": "j", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}}},
        },
    )
    assert [p["metadata"]["name"] for p in found] == ["p1"]
