# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shard_reopen through main(): a fake shard behind a fake HTTP call."""

from __future__ import annotations

import functools
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.k8s.podexec import (
    ExecResult,
)
from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin
from ansible_collections.ragops.recovery.plugins.module_utils.shards.admin import Answer
from ansible_collections.ragops.recovery.plugins.modules import shard_reopen
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

PODS = "/api/v1/namespaces/rag/pods"
DEFAULT = "kubectl.kubernetes.io/default-container"


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


# --- method=exec: a command in the shard's pod, through the pods/exec subresource ------------------

COMMAND = ["python", "-m", "ragops_lab.programs.shard", "reopen"]
POD = PODS + "/vectorstore-2"


def exec_pod(ready: bool, **annotations: str) -> dict[str, t.Any]:
    found = pod("vectorstore-2", "10.0.0.7", ready)
    found["metadata"]["annotations"] = annotations
    found["spec"] = {"containers": [{"name": "init-sidecar"}, {"name": "shard"}]}
    return found


class PodCommand:
    """The command's end as the node reports it; a success makes the pod Ready."""

    def __init__(
        self, api: FakeTransport, exit_code: t.Optional[int] = 0, **ended: t.Any
    ) -> None:
        self.api = api
        self.exit_code = exit_code
        self.ended = ended

    def __call__(
        self,
        namespace: str,
        name: str,
        container: t.Optional[str],
        command: t.Tuple[str, ...],
        timeout: float,
    ) -> ExecResult:
        if self.exit_code == 0:
            self.api.objects[POD]["status"]["conditions"][0]["status"] = "True"
        fields = {"stdout": '{"ok": true}\n', "stderr": "", "duration": 0.4}
        fields.update(self.ended)
        return ExecResult(command, self.exit_code, **fields)


def run_exec(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    return run(capsys, method="exec", command=COMMAND, **args)


def test_exec_check_mode_plans_the_command_and_runs_nothing(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=False))
    result = run_exec(capsys, _ansible_check_mode=True, command_timeout=30)
    assert result["changed"] is True and k8s_api.execs == []
    assert result["planned"] == {
        "method": "exec",
        "pod": "vectorstore-2",
        "container": "init-sidecar",
        "command": COMMAND,
        "timeout": 30.0,
    }
    assert result["summary"] == (
        "re-open: would re-open the index by a command in pod vectorstore-2 (check mode)"
    )
    assert result["shard"]["before"]["ready"]["status"] == "False"


def test_exec_reopens_waits_for_ready_and_reports_the_command(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=False, **{DEFAULT: "shard"}))
    k8s_api.exec_handler = PodCommand(k8s_api)
    result = run_exec(capsys, command_timeout=45)
    assert k8s_api.execs == [("rag", "vectorstore-2", "shard", tuple(COMMAND), 45.0)]
    shard = result["shard"]
    assert result["changed"] is True and shard["healthy"] is True
    assert (shard["method"], shard["pod"], shard["container"]) == (
        "exec",
        "vectorstore-2",
        "shard",
    )
    assert (
        shard["exec"]["exit_code"] == 0 and shard["exec"]["stdout"] == '{"ok": true}\n'
    )
    assert shard["before"]["healthy"] is False and shard["after"]["healthy"] is True
    assert result["summary"] == (
        "re-open: index re-opened by a command in pod vectorstore-2, the shard is healthy"
    )
    again = run_exec(capsys)
    assert again["changed"] is False and len(k8s_api.execs) == 1


def test_exec_non_zero_exit_fails_with_the_output(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=False))
    k8s_api.exec_handler = PodCommand(
        k8s_api,
        1,
        stderr="re-open failed: HTTP 500: checksum mismatch in vectors.bin\n",
    )
    result = run_exec(capsys, container="shard")
    assert result["failed"] is True
    assert result["msg"] == (
        "Failed to re-open shard shard-2: the re-open command failed (exit code 1): "
        "re-open failed: HTTP 500: checksum mismatch in vectors.bin"
    )
    assert (
        result["resource"] == "pod vectorstore-2" and "restore" in result["next_step"]
    )
    assert result["reopen"]["exec"]["exit_code"] == 1
    reported = run_exec(capsys, container="shard", require_healthy=False)
    assert "failed" not in reported and reported["shard"]["healthy"] is False
    assert reported["shard"]["exec"]["stderr"].startswith("re-open failed")
    assert reported["summary"].startswith("re-open: the re-open command failed")


def test_exec_timeout_is_a_failure_with_what_was_printed(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=True))
    k8s_api.exec_handler = PodCommand(
        k8s_api, None, stdout="started\n", duration=2.0, timed_out=True
    )
    result = run_exec(capsys, force=True, command_timeout=2)
    assert result["msg"] == (
        "Failed to re-open shard shard-2: the re-open command failed "
        "(timed out after 2s): started"
    )
    assert result["reopen"]["exec"]["timed_out"] is True


def test_exec_that_does_not_bring_readiness_back_times_out_waiting(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=False))
    k8s_api.exec_handler = lambda *call: ExecResult(call[3], 0, "", "", 0.1)
    result = run_exec(capsys, require_healthy=False, wait_timeout=0)
    assert (
        result["shard"]["healthy"] is False
        and result["shard"]["exec"]["exit_code"] == 0
    )
    assert result["shard"]["error"] == (
        "not healthy after the re-open: pod not Ready (Running: no reason)"
    )


def test_exec_refuses_a_url_a_missing_command_and_an_unknown_container(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(PODS, exec_pod(ready=False))
    with_url = run_exec(capsys, url="http://shard:8080")
    assert with_url["msg"] == "Failed to re-open shard shard-2: url is for method=http"
    no_command = run(capsys, method="exec")
    assert no_command["failed"] is True and "command" in no_command["msg"]
    empty = run(capsys, method="exec", command=[])
    assert empty["msg"] == "Failed to re-open shard shard-2: command is empty"
    unknown = run_exec(capsys, container="sidecar")
    assert (
        unknown["msg"]
        == "Failed to re-open: pod vectorstore-2 has no container sidecar"
    )
    assert unknown["next_step"] == "Set container to one of init-sidecar, shard."
    assert k8s_api.execs == []


def test_exec_needs_a_running_pod(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    pending = exec_pod(ready=False)
    pending["status"]["phase"] = "Pending"
    k8s_api.add(PODS, pending)
    result = run_exec(capsys)
    assert result["msg"].startswith(
        "Failed to find a pod of shard shard-2 that is running"
    )
    assert result["reason"] == "no pod of the shard is Running"
