"""The controller killed during Scenario B, and 409s on the generator's Deployment, against one lab.

An uninterrupted outage run (the generator switched to the backup, throttled) and an uninterrupted failback
(the ramp 10 -> 100 % back to the primary) are the reference. Then, for each step of either playbook that
changes the generator, a run is killed (SIGKILL to ansible-playbook and every process it started, its modules
included) as soon as the step shows in the cluster or in S3, and the same incident is run again; each test
kills the outage at one step, then the failback at one. The re-run must end where the uninterrupted run
ended (the same flags, the same record of the flags to put back, the generator rolled out and answering
from the same provider, the lock free), re-enter the lock (never take it over), and lose nothing on the way
(tests/e2e/nothing_lost.py). Last, the playbooks run through the API fault proxy: every write of the
generator's Deployment answered 409 Conflict ends in a clear failure naming the Deployment and the next
step; then the first write in each playbook answered 409 is re-read and re-applied, and the re-runs finish.
"""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nothing_lost
import pytest
from harness import ROOT, Cluster, Result, Runner
from lab_support import lab_fixture  # noqa: F401 - pytest finds the fixture lab by name
from test_faults_k8s_api import kubeconfig_token
from test_generator_outage import GENERATOR, Obj, answers_from, generator_env, reset
from test_shard_recovery_paths import lock_holder

from ragops_lab import faults, stack
from ragops_lab.kube.faults import ApiFaultProxy
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
PLAYBOOKS = ROOT / "playbooks"
OUTAGE, FAILBACK = "generator_outage", "generator_failback"
LOCK_TASK = "Take the stack's recovery lock"
STOP_TASK = "Stop with what was tried and what to do next"
# The flags the two playbooks set, and the record of them each change keeps on the Deployment.
RECORD_PREFIX = "ragops.io/previous-"
ANSWER_SECONDS = 30


# --- running the playbooks --------------------------------------------------------------------------------------


def options(runner: Runner, lab: Lab, incident: str, **extra: str) -> list[str]:
    """The playbook's command line as an on-call engineer gives it, with fast probes, no soak and a two-step
    ramp (the default ramp runs whole in the Scenario B drill)."""
    variables = {"incident_id": incident, "generator_outage_probe_timeout": "1",
                 "generator_failback_probe_timeout": "1", "generator_failback_soak_seconds": "0",
                 "generator_failback_steps": "10,100",
                 "generator_outage_artifacts_dir": str(artifacts(runner, incident)),
                 "generator_failback_artifacts_dir": str(artifacts(runner, incident)), **extra}
    return ["-i", str(lab.paths.inventory), *(option for item in variables.items()
                                              for option in ("-e", json.dumps(dict([item]))))]


def artifacts(runner: Runner, incident: str) -> Path:
    return runner.workdir / "artifacts" / incident


def run(runner: Runner, lab: Lab, name: str, incident: str, **extra: str) -> Result:
    return runner.run(PLAYBOOKS / ("%s.yml" % name), extra=options(runner, lab, incident, **extra))


def outcome(result: Result, name: str) -> Obj:
    """A role task's result; role tasks are recorded as "<role> : <task name>"."""
    return t.cast(Obj, next(value for key, value in result.results.items() if key.endswith(" : " + name)))


@pytest.fixture(scope="module")
def pristine(lab: Lab) -> Obj:
    """The generator Deployment as `up` left it: on the primary, no fallback, no throttle."""
    return t.cast(Obj, lab.api().get(GENERATOR))


@pytest.fixture
def runner(lab: Lab, pristine: Obj, tmp_path: Path) -> Runner:
    """A healthy stack: providers up, the lock free, the generator as `up` left it."""
    reset(lab, pristine)
    return Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), tmp_path,
                  env={"ANSIBLE_PIPELINING": "1"})


# --- the steps of Scenario B, each as it shows outside the controller ------------------------------------------


def flags(lab: Lab) -> dict[str, str]:
    return generator_env(lab)


def evidence_key(incident: str) -> str:
    return "evidence/%s/evidence-generator.tar.gz" % incident


def evidence_kept(lab: Lab, incident: str) -> bool:
    return evidence_key(incident) in nothing_lost.s3_objects(lab)


def switched(lab: Lab, incident: str) -> bool:
    return flags(lab).get("PROVIDER") == "backup"


def throttled(lab: Lab, incident: str) -> bool:
    return "THROTTLE_RPS" in flags(lab)


def unthrottled(lab: Lab, incident: str) -> bool:
    return switched(lab, incident) and not throttled(lab, incident)


def ramping(lab: Lab, incident: str) -> bool:
    return "PROVIDER_WEIGHTS" in flags(lab)


def on_the_primary(lab: Lab, incident: str) -> bool:
    found = flags(lab)
    return found.get("PROVIDER") == "primary" and "PROVIDER_WEIGHTS" not in found


@dataclass(frozen=True)
class KillPoint:
    name: str
    playbook: str
    reached: Callable[[Lab, str], bool]


STEPS = {step.name: step for step in (
    # The outage: the evidence written once, the switch to the backup, the throttle (its last change).
    KillPoint("evidence-kept", OUTAGE, evidence_kept),
    KillPoint("switched-to-the-backup", OUTAGE, switched),
    KillPoint("throttled", OUTAGE, throttled),
    # The failback: the throttle removed before the ramp, the ramp's first share, all traffic on the primary.
    KillPoint("throttle-removed", FAILBACK, unthrottled),
    KillPoint("ramp-at-10", FAILBACK, ramping),
    KillPoint("back-on-the-primary", FAILBACK, on_the_primary),
)}
# Each test kills the outage at one step, then (its re-run having reached the safe mode) the failback at one.
KILL_PAIRS = (
    pytest.param("evidence-kept", "throttle-removed", id="evidence-kept,throttle-removed"),
    pytest.param("switched-to-the-backup", "ramp-at-10", id="switched-to-the-backup,ramp-at-10"),
    pytest.param("throttled", "back-on-the-primary", id="throttled,back-on-the-primary"),
)


def kill_when(runner: Runner, lab: Lab, point: KillPoint, incident: str) -> None:
    """Start the playbook and SIGKILL it, modules and all, as soon as ``point`` shows."""
    runner.kill_when(PLAYBOOKS / ("%s.yml" % point.playbook), options(runner, lab, incident),
                     "step %s of %s" % (point.name, point.playbook), lambda: point.reached(lab, incident))


# --- reading the end state ------------------------------------------------------------------------------------


def serving_provider(lab: Lab, provider: str) -> bool:
    """The generator rolled out and answering from ``provider`` (a pod of the previous rollout may still be
    terminating for a moment: the Service forwards to it until its grace period ends)."""
    deployment = t.cast(Obj, lab.api().get(GENERATOR))
    return stack.rolled_out(deployment) and answers_from(lab, provider)


def end_state(lab: Lab, runner: Runner, incident: str, report: str) -> Obj:
    """What a finished run leaves, without the names that differ from one incident to another."""
    deployment = t.cast(Obj, lab.api().get(GENERATOR))
    found = flags(lab)
    provider = found.get("PROVIDER", "")
    annotations = deployment["metadata"].get("annotations") or {}
    path = artifacts(runner, incident) / report
    lines = path.read_text().splitlines() if path.exists() else []
    return {
        "flags": {name: value for name, value in found.items() if value != "<ref>"},
        "records": {key: json.loads(value) for key, value in annotations.items() if key.startswith(RECORD_PREFIX)},
        "replicas": deployment["spec"].get("replicas"),
        "answering": serving_provider(lab, provider) or wait_answering(lab, provider),
        "lock holders": lock_holder(lab),
        "evidence kept": evidence_kept(lab, incident),
        "report": next((line for line in lines if line.startswith("| outcome |")), "no report"),
    }


def wait_answering(lab: Lab, provider: str) -> bool:
    """Whether the generator answers from ``provider`` within a while (False, which the comparison shows)."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while not serving_provider(lab, provider):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@dataclass(frozen=True)
class Reference:
    outage: Obj
    failback: Obj


@pytest.fixture(scope="module")
def reference(lab: Lab, pristine: Obj, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An uninterrupted outage run, then an uninterrupted failback: the end states every interrupted run
    must reach."""
    reset(lab, pristine)
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE),
                    tmp_path_factory.mktemp("reference"), env={"ANSIBLE_PIPELINING": "1"})
    faults.provider_outage(lab, "primary", "503")
    before = nothing_lost.record(lab, runner.workdir)
    outage = run(runner, lab, OUTAGE, "INC-KB0")
    assert outage.returncode == 0, outage.stdout[-5000:]
    outage_state = end_state(lab, runner, "INC-KB0", "outage.md")
    faults.provider_outage(lab, "primary", "none")
    failback = run(runner, lab, FAILBACK, "INC-KB0")
    assert failback.returncode == 0, failback.stdout[-5000:]
    nothing_lost.check(lab, before)
    return Reference(outage_state, end_state(lab, runner, "INC-KB0", "failback.md"))


def test_the_uninterrupted_runs_are_the_reference(reference: Reference) -> None:
    outage, failback = reference.outage, reference.failback
    assert outage["flags"]["PROVIDER"] == "backup" and outage["flags"]["THROTTLE_RPS"] == "50", outage
    # The switch and the throttle each keep what they changed, for the failback to put back.
    assert outage["records"]["ragops.io/previous-provider"]["PROVIDER"] == "primary", outage
    assert "ragops.io/previous-throttle" in outage["records"], outage
    assert outage["answering"] and outage["lock holders"] == {} and outage["evidence kept"], outage
    assert outage["report"] == "| outcome | safe mode |", outage
    assert failback["flags"]["PROVIDER"] == "primary", failback
    assert not {"PROVIDER_WEIGHTS", "THROTTLE_RPS", "FALLBACK_MODE"} & set(failback["flags"]), failback
    assert failback["records"] == {} and failback["answering"] and failback["lock holders"] == {}, failback
    assert failback["report"] == "| outcome | failed back |", failback


def lock_taken(result: Result) -> Obj:
    return outcome(result, LOCK_TASK)


def killed_then_rerun(runner: Runner, lab: Lab, point: KillPoint, incident: str, before: nothing_lost.Before,
                     expected: Obj) -> None:
    kill_when(runner, lab, point, incident)

    # Killed: nothing is lost, the lock is still the dead run's (for its re-run).
    nothing_lost.check(lab, before, alive={incident})
    assert set(lock_holder(lab).values()) == {incident}, lock_holder(lab)

    rerun = run(runner, lab, point.playbook, incident)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    # Re-entered: the dead run's holder is this controller's, for the same incident.
    assert lock_taken(rerun)["action"] == "none", lock_taken(rerun)
    nothing_lost.check(lab, before)
    report = "outage.md" if point.playbook == OUTAGE else "failback.md"
    assert end_state(lab, runner, incident, report) == expected


@pytest.mark.parametrize("outage_step, failback_step", KILL_PAIRS)
def test_a_run_killed_at_each_step_of_scenario_b_is_finished_by_a_rerun(
        lab: Lab, runner: Runner, reference: Reference, outage_step: str, failback_step: str) -> None:
    incident = "INC-KB-%s" % outage_step
    faults.provider_outage(lab, "primary", "503")
    before = nothing_lost.record(lab, runner.workdir)

    killed_then_rerun(runner, lab, STEPS[outage_step], incident, before, reference.outage)

    faults.provider_outage(lab, "primary", "none")
    killed_then_rerun(runner, lab, STEPS[failback_step], incident, before, reference.failback)


# --- 409 Conflict on the generator's Deployment, through the API fault proxy ---------------------------------


@dataclass
class Proxied:
    proxy: ApiFaultProxy
    kubeconfig: Path


@pytest.fixture(scope="module")
def proxied(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """The proxy, and a kubeconfig at it for the ServiceAccount of the shipped Roles."""
    proxy = lab.cluster.fault_proxy()
    token = kubeconfig_token(lab.rbac_kubeconfigs().union)
    path = lab.cluster.write_kubeconfig(tmp_path_factory.mktemp("proxied") / "kubeconfig", token=token,
                                        url=proxy.url, namespace=stack.NAMESPACE)
    try:
        yield Proxied(proxy, path)
    finally:
        proxy.close()


def deployment_writes(proxy: ApiFaultProxy) -> list[tuple[str, str, int]]:
    """Each write of the generator's Deployment that the proxy answered with a fault: (verb, name, status)."""
    return [(verb, name, status) for verb, resource, _, name, status in proxy.faults.applied
            if resource.split("/")[0].split(".")[0] == "deployments" and verb in ("update", "patch")]


def test_409s_on_the_generators_deployment_are_re_read_or_fail_clearly_and_a_rerun_finishes(
        lab: Lab, runner: Runner, reference: Reference, proxied: Proxied) -> None:
    """Every write of the Deployment answered 409: the switch stops naming the Deployment and the conflict,
    with a next step; the lock is released and nothing is lost. Then the first write of the Deployment in each
    playbook answered 409: re-read and re-applied, the re-run reaches the safe mode and the failback ends on
    the primary."""
    incident = "INC-KB-409"
    faults.provider_outage(lab, "primary", "503")
    before = nothing_lost.record(lab, runner.workdir)
    kubeconfig = str(proxied.kubeconfig)
    proxied.proxy.add_fault(verb="update", resource="deployments", status=409, times=-1)
    try:
        stopped = run(runner, lab, OUTAGE, incident, ragops_kubeconfig=kubeconfig)
    finally:
        proxied.proxy.clear_faults()

    assert stopped.returncode == 2 and stopped.failed == 1, stopped.stdout[-5000:]
    message = outcome(stopped, STOP_TASK)["msg"]
    assert "stopped at 'Switch to the backup provider'" in message, message
    assert "Failed to replace Deployment rag-lab/generator: HTTP 409" in message, message
    assert "Next: Something else keeps changing Deployment rag-lab/generator" in message, message
    # The rescue's fallback met the same conflicts: the generator is as it was, and the message says so.
    assert "The generator is now: STILL UNSAFE: the cached-answer fallback failed (Failed to replace" in message
    assert "by hand (FALLBACK_MODE=cache). Report: " in message, message
    assert flags(lab).get("PROVIDER") == "primary", flags(lab)
    assert lock_holder(lab) == {}
    nothing_lost.check(lab, before)

    for name, expected in ((OUTAGE, reference.outage), (FAILBACK, reference.failback)):
        proxied.proxy.faults.applied.clear()
        proxied.proxy.add_fault(verb="update", resource="deployments", status=409, times=1)
        done = run(runner, lab, name, incident, ragops_kubeconfig=kubeconfig)
        conflicts = deployment_writes(proxied.proxy)
        proxied.proxy.clear_faults()
        assert done.returncode == 0, done.stdout[-5000:]
        assert conflicts == [("update", "generator", 409)], conflicts
        report = "outage.md" if name == OUTAGE else "failback.md"
        assert end_state(lab, runner, incident, report) == expected
        faults.provider_outage(lab, "primary", "none")
    nothing_lost.check(lab, before)
