"""Recovery drills against the lab: start it, break it, show the symptom, recover with the collection's
playbook, show the recovery, always stop the lab. Each step is timed on the printed timeline.

Scenario A (vectorstore shard index corrupt): snapshot every shard (the daily safety net), corrupt a
shard, run playbooks/vectorstore_shard_recovery.yml (lock, quarantine, hold, evidence, re-open, restore,
golden gate, back into service, re-index, postmortem) and show the shard serving again, the timeline
and the time to recover. `quarantine_drill` keeps the quarantine-only drill.

Variants of Scenario A (`--variant`): `reopen` unloads the shard's index and puts its files right, so a
graceful re-open recovers it with no restore; `failed-gate` corrupts every snapshot of the shard too, so
the restore fails its checksums, the gate fails and the shard stays quarantined with nothing deleted:
the safe ending the runbook expects, which the drill reports as such.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from ragops_lab import corpus, faults, stack
from ragops_lab.agent.api import BATCH, CORE
from ragops_lab.drills import support
from ragops_lab.drills.support import failure_message, run_drill
from ragops_lab.lab import Lab
from ragops_lab.programs import shard as shard_program
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

REPO_DIR = stack.LAB_DIR.parent
COLLECTIONS_DIR = REPO_DIR / "build" / "collections"
PLAYBOOK_TIMEOUT_SECONDS = 300
RECOVERY_PLAYBOOK = "playbooks/vectorstore_shard_recovery.yml"
# Scenario A's variants; without one the shard's index is corrupt and a snapshot restores it.
VARIANTS = ("reopen", "failed-gate")

Obj = dict[str, Any]


@dataclass(frozen=True)
class ShardDrill:
    shard: str = "shard-2"
    playbook: str = "playbooks/shard_quarantine.yml"
    reason: str = "index checksum mismatch reported by the shard (drill)"
    variant: str = ""

    @property
    def incident_id(self) -> str:
        return f"DRILL-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def golden_query(shard: str) -> Obj:
    """A must-pass golden query whose expected documents all live on `shard`."""
    golden = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())
    return dict(next(q for q in golden["queries"] if q.get("shard") == shard and q.get("must_pass")))


def describe_search(result: Obj, expected: list[str]) -> str:
    found = [r["id"] for r in result.get("results") or []]
    hits = [doc for doc in expected if doc in found]
    return (f"queried {result.get('shards_queried')}, skipped {result.get('shards_skipped') or {}}, "
            f"errors {result.get('errors') or {}}; expected {expected}, found {hits or 'none'}")


def run_playbook(lab: Lab, drill: ShardDrill, incident_id: str, log_file: Path) -> subprocess.CompletedProcess[str]:
    extra_vars = {"target": "rag-lab", "shard": drill.shard, "incident_id": incident_id, "reason": drill.reason}
    return support.run_playbook(lab, drill.playbook, extra_vars, log_file)


def run_recovery(lab: Lab, drill: ShardDrill, incident_id: str, log_file: Path) -> subprocess.CompletedProcess[str]:
    """The Scenario A playbook with the timeline callback; reports under the lab's drill folder."""
    out_dir = lab.paths.root / "drill"
    extra_vars = {"target": "rag-lab", "shard": drill.shard, "incident_id": incident_id, "reason": drill.reason}
    return support.run_playbook(lab, RECOVERY_PLAYBOOK, extra_vars, log_file, out_dir / "timeline",
                                      env={"RAGOPS_REPORT_DIR": str(out_dir / "reports")})


def volumes_as_of_snapshot_time(lab: Lab) -> dict[str, Path]:
    """Each shard's volume as it stood at corpus.SNAPSHOT_TIME: its index without the documents written
    since (about 5 %), which is what the nightly snapshot holds and a restore's re-index brings back."""
    documents = corpus.generate(corpus.CorpusSpec())
    volumes = {}
    for shard in corpus.shard_ids():
        volume = lab.paths.root / "nightly" / shard
        if not volume.exists():
            shard_program.build_shard_index(corpus.CorpusSpec(), shard, volume, corpus.SNAPSHOT_TIME, documents)
        volumes[shard] = volume
    return volumes


def snapshot_every_shard(lab: Lab, log_file: Path) -> str:
    """The nightly safety net: one snapshot of each shard as of corpus.SNAPSHOT_TIME, taken with
    snapshot_create; the documents written after it are missing from a restored shard until re-indexed."""
    s3 = lab.s3()
    tasks = [{"name": f"snapshot {shard}", "ragops.recovery.snapshot_create": {
        "shard": shard, "bucket": s3.bucket, "path": str(volume),
        "endpoint_url": s3.url, "access_key": s3.access_key, "secret_key": s3.secret_key}}
        for shard, volume in volumes_as_of_snapshot_time(lab).items()]
    playbook = log_file.parent / "snapshots.yml"
    playbook.parent.mkdir(parents=True, exist_ok=True)
    playbook.write_text(yaml.safe_dump([{"name": "Daily snapshots", "hosts": "localhost", "gather_facts": False,
                                         "tasks": tasks}], sort_keys=False))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_DIR)),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)]
    result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=PLAYBOOK_TIMEOUT_SECONDS, check=False)
    log_file.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise LabError(f"the snapshots failed (exit {result.returncode}); see {log_file}")
    return (f"{len(tasks)} shards snapshotted to s3://{s3.bucket}/snapshots/ as they stood at "
            f"{corpus.SNAPSHOT_TIME} (the documents written since are missing from those snapshots)")


def outcome_lines(output: str) -> str:
    """The outcome the playbook printed at its end, and its recap."""
    lines = output.splitlines()
    start = max((i for i, line in enumerate(lines) if "Show the outcome" in line), default=len(lines))
    keep = [line.strip().strip('",') for line in lines[start + 1:] if line.strip().startswith('"') or "ok=" in line]
    return "\n".join(line for line in keep if line and not line.startswith("msg"))


def snapshot_objects(lab: Lab, shard: str) -> dict[str, list[str]]:
    """Each snapshot id of `shard` in S3 with the names of its objects, oldest first."""
    s3 = lab.s3()
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=f"snapshots/{shard}/")
    found: dict[str, list[str]] = {}
    for item in (item for page in pages for item in page.get("Contents") or []):
        parts = item["Key"].split("/")
        if len(parts) == 4:
            found.setdefault(parts[2], []).append(parts[3])
    return dict(sorted(found.items()))


def corrupt_snapshot_archives(lab: Lab, shard: str, snapshot_id: str = "") -> list[str]:
    """Overwrite every snapshot archive of `shard` (or only `snapshot_id`'s) with zeros of the same size,
    so that it no longer matches its manifest; returns the keys."""
    s3 = lab.s3()
    client = s3.client()
    keys = [f"snapshots/{shard}/{found}/data.tar.zst" for found, objects in snapshot_objects(lab, shard).items()
            if "data.tar.zst" in objects and snapshot_id in ("", found)]
    for key in keys:
        size = client.head_object(Bucket=s3.bucket, Key=key)["ContentLength"]
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"\0" * size)
    return keys


def restore_jobs(lab: Lab, shard: str) -> list[str]:
    """The restore Jobs run for `shard` (they carry its label)."""
    jobs = lab.api().list(BATCH, "jobs", stack.NAMESPACE, f"{faults.SHARD_LABEL}={shard}")[0]
    return sorted(job["metadata"]["name"] for job in jobs)


def restored_claims(lab: Lab, shard: str) -> list[str]:
    """The PVCs restores created for `shard` (the StatefulSet's own claim is not among them)."""
    selector = f"app.kubernetes.io/managed-by=ragops.recovery,{faults.SHARD_LABEL}={shard}"
    return sorted(c["metadata"]["name"] for c in lab.api().list(CORE, "persistentvolumeclaims", stack.NAMESPACE,
                                                                 selector)[0])


def failed_gate_ending(lab: Lab, drill: ShardDrill, result: subprocess.CompletedProcess[str],
                       before: dict[str, list[str]], claims: list[str]) -> list[str]:
    """The `failed-gate` variant's expected ending: the playbook failed naming what it tried and what to do
    next, the shard stays quarantined, no snapshot object and no PVC is gone. Raises LabError otherwise."""
    message = failure_message(result.stdout)
    entry = stack.registry_entry(lab.api(), drill.shard)
    after = snapshot_objects(lab, drill.shard)
    lost = [f"{found}/{name}" for found, objects in before.items() for name in objects
            if name not in after.get(found, [])]
    claims_now = {c["metadata"]["name"] for c in lab.api().list(CORE, "persistentvolumeclaims", stack.NAMESPACE)[0]}
    problems = [
        *([f"the playbook succeeded (exit {result.returncode})"] if result.returncode == 0 else []),
        *([f"no 'Tried: … Next: …' in its failure: {message!r}"] if "Tried:" not in message
          or "Next:" not in message else []),
        *([f"{drill.shard} is {entry.get('state')}, not quarantined"] if entry.get("state") != "quarantined" else []),
        *([f"snapshot objects deleted: {lost}"] if lost else []),
        *([f"PVCs deleted: {sorted(set(claims) - claims_now)}"] if set(claims) - claims_now else []),
    ]
    if problems:
        raise LabError("the failed gate did not end safely: " + "; ".join(problems))
    quarantined = [found for found, objects in after.items() if "QUARANTINED" in objects]
    return ["expected safe ending: every snapshot was corrupt, the gate failed and the playbook stopped",
            f"registry: {drill.shard} {entry['state']} ({entry.get('reason')})",
            f"snapshots kept: {len(after)}, marked quarantined in S3: {', '.join(quarantined) or 'none'}",
            f"PVCs kept (none deleted): {', '.join(sorted(claims_now))}",
            f"playbook: {message}"]


def reopened(lab: Lab, drill: ShardDrill, postmortem: Path) -> str:
    """The `reopen` variant's check: no restore Job ran, no PVC was restored, the postmortem names no snapshot."""
    jobs, claims = restore_jobs(lab, drill.shard), restored_claims(lab, drill.shard)
    text = postmortem.read_text() if postmortem.exists() else ""
    if jobs or claims or "| snapshot used | none (re-open) |" not in text:
        raise LabError(f"{drill.shard} was not recovered by a re-open alone: restore Jobs {jobs}, restored PVCs "
                       f"{claims}, see {postmortem}")
    return f"recovered by a graceful re-open: no restore Job, no new PVC, no snapshot used ({postmortem})"


def break_shard(lab: Lab, timeline: Timeline, drill: ShardDrill) -> None:
    if drill.variant == "failed-gate":
        with timeline.step(f"break: corrupt every snapshot of {drill.shard} in S3"):
            timeline.note("\n".join(corrupt_snapshot_archives(lab, drill.shard)))
    fault = "stale-index" if drill.variant == "reopen" else "corrupt-shard"
    with timeline.step(f"break: {fault} {drill.shard}"):
        timeline.note(faults.inject(lab, fault, [drill.shard]))


def recovery_drill(lab: Lab, timeline: Timeline, drill: ShardDrill) -> list[str]:
    """Scenario A end to end; returns the summary lines (raises LabError when recovery is not shown)."""
    query = golden_query(drill.shard)
    expected = list(query["expected_ids"])
    retriever = lab.endpoints().services["retriever"]
    drill_dir = lab.paths.root / "drill"
    with timeline.step("safety net: snapshot every shard (snapshot_create)"):
        timeline.note(snapshot_every_shard(lab, drill_dir / "snapshots.log"))
    break_shard(lab, timeline, drill)
    with timeline.step(f"symptom: golden query {query['qid']} through the retriever"):
        broken = stack.search(retriever, query["text"])
        timeline.note(describe_search(broken, expected))
    incident_id = drill.incident_id
    snapshots = snapshot_objects(lab, drill.shard)
    claims = [c["metadata"]["name"] for c in lab.api().list(CORE, "persistentvolumeclaims", stack.NAMESPACE)[0]]
    with timeline.step(f"recover: ansible-playbook {RECOVERY_PLAYBOOK} ({incident_id})"):
        result = run_recovery(lab, drill, incident_id, drill_dir / "recovery.log")
        timeline.note(outcome_lines(result.stdout))
        if drill.variant == "failed-gate":
            return failed_gate_ending(lab, drill, result, snapshots, claims)
        if result.returncode != 0:
            raise LabError(f"the playbook failed (exit {result.returncode}); see {drill_dir}/recovery.log")
    with timeline.step(f"verify: {drill.shard} serves the golden query again"):
        after = stack.search(retriever, query["text"])
        timeline.note(describe_search(after, expected))
        entry = stack.registry_entry(lab.api(), drill.shard)
        if entry.get("state") != "serving" or drill.shard not in after.get("shards_queried", []):
            raise LabError(f"{drill.shard} is not serving after the playbook: {entry}, {after}")
    timeline_md = drill_dir / "timeline" / "timeline.md"
    postmortem = drill_dir / "reports" / incident_id / f"postmortem-{drill.shard}.md"
    for path in (timeline_md, postmortem):
        print(f"\n--- {path}\n{path.read_text() if path.exists() else '(missing)'}", file=timeline.out)
    how = [reopened(lab, drill, postmortem)] if drill.variant == "reopen" else []
    return [f"incident {incident_id}: {drill.shard} broken, recovered by {RECOVERY_PLAYBOOK}", *how,
            f"registry: {drill.shard} {entry['state']} ({entry.get('reason')})",
            f"retriever: queries {after['shards_queried']}, errors {after.get('errors') or {}}",
            f"timeline: {timeline_md}", f"postmortem: {postmortem}"]


def playbook_highlights(output: str) -> str:
    """The registry lines the playbook printed and its recap."""
    keep = [line.strip() for line in output.splitlines() if '"msg":' in line or "ok=" in line]
    return "\n".join(line.replace('"msg": ', "") for line in keep)


def quarantine_drill(lab: Lab, timeline: Timeline, drill: ShardDrill) -> list[str]:
    """The steps after `up`; returns the summary lines (raises LabError when recovery is not shown)."""
    query = golden_query(drill.shard)
    expected = list(query["expected_ids"])
    retriever = lab.endpoints().services["retriever"]
    with timeline.step(f"baseline: golden query {query['qid']} through the retriever"):
        timeline.note(describe_search(stack.search(retriever, query["text"]), expected))
    with timeline.step(f"break: corrupt the index of {drill.shard}"):
        timeline.note(faults.inject(lab, "corrupt-shard", [drill.shard]))
    with timeline.step("symptom: the same golden query"):
        broken = stack.search(retriever, query["text"])
        timeline.note(describe_search(broken, expected))
        if drill.shard not in (broken.get("errors") or {}):
            raise LabError(f"expected an error from {drill.shard}, got {broken}")
    incident_id = drill.incident_id
    with timeline.step(f"recover: ansible-playbook {drill.playbook} ({incident_id})"):
        result = run_playbook(lab, drill, incident_id, lab.paths.root / "drill" / "playbook.log")
        timeline.note(playbook_highlights(result.stdout))
        if result.returncode != 0:
            raise LabError(f"the playbook failed (exit {result.returncode}); see {lab.paths.root}/drill/playbook.log")
    with timeline.step(f"verify: the retriever no longer calls {drill.shard}"):
        after = stack.search(retriever, query["text"])
        timeline.note(describe_search(after, expected))
        entry = stack.registry_entry(lab.api(), drill.shard)
        retriever_pod = faults.pods_of(lab.api(), "retriever")[0]["metadata"]["name"]
        called = faults.log_lines(lab.api(), retriever_pod, "query")[-1:]
        timeline.note("\n".join(called))
        if drill.shard not in (after.get("shards_skipped") or {}) or drill.shard in after.get("shards_queried", []):
            raise LabError(f"the retriever still queries {drill.shard}: {after}")
    return [f"incident {incident_id}: {drill.shard} corrupted; its pod lost readiness, its log shows the checksum "
            "mismatch, the retriever reported errors for it",
            f"registry: {drill.shard} {entry['state']} ({entry.get('reason')}), changed by {entry.get('changed_by')}",
            f"retriever: skips {drill.shard} ({after['shards_skipped'][drill.shard]}); no shard errors "
            f"({after.get('errors') or {}}), partial results from {after['shards_queried']}",
            "not yet automated: re-open/restore from snapshot and golden validation (Scenario A steps 3-5)"]


def run(lab: Lab, out: TextIO = sys.stdout, drill: ShardDrill | None = None, variant: str = "") -> int:
    """The whole drill (`variant`: one of VARIANTS, or "" for a restore); the lab is stopped at the end
    whatever happened. Returns an exit code: 0 when the recovery, or the variant's expected ending, is shown."""
    chosen = drill or ShardDrill(variant=variant)
    return run_drill(lab, lambda running, timeline: recovery_drill(running, timeline, chosen), out)
