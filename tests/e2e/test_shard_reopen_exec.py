"""shard_reopen with method=exec against the lab: the re-open as a command run in the shard's pod
through the real API server's pods/exec, which passes the WebSocket on to the node agent.

One lab for the module; every run uses the identity of the shipped Role (meta/rbac/shard-recovery.yaml)
and each test a shard of its own: check mode plans the command and runs nothing, a shard whose index
was unloaded is re-opened by the command (and a re-run leaves it alone), a command that fails against
a corrupt index fails the task with its exit code and output, a command that outlives its timeout is
cut off, and the recovery playbook does its re-open by exec when the role is told to.
"""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROOT, Cluster, Result, Runner, task
from lab_support import processes_with, running_lab

from ragops_lab import faults, stack
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
COMMAND = ["python", "-m", "ragops_lab.programs.shard", "reopen"]
PLAYBOOK = ROOT / "playbooks" / "vectorstore_shard_recovery.yml"
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        yield running


@pytest.fixture(name="runner")
def runner_fixture(lab: Lab, tmp_path: Path) -> Runner:
    """Runs as the ServiceAccount bound to the shipped shard-recovery Role alone."""
    kubeconfig = lab.rbac_kubeconfigs().by_file["shard-recovery"]
    return Runner(Cluster(None, kubeconfig, "", namespace=stack.NAMESPACE), tmp_path)


def reopen(runner: Runner, shard: str, *, check: bool = False, **args: t.Any) -> Result:
    options = {"shard": shard, "method": "exec", "command": COMMAND, "wait_timeout": 30, **args}
    return runner.play([task("reopen", "shard_reopen", **options)], check=check)


def reopen_requests(lab: Lab, shard: str) -> int:
    """How often the shard's server was asked to re-open (its log's reopen_requested events)."""
    pod = faults.shard_pod(lab.api(), shard)["metadata"]["name"]
    return len(faults.log_lines(lab.api(), pod, "reopen_requested"))


def shard_ready(lab: Lab, shard: str) -> bool:
    return pod_is_ready(faults.shard_pod(lab.api(), shard))


def test_check_mode_plans_the_command_and_runs_nothing(lab: Lab, runner: Runner) -> None:
    assert "not Ready" in faults.inject(lab, "stale-index", ["shard-1"])
    checked = reopen(runner, "shard-1", check=True)
    result = checked.results["reopen"]
    assert checked.failed == 0 and result["changed"] is True, checked.stdout
    assert result["planned"] == {"method": "exec", "pod": "vectorstore-1", "container": "shard",
                                 "command": COMMAND, "timeout": 60.0}
    assert "exec" not in result["shard"] and result["shard"]["before"]["healthy"] is False
    assert reopen_requests(lab, "shard-1") == 0 and not shard_ready(lab, "shard-1")


def test_the_command_reopens_the_shard_and_a_rerun_leaves_it_alone(lab: Lab, runner: Runner) -> None:
    applied = reopen(runner, "shard-1")
    assert applied.failed == 0, applied.stdout
    shard = applied.results["reopen"]["shard"]
    assert shard["reopened"] and shard["healthy"] and not shard["before"]["healthy"], shard
    assert (shard["method"], shard["pod"], shard["container"]) == ("exec", "vectorstore-1", "shard")
    ran = shard["exec"]
    assert ran["exit_code"] == 0 and ran["command"] == COMMAND and not ran["timed_out"], ran
    printed = json.loads(ran["stdout"])
    assert printed["ok"] is True and printed["answer"]["shard"] == "shard-1" and printed["answer"]["doc_count"] > 0
    assert shard["after"]["ready"]["status"] == "True" and shard_ready(lab, "shard-1")
    assert reopen_requests(lab, "shard-1") == 1
    answer = stack.search(lab.endpoints().services["retriever"], "anything at all")
    assert "shard-1" in answer["shards_queried"] and "shard-1" not in (answer.get("errors") or {}), answer

    again = reopen(runner, "shard-1")
    assert again.failed == 0 and again.results["reopen"]["changed"] is False, again.stdout
    assert reopen_requests(lab, "shard-1") == 1


def test_a_failing_command_fails_the_task_with_its_exit_code_and_output(lab: Lab, runner: Runner) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    failed = reopen(runner, "shard-2")
    result = failed.results["reopen"]
    assert result["failed"] and result["changed"], failed.stdout  # ignored by the play, failed by the task
    assert result["msg"].startswith("Failed to re-open shard shard-2: the re-open command failed (exit code 1): "
                                    "re-open failed: HTTP 500: checksum mismatch in vectors.bin"), result["msg"]
    assert result["reopen"]["exec"]["exit_code"] == 1 and "restore" in result["next_step"]

    reported = reopen(runner, "shard-2", require_healthy=False)
    shard = reported.results["reopen"]["shard"]
    assert reported.failed == 0 and shard["healthy"] is False and shard["exec"]["exit_code"] == 1, shard
    assert json.loads(shard["exec"]["stdout"])["status"] == 500
    assert reported.results["reopen"]["summary"].startswith("re-open: the re-open command failed (exit code 1)")
    assert not shard_ready(lab, "shard-2")


def test_a_command_that_outlives_its_timeout_is_cut_off(lab: Lab, runner: Runner) -> None:
    marker = "reopen-timeout-%d" % time.monotonic_ns()
    slow = ["python", "-c", "import sys, time; print('started', flush=True); time.sleep(120)", marker]
    started = time.monotonic()
    cut = reopen(runner, "shard-3", command=slow, command_timeout=3, force=True)
    took = time.monotonic() - started
    result = cut.results["reopen"]
    assert result["failed"] and result["reopen"]["exec"]["timed_out"] is True, cut.stdout
    assert result["msg"] == "Failed to re-open shard shard-3: the re-open command failed (timed out after 3s): started"
    assert result["reopen"]["exec"]["exit_code"] is None
    assert took < 60, took  # the playbook's own start-up included; the command alone would take 120 s
    # the node agent ends the command once the client has gone, as the runtime would stop it
    deadline = time.monotonic() + 20
    while processes_with(marker):
        assert time.monotonic() < deadline, "the timed-out command is still running"
        time.sleep(0.2)
    assert shard_ready(lab, "shard-3")


def test_the_recovery_playbook_reopens_by_exec_when_told_to(lab: Lab, runner: Runner) -> None:
    faults.inject(lab, "stale-index", ["shard-0"])
    variables = {"shard": "shard-0", "incident_id": "INC-X1", "shard_recovery_reopen_method": "exec",
                 "shard_recovery_reopen_command": COMMAND}
    recovered = runner.run(PLAYBOOK, extra=["-i", str(lab.paths.inventory), "-e", json.dumps(variables)])
    assert recovered.returncode == 0, recovered.stdout
    reopened = [value for key, value in recovered.results.items() if key.endswith("a graceful re-open of the index")]
    shard = reopened[-1]["shard"]
    assert shard["method"] == "exec" and shard["exec"]["exit_code"] == 0 and shard["healthy"], shard
    entry = stack.registry_entry(lab.api(), "shard-0")
    assert entry["state"] == "serving" and entry["reason"] == "golden set passed after re-open", entry
    assert reopen_requests(lab, "shard-0") == 1
    # Without RAGOPS_REPORT_DIR the reports go to ragops-reports/ where ansible-playbook runs, never next to
    # the playbook (inside the collection).
    assert (runner.workdir / "ragops-reports" / "INC-X1" / "postmortem-shard-0.md").is_file()
    assert not (PLAYBOOK.parent / "ragops-reports").exists()
