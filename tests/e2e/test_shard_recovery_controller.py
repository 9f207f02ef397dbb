"""Scenario A then Scenario C on one lab: a shard restored under its StatefulSet, then a bootstrap recovery.

The restored shard must end where its controller puts it: the StatefulSet's own pod (``vectorstore-2``) on
the claim the StatefulSet expects (``data-vectorstore-2``), bound to the restored volume; the old volume
kept as evidence (reclaim policy Retain, labelled with the incident). A bootstrap recovery afterwards then
finds every workload Ready and succeeds; the shard still serves the restored data.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing as t
from pathlib import Path

import pytest
import yaml
from harness import ROOT, Cluster, Result, Runner
from test_shard_recovery import lab_fixture, recover, serving_shards  # noqa: F401 - the fixture lab

from ragops_lab import faults, stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
SHARD = "shard-2"
CLAIM = "data-vectorstore-2"
BOOTSTRAP = ROOT / "playbooks" / "bootstrap_recovery.yml"
Obj = dict[str, t.Any]


def claim(lab: Lab, name: str = CLAIM) -> Obj:
    return t.cast(Obj, lab.api().get(object_path(CORE, "persistentvolumeclaims", stack.NAMESPACE, name)) or {})


def volume(lab: Lab, name: str) -> Obj:
    return t.cast(Obj, lab.api().get("%s/persistentvolumes/%s" % (CORE, name)) or {})


def shard_pods(lab: Lab) -> list[Obj]:
    """The shard's serving pods (a restore Job's pod carries the shard label too)."""
    pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "%s=%s" % (faults.SHARD_LABEL, SHARD))[0]
    return [p for p in pods if p["spec"].get("restartPolicy") != "Never"]


def task_result(run: Result, name: str) -> Obj:
    """The result of the role's task called ``name``."""
    found = [value for key, value in run.results.items() if key == name or key.endswith(" : " + name)]
    assert found, "no task %r among %s" % (name, sorted(run.results))
    return t.cast(Obj, found[-1])


def s3_keys(lab: Lab, prefix: str) -> set[str]:
    s3 = lab.s3()
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents") or []}


def bundle_file(lab: Lab, incident: str, name: str, bundle: str = "evidence-" + SHARD) -> bytes:
    """A file of an evidence bundle in S3."""
    s3 = lab.s3()
    data = s3.client().get_object(Bucket=s3.bucket, Key="evidence/%s/%s.tar.gz" % (incident, bundle))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(name)
        assert member is not None, name
        return member.read()


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_restored_shard_ends_under_its_statefulset_and_a_bootstrap_recovery_then_succeeds(
        lab: Lab, tmp_path: Path) -> None:
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), tmp_path,
                    env={"RAGOPS_REPORT_DIR": str(tmp_path / "reports")})
    faults.inject(lab, "corrupt-shard", [SHARD])
    old_volume = claim(lab)["spec"]["volumeName"]
    damaged = files(Path(volume(lab, old_volume)["spec"]["hostPath"]["path"]))

    restored = recover(runner, lab, SHARD, "INC-AC1")

    assert restored.returncode == 0, restored.stdout[-5000:]
    (pod,) = shard_pods(lab)
    owners = [(o["kind"], o["name"]) for o in pod["metadata"].get("ownerReferences") or []]
    assert pod["metadata"]["name"] == "vectorstore-2" and owners == [("StatefulSet", "vectorstore")], pod["metadata"]
    assert pod_is_ready(pod)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [CLAIM]
    new_volume = claim(lab)["spec"]["volumeName"]
    assert new_volume != old_volume
    evidence = volume(lab, old_volume)
    assert evidence["spec"]["persistentVolumeReclaimPolicy"] == "Retain", evidence
    assert evidence["metadata"]["labels"].get("ragops.io/evidence") == "inc-ac1", evidence["metadata"]
    assert evidence["metadata"]["labels"].get(faults.SHARD_LABEL) == SHARD, evidence["metadata"]
    assert files(Path(evidence["spec"]["hostPath"]["path"])) == damaged  # the evidence is untouched
    assert stack.registry_entry(lab.api(), SHARD)["state"] == "serving"
    assert SHARD in serving_shards(lab, SHARD)["shards_queried"]
    # Safe mode first: the quarantine ran before the evidence was collected, and the hold on pruning was
    # set for the incident and released at its end.
    quarantined = task_result(restored, "Quarantine the shard")["shard"]
    assert quarantined["state"] == "quarantined" and quarantined["previous_state"] == "serving"
    registry = yaml.safe_load(bundle_file(lab, "INC-AC1", "registry.yaml"))
    assert json.loads(registry["data"][SHARD])["state"] == "quarantined"
    assert task_result(restored, "Hold the shard's snapshots from pruning while the incident is open")["hold"][
        "incident_id"] == "INC-AC1"
    assert task_result(restored, "Release the hold on pruning the shard's snapshots")["changed"] is True
    assert "snapshots/%s/HOLD" % SHARD not in s3_keys(lab, "snapshots/%s/" % SHARD)

    faults.inject(lab, "pending-migration", [])
    variables = {"incident_id": "INC-AC2", "bootstrap_recovery_wait_sleep": 1, "bootstrap_recovery_wait_timeout": 60}
    booted = runner.run(BOOTSTRAP, extra=["-i", str(lab.paths.inventory), "-e", json.dumps(variables)])

    assert booted.returncode == 0, booted.stdout[-5000:]
    assert stack.not_ready(lab.api()) == []
    # Scenario C keeps its evidence in the same write-once store as Scenario A.
    before = json.loads(bundle_file(lab, "INC-AC2", "stack-before.json", bundle="evidence-stack"))
    assert before["diagnosis"]["cause"] == "pending_migration"
    (pod,) = shard_pods(lab)
    assert pod["metadata"]["name"] == "vectorstore-2" and claim(lab)["spec"]["volumeName"] == new_volume
    answer = serving_shards(lab, SHARD)
    assert SHARD in answer["shards_queried"] and not answer.get("errors"), answer
    assert volume(lab, old_volume)["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
