"""Scenario A's other paths against one lab: playbooks/vectorstore_shard_recovery.yml run by ansible-playbook.

One lab for the module (the tests run in order; each uses a shard of its own): a shard whose index was
unloaded but whose files are sound recovers by a re-open alone; with the newest snapshot corrupt the
older verified one is restored and the newest quarantined in S3, in a run at -vvv whose output, reports
and timeline carry no credential, and whose unhealthy replica gets no traffic; a run killed during the
restore, while a healthy replica takes the shard's traffic, is finished by a re-run of the same incident,
and a run stopped in the gate after its restore resumes at the (already done) restore.
"""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nothing_lost
import pytest
from harness import Cluster, Result, Runner, kill_run, task
from test_shard_recovery import (  # noqa: F401 - pytest finds the fixtures lab and runner by name
    EVIDENCE_LABEL,
    PLAYBOOK,
    Obj,
    claim_of,
    cluster_state,
    lab_fixture,
    recover,
    recovery_options,
    reports_dir,
    runner_fixture,
    serving_shards,
)

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS, CORE, object_path
from ragops_lab.drills import shard_recovery
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
REPLICA_LABEL = "ragops.io/replica-of"
QUARANTINE_MARKER = "QUARANTINED"
WAIT_SECONDS = 120.0
RESTORE_TASK = "Restore the newest verified snapshot onto a new volume under the shard's controller"


def eventually(what: str, check: Callable[[], t.Any], timeout: float = WAIT_SECONDS) -> t.Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(0.1)


# --- a replica of a shard: its own Deployment, volume and Service, not labelled as the shard -------------------


def replica_objects(shard: str, name: str) -> list[Obj]:
    """A second copy of ``shard`` built from the corpus, as an operator would run a warm replica."""
    labels = {"app.kubernetes.io/name": name, REPLICA_LABEL: shard}
    volume_mount = [{"name": "data", "mountPath": "/data"}]
    env = [{"name": "SHARD_ID", "value": shard}, {"name": "DATA_DIR", "value": "/data"}]
    pod_spec = {
        "terminationGracePeriodSeconds": 5,
        "initContainers": [{"name": "build-index", "image": "ragops-lab/shard", "volumeMounts": volume_mount,
                            "args": ["build", "--shard", shard, "--out", "/data", "--if-missing"]}],
        "containers": [{"name": "shard", "image": "ragops-lab/shard", "env": env, "volumeMounts": volume_mount,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1,
                                           "failureThreshold": 2}}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-" + name}}],
    }
    meta = {"name": name, "namespace": stack.NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": dict(meta, name="data-" + name),
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}},
    ]


@dataclass(frozen=True)
class Replica:
    name: str
    url: str

    def pod(self, lab: Lab) -> Obj:
        pods = lab.api().list(CORE, "pods", stack.NAMESPACE, "app.kubernetes.io/name=" + self.name)[0]
        return pods[0] if pods else {}


def start_replica(lab: Lab, shard: str) -> Replica:
    """The replica Ready behind its Service; returns its name (what ``route_to`` names) and its URL."""
    api = lab.api()
    name = "vectorstore-%s-replica" % shard.rsplit("-", 1)[1]
    collections = {"PersistentVolumeClaim": (CORE, "persistentvolumeclaims"), "Deployment": (APPS, "deployments"),
                   "Service": (CORE, "services")}
    for obj in replica_objects(shard, name):
        api.call("POST", object_path(*collections[obj["kind"]], stack.NAMESPACE), obj)
    replica = Replica(name, "")
    eventually("%s to be Ready" % name, lambda: pod_is_ready(replica.pod(lab)) if replica.pod(lab) else False)
    service = object_path(CORE, "services", stack.NAMESPACE, name)
    url = eventually("an address for Service %s" % name,
                     lambda: stack.service_url(api.get(service) or {"metadata": {}}))
    return Replica(name, url)


def break_replica(lab: Lab, replica: Replica) -> None:
    """Damage the replica's index: its integrity check unloads it and the replica is no longer Ready."""
    volume = faults.claim_directory(lab.api(), stack.NAMESPACE, "data-" + replica.name)
    faults.flip_bytes(volume / "index" / "vectors.bin")
    eventually("%s to lose readiness" % replica.name, lambda: not pod_is_ready(replica.pod(lab)))


# --- reading the lab and the runs back ------------------------------------------------------------------------


def take_snapshot(runner: Runner, lab: Lab, shard: str) -> None:
    s3 = lab.s3()
    snapshot = task("snapshot", "snapshot_create", shard=shard, bucket=s3.bucket,
                    path=str(faults.shard_volume(lab.api(), shard)), endpoint_url=s3.url,
                    access_key=s3.access_key, secret_key=s3.secret_key)
    taken = runner.play([snapshot], auth={})
    assert taken.failed == 0 and task_result(taken, "snapshot").get("changed"), taken.stdout


def lock_holder(lab: Lab) -> dict[str, str]:
    """The incident of each Lease that has a holder."""
    leases = lab.api().list("/apis/coordination.k8s.io/v1", "leases", stack.NAMESPACE, "")[0]
    return {lease["spec"]["holderIdentity"]: lease["metadata"]["annotations"].get("ragops.io/incident-id", "")
            for lease in leases if (lease.get("spec") or {}).get("holderIdentity")}


def hold_of(lab: Lab, shard: str) -> Obj:
    """The shard's incident hold on pruning (snapshots/<shard>/HOLD), {} when there is none."""
    s3 = lab.s3()
    try:
        body = s3.client().get_object(Bucket=s3.bucket, Key="snapshots/%s/HOLD" % shard)["Body"].read()
    except s3.client().exceptions.NoSuchKey:
        return {}
    return t.cast(Obj, json.loads(body))


def task_result(run: Result, name: str) -> Obj:
    """The result of the task called ``name`` (a role's tasks are recorded as ``<role> : <name>``)."""
    found = [value for key, value in run.results.items() if key == name or key.endswith(" : " + name)]
    assert found, "no task %r among %s" % (name, sorted(run.results))
    return t.cast(Obj, found[-1])


def golden_ids(shard: str) -> list[str]:
    return list(shard_recovery.golden_query(shard)["expected_ids"])


def found_on(answer: Obj, shard: str) -> list[str]:
    return [hit["id"] for hit in answer.get("results") or [] if hit.get("shard") == shard]


def retriever_routed_lines(lab: Lab, shard: str, replica: str) -> list[str]:
    pod = faults.pods_of(lab.api(), "retriever")[0]["metadata"]["name"]
    return [line for line in faults.log_lines(lab.api(), pod, "query") if '"%s": "%s"' % (shard, replica) in line]


# --- the tests, in order ----------------------------------------------------------------------------------------


def test_a_stale_index_recovers_by_a_reopen_without_a_restore(lab: Lab, runner: Runner) -> None:
    symptom = faults.inject(lab, "stale-index", ["shard-0"])
    assert "not Ready" in symptom
    assert "shard-0" in (serving_shards(lab, "shard-0").get("errors") or {})
    claims_before = cluster_state(lab)["claims"]
    claim_before = claim_of(lab, "shard-0")

    recovered = recover(runner, lab, "shard-0", "INC-P1")

    assert recovered.returncode == 0, recovered.stdout
    reopen = task_result(recovered, "Try a graceful re-open of the index")["shard"]
    assert reopen["reopened"] and reopen["healthy"] and not reopen["before"]["healthy"], reopen
    assert task_result(recovered, "Restore from the newest verified snapshot").get("skipped"), recovered.stdout
    entry = stack.registry_entry(lab.api(), "shard-0")
    assert entry["state"] == "serving" and entry["reason"] == "golden set passed after re-open", entry
    assert shard_recovery.restore_jobs(lab, "shard-0") == [] and shard_recovery.restored_claims(lab, "shard-0") == []
    assert claim_of(lab, "shard-0") == claim_before and cluster_state(lab)["claims"] == claims_before
    answer = serving_shards(lab, "shard-0")
    assert "shard-0" in answer["shards_queried"] and not answer.get("errors"), answer
    assert set(golden_ids("shard-0")) <= set(found_on(answer, "shard-0")), answer
    postmortem = (reports_dir(lab) / "INC-P1" / "postmortem-shard-0.md").read_text()
    assert "| snapshot used | none (re-open) |" in postmortem, postmortem
    assert "- reopen: golden pass (" in postmortem and "restore:" not in postmortem, postmortem


@dataclass(frozen=True)
class VerboseRun:
    """The run at -vvv with the newest snapshot corrupt and an unhealthy replica named."""

    result: Result
    older: str
    newest: str
    replica: Replica
    written: list[Path]


@pytest.fixture(scope="module")
def verbose_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> VerboseRun:
    workdir = tmp_path_factory.mktemp("verbose")
    timeline = workdir / "timeline"
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), workdir,
                    env={"RAGOPS_REPORT_DIR": str(reports_dir(lab)), "CALLBACKS": "ragops.recovery.timeline",
                         "RAGOPS_TIMELINE_DIR": str(timeline)})
    (older,) = shard_recovery.snapshot_objects(lab, "shard-1")
    take_snapshot(runner, lab, "shard-1")
    newest = max(shard_recovery.snapshot_objects(lab, "shard-1"))
    assert newest > older and shard_recovery.corrupt_snapshot_archives(lab, "shard-1", newest)
    replica = start_replica(lab, "shard-1")
    break_replica(lab, replica)
    faults.inject(lab, "corrupt-shard", ["shard-1"])
    result = recover(runner, lab, "shard-1", "INC-P2", verbosity="-vvv", route_to=replica.name,
                     replica_url=replica.url)
    written = [path for folder in (reports_dir(lab) / "INC-P2", timeline) for path in folder.rglob("*")
               if path.is_file()]
    return VerboseRun(result, older, newest, replica, written)


def test_a_corrupt_newest_snapshot_is_quarantined_and_the_older_one_restored(lab: Lab, verbose_run: VerboseRun
                                                                           ) -> None:
    run = verbose_run.result
    assert run.returncode == 0, run.stdout[-5000:]
    restore = task_result(run, RESTORE_TASK)
    assert restore["snapshot"]["snapshot_id"] == verbose_run.older, restore
    assert [(a["snapshot_id"], a["outcome"]) for a in restore["tried"]] == [
        (verbose_run.newest, "failed verification"), (verbose_run.older, "restored")], restore["tried"]
    assert restore["quarantined"] == [verbose_run.newest]
    kept = shard_recovery.snapshot_objects(lab, "shard-1")
    assert {"manifest.json", "data.tar.zst", QUARANTINE_MARKER} <= set(kept[verbose_run.newest]), kept
    assert QUARANTINE_MARKER not in kept[verbose_run.older], kept
    entry = stack.registry_entry(lab.api(), "shard-1")
    assert entry["state"] == "serving" and entry["reason"] == "golden set passed after restore", entry
    assert set(golden_ids("shard-1")) <= set(found_on(serving_shards(lab, "shard-1"), "shard-1"))
    postmortem = (reports_dir(lab) / "INC-P2" / "postmortem-shard-1.md").read_text()
    assert "| snapshot used | %s |" % verbose_run.older in postmortem, postmortem
    assert "| snapshots skipped | %s (failed verification; quarantined in S3" % verbose_run.newest in postmortem
    assert "(tried %s failed verification, quarantined in S3; %s restored)" % (
        verbose_run.newest, verbose_run.older) in postmortem, postmortem


def test_an_unhealthy_replica_gets_no_traffic(lab: Lab, verbose_run: VerboseRun) -> None:
    run = verbose_run.result
    assert task_result(run, "Check that the replica is healthy before routing to it")["status"] != 200
    quarantined = task_result(run, "Quarantine the shard")
    assert quarantined["changed"] and not quarantined["shard"].get("route_to"), quarantined
    assert not stack.registry_entry(lab.api(), "shard-1").get("route_to")
    assert retriever_routed_lines(lab, "shard-1", verbose_run.replica.name) == []


def test_no_credential_is_printed_or_written_at_vvv(lab: Lab, verbose_run: VerboseRun) -> None:
    run = verbose_run.result
    assert "<127.0.0.1> EXEC" in run.stdout or "ESTABLISH LOCAL CONNECTION" in run.stdout  # -vvv took effect
    assert any(path.name == "timeline.json" for path in verbose_run.written), verbose_run.written
    assert any(path.name == "postmortem-shard-1.md" for path in verbose_run.written), verbose_run.written
    s3 = lab.s3()
    secrets = {"S3 secret key": s3.secret_key, "S3 access key": s3.access_key,
               "kube bearer token": lab.paths.token.read_text().strip(), "presigned URL": "X-Amz-Signature"}
    texts = {"output": run.stdout, **{str(path): path.read_text(errors="replace") for path in verbose_run.written}}
    leaks = [(what, where, text[max(0, text.index(secret) - 300):text.index(secret)])
             for what, secret in secrets.items() for where, text in texts.items() if secret in text]
    assert leaks == []


def test_an_interrupted_run_is_finished_by_a_rerun_of_the_same_incident(lab: Lab, runner: Runner) -> None:
    replica = start_replica(lab, "shard-2")
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    old_claim = claim_of(lab, "shard-2")
    before = nothing_lost.record(lab, reports_dir(lab))
    options = recovery_options(lab, "shard-2", "INC-P3", route_to=replica.name, replica_url=replica.url)
    started = runner.start(PLAYBOOK, extra=options)
    try:
        eventually("the restore Job of shard-2",
                   lambda: shard_recovery.restore_jobs(lab, "shard-2") or started.poll() is not None)
        assert started.poll() is None, (runner.workdir / "started.log").read_text()
    finally:
        kill_run(started.pid)
        started.wait(timeout=30)

    # Interrupted: the shard is out of service, its traffic on the replica, the lock still ours.
    entry = stack.registry_entry(lab.api(), "shard-2")
    assert entry["state"] == "restoring" and entry["route_to"] == replica.name, entry
    assert "INC-P3" in lock_holder(lab).values(), lock_holder(lab)
    nothing_lost.check(lab, before, alive={"INC-P3"})  # the lock is the killed run's, for its re-run
    assert hold_of(lab, "shard-2")["incident_id"] == "INC-P3"  # pruning held while the incident is open
    answer = serving_shards(lab, "shard-2")
    assert answer["routed"] == {"shard-2": replica.name} and not answer.get("errors"), answer
    assert set(golden_ids("shard-2")) <= set(found_on(answer, "shard-2")), answer
    assert retriever_routed_lines(lab, "shard-2", replica.name)

    resumed = recover(runner, lab, "shard-2", "INC-P3", route_to=replica.name, replica_url=replica.url)

    assert resumed.returncode == 0, resumed.stdout[-5000:]
    assert task_result(resumed, "Take the stack's recovery lock")["changed"] is False
    # The restore's own Job and claim are gone once the restored volume is under the shard's claim.
    assert shard_recovery.restore_jobs(lab, "shard-2") == []
    assert shard_recovery.restored_claims(lab, "shard-2") == []
    assert claim_of(lab, "shard-2") == old_claim
    volumes = cluster_state(lab)["volumes"]
    evidence = [v for v in volumes.values() if v["labels"].get(EVIDENCE_LABEL) == "inc-p3"]
    assert [v["policy"] for v in evidence] == ["Retain"], volumes
    entry = stack.registry_entry(lab.api(), "shard-2")
    assert entry["state"] == "serving" and not entry.get("route_to"), entry
    answer = serving_shards(lab, "shard-2")
    assert answer["routed"] == {} and "shard-2" in answer["shards_queried"], answer
    assert set(golden_ids("shard-2")) <= set(found_on(answer, "shard-2")), answer
    assert lock_holder(lab) == {}
    assert hold_of(lab, "shard-2") == {}
    postmortem = (reports_dir(lab) / "INC-P3" / "postmortem-shard-2.md").read_text()
    assert "| outcome | recovered |" in postmortem, postmortem
    nothing_lost.check(lab, before)



def test_a_run_stopped_in_the_gate_after_a_restore_resumes_at_the_restore(lab: Lab, runner: Runner) -> None:
    # What a run killed during the golden gate after its restore leaves in the registry.
    entry = stack.registry_entry(lab.api(), "shard-2")
    stopped = dict(entry, state="validating", reason="golden queries after restore", previous_state="restoring")
    path = object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)
    lab.api().merge_patch(path, {"data": {"shard-2": json.dumps(stopped)}})
    jobs, claims = shard_recovery.restore_jobs(lab, "shard-2"), shard_recovery.restored_claims(lab, "shard-2")

    resumed = recover(runner, lab, "shard-2", "INC-P3")

    assert resumed.returncode == 0, resumed.stdout[-5000:]
    assert task_result(resumed, "Try a graceful re-open of the index").get("skipped"), resumed.stdout
    restore = task_result(resumed, RESTORE_TASK)
    assert restore["changed"] is False and restore["snapshot"]["snapshot_id"], restore
    assert shard_recovery.restore_jobs(lab, "shard-2") == jobs
    assert shard_recovery.restored_claims(lab, "shard-2") == claims
    entry = stack.registry_entry(lab.api(), "shard-2")
    assert entry["state"] == "serving" and entry["reason"] == "golden set passed after restore", entry
    assert not task_result(resumed, "Re-index the documents written since the snapshot").get("skipped")
    postmortem = (reports_dir(lab) / "INC-P3" / "postmortem-shard-2.md").read_text()
    assert "| snapshot used | %s |" % restore["snapshot"]["snapshot_id"] in postmortem, postmortem
    assert "- resumed: an earlier run of this recovery stopped while the shard was validating" in postmortem
