"""The bootstrap_recovery playbook (runbook Scenario C) through real ansible-playbook runs against whole labs.

Each test gets a lab of its own (the fixture of the lab's own tests) because it breaks the stack:
a pending migration, a component that never becomes Ready, everything scaled down. The order is the
collection's usual one: check mode changes nothing, apply, verify in the cluster, re-run changes nothing.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing as t
from pathlib import Path

import nothing_written
import pytest
import yaml
from harness import ROOT, Cluster, Result, Runner
from lab_support import fresh_lab_fixture  # noqa: F401 - pytest finds fixtures by name

from ragops_lab import faults, stack
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab

PLAYBOOK = ROOT / "playbooks" / "bootstrap_recovery.yml"
ROLE = "ragops.recovery.bootstrap_recovery : "
COMPONENTS = ("controller", "vectorstore", "provider-primary", "provider-backup", "retriever", "generator", "indexer")


def lab_runner(lab: Lab, workdir: Path, **env: str) -> Runner:
    cluster = Cluster(server=None, kubeconfig=lab.paths.kubeconfig, token="", namespace=stack.NAMESPACE)
    return Runner(cluster, workdir, env=dict(env))


def recover(runner: Runner, lab: Lab, incident: str, *, check: bool = False, **extra: t.Any) -> Result:
    """The packaged playbook against the lab's inventory; ``extra`` become extra vars."""
    variables = {"incident_id": incident, "bootstrap_recovery_wait_sleep": 1, **extra}
    return runner.run(PLAYBOOK, check=check, diff=check, extra=["-i", str(lab.paths.inventory),
                                                                "-e", json.dumps(variables)])


def workloads(cluster: Cluster) -> dict[str, dict[str, t.Any]]:
    found = {}
    for kind in ("deployments", "statefulsets"):
        for item in json.loads(cluster.kubectl("get", kind, "-n", cluster.namespace, "-o", "json"))["items"]:
            found[item["metadata"]["name"]] = item
    return found


def replicas(cluster: Cluster) -> dict[str, int]:
    return {name: int(item["spec"]["replicas"]) for name, item in workloads(cluster).items()}


def schema_version(cluster: Cluster) -> str:
    return str(cluster.get("configmap", "rag-schema")["data"]["version"])


def lease_holder(cluster: Cluster) -> str | None:
    lease = cluster.get("lease", "ragops-recovery-lock")
    return t.cast("str | None", lease["spec"].get("holderIdentity"))


def record(result: Result) -> dict[str, t.Any]:
    """The run's set_stats record of the stack, as AWX keeps it."""
    stats = result.results[ROLE + "Record the outcome"]["ansible_stats"]["data"]
    return t.cast("dict[str, t.Any]", stats["ragops_recovery"]["rag-lab"])


def bundle_files(lab: Lab, key: str) -> dict[str, bytes]:
    """The files of a write-once bundle in the lab's bucket."""
    s3 = lab.s3()
    data = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: t.cast(t.IO[bytes], archive.extractfile(member)).read() for member in archive.getmembers()}


def test_pending_migration_check_mode_then_recovery_then_rerun_is_a_no_op(fresh_lab: Lab, tmp_path: Path) -> None:
    faults.inject(fresh_lab, "pending-migration", [])
    timeline = tmp_path / "timeline"
    runner = lab_runner(fresh_lab, tmp_path, CALLBACKS="ragops.recovery.timeline", RAGOPS_TIMELINE_DIR=str(timeline))
    cluster = runner.cluster

    before = nothing_written.state(fresh_lab, tmp_path, timeline)
    planned = recover(runner, fresh_lab, "INC-C1", check=True)
    assert planned.returncode == 0, planned.stdout
    assert nothing_written.changes(before, nothing_written.state(fresh_lab, tmp_path, timeline)) == []
    plan = planned.results[ROLE + "Show what the recovery would do (check mode)"]["msg"]
    assert plan[0] == "rag-lab: planned (INC-C1); check mode, nothing was changed or written", plan
    assert "migration: Job rag-migrate-v2 (create), schema version 1 -> 2" in plan, plan
    assert any(line.startswith("start (in_order): controller, retriever, generator, in the order ") for line in plan)
    assert "Recovered" not in planned.stdout
    diagnosis = planned.results[ROLE + "Read the whole stack before changing anything"]["diagnosis"]
    assert diagnosis["cause"] == "pending_migration"
    assert diagnosis["blocked"] == ["controller", "retriever", "generator"]
    assert planned.results[ROLE + "Run the pending migration once"]["migration"]["status"] == "planned"
    started = planned.results[ROLE + "Start the components in dependency order"]
    assert started["started"] == ["controller", "retriever", "generator"]
    assert schema_version(cluster) == "1"
    assert cluster.kubectl("get", "jobs", "-n", cluster.namespace, "-o", "name") == ""
    assert "ragops-recovery-lock" not in cluster.kubectl("get", "leases", "-n", cluster.namespace, "-o", "name")
    s3 = fresh_lab.s3()
    bundle = "evidence/INC-C1/evidence-stack.tar.gz"
    assert "Contents" not in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=bundle)

    applied = recover(runner, fresh_lab, "INC-C1")
    assert applied.returncode == 0, applied.stdout
    # The stack as read before any change, written once to the store Scenario A keeps its evidence in.
    kept = applied.results[ROLE + "Keep the stack as read in the write-once store"]["evidence"]
    assert kept["s3_uri"] == "s3://%s/%s" % (s3.bucket, bundle) and kept["existed"] is False
    migration = applied.results[ROLE + "Run the pending migration once"]["migration"]
    assert (migration["job"], migration["status"], migration["exit_code"]) == ("rag-migrate-v2", "succeeded", 0)
    assert any('"migrations_complete"' in line for line in migration["logs"])
    started = applied.results[ROLE + "Start the components in dependency order"]
    order = started["order"]
    assert order.index("controller") < order.index("retriever") < order.index("generator")
    assert started["started"] == [name for name in order if name in started["started"]]
    assert applied.results[ROLE + "Verify that every component is Ready"].get("failed") is not True
    assert schema_version(cluster) == "2" and stack.not_ready(fresh_lab.api()) == []
    assert lease_holder(cluster) is None
    runs = sorted((tmp_path / "incidents" / "INC-C1").iterdir())
    assert len(runs) == 1  # the check-mode run wrote nothing
    incident = runs[0]
    assert json.loads((incident / "stack-before.json").read_text())["diagnosis"]["cause"] == "pending_migration"
    postmortem = (incident / "postmortem.md").read_text()
    assert "recovered: every component Ready" in postmortem and "Job `rag-migrate-v2` (create)" in postmortem
    assert "evidence store: `s3://%s/%s` (written once)" % (s3.bucket, bundle) in postmortem
    assert "timeline.md" in postmortem and (timeline / "timeline.json").exists()
    # The timeline shows Scenario C's phases, and when every component was back.
    recorded = json.loads((timeline / "timeline.json").read_text())
    phases = {phase["label"] for phase in recorded["phases"]}
    assert {"lock", "diagnosis", "evidence", "migration", "start in order", "validation", "report"} <= phases, phases
    assert [reached["milestone"] for reached in recorded["milestones"]] == ["back_in_service"], recorded["milestones"]
    # The follow-up, pre-filled from the diagnosis; the entry, the stack and the timeline next to the evidence.
    assert "**Root cause**: `pending_migration`:" in postmortem, postmortem
    caught = "**The automated test that would have caught it**: a pipeline step\n  that runs the migration Job"
    assert caught in postmortem, postmortem
    assert "**Runbook changes**: none: the migration and the start in dependency order recovered" in postmortem
    records = "evidence/INC-C1/postmortem-bootstrap-%s.tar.gz" % incident.name
    assert record(applied)["records"] == "s3://%s/%s" % (s3.bucket, records), record(applied)
    assert "Records (postmortem entry, stack before and after, timeline): s3://%s/%s." % (s3.bucket, records) \
        in applied.stdout
    files = bundle_files(fresh_lab, records)
    assert files["postmortem.md"].decode() == postmortem
    assert json.loads(files["stack-after.json"])["diagnosis"]["healthy"] is True
    steps = [step["task"] for step in json.loads(files["timeline.json"])["steps"]]
    assert ROLE + "Run the pending migration once" in steps, steps

    jobs = cluster.kubectl("get", "jobs", "-n", cluster.namespace, "-o", "name")
    again = recover(runner, fresh_lab, "INC-C1")
    assert again.returncode == 0, again.stdout
    assert again.results[ROLE + "Read the whole stack before changing anything"]["diagnosis"]["healthy"] is True
    assert again.results[ROLE + "Run the pending migration once"].get("skipped") is True
    assert again.results[ROLE + "Start the components in dependency order"]["changed"] is False
    assert cluster.kubectl("get", "jobs", "-n", cluster.namespace, "-o", "name") == jobs

    # Booleans as an AWX survey's multiple-choice answer gives them: the text "false" is false.
    kept = recover(runner, fresh_lab, "INC-C1", bootstrap_recovery_release_lock="false",
                   bootstrap_recovery_one_by_one="false")
    assert kept.returncode == 0, kept.stdout
    assert kept.results[ROLE + "Release the stack's recovery lock"].get("skipped") is True
    assert lease_holder(cluster) == kept.results[ROLE + "Take the stack's recovery lock"]["lock"]["holder"]


def test_cycle_refused_then_never_ready_stops_then_recovery_from_scaled_down(fresh_lab: Lab, tmp_path: Path) -> None:
    runner = lab_runner(fresh_lab, tmp_path)
    cluster = runner.cluster
    before = replicas(cluster)
    inventory = yaml.safe_load(fresh_lab.paths.inventory.read_text())
    components = inventory["all"]["children"]["rag_stacks"]["hosts"]["rag-lab"]["ragops_components"]
    cyclic = [dict(c, depends_on=["indexer"]) if c["name"] == "controller" else c for c in components]
    cyclic = [dict(c, depends_on=["controller"]) if c["name"] == "indexer" else c for c in cyclic]

    refused = recover(runner, fresh_lab, "INC-C2", ragops_components=cyclic)
    assert refused.returncode != 0
    assert "Dependency cycle controller \u2192 indexer \u2192 controller" in refused.stdout
    diagnosis = refused.results[ROLE + "Read the whole stack before changing anything"]["diagnosis"]
    assert diagnosis["cycle"] == ["controller", "indexer", "controller"]
    assert replicas(cluster) == before and stack.not_ready(fresh_lab.api()) == []
    assert lease_holder(cluster) == refused.results[ROLE + "Take the stack's recovery lock"]["lock"]["holder"]

    # A controller that can never start: its schema requirement is beyond any migration.
    cluster.kubectl("set", "env", "deployment/controller", "-n", cluster.namespace, "REQUIRED_SCHEMA_VERSION=9")
    stuck = recover(runner, fresh_lab, "INC-C2", bootstrap_recovery_wait_timeout=8)
    assert stuck.returncode != 0
    in_order = stuck.results[ROLE + "Start the components in dependency order"]
    assert in_order["failed_component"] == "controller"
    one_by_one = stuck.results[ROLE + "Scale everything down and bring the components up one by one"]
    assert one_by_one["failed"] is True and one_by_one["failed_component"] == "controller"
    assert one_by_one["msg"].startswith("Timed out after 8s waiting for Deployment rag-lab/controller to become "
                                        "Ready (pod controller-")
    assert "not started, left at zero: vectorstore, provider-primary" in one_by_one["msg"]
    assert one_by_one["last_seen"]["state"] == "crash_looping"
    down = replicas(cluster)
    assert down["controller"] == 1 and all(down[name] == 0 for name in COMPONENTS if name != "controller")
    remembered = workloads(cluster)["vectorstore"]["metadata"]["annotations"]["ragops.io/scaled-down-from"]
    assert remembered == "4"
    assert "Bootstrap recovery of rag-lab failed" in stuck.stdout and "stays held" in stuck.stdout
    refused_run, stuck_run = sorted((tmp_path / "incidents" / "INC-C2").iterdir())
    refused_entry = (refused_run / "postmortem.md").read_text()
    assert "cause: `dependency_cycle`" in refused_entry
    assert "The components wait for each other: controller \u2192 indexer \u2192 controller." in refused_entry
    assert "fails on a dependency cycle before the rollout" in refused_entry and "**Runbook changes**: the automation" \
        " stopped at \"Refuse to start components that wait for each other\"" in refused_entry, refused_entry
    # A failed run's records are kept too, each run under its own name.
    assert record(refused)["outcome"] == "failed"
    kept = bundle_files(fresh_lab, "evidence/INC-C2/postmortem-bootstrap-%s.tar.gz" % refused_run.name)
    assert kept["postmortem.md"].decode() == refused_entry
    assert "evidence/INC-C2/postmortem-bootstrap-%s.tar.gz" % stuck_run.name in record(stuck)["records"]
    postmortem = (stuck_run / "postmortem.md").read_text()
    assert "| outcome | FAILED |" in postmortem and "stopped at controller" in postmortem

    cluster.kubectl("set", "env", "deployment/controller", "-n", cluster.namespace, "REQUIRED_SCHEMA_VERSION=1")
    back = recover(runner, fresh_lab, "INC-C2")
    assert back.returncode == 0, back.stdout
    diagnosis = back.results[ROLE + "Read the whole stack before changing anything"]["diagnosis"]
    # The controller may already be Ready again after its env change: then only scaled-down components are left.
    assert diagnosis["cause"] in ("not_ready", "scaled_down")
    assert "vectorstore: scaled to 0 by the collection (had 4)" in diagnosis["summary"]
    started = back.results[ROLE + "Start the components in dependency order"]["started"]
    assert [name for name in started if name != "controller"] == list(COMPONENTS[1:])
    assert replicas(cluster) == before and stack.not_ready(fresh_lab.api()) == []
    assert not any("ragops.io/scaled-down-from" in (w["metadata"].get("annotations") or {})
                   for w in workloads(cluster).values())
    assert lease_holder(cluster) is None
