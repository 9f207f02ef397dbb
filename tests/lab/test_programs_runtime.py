"""The shared program runtime: mounts, Service resolution, routing, logging and start-up gates."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from programs_fakes import (
    FakeKube,
    capture_log,
    free_port,
    get,
    json_lines,
    post,
    program_env,
    serving,
    start_program,
    wait_http,
)

from ragops_lab.runtime.env import ConfigError, PodEnv, resolve_path
from ragops_lab.runtime.gates import Gates, enforce_schema_at_start
from ragops_lab.runtime.httpclient import http_json
from ragops_lab.runtime.resolve import ResolveError, TtlCache, service_url, shard_url
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, ok


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.close()


def test_resolve_path_uses_the_longest_mount() -> None:
    mounts = {"/data": "/lab/pvc/data-0", "/data/cache": "/lab/tmp/cache", "/etc/cfg": "/lab/cm"}
    assert resolve_path("/data/index/meta.json", mounts) == Path("/lab/pvc/data-0/index/meta.json")
    assert resolve_path("/data/cache/x", mounts) == Path("/lab/tmp/cache/x")
    assert resolve_path("/data", mounts) == Path("/lab/pvc/data-0")
    assert resolve_path("/database/x", mounts) == Path("/database/x")
    assert resolve_path("/elsewhere", {}) == Path("/elsewhere")


def test_resolve_path_reads_lab_mounts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MOUNTS", '{"/data": "/lab/pvc/7"}')
    assert resolve_path("/data/a") == Path("/lab/pvc/7/a")


def test_pod_env_defaults_and_bad_mounts() -> None:
    pod = PodEnv.from_env({"POD_NAME": "vectorstore-2", "PORT": "9000"})
    assert (pod.name, pod.namespace, pod.ip, pod.port) == ("vectorstore-2", "default", "127.0.0.1", 9000)
    assert pod.mounts == {}
    with pytest.raises(ConfigError):
        PodEnv.from_env({"LAB_MOUNTS": "[1]"})
    with pytest.raises(ConfigError):
        PodEnv.from_env({"PORT": "http"})


def test_service_url_keeps_ip_hosts(kube: FakeKube) -> None:
    assert service_url("http://127.0.1.7:8080/search", kube.client()) == "http://127.0.1.7:8080/search"
    assert service_url("http://localhost:1/x", kube.client()) == "http://localhost:1/x"


def test_service_url_picks_a_ready_pod_and_the_target_port(kube: FakeKube) -> None:
    kube.service("retriever", {"app": "retriever"}, port=8080, target_port=9090)
    kube.pod("retriever-a", {"app": "retriever"}, "127.0.1.3", ready=False)
    kube.pod("retriever-b", {"app": "retriever"}, "127.0.1.4")
    kube.pod("other", {"app": "generator"}, "127.0.1.5")
    assert service_url("http://retriever:8080/search?x=1", kube.client()) == "http://127.0.1.4:9090/search?x=1"
    assert service_url("http://retriever.rag.svc.cluster.local:8080/", kube.client()) == "http://127.0.1.4:9090/"
    assert kube.auth_headers[-1] == "Bearer test-token"


def test_service_url_resolves_a_named_target_port(kube: FakeKube) -> None:
    kube.service("provider", {"app": "provider"}, port=80, target_port="http")
    kube.pod("provider-0", {"app": "provider"}, "127.0.1.9", ports={"http": 8123})
    assert service_url("provider", kube.client()) == "http://127.0.1.9:8123"


def test_service_url_fails_without_a_service_or_ready_pod(kube: FakeKube) -> None:
    with pytest.raises(ResolveError, match="not found"):
        service_url("http://missing:8080", kube.client())
    kube.service("lonely", {"app": "lonely"})
    kube.pod("lonely-0", {"app": "lonely"}, ready=False)
    with pytest.raises(ResolveError, match="no Ready pod"):
        service_url("http://lonely:8080", kube.client())


def test_shard_url_template() -> None:
    assert shard_url("http://vectorstore-{ordinal}:8080", "shard-2") == "http://vectorstore-2:8080"
    assert shard_url("http://{shard}.stores:8080", "shard-2") == "http://shard-2.stores:8080"


def test_ttl_cache_refetches_after_the_ttl() -> None:
    now = [0.0]
    fetches = itertools.count(1)
    cache = TtlCache(lambda: next(fetches), ttl=1.0, clock=lambda: now[0])
    assert cache.get() == 1
    now[0] = 0.5
    assert cache.get() == 1
    now[0] = 1.0
    assert cache.get() == 2


def _echo(request: Request) -> Response:
    if request.params["name"] == "teapot":
        raise HttpError(418, "short and stout", {"X-Why": "tea"})
    if request.params["name"] == "bug":
        raise RuntimeError("boom")
    return ok({"name": request.params["name"], "body": request.json(), "q": request.query})


def test_router_serves_json_and_maps_errors() -> None:
    log, stream = capture_log("test")
    router = add_health(Router().add("POST", "/things/{name}", _echo), lambda: (False, {"reason": "warming up"}))
    with serving(App("test", router, log)) as app:
        assert post(f"{app.url}/things/a?x=1", {"v": 1}).body == {"name": "a", "body": {"v": 1}, "q": {"x": "1"}}
        teapot = post(f"{app.url}/things/teapot")
        assert (teapot.status, teapot.body, teapot.headers["x-why"]) == (418, {"error": "short and stout"}, "tea")
        assert post(f"{app.url}/things/bug").status == 500
        assert get(f"{app.url}/things/a").status == 405
        assert get(f"{app.url}/nowhere").status == 404
        assert get(f"{app.url}/healthz").body == {"status": "ok"}
        ready = get(f"{app.url}/readyz")
        assert (ready.status, ready.body) == (503, {"ready": False, "reason": "warming up"})
    assert stream.events("request_failed")[0]["error"] == "RuntimeError('boom')"


def test_bad_json_body_is_a_400() -> None:
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/things/{name}", _echo), log)) as app:
        assert post(f"{app.url}/things/a").status == 200
        assert http_json("POST", f"{app.url}/things/a", [1, 2]).status == 400


def test_json_log_lines_carry_bound_fields() -> None:
    log, stream = capture_log("shard")
    log.bind(shard="shard-2").error("index_load_failed", error="checksum mismatch")
    event = stream.events()[0]
    assert {k: event[k] for k in ("level", "program", "event", "shard", "error")} == {
        "level": "error", "program": "shard", "event": "index_load_failed", "shard": "shard-2",
        "error": "checksum mismatch"}
    assert event["ts"].endswith("Z")


def test_schema_gate(kube: FakeKube) -> None:
    log, stream = capture_log("retriever")
    gates = Gates.from_env({"REQUIRED_SCHEMA_VERSION": "3"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_version_too_old")[0]["found"] == 0
    kube.configmap("rag-schema", {"version": "2"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_version_too_old")[-1]["found"] == 2
    kube.configmap("rag-schema", {"version": "3"})
    assert enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_ok")[-1]["version"] == 3
    assert enforce_schema_at_start(Gates.from_env({}), kube.client(), log)
    kube.configmap("rag-schema", {"version": "three"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert "non-numeric" in stream.events("schema_check_failed")[0]["error"]
    with pytest.raises(ConfigError):
        Gates.from_env({"REQUIRED_SCHEMA_VERSION": "two"})


@pytest.mark.parametrize(("program", "env"), [
    ("provider", {"PROVIDER_NAME": "backup", "PROVIDER_API_KEY": "k"}),
    ("retriever", {"REQUIRED_SCHEMA_VERSION": "1"}),
    ("generator", {"RETRIEVER_URL": "http://127.0.0.1:9", "PROVIDER_URL_PRIMARY": "http://127.0.0.1:9"}),
    ("controller", {}),
    ("indexer", {}),
])
def test_every_server_program_honours_the_process_contract(kube: FakeKube, program: str, env: dict[str, str]) -> None:
    """Started as `python -m`, configured by env alone, JSON logs on stdout, exit 0 on SIGTERM."""
    kube.configmap("rag-schema", {"version": "1"})
    port = free_port()
    process = start_program(program, program_env(**kube.env(), POD_NAME=f"{program}-0", POD_IP="127.0.0.1",
                                                 PORT=str(port), **env), *(["serve"] if program == "indexer" else []))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert get(f"http://127.0.0.1:{port}/healthz").body == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    events = json_lines(out)
    assert {e["program"] for e in events} == {program}
    assert [e["event"] for e in events][-3:] == ["listening", "stopping", "stopped"]
