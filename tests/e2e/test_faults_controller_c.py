"""The controller killed during Scenario C, and 409s on the workloads' patches, against one lab.

Each test breaks the stack the same way: a release that needs the next schema version rolled out before its
migration ran (controller, retriever and generator crash-loop), and a controller that cannot start even
then, so that the start in dependency order stops at it and the run falls back to scaling everything down
and bringing the components up one by one. The on-call engineer fixes the controller's setting once the
scale-down shows (as they would while the run waits for it). An uninterrupted run of that incident is the
reference: the migration run once, every component back at its replica count and Ready, no count left
recorded, the lock free.

Then a run is killed (SIGKILL to ansible-playbook and every process it started, its modules included) at each step that
changes the stack, as soon as it shows in the cluster: the migration Job running, the scale-down, the
components coming back one by one; and the same incident is run again. The re-run must end where the
uninterrupted run ended, re-enter the lock (never take it over), never run a migration twice, and lose
nothing (tests/e2e/nothing_lost.py). Last, a run through the API fault proxy gets a 409 Conflict on the first
patch of each Deployment and StatefulSet (sent again) and on every patch of the controller's Deployment: it
stops naming the workload, the conflicts and the next step, keeping the lock for the incident; its re-run,
every workload's first patch again answered 409, finishes the recovery.
"""

from __future__ import annotations

import json
import threading
import time
import typing as t
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nothing_lost
import pytest
import yaml
from harness import ROOT, Result, Runner
from lab_support import lab_fixture  # noqa: F401 - pytest finds the fixture lab by name
from test_bootstrap import COMPONENTS, ROLE, lab_runner
from test_faults_k8s_api import kubeconfig_token
from test_shard_recovery_paths import eventually, lock_holder

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.kube.faults import ApiFaultProxy
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
PLAYBOOK = ROOT / "playbooks" / "bootstrap_recovery.yml"
SCALED_DOWN = "ragops.io/scaled-down-from"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
LOCK_TASK = ROLE + "Take the stack's recovery lock"
NEEDS_SCHEMA = ("controller", "retriever", "generator")
# A setting the controller can never start with: no migration brings the schema that far.
UNREACHABLE_SCHEMA = "99"
# Long enough for a fixed controller to start, short enough to give up on the broken one quickly.
CONTROLLER_WAIT_SECONDS = 15
MIGRATION_STEP_SECONDS = "3"
Obj = dict[str, t.Any]


# --- breaking the stack, and the engineer's fix --------------------------------------------------------------


def schema_version(lab: Lab) -> int:
    data = (lab.api().get(object_path(CORE, "configmaps", stack.NAMESPACE, "rag-schema")) or {}).get("data") or {}
    return int(data.get("version") or 0)


def migration_job(lab: Lab, version: int) -> str:
    return "rag-migrate-v%d" % version


def workloads(lab: Lab) -> dict[str, Obj]:
    return {w["metadata"]["name"]: w for w in stack.workloads(lab.api(), stack.NAMESPACE)}


def crash_looping(lab: Lab) -> bool:
    pods = [pod for name in NEEDS_SCHEMA for pod in faults.pods_of(lab.api(), name)]
    statuses = [((pod.get("status") or {}).get("containerStatuses") or [{}])[0] for pod in pods]
    return len(pods) == len(NEEDS_SCHEMA) and all(status.get("restartCount") for status in statuses)


def break_the_stack(lab: Lab) -> int:
    """A pending migration to the next schema version (slow enough to be seen running), and a controller set
    to need a schema no migration reaches; returns the version the migration brings the stack to."""
    api, version = lab.api(), schema_version(lab) + 1
    path = object_path(CORE, "configmaps", stack.NAMESPACE, stack.MIGRATION_JOB_CONFIGMAP)
    job = yaml.safe_load(((api.get(path) or {}).get("data") or {})["job.yaml"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    env["TARGET_SCHEMA_VERSION"] = {"name": "TARGET_SCHEMA_VERSION", "value": str(version)}
    env["STEP_SECONDS"] = {"name": "STEP_SECONDS", "value": MIGRATION_STEP_SECONDS}
    container["env"] = list(env.values())
    api.merge_patch(path, {"data": {"job.yaml": yaml.safe_dump(job, sort_keys=False)}})
    for name in NEEDS_SCHEMA:
        required = UNREACHABLE_SCHEMA if name == "controller" else str(version)
        faults.set_env(api, name, name, {"REQUIRED_SCHEMA_VERSION": required})
    faults.restart_components(api, NEEDS_SCHEMA)
    eventually("the components needing the schema to crash-loop", lambda: crash_looping(lab), timeout=60)
    return version


def scaling_down(lab: Lab) -> bool:
    return any(SCALED_DOWN in (w["metadata"].get("annotations") or {}) for w in workloads(lab).values())


@contextmanager
def engineer_fixes_the_controller(lab: Lab, version: int) -> Iterator[None]:
    """Once the run scales the stack down, the controller's setting is put right (to the schema the
    migration brings), as an on-call engineer does while the run waits for the pods to stop."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            required = controller_requirement(lab)
            if required == UNREACHABLE_SCHEMA and scaling_down(lab):
                faults.set_env(lab.api(), "controller", "controller", {"REQUIRED_SCHEMA_VERSION": str(version)})
            elif required != UNREACHABLE_SCHEMA:
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=10)


def controller_requirement(lab: Lab) -> str:
    container = workloads(lab)["controller"]["spec"]["template"]["spec"]["containers"][0]
    return next((item.get("value", "") for item in container.get("env") or []
                 if item["name"] == "REQUIRED_SCHEMA_VERSION"), "")


# --- running the playbook -------------------------------------------------------------------------------------


def components_with_a_short_wait(lab: Lab) -> list[Obj]:
    """The inventory's components, the controller given up on after a few seconds."""
    inventory = yaml.safe_load(lab.paths.inventory.read_text())
    components = inventory["all"]["children"]["rag_stacks"]["hosts"]["rag-lab"]["ragops_components"]
    return [dict(c, wait_timeout=CONTROLLER_WAIT_SECONDS) if c["name"] == "controller" else c for c in components]


def options(lab: Lab, incident: str, **extra: t.Any) -> list[str]:
    variables = {"incident_id": incident, "bootstrap_recovery_wait_sleep": 1,
                 "ragops_components": components_with_a_short_wait(lab), **extra}
    return ["-i", str(lab.paths.inventory), "-e", json.dumps(variables)]


def recover(runner: Runner, lab: Lab, incident: str, **extra: t.Any) -> Result:
    return runner.run(PLAYBOOK, extra=options(lab, incident, **extra), timeout=600)


@pytest.fixture
def runner(lab: Lab, tmp_path: Path) -> Runner:
    eventually("every pod of the stack Ready", lambda: not stack.not_ready(lab.api()), timeout=120)
    return lab_runner(lab, tmp_path)


@pytest.fixture(scope="module")
def pristine_replicas(lab: Lab) -> dict[str, int]:
    """Every workload's replica count as `up` left it."""
    return {name: int(w["spec"]["replicas"]) for name, w in workloads(lab).items()}


# --- the steps of Scenario C, each as it shows outside the controller ------------------------------------------


def migration_running(lab: Lab, version: int) -> bool:
    job = lab.api().get(object_path(BATCH, "jobs", stack.NAMESPACE, migration_job(lab, version))) or {}
    return bool(job) and not (job.get("status") or {}).get("succeeded")


def scaled_down(lab: Lab, version: int) -> bool:
    """Half-way through the scale-down: the StatefulSet at zero with its replica count recorded, the
    controller not yet stopped."""
    vectorstore = workloads(lab)["vectorstore"]
    return SCALED_DOWN in (vectorstore["metadata"].get("annotations") or {})


def coming_up(lab: Lab, version: int) -> bool:
    """The controller started again, some of the components after it still at zero with their counts recorded."""
    found = workloads(lab)
    controller = found["controller"]
    return (int(controller["spec"]["replicas"]) > 0
            and SCALED_DOWN not in (controller["metadata"].get("annotations") or {}) and scaling_down(lab))


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[Lab, int], bool]


KILL_POINTS = (
    KillPoint("migration-running", migration_running),
    KillPoint("scaling-down", scaled_down),
    KillPoint("coming-up-one-by-one", coming_up),
)


def kill_when(runner: Runner, lab: Lab, point: KillPoint, incident: str, version: int) -> None:
    """Start the recovery and SIGKILL it, modules and all, as soon as ``point`` shows."""
    runner.kill_when(PLAYBOOK, options(lab, incident), "step %s of the recovery" % point.name,
                     lambda: point.reached(lab, version), timeout=300)


# --- reading the end state ------------------------------------------------------------------------------------


def migration_jobs(lab: Lab, version: int) -> list[str]:
    """Each migration Job of the version with how it ended: one, succeeded, when the migration ran once."""
    jobs = lab.api().list(BATCH, "jobs", stack.NAMESPACE, "")[0]
    prefix = migration_job(lab, version)
    return sorted("%s: %s" % ("succeeded" if (j.get("status") or {}).get("succeeded") else "not succeeded",
                              "first attempt" if j["metadata"]["name"] == prefix else "another attempt")
                  for j in jobs if j["metadata"]["name"].startswith(prefix))


def postmortem_outcome(runner: Runner, incident: str) -> str:
    """The outcome of the incident's last run (each run writes a folder of its own)."""
    runs = sorted((runner.workdir / "incidents" / incident).glob("*/postmortem.md"))
    lines = runs[-1].read_text().splitlines() if runs else []
    return next((line for line in lines if line.startswith("| outcome |")), "no postmortem")


def settled(lab: Lab, seconds: float = 30) -> list[str]:
    """What is still not Ready once the pods of the last rollout had time to go (empty when all is up)."""
    deadline = time.monotonic() + seconds
    while (waiting := stack.not_ready(lab.api())) and time.monotonic() < deadline:
        time.sleep(0.5)
    return waiting


def end_state(lab: Lab, runner: Runner, incident: str, version: int) -> Obj:
    """What a finished recovery leaves, without the names that differ from one incident to another."""
    found = workloads(lab)
    return {
        "replicas": {name: int(w["spec"]["replicas"]) for name, w in found.items()},
        "counts recorded": sorted(name for name, w in found.items()
                                  if SCALED_DOWN in (w["metadata"].get("annotations") or {})),
        "not ready": settled(lab),
        "schema at the target": schema_version(lab) == version,
        "migration jobs": migration_jobs(lab, version),
        "lock holders": lock_holder(lab),
        "postmortem": postmortem_outcome(runner, incident),
    }


@dataclass(frozen=True)
class Reference:
    state: Obj
    result: Result


@pytest.fixture(scope="module")
def reference(lab: Lab, pristine_replicas: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An uninterrupted recovery: the end state every interrupted one must reach."""
    runner = lab_runner(lab, tmp_path_factory.mktemp("reference"))
    version = break_the_stack(lab)
    before = nothing_lost.record(lab, runner.workdir)
    with engineer_fixes_the_controller(lab, version):
        result = recover(runner, lab, "INC-KC0")
    assert result.returncode == 0, result.stdout[-5000:]
    nothing_lost.check(lab, before)
    return Reference(end_state(lab, runner, "INC-KC0", version), result)


def test_an_uninterrupted_run_is_the_reference(reference: Reference, pristine_replicas: dict[str, int]) -> None:
    state, result = reference.state, reference.result
    assert state["replicas"] == pristine_replicas and state["counts recorded"] == [], state
    assert state["not ready"] == [] and state["schema at the target"], state
    assert state["migration jobs"] == ["succeeded: first attempt"], state
    assert state["lock holders"] == {}, state
    assert state["postmortem"] == "| outcome | recovered: every component Ready |", state
    # The run went the whole way: the start in order stopped at the controller, then one by one.
    one_by_one = result.results[ROLE + "Scale everything down and bring the components up one by one"]
    assert sorted(one_by_one["scaled_down"]) == sorted(COMPONENTS), one_by_one
    assert result.results[ROLE + "Start the components in dependency order"]["failed_component"] == "controller"


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_a_run_killed_at_each_step_of_scenario_c_is_finished_by_a_rerun(
        lab: Lab, runner: Runner, reference: Reference, point: KillPoint) -> None:
    incident = "INC-KC-%s" % point.name
    version = break_the_stack(lab)
    before = nothing_lost.record(lab, runner.workdir)
    with engineer_fixes_the_controller(lab, version):
        kill_when(runner, lab, point, incident, version)

        # Killed: nothing is lost, the lock is still the dead run's (for its re-run).
        nothing_lost.check(lab, before, alive={incident})
        assert set(lock_holder(lab).values()) == {incident}, lock_holder(lab)

        rerun = recover(runner, lab, incident)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    # Re-entered: the dead run's holder is this controller's, for the same incident.
    assert rerun.results[LOCK_TASK]["lock"]["incident_id"] == incident
    assert rerun.results[LOCK_TASK]["action"] == "none", rerun.results[LOCK_TASK]
    nothing_lost.check(lab, before)
    assert end_state(lab, runner, incident, version) == reference.state


# --- 409 Conflict on the workloads' patches, through the API fault proxy -----------------------------------


@pytest.fixture(scope="module")
def proxy(lab: Lab) -> Iterator[ApiFaultProxy]:
    running = lab.cluster.fault_proxy()
    try:
        yield running
    finally:
        running.close()


def proxied_kubeconfig(lab: Lab, proxy: ApiFaultProxy, folder: Path) -> str:
    """A kubeconfig at the proxy for the ServiceAccount of the shipped Roles."""
    token = kubeconfig_token(lab.rbac_kubeconfigs().union)
    return str(lab.cluster.write_kubeconfig(folder / "proxied.kubeconfig", token=token, url=proxy.url,
                                            namespace=stack.NAMESPACE))


def conflicts(proxy: ApiFaultProxy) -> set[tuple[str, str]]:
    """The (resource, name) of each patch the proxy answered 409."""
    return {(resource.split("/")[0].split(".")[0], name)
            for verb, resource, _, name, status in proxy.faults.applied if verb == "patch" and status == 409}


WORKLOADS = {("statefulsets", "vectorstore")} | {("deployments", c) for c in COMPONENTS if c != "vectorstore"}
CONTROLLER = ("deployments", "controller")


def patched(proxy: ApiFaultProxy) -> set[tuple[str, str]]:
    """The (resource, name) of each workload the run patched, through the proxy."""
    return {(r.resource.split("/")[0].split(".")[0], r.name) for r in proxy.faults.requests if r.verb == "patch"}


def each_first_patch_answered_409(proxy: ApiFaultProxy) -> None:
    proxy.faults.applied.clear()
    proxy.faults.requests.clear()
    for resource, name in sorted(WORKLOADS):
        proxy.add_fault(verb="patch", resource=resource, name=name, status=409, times=1)


def test_409s_on_the_workloads_patches_are_sent_again_or_stop_the_run_naming_them_and_a_rerun_finishes(
        lab: Lab, runner: Runner, reference: Reference, proxy: ApiFaultProxy) -> None:
    """The first patch of each workload answered 409, and every patch of the controller's Deployment: the
    scale-downs are sent again; the controller's conflicts stop the run naming it, the conflicts and the next
    step, keeping the lock for the incident. Then, the first patch of each workload answered 409 again (the
    scale-ups, the controller's rollout restart): each is sent again and the re-run finishes."""
    incident = "INC-KC-409"
    version = break_the_stack(lab)
    before = nothing_lost.record(lab, runner.workdir)
    kubeconfig = proxied_kubeconfig(lab, proxy, runner.workdir)
    proxy.add_fault(verb="patch", resource="deployments", name="controller", status=409, times=-1)
    each_first_patch_answered_409(proxy)
    try:
        stopped = recover(runner, lab, incident, ragops_kubeconfig=kubeconfig)
        answered = conflicts(proxy)
    finally:
        proxy.clear_faults()

    assert stopped.returncode != 0, stopped.stdout[-5000:]
    assert answered == WORKLOADS, answered
    output = " ".join(stopped.stdout.split())
    assert "Bootstrap recovery of rag-lab failed at" in output, stopped.stdout[-5000:]
    assert "Failed to patch Deployment rag-lab/controller: HTTP 409" in output, stopped.stdout[-5000:]
    assert "(answered 409 Conflict 5 times in a row)" in output, stopped.stdout[-5000:]
    assert "Next step: Something else keeps changing Deployment rag-lab/controller" in output, stopped.stdout[-5000:]
    assert "stays held for incident %s" % incident in output, stopped.stdout[-5000:]
    assert set(lock_holder(lab).values()) == {incident}, lock_holder(lab)
    nothing_lost.check(lab, before, alive={incident})

    each_first_patch_answered_409(proxy)
    with engineer_fixes_the_controller(lab, version):
        rerun = recover(runner, lab, incident, ragops_kubeconfig=kubeconfig)
    answered, made = conflicts(proxy), patched(proxy)
    proxy.clear_faults()

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    # Every workload left at zero is scaled up; the controller, fixed meanwhile, is restarted unless it got
    # Ready first. Each of those patches was answered 409 once, and sent again.
    assert made >= WORKLOADS - {CONTROLLER} and answered == made, (answered, made)
    assert rerun.results[LOCK_TASK]["action"] == "none", rerun.results[LOCK_TASK]
    nothing_lost.check(lab, before)
    assert end_state(lab, runner, incident, version) == reference.state
