# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shard_reopen through main(): a fake shard behind a fake HTTP call."""

from __future__ import annotations

import functools
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin
from ansible_collections.ragops.recovery.plugins.module_utils.shards.admin import Answer
from ansible_collections.ragops.recovery.plugins.modules import shard_reopen
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

PODS = "/api/v1/namespaces/rag/pods"


class FakeShard:
    """A shard that turns healthy on re-open when ``fixable``."""

    def __init__(self, healthy: bool, fixable: bool = True) -> None:
        self.healthy = healthy
        self.fixable = fixable
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method: str, url: str, body: t.Any, timeout: float) -> Answer:
        self.calls.append((method, url))
        if url.endswith("/admin/reopen"):
            self.healthy = self.fixable
            return (
                Answer(200, {"ready": True})
                if self.fixable
                else Answer(500, {"error": "checksum mismatch"})
            )
        if url.endswith("/stats"):
            return Answer(200, {"doc_count": 1000 if self.healthy else 0})
        return (
            Answer(200, {"ready": True})
            if self.healthy
            else Answer(503, {"ready": False, "reason": "corrupt"})
        )


def pod(name: str, ip: str, ready: bool) -> dict[str, t.Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "rag",
            "labels": {"ragops.io/shard": "shard-2"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


run = functools.partial(
    run_main,
    shard_reopen,
    namespace="rag",
    shard="shard-2",
    wait_timeout=1,
    wait_sleep=0,
)


@pytest.fixture
def api(k8s_api: FakeTransport) -> FakeTransport:
    k8s_api.add(PODS, pod("vectorstore-2", "10.0.0.7", ready=False))
    return k8s_api


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> t.Callable[[FakeShard], FakeShard]:
    """Put ``shard`` behind the module's HTTP calls."""

    def install(shard: FakeShard) -> FakeShard:
        monkeypatch.setattr(admin, "http_call", shard)
        return shard

    return install


def test_check_mode_plans_the_call_and_sends_nothing(
    api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = serve(FakeShard(healthy=False))
    result = run(capsys, _ansible_check_mode=True)
    assert result["changed"] is True
    assert result["planned"] == {
        "method": "POST",
        "url": "http://10.0.0.7:8080/admin/reopen",
    }
    assert all(call[0] == "GET" for call in shard.calls)


def test_reopen_then_healthy_then_unchanged(
    api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(FakeShard(healthy=False))
    result = run(capsys)
    assert (
        result["changed"] is True
        and result["shard"]["reopened"] is True
        and result["shard"]["healthy"] is True
    )
    assert (
        result["shard"]["pod"] == "vectorstore-2"
        and result["shard"]["after"]["stats"]["doc_count"] == 1000
    )
    again = run(capsys)
    assert again["changed"] is False and again["shard"]["reopened"] is False


def test_failed_reopen_fails_with_next_step(
    api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(FakeShard(healthy=False, fixable=False))
    result = run(capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "Failed to re-open shard shard-2: the re-open was refused: HTTP 500"
    )
    assert "restore" in result["next_step"]


def test_failed_reopen_reported_when_not_required(
    api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(FakeShard(healthy=False, fixable=False))
    result = run(capsys, require_healthy=False)
    assert "failed" not in result and result["shard"]["healthy"] is False
    assert "checksum mismatch" in result["shard"]["error"]


def test_ready_pod_preferred_and_url_skips_lookup(
    api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    api.add(PODS, pod("vectorstore-2-r-s1", "10.0.0.9", ready=True))
    serve(FakeShard(healthy=True))
    assert run(capsys)["shard"]["pod"] == "vectorstore-2-r-s1"
    given = run(capsys, url="http://shard:9000")
    assert (
        given["shard"]["url"] == "http://shard:9000" and given["shard"]["pod"] is None
    )


def test_no_pod_fails_with_next_step(
    k8s_api: FakeTransport,
    serve: t.Callable[[FakeShard], FakeShard],
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(FakeShard(healthy=False))
    result = run(capsys)
    assert (
        result["failed"] is True and "restore it from a snapshot" in result["next_step"]
    )
