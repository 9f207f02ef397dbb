"""playbooks/incident_status.yml against the lab: what a second engineer sees during a Scenario A recovery
and after it, read under the read-only Role the collection ships (meta/rbac/incident-status.yaml), each
figure checked against the cluster as the built kubectl reads it, against S3, and against the files on
the controller.

One lab for the module (the tests run in order), its shards snapshotted as the daily safety net leaves
them (the lab of test_shard_recovery.py): a quiet stack;
then shard-2 is corrupted and recovered by playbooks/vectorstore_shard_recovery.yml in a process of its
own, its restore Job held running by a stalled S3 read (the S3 fault proxy) while the status is read
from a second process; then the status after the recovery, in text, in JSON and in check mode; and the
recovery's timeline and postmortem entry with their phases, milestones and times.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import typing as t
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from harness import ROOT, Cluster, Result, Runner, kill_run
from test_shard_recovery import PLAYBOOK, lab_fixture, recovery_options, reports_dir  # noqa: F401 - the lab fixture

from ragops_lab import faults, stack
from ragops_lab.drills import shard_recovery
from ragops_lab.faultproxy import FaultProxy, Rule
from ragops_lab.lab import Lab, kubectl

pytestmark = pytest.mark.lab
STATUS = ROOT / "playbooks" / "incident_status.yml"
INCIDENT = "INC-S1"
HOLDER = "alice@bastion"
# The Lease's holder: who, and for which inventory host (two aliases of one stack take turns).
LEASE_HOLDER = HOLDER + "/rag-lab"
LOCK = "ragops-recovery-lock"
MANAGED = "app.kubernetes.io/managed-by=ragops.recovery"
# The restore Job's read is held silent until the status and kubectl's views around it are read (the
# test releases it then), at most this long: under the Job's 60 s read timeout, so that it never fails.
STALL_SECONDS = 50.0
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="proxy")
def proxy_fixture(lab: Lab) -> Iterator[FaultProxy]:
    """The lab's S3 behind a fault proxy: the recovery reaches S3 through it."""
    with FaultProxy(lab.s3().url) as running:
        yield running


def kube(lab: Lab, *args: str) -> Obj:
    """kubectl, as built with the control plane, as the cluster admin: the reference the status is checked
    against."""
    done = kubectl(lab.paths.kubeconfig, "-n", stack.NAMESPACE, *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return t.cast(Obj, json.loads(done.stdout))


def kube_log(lab: Lab, job: str) -> list[Obj]:
    """The JSON lines of the Job's log (kubectl logs job/NAME)."""
    done = kubectl(lab.paths.kubeconfig, "-n", stack.NAMESPACE, "logs", "job/" + job)
    events = []
    for line in done.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return [event for event in events if isinstance(event, dict)]


def status_runner(lab: Lab, workdir: Path) -> Runner:
    workdir.mkdir(parents=True, exist_ok=True)
    return Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), workdir,
                  env={"RAGOPS_REPORT_DIR": str(reports_dir(lab))})


def read_status(lab: Lab, workdir: Path, *, check: bool = False, **extra: str) -> tuple[Obj, Result]:
    """incident_status as JSON, run as the ServiceAccount bound to the read-only Role alone."""
    output = workdir / ("status-%d.json" % time.monotonic_ns())
    variables = {"output": "json", "output_file": str(output),
                 "ragops_kubeconfig": str(lab.rbac_kubeconfigs().by_file["incident-status"]), **extra}
    run = status_runner(lab, workdir).run(STATUS, check=check,
                                          extra=["-i", str(lab.paths.inventory), "-e", json.dumps(variables)])
    assert run.returncode == 0 and run.failed == 0, run.stdout[-4000:]
    return t.cast(Obj, json.loads(output.read_text())), run


def registry_of(lab: Lab) -> dict[str, Obj]:
    data = kube(lab, "get", "configmap", stack.REGISTRY)["data"]
    return {shard: json.loads(text) for shard, text in data.items()}


def assert_shards_match_the_registry(lab: Lab, status: Obj) -> None:
    registry = registry_of(lab)
    assert [s["shard"] for s in status["shards"]] == sorted(registry)
    for shard in status["shards"]:
        entry = registry[shard["shard"]]
        for field in ("state", "reason", "since", "incident_id", "route_to"):
            assert shard.get(field) == entry.get(field), (shard["shard"], field, shard, entry)
        pods = kube(lab, "get", "pods", "-l", "%s=%s" % (faults.SHARD_LABEL, shard["shard"]))["items"]
        ready = {p["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p["status"].get("conditions") or []) for p in pods}
        assert {p["name"]: p["ready"] for p in shard["pods"]} == ready, shard["shard"]


def assert_lock_matches_the_lease(lab: Lab, status: Obj) -> None:
    lease = kube(lab, "get", "lease", LOCK)
    spec, annotations = lease["spec"], lease["metadata"].get("annotations") or {}
    lock = status["lock"]
    assert lock["exists"] is True and lock["holder"] == spec.get("holderIdentity")
    assert lock["held"] is bool(spec.get("holderIdentity"))
    assert lock["acquired_at"] == spec["acquireTime"] and lock["duration"] == spec["leaseDurationSeconds"]
    if lock["held"]:
        assert lock["incident_id"] == annotations["ragops.io/incident-id"]


def manifest_bytes(lab: Lab, shard: str, snapshot_id: str) -> int:
    """The size of the files a snapshot holds, from its manifest in S3."""
    s3 = lab.s3()
    body = s3.client().get_object(Bucket=s3.bucket, Key="snapshots/%s/%s/manifest.json" % (shard, snapshot_id))
    return sum(entry["size"] for entry in json.loads(body["Body"].read())["files"])


def assert_jobs_match_the_cluster(lab: Lab, status: Obj) -> dict[str, Obj]:
    """Every Job shown is one of the collection's Jobs in the cluster, in the state kubectl shows."""
    cluster = {j["metadata"]["name"]: j for j in kube(lab, "get", "jobs", "-l", MANAGED)["items"]}
    shown = {j["name"]: j for j in status["jobs"]["items"]}
    assert set(shown) <= set(cluster) and len(shown) + status["jobs"]["hidden"] == len(cluster)
    for name, job in shown.items():
        conditions = {c["type"]: c["status"] for c in cluster[name]["status"].get("conditions") or []}
        state = ("succeeded" if conditions.get("Complete") == "True"
                 else "failed" if conditions.get("Failed") == "True" else "running")
        assert job["state"] == state, (name, job, cluster[name]["status"])
        assert job["started"] == cluster[name]["status"].get("startTime")
    return shown


def evidence_keys(lab: Lab, incident: str, records: bool = False) -> list[str]:
    """The incident's objects in the evidence store: its evidence bundles and every bundle's manifest, or
    (``records``) the bundles of each run's records (postmortem entry, timeline, reports), which the status
    lists with the postmortems."""
    s3 = lab.s3()
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="evidence/%s/" % incident)
    keys = ["s3://%s/%s" % (s3.bucket, item["Key"]) for item in listing.get("Contents") or []]
    return sorted(key for key in keys
                  if (key.rsplit("/", 1)[-1].startswith("postmortem-") and key.endswith(".tar.gz")) == records)


def test_a_quiet_stack_shows_every_shard_serving_and_nothing_to_do(lab: Lab, tmp_path: Path) -> None:
    status, run = read_status(lab, tmp_path)
    assert status["errors"] == [], status["errors"]
    assert [s["state"] for s in status["shards"]] == ["serving"] * 4
    assert_shards_match_the_registry(lab, status)
    assert status["lock"] == {"name": LOCK, "exists": False, "held": False, "stale": False}
    assert status["generator"]["provider"] == "primary" and status["generator"]["safe_mode"] is False
    env = {e["name"]: e.get("value") for e in kube(lab, "get", "deployment", "generator")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert status["generator"]["flags"]["PROVIDER"] == env["PROVIDER"]
    assert status["jobs"] == {"items": [], "hidden": 0}
    assert status["next_step"]["action"].startswith("Nothing left to do on this stack")
    assert run.changed == 1  # the JSON file on the controller; nothing in the cluster


def start_recovery(lab: Lab, proxy: FaultProxy, workdir: Path) -> subprocess.Popen[str]:
    """Scenario A for shard-2 in a process of its own, S3 through the proxy, with the incident timeline."""
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), workdir,
                    env={"RAGOPS_REPORT_DIR": str(reports_dir(lab)), "CALLBACKS": "ragops.recovery.timeline",
                         "RAGOPS_TIMELINE_DIR": str(workdir / "timeline")})
    options = recovery_options(lab, "shard-2", INCIDENT, ragops_s3_endpoint=proxy.url,
                               shard_recovery_lock_holder=HOLDER, alert_received_at="2026-01-01T00:00:00Z")
    return runner.start(PLAYBOOK, extra=options)


def eventually(what: str, check: t.Callable[[], t.Any], timeout: float = 120.0) -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(0.1)


@pytest.fixture(scope="module", name="recovery")
def recovery_fixture(lab: Lab, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Obj]:
    """shard-2 corrupted and recovered; while its restore Job is held running, the status read from a second
    process, with kubectl's view just before and just after it."""
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    held = threading.Event()
    proxy.add(Rule("stall", ranged=True, key_suffix="data.tar.zst", offset=1000, stall_seconds=STALL_SECONDS,
                   release=held))
    root = tmp_path_factory.mktemp("recovery")
    started = start_recovery(lab, proxy, root / "recovery")
    seen: Obj = {"workdir": root / "recovery"}
    try:
        eventually("the restore Job of shard-2",
                   lambda: shard_recovery.restore_jobs(lab, "shard-2") or started.poll() is not None)
        assert started.poll() is None, (root / "recovery" / "started.log").read_text()[-4000:]
        seen["before"] = kube(lab, "get", "jobs", "-l", MANAGED)
        seen["during"], seen["during_run"] = read_status(lab, root / "during")
        seen["evidence_during"] = evidence_keys(lab, INCIDENT)
        seen["after_jobs"] = kube(lab, "get", "jobs", "-l", MANAGED)
        seen["registry"], seen["lease"] = registry_of(lab), kube(lab, "get", "lease", LOCK)
        seen["stalled"] = [entry for entry in proxy.log if entry[0] == "stall"]
        seen["read_at"] = datetime.now(timezone.utc)
        held.set()
        seen["exit"] = started.wait(timeout=300)
    finally:
        held.set()
        if started.poll() is None:
            kill_run(started.pid)
        proxy.clear()
    seen["output"] = (root / "recovery" / "started.log").read_text()
    yield seen


def test_during_the_restore_the_status_shows_the_lock_the_shard_and_the_job_as_kubectl_does(
        lab: Lab, recovery: Obj) -> None:
    status = recovery["during"]
    assert recovery["stalled"], "the restore Job's read was never stalled"
    assert status["errors"] == [], status["errors"]
    assert (status["incident_id"], status["incident_from"]) == (INCIDENT, "lock")
    lease = recovery["lease"]
    assert status["lock"]["held"] and status["lock"]["holder"] == LEASE_HOLDER == lease["spec"]["holderIdentity"]
    assert status["lock"]["incident_id"] == INCIDENT and status["lock"]["stale"] is False
    assert status["lock"]["acquired_at"] == lease["spec"]["acquireTime"]
    shard = next(s for s in status["shards"] if s["shard"] == "shard-2")
    entry = recovery["registry"]["shard-2"]
    assert (shard["state"], shard["reason"], shard["since"]) == (entry["state"], entry["reason"], entry["since"])
    assert shard["state"] == "restoring" and shard["incident_id"] == INCIDENT
    (job,) = [j for j in status["jobs"]["items"] if j["kind"] == "restore"]
    # The Job ran when kubectl looked before the status and still ran after it: it ran while it was read.
    for listing in (recovery["before"], recovery["after_jobs"]):
        found = next(j for j in listing["items"] if j["metadata"]["name"] == job["name"])
        assert not found["status"].get("conditions"), found["status"]
    assert (job["state"], job["shard"], job["incident_id"]) == ("running", "shard-2", INCIDENT)
    events = [e for e in kube_log(lab, job["name"]) if e.get("event") == "progress"]
    if job["progress"] is not None:
        snapshot_id = next(j for j in recovery["after_jobs"]["items"] if j["metadata"]["name"] == job["name"])[
            "metadata"]["annotations"]["ragops.io/snapshot-id"]
        assert job["progress"]["total"] == manifest_bytes(lab, "shard-2", snapshot_id) == events[-1]["bytes_total"]
        assert job["progress"]["done"] <= events[-1]["bytes_done"]
    assert status["next_step"]["action"].startswith("Wait: %s is recovering the stack for incident %s; its "
                                                    "restore Job %s is running" % (LEASE_HOLDER, INCIDENT, job["name"]))
    assert status["next_step"]["command"] == "kubectl -n %s logs -f job/%s" % (stack.NAMESPACE, job["name"])
    # As the store listed them right after the status was read (the run writes its records at its end).
    assert [a["location"] for a in status["artifacts"]["evidence"]] == recovery["evidence_during"]
    assert status["artifacts"]["evidence"], "the evidence bundle is written before the restore"


def test_the_recovery_itself_finished(lab: Lab, recovery: Obj) -> None:
    assert recovery["exit"] == 0, recovery["output"][-5000:]
    assert stack.registry_entry(lab.api(), "shard-2")["state"] == "serving"


def test_after_the_recovery_the_status_shows_it_done_and_nothing_left_to_do(
        lab: Lab, recovery: Obj, tmp_path: Path) -> None:
    status, _ = read_status(lab, tmp_path, incident_id=INCIDENT)
    assert status["errors"] == [], status["errors"]
    assert_shards_match_the_registry(lab, status)
    assert_lock_matches_the_lease(lab, status)
    assert status["lock"]["held"] is False
    shown = assert_jobs_match_the_cluster(lab, status)
    # The restore Job went with the swap of the restored volume under the shard's controller; the re-index
    # Job stays until its TTL.
    assert [j for j in shown.values() if j["kind"] == "restore"] == []
    assert shard_recovery.restore_jobs(lab, "shard-2") == []
    reindex = next(j for j in shown.values() if j["kind"] == "reindex")
    assert reindex["state"] == "succeeded"
    completed = [e for e in kube_log(lab, reindex["name"]) if e.get("event") == "completed"][-1]
    assert (reindex["progress"]["done"], reindex["progress"]["total"]) == (completed["done"], completed["total"])
    assert reindex["progress"]["done"] > 0 and reindex["shard"] == "shard-2"
    assert [a["location"] for a in status["artifacts"]["evidence"]] == evidence_keys(lab, INCIDENT)
    folder = reports_dir(lab) / INCIDENT
    records = evidence_keys(lab, INCIDENT, records=True)
    assert len(records) == 1, records
    assert sorted(a["location"] for a in status["artifacts"]["reports"]) == sorted(
        [str(path) for path in folder.iterdir()] + records)
    assert [a["kind"] for a in status["artifacts"]["reports"] if a["location"] in records] == ["postmortem"]
    assert [a["kind"] for a in status["artifacts"]["reports"] if a["location"].endswith("postmortem-shard-2.md")] == [
        "postmortem"]
    assert status["next_step"]["action"].startswith("Nothing left to do for incident %s" % INCIDENT)


def test_the_text_is_one_screen_and_check_mode_reads_the_same(lab: Lab, recovery: Obj, tmp_path: Path) -> None:
    run = status_runner(lab, tmp_path).run(STATUS, extra=["-i", str(lab.paths.inventory), "-e", json.dumps(
        {"incident_id": INCIDENT, "ragops_kubeconfig": str(lab.rbac_kubeconfigs().by_file["incident-status"])})])
    assert run.returncode == 0 and run.changed == 0, run.stdout[-3000:]
    shown = run.stdout[run.stdout.index("Show the incident's status]"):]
    lines = json.loads(shown[shown.index("=> ") + 3:shown.index("\n}\n") + 2])["msg"]
    assert 8 <= len(lines) <= 24, lines
    assert lines[1] == "Incident   %s" % INCIDENT
    assert lines[3].startswith("Shards     4 serving: shard-0, shard-1, shard-2, shard-3")
    # The run's records in the evidence store, then the entry on the controller, one per line.
    (records,) = evidence_keys(lab, INCIDENT, records=True)
    postmortems = [line[10:].strip() for line in lines[lines.index(next(x for x in lines if x.startswith(
        "Postmortem "))):] if line.startswith(("Postmortem ", "           s3:", "           /"))]
    assert [entry.split(" (")[0] for entry in postmortems] == [
        records, str(reports_dir(lab) / INCIDENT / "postmortem-shard-2.md")], lines
    assert any(line.startswith("Next       Nothing left to do for incident %s" % INCIDENT) for line in lines)
    checked, _ = read_status(lab, tmp_path, check=True, incident_id=INCIDENT)
    again, _ = read_status(lab, tmp_path, incident_id=INCIDENT)
    for status in (checked, again):
        status.pop("read_at")
    assert checked == again


def test_the_recoverys_timeline_shows_the_runbooks_phases_and_milestones(recovery: Obj) -> None:
    timeline = json.loads((recovery["workdir"] / "timeline" / "timeline.json").read_text())
    phases = [p["label"] for p in timeline["phases"]]
    for phase in ("diagnosis", "lock", "evidence", "safe mode", "re-open", "restore", "validation",
                  "return to service", "re-index", "report"):
        assert phase in phases, phases
    reached = [m["milestone"] for m in timeline["milestones"]]
    assert reached == ["safe_mode", "snapshot_chosen", "golden_verdict", "back_in_service"], reached
    verdict = timeline["milestones"][2]
    assert verdict["detail"].startswith("pass"), verdict
    assert timeline["milestones"][1]["detail"].startswith("snapshot ")
    # The restore was held by the stalled read: the snapshot is chosen after the status was read during it.
    chosen = datetime.fromisoformat(timeline["milestones"][1]["at"].replace("Z", "+00:00"))
    assert chosen > recovery["read_at"], (chosen, recovery["read_at"])
    times = timeline["times"]["rag-lab/shard-2"]
    assert 0 < times["time_to_safe_mode"] < times["time_to_recover"]
    assert times["time_to_recover_from_alert"] > times["time_to_recover"]  # the alert came long before
    markdown = (recovery["workdir"] / "timeline" / "timeline.md").read_text()
    assert "## Milestones" in markdown and "| back in service |" in markdown
    # The table's rows: the note under it names the bookkeeping it leaves out.
    steps = "\n".join(line for line in markdown.split("## Steps")[1].split("```mermaid")[0].splitlines()
                      if line.startswith("|"))
    assert "set_fact" not in steps and "Note the restored snapshot" not in steps and "Validating arguments" not in steps
    assert "Restore the newest verified snapshot onto a new volume under the shard's controller" in steps
    assert "    section rag-lab/shard-2 - restore" in markdown and "    section milestones" in markdown
    # The play's final output states both times.
    output = recovery["output"]
    assert "rag-lab: time to safe mode: %.1f s from the playbook's start" % times["time_to_safe_mode"] in output


def test_the_postmortem_states_both_times_as_the_timeline_measured_them(lab: Lab, recovery: Obj) -> None:
    postmortem = (reports_dir(lab) / INCIDENT / "postmortem-shard-2.md").read_text()
    timeline = json.loads((recovery["workdir"] / "timeline" / "timeline.json").read_text())
    times = timeline["times"]["rag-lab/shard-2"]
    row = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in postmortem.splitlines()
           if line.startswith("| ") and line.count("|") >= 3}
    for name, key in (("time to safe mode", "time_to_safe_mode"), ("time to recover", "time_to_recover")):
        text = row[name]
        assert text.endswith("from the alert)") and "s from the playbook's start" in text, text
        measured = float(text.split(" s from the playbook's start")[0])
        # The playbook's first task notes its start; the callback's clock starts a little earlier.
        assert abs(measured - times[key]) < 1.5, (name, text, times)
    assert row["alert received"] == "2026-01-01T00:00:00.000Z"
    output = recovery["output"]
    assert '"time to safe mode: %s"' % row["time to safe mode"] in output, output[-3000:]
