# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_info, migration_run and component_start through main(): arguments in, one JSON result out."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils import waiter
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import Clock
from ansible_collections.ragops.recovery.plugins.modules import (
    component_start,
    migration_run,
    stack_info,
)
from ansible_collections.ragops.recovery.tests.unit.fake_cluster import (
    APPS,
    BATCH,
    CORE,
    FakeCluster,
    TickingClock,
    components,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

run = functools.partial(run_main, namespace="rag")


@pytest.fixture
def cluster(k8s_api: FakeTransport, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster(k8s_api)
    ticking = TickingClock(cluster)
    # The modules make their clock with waiter.Clock(): the ticking one moves the cluster.
    monkeypatch.setattr(
        waiter, "Clock", lambda: Clock(now=ticking.now, sleep=ticking.sleep)
    )
    return cluster


def test_stack_info_diagnoses_a_pending_migration(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.broken.update(
        controller="CrashLoopBackOff",
        retriever="CrashLoopBackOff",
        generator="CrashLoopBackOff",
    )
    cluster.tick()
    result = run(
        stack_info,
        capsys,
        _ansible_check_mode=True,
        components=components(),
        migration_configmap="rag-migration-job",
        log_lines=2,
    )
    assert result["changed"] is False
    diagnosis = result["diagnosis"]
    assert diagnosis["cause"] == "pending_migration"
    assert diagnosis["blocked"] == ["controller", "retriever", "generator"]
    assert (
        "the stack is at version 1, the migration brings it to 2"
        in diagnosis["summary"]
    )
    assert [c["state"] for c in result["components"]] == [
        "crash_looping",
        "ready",
        "crash_looping",
        "crash_looping",
    ]
    assert result["graph"]["order"] == [
        "controller",
        "vectorstore",
        "retriever",
        "generator",
    ]


def test_stack_info_names_a_configured_cycle(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = components()
    parts[0]["depends_on"] = ["generator"]
    result = run(stack_info, capsys, components=parts)
    assert result["diagnosis"]["cause"] == "dependency_cycle"
    assert (
        result["diagnosis"]["cycle_text"]
        == "controller \u2192 generator \u2192 retriever \u2192 controller"
    )
    assert (
        result["graph"]["order"] is None and result["migration"]["configured"] is False
    )


def test_stack_info_rejects_bad_components(
    k8s_api: FakeTransport, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        stack_info, capsys, components=[{"name": "a", "depends_on": ["ghost"]}]
    )
    assert (
        result["failed"] is True
        and result["msg"] == "Unknown dependencies: ghost (needed by a)"
    )
    assert k8s_api.calls == []
    result = run(stack_info, capsys, components=[{"name": "a", "kind": "DaemonSet"}])
    assert result["failed"] is True and "kind" in result["msg"]


def test_migration_run_check_then_apply_then_unchanged(
    k8s_api: FakeTransport, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "migration_configmap": "rag-migration-job",
        "incident_id": "INC-3",
        "wait_sleep": 1,
    }
    planned = run(
        migration_run, capsys, _ansible_check_mode=True, _ansible_diff=True, **args
    )
    assert planned["changed"] is True and planned["migration"]["status"] == "planned"
    assert planned["diff"] == {"before": {"version": "1"}, "after": {"version": "2"}}
    assert not [key for key in k8s_api.objects if key.startswith(BATCH)]
    applied = run(migration_run, capsys, **args)
    assert applied["changed"] is True and applied["migration"]["status"] == "succeeded"
    assert (
        applied["migration"]["job"] == "rag-migrate-v2"
        and applied["migration"]["exit_code"] == 0
    )
    # The Job is done at the second look, which comes 0.1 s after the first.
    assert applied["duration"] >= 0.1
    again = run(migration_run, capsys, _ansible_diff=True, **args)
    assert again["changed"] is False and again["migration"]["status"] == "applied"
    assert again["diff"] == {"before": {"version": "2"}, "after": {"version": "2"}}


def test_migration_run_failure_carries_logs_and_next_step(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.failing_versions.add("2")
    result = run(
        migration_run, capsys, migration_configmap="rag-migration-job", wait_sleep=1
    )
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("Migration Job rag/rag-migrate-v2 failed")
    assert result["migration"]["logs"] == ["migration_failed"]
    assert (
        result["resource"] == "Job rag/rag-migrate-v2"
        and "fix the migration" in result["next_step"]
    )


def test_migration_run_needs_a_template(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(migration_run, capsys)
    assert (
        result["failed"] is True and "one of the following is required" in result["msg"]
    )


def test_component_start_check_apply_unchanged(
    k8s_api: FakeTransport, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.objects[APPS + "/deployments/generator"]["spec"]["replicas"] = 0
    cluster.tick()
    args = {"components": components(), "wait_sleep": 1, "wait_timeout": 10}
    planned = run(
        component_start, capsys, _ansible_check_mode=True, _ansible_diff=True, **args
    )
    assert planned["changed"] is True and planned["started"] == ["generator"]
    assert planned["diff"]["after"] == {"generator": {"replicas": 1, "ready": True}}
    assert k8s_api.objects[APPS + "/deployments/generator"]["spec"]["replicas"] == 0
    applied = run(component_start, capsys, **args)
    assert applied["changed"] is True and applied["components"][3]["ready"] is True
    assert run(component_start, capsys, **args)["changed"] is False


def test_component_start_failure_names_the_component(
    k8s_api: FakeTransport, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.broken["controller"] = "CrashLoopBackOff"
    cluster.tick()
    result = run(
        component_start,
        capsys,
        components=components(),
        mode="one_by_one",
        wait_sleep=1,
        wait_timeout=4,
    )
    assert result["failed"] is True and result["failed_component"] == "controller"
    assert result["msg"].startswith(
        "Timed out after 4s waiting for Deployment rag/controller to become Ready"
    )
    assert result["left_down"] == ["vectorstore", "retriever", "generator"]
    annotations = k8s_api.objects[APPS + "/statefulsets/vectorstore"]["metadata"][
        "annotations"
    ]
    assert annotations == {"ragops.io/scaled-down-from": "2"}


def test_component_start_refusals(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = components()
    parts[0]["depends_on"] = ["retriever"]
    result = run(component_start, capsys, components=parts)
    assert result["failed"] is True and result["cycle"] == [
        "controller",
        "retriever",
        "controller",
    ]
    assert result["msg"].startswith(
        "Refusing to start the components: dependency cycle controller"
    )
    result = run(
        component_start, capsys, components=components(), mode="one_by_one", wait=False
    )
    assert result["failed"] is True and "wait=false is not possible" in result["msg"]


def test_stack_info_logs_come_from_the_pods(
    k8s_api: FakeTransport, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.broken["generator"] = "CrashLoopBackOff"
    cluster.tick()
    k8s_api.logs[CORE + "/pods/generator-0/log"] = "one\ntwo\n"
    result = run(stack_info, capsys, components=components())
    assert result["components"][3]["pods"][0]["logs"]["lines"] == ["one", "two"]
