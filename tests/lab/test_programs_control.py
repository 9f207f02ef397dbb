"""The bootstrap programs: the migration job and the controller's schema and dependency gates."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest
from programs_fakes import (
    FakeKube,
    capture_log,
    free_port,
    get,
    json_lines,
    program_env,
    run_program,
    serving,
    start_program,
    wait_http,
)

from ragops_lab.programs import controller, migrate
from ragops_lab.runtime.env import ConfigError
from ragops_lab.runtime.gates import Gates
from ragops_lab.runtime.kubeapi import KubeError


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.close()


def history(kube: FakeKube) -> list[dict[str, object]]:
    data = kube.configmap_data("rag-schema") or {}
    return list(json.loads(data.get("history", "[]")))


def test_migrations_create_the_configmap_and_record_each_version(kube: FakeKube) -> None:
    log, stream = capture_log("migrate")
    config = migrate.MigrateConfig(target=3, applied_by="migrate-job-x")
    assert migrate.run_migrations(kube.client(), config, log, sleep=lambda _: None) == 3
    assert (kube.configmap_data("rag-schema") or {})["version"] == "3"
    assert [(h["version"], h["by"]) for h in history(kube)] == [(1, "migrate-job-x"), (2, "migrate-job-x"),
                                                                 (3, "migrate-job-x")]
    assert [e["version"] for e in stream.events("migration_applied")] == [1, 2, 3]


def test_migrations_are_idempotent(kube: FakeKube) -> None:
    kube.configmap("rag-schema", {"version": "2", "history": "[]"})
    log, stream = capture_log("migrate")
    assert migrate.run_migrations(kube.client(), migrate.MigrateConfig(target=2), log) == 2
    assert stream.events("already_at_version")[0]["version"] == 2
    assert history(kube) == []


def test_a_failing_step_stops_at_the_previous_version(kube: FakeKube) -> None:
    kube.configmap("rag-schema", {"version": "1"})
    log, _ = capture_log("migrate")
    with pytest.raises(migrate.MigrationFailed, match="version 3 failed"):
        migrate.run_migrations(kube.client(), migrate.MigrateConfig(target=4, fail_at=3), log)
    assert (kube.configmap_data("rag-schema") or {})["version"] == "2"


def test_a_concurrent_change_is_a_conflict(kube: FakeKube) -> None:
    stale = kube.configmap("rag-schema", {"version": "1"})
    kube.configmap("rag-schema", {"version": "1", "note": "changed meanwhile"})
    with pytest.raises(KubeError) as raised:
        migrate.record_version(kube.client(), stale, 2, "migrate")
    assert raised.value.status == 409


def test_the_job_process_exits_by_outcome(kube: FakeKube) -> None:
    env = program_env(**kube.env(), POD_NAME="migrate-7f2k")
    done = run_program("migrate", {**env, "TARGET_SCHEMA_VERSION": "2"})
    assert done.returncode == 0, done.stderr
    assert json_lines(done.stdout)[-1]["event"] == "migrations_complete"
    again = run_program("migrate", env, "--target", "2")
    assert again.returncode == 0 and json_lines(again.stdout)[-1]["event"] == "already_at_version"
    failed = run_program("migrate", {**env, "TARGET_SCHEMA_VERSION": "4", "FAIL_AT_VERSION": "3"})
    assert failed.returncode == 1
    assert json_lines(failed.stdout)[-1]["event"] == "migration_failed"
    unconfigured = run_program("migrate", env)
    assert unconfigured.returncode == 2 and json_lines(unconfigured.stdout)[-1]["event"] == "invalid_config"
    assert history(kube)[-1]["by"] == "migrate-7f2k"


def test_config_requires_a_target() -> None:
    with pytest.raises(ConfigError):
        migrate.MigrateConfig.from_env({})
    assert migrate.MigrateConfig.from_env({"TARGET_SCHEMA_VERSION": "5"}).target == 5


def test_the_controller_crash_loops_on_an_old_schema(kube: FakeKube) -> None:
    kube.configmap("rag-schema", {"version": "1"})
    env = program_env(**kube.env(), POD_NAME="controller-0", PORT=str(free_port()), REQUIRED_SCHEMA_VERSION="2")
    exited = run_program("controller", env)
    assert exited.returncode == 1
    line = json_lines(exited.stdout)[-1]
    assert (line["level"], line["event"], line["required"], line["found"]) == ("error", "schema_version_too_old", 2, 1)
    assert "migrate" in line["hint"]


def test_after_the_migration_the_controller_starts_and_is_ready(kube: FakeKube) -> None:
    port = free_port()
    env = program_env(**kube.env(), POD_NAME="controller-0", PORT=str(port), REQUIRED_SCHEMA_VERSION="2")
    assert run_program("migrate", {**env, "TARGET_SCHEMA_VERSION": "2"}).returncode == 0
    process = start_program("controller", env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        ready = get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status == 200 and ready.body["schema_version"] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_a_dependency_cycle_is_never_ready(kube: FakeKube) -> None:
    kube.configmap("rag-schema", {"version": "1"})
    kube.service("retriever", {"app": "retriever"})
    kube.pod("retriever-0", {"app": "retriever"}, ready=False)
    gates = Gates.from_env({"WAIT_FOR": "retriever"}, default_required=1)
    service = controller.ControllerService(gates, kube.client(), capture_log("controller")[0])
    with serving(service.app()) as app:
        waiting = get(f"{app.url}/readyz")
        assert waiting.status == 503 and waiting.body["reason"] == "waiting for dependencies"
        assert "no Ready pod" in waiting.body["dependencies"]["retriever"]
        kube.pod("retriever-0", {"app": "retriever"}, ready=True)
        assert get(f"{app.url}/readyz").status == 200
        assert get(f"{app.url}/status").body["dependencies"] == {"retriever": "ready"}


def test_the_controller_is_not_ready_without_a_recorded_schema(kube: FakeKube) -> None:
    gates = Gates.from_env({}, default_required=1)
    service = controller.ControllerService(gates, kube.client(), capture_log("controller")[0])
    with serving(service.app()) as app:
        not_ready = get(f"{app.url}/readyz")
    assert not_ready.status == 503 and "older than the required 1" in not_ready.body["reason"]
