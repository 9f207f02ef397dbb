# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shard_reopen through main(): a fake shard behind a fake HTTP call."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ragops.recovery.plugins.module_utils.shard_http import Answer
from ansible_collections.ragops.recovery.plugins.modules import shard_reopen
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

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
            return Answer(200, {"ready": True}) if self.fixable else Answer(500, {"error": "checksum mismatch"})
        if url.endswith("/stats"):
            return Answer(200, {"doc_count": 1000 if self.healthy else 0})
        return Answer(200, {"ready": True}) if self.healthy else Answer(503, {"ready": False, "reason": "corrupt"})


def pod(name: str, ip: str, ready: bool) -> dict[str, t.Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "rag", "labels": {"ragops.io/shard": "shard-2"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeTransport:
    fake = FakeTransport()
    fake.add(PODS, pod("vectorstore-2", "10.0.0.7", ready=False))
    monkeypatch.setattr(shard_reopen, "connect", lambda params: fake)
    return fake


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shard: FakeShard,
        **args: t.Any) -> dict[str, t.Any]:
    monkeypatch.setattr(shard_reopen, "http_call", shard)
    args = dict({"namespace": "rag", "shard": "shard-2", "wait_timeout": 1, "wait_sleep": 0}, **args)
    with patch_module_args(args), pytest.raises(SystemExit):
        shard_reopen.main()
    return t.cast(t.Dict[str, t.Any], json.loads(capsys.readouterr().out))


def test_check_mode_plans_the_call_and_sends_nothing(api: FakeTransport, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    shard = FakeShard(healthy=False)
    result = run(monkeypatch, capsys, shard, _ansible_check_mode=True)
    assert result["changed"] is True
    assert result["planned"] == {"method": "POST", "url": "http://10.0.0.7:8080/admin/reopen"}
    assert all(call[0] == "GET" for call in shard.calls)


def test_reopen_then_healthy_then_unchanged(api: FakeTransport, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    shard = FakeShard(healthy=False)
    result = run(monkeypatch, capsys, shard)
    assert result["changed"] is True and result["shard"]["reopened"] is True and result["shard"]["healthy"] is True
    assert result["shard"]["pod"] == "vectorstore-2" and result["shard"]["after"]["stats"]["doc_count"] == 1000
    again = run(monkeypatch, capsys, shard)
    assert again["changed"] is False and again["shard"]["reopened"] is False


def test_failed_reopen_fails_with_next_step(api: FakeTransport, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    result = run(monkeypatch, capsys, FakeShard(healthy=False, fixable=False))
    assert result["failed"] is True
    assert result["msg"].startswith("Failed to re-open shard shard-2: the re-open was refused: HTTP 500")
    assert "restore" in result["next_step"]


def test_failed_reopen_reported_when_not_required(api: FakeTransport, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    result = run(monkeypatch, capsys, FakeShard(healthy=False, fixable=False), require_healthy=False)
    assert "failed" not in result and result["shard"]["healthy"] is False
    assert "checksum mismatch" in result["shard"]["error"]


def test_ready_pod_preferred_and_url_skips_lookup(api: FakeTransport, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    api.add(PODS, pod("vectorstore-2-r-s1", "10.0.0.9", ready=True))
    shard = FakeShard(healthy=True)
    assert run(monkeypatch, capsys, shard)["shard"]["pod"] == "vectorstore-2-r-s1"
    given = run(monkeypatch, capsys, shard, url="http://shard:9000")
    assert given["shard"]["url"] == "http://shard:9000" and given["shard"]["pod"] is None


def test_no_pod_fails_with_next_step(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeTransport()
    monkeypatch.setattr(shard_reopen, "connect", lambda params: fake)
    result = run(monkeypatch, capsys, FakeShard(healthy=False))
    assert result["failed"] is True and "restore it from a snapshot" in result["next_step"]
