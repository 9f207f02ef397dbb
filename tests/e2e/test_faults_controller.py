"""The controller killed: ansible-playbook SIGKILLed at each step of Scenario A, then run again.

One lab for the module. An uninterrupted recovery is the reference; then, for each step of the runbook,
a run of the same playbook is killed (with its modules: the whole process group) as soon as the step
shows in the cluster or in S3, and the same incident is run again. The re-run must end where the
uninterrupted run ended (the shard serving from its restored volume, the old volume kept as evidence,
the lock free, the hold on pruning released, nothing of the restore left over), re-enter the lock
(never take it over), and nothing may be lost on the way (tests/e2e/nothing_lost.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nothing_lost
import pytest
from harness import Cluster, Result, Runner
from test_shard_recovery import (  # noqa: F401 - pytest finds the fixtures lab and runner by name
    EVIDENCE_LABEL,
    PLAYBOOK,
    Obj,
    claim_of,
    lab_fixture,
    recover,
    recovery_options,
    reports_dir,
    runner_fixture,
    serving_shards,
)
from test_shard_recovery_paths import eventually, found_on, golden_ids, hold_of, lock_holder

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE
from ragops_lab.drills import shard_recovery
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
REINDEX_LABEL = "ragops.io/reindex-job"
LOCK_TASK = "Take the stack's recovery lock"


# --- the steps of Scenario A, each as it shows outside the controller ------------------------------------------


def entry_is(state: str, reason: str = "") -> Callable[[Lab, str, str], bool]:
    def reached(lab: Lab, shard: str, incident: str) -> bool:
        entry = stack.registry_entry(lab.api(), shard)
        return bool(entry.get("state") == state and entry.get("incident_id") == incident
                    and reason in (entry.get("reason") or ""))
    return reached


def hold_set(lab: Lab, shard: str, incident: str) -> bool:
    return bool(hold_of(lab, shard).get("incident_id") == incident)


def evidence_kept(lab: Lab, shard: str, incident: str) -> bool:
    prefix = "evidence/%s/" % incident
    return any(key.startswith(prefix) and key.endswith(".manifest.json") for key in nothing_lost.s3_objects(lab))


def restore_job_done(lab: Lab, shard: str, incident: str) -> bool:
    jobs = lab.api().list(BATCH, "jobs", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
    return any((job.get("status") or {}).get("succeeded") for job in jobs)


def reindex_started(lab: Lab, shard: str, incident: str) -> bool:
    """A re-index Job of this incident exists (one of an earlier incident of the shard does not count)."""
    jobs = lab.api().list(BATCH, "jobs", stack.NAMESPACE, REINDEX_LABEL)[0]
    return any(shard in job["metadata"]["name"]
               and (job["metadata"].get("annotations") or {}).get(nothing_lost.INCIDENT_ANNOTATION) == incident
               for job in jobs)


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[Lab, str, str], bool]


STEPS = (
    KillPoint("quarantined", entry_is("quarantined")),
    KillPoint("snapshots-held", hold_set),
    KillPoint("evidence-kept", evidence_kept),
    KillPoint("restoring", entry_is("restoring")),
    KillPoint("restore-job-done", restore_job_done),
    KillPoint("validating-after-restore", entry_is("validating", "after restore")),
    KillPoint("reindex-started", reindex_started),
    KillPoint("serving", entry_is("serving")),
)
# The steps after which a run leaves a different state behind (the hold follows the quarantine within a
# task, and a kill while the restore Job runs is tests/e2e/test_shard_recovery_paths.py's).
KILL_POINTS = tuple(step for step in STEPS if step.name not in ("snapshots-held", "restoring"))
# The shard is back in service before the re-index starts.
BACK_IN_SERVICE = ("reindex-started", "serving")


def kill_point_reached(lab: Lab, shard: str, incident: str, name: str) -> bool:
    """Whether the recovery of ``shard`` for ``incident`` got as far as the step called ``name``."""
    return next(step for step in STEPS if step.name == name).reached(lab, shard, incident)


# --- reading the end state ------------------------------------------------------------------------------------


def orphaned_volumes(lab: Lab) -> list[str]:
    """Volumes bound to no claim that are not kept as evidence: data nobody would find again."""
    found = lab.api().list(CORE, "persistentvolumes", "", "")[0]
    return sorted(v["metadata"]["name"] for v in found
                  if (v.get("status") or {}).get("phase") != "Bound"
                  and not (v["metadata"].get("labels") or {}).get(EVIDENCE_LABEL))


def end_state(lab: Lab, shard: str, incident: str, old_claim: str) -> Obj:
    """What a finished recovery leaves, without the names that differ from one shard or incident to another."""
    entry = stack.registry_entry(lab.api(), shard)
    evidence = [v for v in lab.api().list(CORE, "persistentvolumes", "", "")[0]
                if (v["metadata"].get("labels") or {}).get(EVIDENCE_LABEL) == incident.lower()]
    answer = serving_shards(lab, shard)
    pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
    return {
        "entry": {key: entry.get(key) for key in ("state", "reason")},
        "route_to": entry.get("route_to") or None,
        "same incident": entry.get("incident_id") == incident,
        "lock holders": lock_holder(lab),
        "hold": hold_of(lab, shard),
        "restore jobs": shard_recovery.restore_jobs(lab, shard),
        "restored claims": shard_recovery.restored_claims(lab, shard),
        "claim kept": claim_of(lab, shard) == old_claim,
        "evidence volumes": sorted(v["spec"].get("persistentVolumeReclaimPolicy") for v in evidence),
        "orphaned volumes": orphaned_volumes(lab),
        "shard pod Ready": any(pod_is_ready(p) for p in pods if p["spec"].get("restartPolicy") != "Never"),
        "golden ids served": set(golden_ids(shard)) <= set(found_on(answer, shard)),
        "postmortem": postmortem_outcome(lab, shard, incident),
    }


def postmortem_outcome(lab: Lab, shard: str, incident: str) -> str:
    path = reports_dir(lab) / incident / ("postmortem-%s.md" % shard)
    lines = path.read_text().splitlines() if path.exists() else []
    return next((line for line in lines if line.startswith("| outcome |")), "no postmortem")


def settled(lab: Lab) -> None:
    """Every shard serving and Ready again before the next fault: each test starts from a healthy stack."""
    eventually("every pod of the stack Ready", lambda: not stack.not_ready(lab.api()))


@dataclass(frozen=True)
class Reference:
    state: Obj
    result: Result


@pytest.fixture(scope="module")
def reference(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An uninterrupted recovery of shard-0, the end state every interrupted one must reach."""
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE),
                    tmp_path_factory.mktemp("reference"), env={"RAGOPS_REPORT_DIR": str(reports_dir(lab))})
    faults.inject(lab, "corrupt-shard", ["shard-0"])
    old_claim = claim_of(lab, "shard-0")
    before = nothing_lost.record(lab, reports_dir(lab))
    result = recover(runner, lab, "shard-0", "INC-K0")
    assert result.returncode == 0, result.stdout[-5000:]
    nothing_lost.check(lab, before)
    return Reference(end_state(lab, "shard-0", "INC-K0", old_claim), result)


def test_an_uninterrupted_run_is_the_reference(reference: Reference) -> None:
    state = reference.state
    assert state["entry"] == {"state": "serving", "reason": "golden set passed after restore"}, state
    assert state["lock holders"] == {} and state["hold"] == {} and state["orphaned volumes"] == [], state
    assert state["evidence volumes"] == ["Retain"] and state["golden ids served"], state
    # The stack's lock is taken once for the run, on the stack's host (the shards' hosts skip their own).
    taken = reference.result.stdout.split(LOCK_TASK + "] ", 1)[1].split("TASK [", 1)[0]
    assert "changed: [rag-lab]" in taken, taken


def kill_when(runner: Runner, lab: Lab, shard: str, incident: str, point: KillPoint) -> None:
    """Start the recovery and SIGKILL it, modules and all, as soon as ``point`` shows."""
    runner.kill_when(PLAYBOOK, recovery_options(lab, shard, incident),
                     "step %s of the recovery of %s" % (point.name, shard), lambda: point.reached(lab, shard, incident))


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_a_run_killed_at_each_step_of_scenario_a_is_finished_by_a_rerun(
        lab: Lab, runner: Runner, reference: Reference, point: KillPoint) -> None:
    shard = "shard-%d" % (1 + KILL_POINTS.index(point) % 3)
    incident = "INC-K-%s" % point.name
    settled(lab)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim = claim_of(lab, shard)
    before = nothing_lost.record(lab, reports_dir(lab))

    kill_when(runner, lab, shard, incident, point)

    # Killed: nothing is lost, the lock is still the dead run's (for its re-run), the shard is out of service
    # unless it was already back.
    nothing_lost.check(lab, before, alive={incident})
    held = lock_holder(lab)
    assert set(held.values()) <= {incident}, held
    if point.name not in BACK_IN_SERVICE:
        assert stack.registry_entry(lab.api(), shard)["state"] != "serving"
        assert shard not in serving_shards(lab, shard)["shards_queried"]

    rerun = recover(runner, lab, shard, incident)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    # The re-run finds the dead run's lock its own on the stack's host (same holder and run), or takes a lock
    # the dead run had released: never a takeover. Killed once the shard was back in service, the re-run has
    # no shard left to recover and takes no lock: it releases the one the dead run left held (end_state).
    lock = [value for key, value in rerun.host_results.get("rag-lab", {}).items() if key.endswith(" : " + LOCK_TASK)]
    if point.name in BACK_IN_SERVICE:
        assert [taken.get("skipped") for taken in lock] == [True], (held, lock)
    else:
        assert [taken.get("action") for taken in lock] == (["none"] if held else ["take"]), (held, lock)
    nothing_lost.check(lab, before)
    expected = dict(reference.state)
    if point.name in BACK_IN_SERVICE:
        # Killed before its postmortem entry: the re-run finds the shard recovered and says so.
        expected["postmortem"] = "| outcome | already recovered |"
        assert_points_at_the_first_runs_records(lab, shard, incident)
    assert end_state(lab, shard, incident, old_claim) == expected


def assert_points_at_the_first_runs_records(lab: Lab, shard: str, incident: str) -> None:
    """An entry written by the re-run of a run killed once the shard was back in service gives none of the
    restore's details as its own (it does not know them), and says where they are: the evidence bundle, the
    golden-query report beside the entry, the timeline."""
    folder = reports_dir(lab) / incident
    entry = (folder / ("postmortem-%s.md" % shard)).read_text()
    assert "| snapshot used | not known to this run" in entry and "none (re-open)" not in entry, entry
    assert "## Where the recovery is recorded" in entry, entry
    evidence = "evidence/%s/" % incident
    assert "s3://%s/%s" % (lab.s3().bucket, evidence) in entry, entry
    assert any(key.startswith(evidence + "evidence-") for key in nothing_lost.s3_objects(lab)), evidence
    assert (folder / ("golden-restore-%s.md" % shard)).is_file(), sorted(p.name for p in folder.iterdir())


def test_two_controllers_launching_the_same_recovery_at_once_run_it_once(
        lab: Lab, reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> None:
    """An AWX double launch: two jobs, each its own holder and working folder, started together."""
    shard, incident = "shard-0", "INC-K-double"
    settled(lab)
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim = claim_of(lab, shard)
    runners = [Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), folder,
                      env={"RAGOPS_REPORT_DIR": str(folder / "reports")})
               for folder in (tmp_path_factory.mktemp("awx-job-1"), tmp_path_factory.mktemp("awx-job-2"))]
    before = nothing_lost.record(lab, reports_dir(lab))
    options = [recovery_options(lab, shard, incident, shard_recovery_lock_holder="awx-job-%d" % number)
               for number in (1, 2)]
    started = [runner.start(PLAYBOOK, extra=extra) for runner, extra in zip(runners, options)]
    codes = [run.wait(timeout=600) for run in started]
    outputs = [(runner.workdir / "started.log").read_text() for runner in runners]

    assert sorted(codes) == [0, 2], [output[-3000:] for output in outputs]
    winner = codes.index(0)
    refused = outputs[1 - winner]
    assert "The stack is locked by awx-job-%d/rag-lab for incident %s" % (winner + 1, incident) in refused, \
        refused[-5000:]
    assert "Quarantine the shard]" not in refused, refused[-5000:]  # refused before its first change
    nothing_lost.check(lab, before)
    # Each job reports in its own folder: the winner's postmortem is there, not in the module's.
    postmortem = runners[winner].workdir / "reports" / incident / ("postmortem-%s.md" % shard)
    assert "| outcome | recovered |" in postmortem.read_text()
    state = end_state(lab, shard, incident, old_claim)
    assert dict(state, postmortem=reference.state["postmortem"]) == reference.state
