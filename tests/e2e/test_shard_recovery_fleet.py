"""Scenario A over several shards and stacks against the lab: playbooks/vectorstore_shard_recovery.yml.

One lab for the module (the tests run in order and build on each other), its shards snapshotted first: check
mode plans every shard and writes nothing; shards=unhealthy finds exactly the broken shards; a request that
would cover the whole stack is refused without scope=stack; two shards are restored by Jobs that run at the
same time, the one whose snapshots are corrupt stays quarantined while the other serves; two inventory aliases
of one stack take turns on its lock; and two stacks (a second copy of the stack's shards in a namespace of its
own) are recovered in one run.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import typing as t
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import nothing_written
import pytest
import yaml
from harness import Result, Runner
from test_shard_recovery import PLAYBOOK, lab_fixture, reports_dir, runner_fixture, serving_shards  # noqa: F401 - the module's lab and runner

from ragops_lab import faults, rbac, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.drills import shard_recovery
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
SECOND = "rag-lab-b"
SECOND_BUCKET = "ragops-snapshots-b"
Obj = dict[str, t.Any]


def inventory(lab: Lab, path: Path, hosts: dict[str, Obj]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"children": {"rag_stacks": {"hosts": hosts}}}}))
    return path


def lab_host(lab: Lab) -> Obj:
    return t.cast(Obj, yaml.safe_load(lab.paths.inventory.read_text())["all"]["children"]["rag_stacks"]["hosts"]
                  ["rag-lab"])


def recover(runner: Runner, lab: Lab, incident_id: str, *, check: bool = False, hosts: Path | None = None,
            **extra_vars: t.Any) -> Result:
    variables = dict(extra_vars, incident_id=incident_id)
    options = ["-i", str(hosts or lab.paths.inventory), "-e", json.dumps(variables)]
    return runner.run(PLAYBOOK, check=check, extra=options, timeout=900)


def chosen(result: Result) -> list[str]:
    facts = next(value for key, value in result.results.items() if key.endswith("Choose the shards to recover"))
    return t.cast(list[str], facts["ansible_facts"]["shard_recovery_choice"]["shards"])


def recorded(result: Result, stack_host: str = "rag-lab") -> Obj:
    stats = next(value for key, value in result.results.items()
                 if key.endswith("Record every shard's outcome for AWX and EDA"))
    return t.cast(Obj, stats["ansible_stats"]["data"]["ragops_recovery"][stack_host])


def leases_held(lab: Lab, namespace: str = stack.NAMESPACE) -> list[str]:
    leases = lab.api().list("/apis/coordination.k8s.io/v1", "leases", namespace, "")[0]
    return [lease["spec"]["holderIdentity"] for lease in leases if (lease.get("spec") or {}).get("holderIdentity")]


def test_check_mode_plans_every_shard_and_writes_nothing(lab: Lab, runner: Runner) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-1"])
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    before = nothing_written.state(lab, runner.workdir, reports_dir(lab))
    checked = recover(runner, lab, "INC-F1", check=True, shards="shard-1,shard-2")
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert nothing_written.changes(before, nothing_written.state(lab, runner.workdir, reports_dir(lab))) == []
    for shard in ("shard-1", "shard-2"):
        assert "%s: planned (INC-F1); check mode, nothing was changed or written" % shard in checked.stdout
    record = recorded(checked)
    assert record["outcome"] == "planned" and [s["shard"] for s in record["shards"]] == ["shard-1", "shard-2"]
    snapshots = {s["shard"]: s["snapshot"] for s in record["shards"]}
    assert all(snapshots.values()), record
    for shard, snapshot in snapshots.items():
        assert "%s: planned (snapshot %s)" % (shard, snapshot) in checked.stdout


def test_unhealthy_finds_exactly_the_broken_shards(lab: Lab, runner: Runner) -> None:
    before = nothing_written.state(lab, runner.workdir, reports_dir(lab))
    checked = recover(runner, lab, "INC-F1", check=True, shards="unhealthy")
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert chosen(checked) == ["shard-1", "shard-2"]
    assert nothing_written.changes(before, nothing_written.state(lab, runner.workdir, reports_dir(lab))) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"shards": "shard-0,shard-1,shard-2,shard-3"}, "the list names every shard of the stack"),
    ({"shards": "unhealthy", "max_unhealthy": 1}, "2 shards look unhealthy, more than the bound of 1"),
])
def test_the_whole_stack_is_never_implied(lab: Lab, runner: Runner, extra: Obj, message: str) -> None:
    before = nothing_written.state(lab, runner.workdir, reports_dir(lab))
    refused = recover(runner, lab, "INC-F1", **extra)
    assert refused.returncode != 0
    assert message in refused.stdout and "pass -e scope=stack" in refused.stdout, refused.stdout[-3000:]
    assert nothing_written.changes(before, nothing_written.state(lab, runner.workdir, reports_dir(lab))) == []


class RestoreJobs:
    """Watches the restore Jobs of some shards while a run goes on: when each started and ended (the Jobs are
    deleted once their shard runs on the restored volume, so they are read while they exist)."""

    def __init__(self, lab: Lab, shards: list[str]) -> None:
        self.lab, self.shards = lab, shards
        self.seen: dict[str, Obj] = {}
        self.active_together = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> RestoreJobs:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _watch(self) -> None:
        selector = "%s in (%s)" % (faults.SHARD_LABEL, ",".join(self.shards))
        while not self.stop.is_set():
            jobs = self.lab.api().list(BATCH, "jobs", stack.NAMESPACE, selector)[0]
            active = set()
            for job in jobs:
                status, shard = job.get("status") or {}, job["metadata"]["labels"][faults.SHARD_LABEL]
                ended = status.get("completionTime") or next(
                    (c["lastTransitionTime"] for c in status.get("conditions") or [] if c["type"] == "Failed"), None)
                self.seen[job["metadata"]["name"]] = {"shard": shard, "start": status.get("startTime"), "end": ended}
                if status.get("active"):
                    active.add(shard)
            self.active_together |= active == set(self.shards)
            time.sleep(0.2)

    def spans(self) -> dict[str, tuple[datetime, datetime]]:
        def moment(text: str) -> datetime:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))

        return {job["shard"]: (moment(job["start"]), moment(job["end"]))
                for job in self.seen.values() if job["start"] and job["end"]}


def test_two_shards_are_restored_together_and_the_failed_one_stays_out(lab: Lab, runner: Runner) -> None:
    """shard-1 and shard-2 are corrupt (the first test); shard-2's only snapshot is corrupt too."""
    assert shard_recovery.corrupt_snapshot_archives(lab, "shard-2")
    with RestoreJobs(lab, ["shard-1", "shard-2"]) as jobs:
        failed = recover(runner, lab, "INC-F2", shards="shard-1,shard-2", max_parallel=2)
    assert failed.returncode != 0, failed.stdout[-5000:]
    spans = jobs.spans()
    assert sorted(spans) == ["shard-1", "shard-2"], jobs.seen
    (start1, end1), (start2, end2) = spans["shard-1"], spans["shard-2"]
    assert start1 < end2 and start2 < end1, spans  # the two restore Jobs ran at the same time
    assert jobs.active_together, jobs.seen
    assert stack.registry_entry(lab.api(), "shard-1")["state"] == "serving"
    entry = stack.registry_entry(lab.api(), "shard-2")
    assert entry["state"] == "quarantined" and entry["incident_id"] == "INC-F2", entry
    answer = serving_shards(lab, "shard-1")
    assert "shard-1" in answer["shards_queried"] and "shard-2" not in answer["shards_queried"], answer
    assert "Recovery of shard-2 on rag-lab (INC-F2) failed; shard-1 serve(s) again" in failed.stdout
    record = recorded(failed)
    verdicts = {s["shard"]: s["outcome"] for s in record["shards"]}
    assert record["outcome"] == "failed" and verdicts == {"shard-1": "recovered", "shard-2": "failed"}, record
    assert record["failed_shards"] == ["shard-2"]
    summary = (reports_dir(lab) / "INC-F2" / "recovery-rag-lab.md").read_text()
    assert "- shard-1: recovered (snapshot " in summary and "- shard-2: failed" in summary, summary
    for shard, outcome in verdicts.items():
        postmortem = (reports_dir(lab) / "INC-F2" / ("postmortem-%s.md" % shard)).read_text()
        assert "| outcome | %s |" % outcome in postmortem
    assert leases_held(lab) == []


def test_two_aliases_of_one_stack_take_turns_on_its_lock(lab: Lab, runner: Runner) -> None:
    host = lab_host(lab)
    hosts = inventory(lab, runner.workdir / "aliases.yml", {"rag-lab": host, "rag-lab-alias": copy.deepcopy(host)})
    run = recover(runner, lab, "INC-F3", hosts=hosts, shard="shard-0")
    assert run.returncode != 0
    assert "another run of yours" in run.stdout, run.stdout[-5000:]
    assert "keep one inventory host per stack" in run.stdout
    # One alias recovered the shard; the other was refused before it changed anything.
    assert stack.registry_entry(lab.api(), "shard-0")["incident_id"] == "INC-F3"
    recovering = [line.split()[0] for line in run.stdout.splitlines() if line.split()[:1] in (
        ["rag-lab/shard-0"], ["rag-lab-alias/shard-0"])]
    assert len(recovering) == 1, run.stdout[-5000:]  # the recap's line of the one shard host
    assert leases_held(lab) == []


@pytest.fixture(name="second_stack")
def second_stack_fixture(lab: Lab, tmp_path: Path) -> Iterator[Obj]:
    """A second copy of the stack's shards (shard-0 and shard-1, with their registry) in a namespace of its own,
    its snapshots in a bucket of its own: the inventory host of a second stack."""
    api = lab.api()
    stack.apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECOND}})
    wanted = ("rag-shard-registry", "vectorstore", "vectorstore-0", "vectorstore-1")
    for obj in stack.manifests():
        if obj["kind"] in ("ConfigMap", "Service", "StatefulSet") and obj["metadata"]["name"] in wanted:
            obj = copy.deepcopy(obj)
            obj["metadata"]["namespace"] = SECOND
            if obj["kind"] == "StatefulSet":
                obj["spec"]["replicas"] = 2
            if obj["kind"] == "ConfigMap":
                obj["data"] = {shard: obj["data"][shard] for shard in ("shard-0", "shard-1")}
            stack.apply(api, obj, SECOND)
    lab.cluster.wait_for_service_account(SECOND)
    # Scenario A's shipped Role, ServiceAccount and ClusterRoles, installed in the namespace as the file says.
    admin = lab.cluster.paths.kube / "admin.kubeconfig"
    rbac.apply_shipped(admin, "shard-recovery", SECOND)
    for cluster_role in rbac.cluster_roles("shard-recovery"):
        rbac.bind_cluster_role(admin, cluster_role, SECOND, rbac.UNION_ACCOUNT)
    token = lab.cluster.service_account_token(SECOND, rbac.UNION_ACCOUNT)
    kubeconfig = lab.cluster.write_kubeconfig(tmp_path / "second.kubeconfig", token=token, namespace=SECOND)
    lab.s3().client().create_bucket(Bucket=SECOND_BUCKET)
    deadline = time.monotonic() + 120
    while stack.not_ready(api, SECOND) or not all(stack.Endpoints.resolve(api, SECOND).shards.get(s)
                                                  for s in ("shard-0", "shard-1")):
        assert time.monotonic() < deadline, stack.not_ready(api, SECOND)
        time.sleep(0.5)
    urls = stack.Endpoints.resolve(api, SECOND).shards
    yield dict(lab_host(lab), ragops_kubeconfig=str(kubeconfig), ragops_namespace=SECOND,
               ragops_s3_bucket=SECOND_BUCKET, ragops_indexer_image="",
               ragops_shard_urls={s: urls[s] for s in ("shard-0", "shard-1")})
    api.delete("%s/namespaces/%s" % (CORE, SECOND))


def test_two_stacks_are_recovered_in_one_run(lab: Lab, runner: Runner, second_stack: Obj) -> None:
    path = object_path(CORE, "configmaps", SECOND, stack.REGISTRY)
    entry = stack.registry_entry(lab.api(), "shard-1", SECOND)
    lab.api().merge_patch(path, {"data": {"shard-1": json.dumps(dict(entry, state="quarantined",
                                                                     reason="golden canary failed"))}})
    hosts = inventory(lab, runner.workdir / "two-stacks.yml", {"rag-lab": lab_host(lab), SECOND: second_stack})
    run = recover(runner, lab, "INC-F4", hosts=hosts, shard="shard-1")
    assert run.returncode == 0, run.stdout[-6000:]
    for namespace in (stack.NAMESPACE, SECOND):
        entry = stack.registry_entry(lab.api(), "shard-1", namespace)
        assert entry["state"] == "serving" and entry["incident_id"] == "INC-F4", (namespace, entry)
        assert leases_held(lab, namespace) == []
    assert stack.registry_entry(lab.api(), "shard-0", SECOND)["incident_id"] == ""  # the other shard untouched
    for name in ("postmortem-rag-lab-shard-1.md", "postmortem-%s-shard-1.md" % SECOND):
        assert "| outcome | recovered |" in (reports_dir(lab) / "INC-F4" / name).read_text()
    bundles = {bucket: [item["Key"] for item in lab.s3().client().list_objects_v2(
        Bucket=bucket, Prefix="evidence/INC-F4/").get("Contents") or []] for bucket in (lab.s3().bucket, SECOND_BUCKET)}
    assert "evidence/INC-F4/evidence-rag-lab-shard-1.tar.gz" in bundles[lab.s3().bucket], bundles
    assert "evidence/INC-F4/evidence-%s-shard-1.tar.gz" % SECOND in bundles[SECOND_BUCKET], bundles
