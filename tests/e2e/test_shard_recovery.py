"""Scenario A against the lab: playbooks/vectorstore_shard_recovery.yml run by ansible-playbook.

One lab for the module (the tests run in order and build on each other): the daily snapshots are taken
first, then a shard is corrupted; check mode changes nothing, the real run restores the shard onto a new
volume bound to the claim its StatefulSet expects (the old volume kept as evidence), a re-run changes
nothing, a second run is refused while another holder has the stack's lock, a shard whose only
snapshot is corrupt stays quarantined, its snapshots held from pruning, and a shard whose validation flaps
(one passing round, then a failing one) is not put back into service until it passes twice in a row.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import nothing_written
import pytest
import yaml
from flapping import FlappingShard
from harness import ROOT, Cluster, Result, Runner, task
from lab_support import running_lab

from ragops_lab import faults, stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.drills import shard_recovery
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
PLAYBOOK = ROOT / "playbooks" / "vectorstore_shard_recovery.yml"
EVIDENCE_LABEL = "ragops.io/evidence"
COORDINATION = "/apis/coordination.k8s.io/v1"
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab whose shards all have a snapshot, as the daily safety net leaves them."""
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        shard_recovery.snapshot_every_shard(running, running.paths.root / "e2e" / "snapshots.log")
        yield running


@pytest.fixture(name="runner")
def runner_fixture(lab: Lab, tmp_path: Path) -> Runner:
    """A runner whose reports go to one folder for the module, as they would on one bastion."""
    return Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), tmp_path,
                  env={"RAGOPS_REPORT_DIR": str(reports_dir(lab))})


def reports_dir(lab: Lab) -> Path:
    return lab.paths.root / "reports"


def recovery_options(lab: Lab, shard: str, incident_id: str, **extra_vars: str) -> list[str]:
    """The playbook's command line options as an on-call engineer gives them: the lab's inventory, a shard,
    an incident id and any further variables (``route_to``, ``replica_url``...)."""
    variables = dict(extra_vars, shard=shard, incident_id=incident_id)
    return ["-i", str(lab.paths.inventory), *(option for name, value in variables.items()
                                              for option in ("-e", "%s=%s" % (name, value)))]


def recover(runner: Runner, lab: Lab, shard: str, incident_id: str, *, check: bool = False,
            verbosity: str = "", **extra_vars: str) -> Result:
    """One run of the playbook against the lab; ``verbosity`` is ``-v`` .. ``-vvvv``."""
    extra = recovery_options(lab, shard, incident_id, **extra_vars) + ([verbosity] if verbosity else [])
    return runner.run(PLAYBOOK, check=check, extra=extra)


def cluster_state(lab: Lab) -> Obj:
    """What a recovery could change: the registry, the PVCs with their labels, the pods, the leases."""
    api = lab.api()
    registry = api.get(object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)) or {}
    claims = api.list(CORE, "persistentvolumeclaims", stack.NAMESPACE, "")[0]
    pods = api.list(CORE, "pods", stack.NAMESPACE, "")[0]
    leases = api.list(COORDINATION, "leases", stack.NAMESPACE, "")[0]
    volumes = api.list(CORE, "persistentvolumes", "", "")[0]
    return {"registry": registry.get("data") or {},
            "claims": {c["metadata"]["name"]: c["metadata"].get("labels") or {} for c in claims},
            "volumes": {v["metadata"]["name"]: {"labels": v["metadata"].get("labels") or {},
                                                "policy": v["spec"].get("persistentVolumeReclaimPolicy")}
                        for v in volumes},
            "pods": sorted(p["metadata"]["name"] for p in pods),
            "leases": {lease["metadata"]["name"]: lease.get("spec") for lease in leases}}


def volume_of(lab: Lab, claim: str) -> str:
    found = lab.api().get(object_path(CORE, "persistentvolumeclaims", stack.NAMESPACE, claim)) or {}
    return str((found.get("spec") or {}).get("volumeName") or "")


def claim_of(lab: Lab, shard: str) -> str:
    """The claim of the shard's pod, the Ready one if any (a restore Job's pod carries the shard label too)."""
    pods = [p for p in lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, shard))[0]
            if p["spec"].get("restartPolicy") != "Never"]
    assert pods, "no pod of %s" % shard
    pod = sorted(pods, key=lambda p: not pod_is_ready(p))[0]
    return str(next(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                    if "persistentVolumeClaim" in v))


def serving_shards(lab: Lab, shard: str) -> Obj:
    """The retriever's answer to a golden query whose documents live on ``shard``."""
    return stack.search(lab.endpoints().services["retriever"], shard_recovery.golden_query(shard)["text"])


def task_result(result: Result, name: str) -> Obj:
    """A role task's result; role tasks are recorded as "<role> : <task name>"."""
    return t.cast(Obj, next(value for key, value in result.results.items() if key.endswith(name)))


def test_quarantine_check_mode_prints_the_change_and_writes_nothing(lab: Lab, runner: Runner) -> None:
    timeline = runner.workdir / "timeline"
    runner.env.update(CALLBACKS="ragops.recovery.timeline", RAGOPS_TIMELINE_DIR=str(timeline))
    before = nothing_written.state(lab, runner.workdir, timeline)
    checked = runner.run(ROOT / "playbooks" / "shard_quarantine.yml", check=True,
                         extra=recovery_options(lab, "shard-1", "INC-Q1"))
    assert checked.returncode == 0, checked.stdout
    assert nothing_written.changes(before, nothing_written.state(lab, runner.workdir, timeline)) == []
    plan = checked.results["Show what would change (check mode)"]["msg"]
    assert plan[1] == "registry rag-shard-registry: shard-1 serving -> quarantined", plan
    assert plan[2] == "pods labelled ragops.io/serving=false: vectorstore-1", plan
    assert "shard-1 serving -> quarantined" in checked.stdout


def test_check_mode_prints_the_plan_and_writes_nothing(lab: Lab, runner: Runner) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    timeline = runner.workdir / "timeline"
    runner.env.update(CALLBACKS="ragops.recovery.timeline", RAGOPS_TIMELINE_DIR=str(timeline))
    before = nothing_written.state(lab, runner.workdir, reports_dir(lab), timeline)
    checked = recover(runner, lab, "shard-2", "INC-A1", check=True)
    assert checked.returncode == 0, checked.stdout
    assert nothing_written.changes(before, nothing_written.state(lab, runner.workdir, reports_dir(lab), timeline)) == []
    assert "Timeline not written" in checked.stdout
    plan = task_result(checked, "Show what the recovery would do (check mode)")["msg"]
    assert plan[0] == "shard-2: planned (INC-A1); check mode, nothing was changed or written", plan
    reopen = task_result(checked, "Try a graceful re-open of the index")["planned"]
    restore = task_result(
        checked, "Restore the newest verified snapshot onto a new volume under the shard's controller")["job"]
    reindex = task_result(checked, "Re-index the documents written since the snapshot")["reindex"]
    text, planned = "\n".join(plan), restore["plan"]
    for expected in ("POST %s" % reopen["url"], "new PVC %s of %s" % (planned["claim"], planned["size"]),
                     "by the Job %s" % planned["job"],
                     "bind its volume to the claim %s of StatefulSet/" % restore["previous"]["claim"],
                     "the old volume would be kept (Retain) as evidence",
                     "hold: the snapshots of shard-2 kept from pruning",
                     "shard-2 serving -> quarantined", "shard-2 quarantined -> restoring",
                     "shard-2 restoring -> validating", "shard-2 validating -> serving",
                     "re-index: Job %s" % reindex["job"], "evidence: write a bundle to s3://"):
        assert expected in text, text
    assert reopen["url"].endswith("/admin/reopen") and planned["claim"].startswith("data-vectorstore-2-r-")
    # At default verbosity: the plan is in the output, and nothing says the shard was recovered.
    assert "POST %s" % reopen["url"] in checked.stdout
    assert "shard-2: recovered" not in checked.stdout and "(tried" not in checked.stdout, checked.stdout


def test_recovery_restores_onto_a_new_volume_and_keeps_the_old_one(lab: Lab, runner: Runner) -> None:
    old_claim = claim_of(lab, "shard-2")
    old_volume = volume_of(lab, old_claim)
    applied = recover(runner, lab, "shard-2", "INC-A1")
    assert applied.returncode == 0, applied.stdout
    entry = stack.registry_entry(lab.api(), "shard-2")
    assert entry["state"] == "serving" and entry["incident_id"] == "INC-A1", entry
    assert claim_of(lab, "shard-2") == old_claim  # the claim the StatefulSet expects
    assert volume_of(lab, old_claim) != old_volume
    evidence = cluster_state(lab)["volumes"][old_volume]
    assert evidence["labels"].get(EVIDENCE_LABEL) == "inc-a1", evidence  # a label value: DNS-safe
    assert evidence["policy"] == "Retain"
    assert "shard-2" in serving_shards(lab, "shard-2")["shards_queried"]
    assert cluster_state(lab)["leases"] == {} or all(
        not (spec or {}).get("holderIdentity") for spec in cluster_state(lab)["leases"].values())
    postmortem = reports_dir(lab) / "INC-A1" / "postmortem-shard-2.md"
    assert "| outcome | recovered |" in postmortem.read_text()
    assert lab.s3().secret_key not in applied.stdout


def test_rerun_after_recovery_changes_nothing(lab: Lab, runner: Runner) -> None:
    before = cluster_state(lab)
    again = recover(runner, lab, "shard-2", "INC-A1")
    assert again.returncode == 0 and again.changed == 0, again.stdout
    assert cluster_state(lab) == before


def test_second_run_is_refused_by_the_lock(lab: Lab, runner: Runner) -> None:
    holder = [task("lock", "incident_lock", incident_id="INC-OTHER", holder="alice@bastion")]
    taken = runner.play(holder, auth={"kubeconfig": str(lab.paths.kubeconfig)})
    assert taken.failed == 0 and taken.results["lock"]["changed"], taken.stdout
    try:
        before = cluster_state(lab)
        refused = recover(runner, lab, "shard-1", "INC-A2")
        assert refused.returncode != 0
        assert "alice@bastion" in refused.stdout and "INC-OTHER" in refused.stdout, refused.stdout
        assert cluster_state(lab) == before
    finally:
        holder[0]["ragops.recovery.incident_lock"]["state"] = "absent"
        released = runner.play(holder, auth={"kubeconfig": str(lab.paths.kubeconfig)})
        assert released.failed == 0, released.stdout


def test_corrupt_snapshot_fails_the_gate_and_keeps_the_shard_quarantined(lab: Lab, runner: Runner) -> None:
    archives = shard_recovery.corrupt_snapshot_archives(lab, "shard-3")
    assert archives
    faults.inject(lab, "corrupt-shard", ["shard-3"])
    old_claim = claim_of(lab, "shard-3")
    failed = recover(runner, lab, "shard-3", "INC-A3")
    assert failed.returncode != 0
    entry = stack.registry_entry(lab.api(), "shard-3")
    assert entry["state"] == "quarantined" and entry["incident_id"] == "INC-A3", entry
    message = failed.stdout[failed.stdout.index("Recovery of shard-3"):]
    assert "Tried: re-open" in message and "Next:" in message, message
    assert "held from pruning" in message, message
    assert "shard-3" not in serving_shards(lab, "shard-3")["shards_queried"]
    assert old_claim in cluster_state(lab)["claims"] and claim_of(lab, "shard-3") == old_claim, failed.stdout
    s3 = lab.s3()
    kept = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="snapshots/shard-3/").get("Contents") or []
    assert set(archives) <= {item["Key"] for item in kept}
    postmortem = reports_dir(lab) / "INC-A3" / "postmortem-shard-3.md"
    assert "| outcome | failed |" in postmortem.read_text()


def test_the_failed_recovery_keeps_the_shards_snapshots_held_from_pruning(lab: Lab) -> None:
    """The incident of the test above is still open."""
    s3 = lab.s3()
    hold = json.loads(s3.client().get_object(Bucket=s3.bucket, Key="snapshots/shard-3/HOLD")["Body"].read())
    assert hold["incident_id"] == "INC-A3", hold


def test_the_evidence_was_collected_after_the_quarantine(lab: Lab) -> None:
    """Safe mode first: the registry in the failed recovery's evidence bundle shows the shard quarantined."""
    s3 = lab.s3()
    data = s3.client().get_object(Bucket=s3.bucket, Key="evidence/INC-A3/evidence-shard-3.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        registry = yaml.safe_load(t.cast(t.IO[bytes], archive.extractfile("registry.yaml")))
    entry = json.loads(registry["data"]["shard-3"])
    assert entry["state"] == "quarantined" and entry["previous_state"] == "serving", entry


def gate_results(result: Result, url: str) -> list[Obj]:
    """The validations of the golden gates that queried ``url``, in the order they ran."""
    return [value["validation"] for value in result.results.values()
            if isinstance(value.get("validation"), dict)
            and value["validation"]["endpoint"]["url"].startswith(url)]


def shard_urls(lab: Lab, shard: str, url: str) -> list[str]:
    """Extra variables that point the golden gate of ``shard`` at ``url``."""
    return ["-e", json.dumps({"ragops_shard_urls": {**lab.endpoints().shards, shard: url}})]


def test_a_shard_whose_validation_flaps_is_not_put_back_into_service(lab: Lab, runner: Runner) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-1"])
    real = lab.endpoints().shards["shard-1"]
    with FlappingShard(real) as flapping:
        extra = recovery_options(lab, "shard-1", "INC-A4") + shard_urls(lab, "shard-1", flapping.url)
        failed = runner.run(PLAYBOOK, extra=extra)
    assert failed.returncode != 0, failed.stdout
    assert flapping.forwarded > 0 and flapping.refused == flapping.forwarded, (flapping.forwarded, flapping.refused)
    gate = gate_results(failed, flapping.url)[-1]
    assert [r["passed"] for r in gate["rounds"]] == [True, False], gate["rounds"]
    assert "needed 2 consecutive passing rounds, got 0 after 2 round(s)" in failed.stdout, failed.stdout
    entry = stack.registry_entry(lab.api(), "shard-1")
    assert entry["state"] == "quarantined" and entry["incident_id"] == "INC-A4", entry
    assert "shard-1" not in serving_shards(lab, "shard-1")["shards_queried"]
    # The same incident, once the shard answers steadily: two passing rounds put it back.
    with FlappingShard(real, flapping=False) as steady:
        extra = recovery_options(lab, "shard-1", "INC-A4") + shard_urls(lab, "shard-1", steady.url)
        recovered = runner.run(PLAYBOOK, extra=extra)
    assert recovered.returncode == 0, recovered.stdout
    assert [r["passed"] for r in gate_results(recovered, steady.url)[-1]["rounds"]] == [True, True]
    assert stack.registry_entry(lab.api(), "shard-1")["state"] == "serving"
    assert "shard-1" in serving_shards(lab, "shard-1")["shards_queried"]
