"""Recovery drills against the lab: start it, break it, show the symptom, recover with the collection's
playbook, show the recovery, always stop the lab. Each step is timed on the printed timeline.

Scenario A (vectorstore shard index corrupt): snapshot every shard (the daily safety net), corrupt a
shard, run playbooks/vectorstore_shard_recovery.yml (lock, evidence, quarantine, re-open, restore,
golden gate, back into service, re-index, postmortem) and show the shard serving again, the timeline
and the time to recover. `quarantine_drill` keeps the quarantine-only drill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from ragops_lab import corpus, faults, stack
from ragops_lab.lab import Lab
from ragops_lab.runtime import KubeError
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

REPO_DIR = stack.LAB_DIR.parent
COLLECTIONS_DIR = REPO_DIR / "build" / "collections"
PLAYBOOK_TIMEOUT_SECONDS = 300
RECOVERY_PLAYBOOK = "playbooks/vectorstore_shard_recovery.yml"

Obj = dict[str, Any]


@dataclass(frozen=True)
class ShardDrill:
    shard: str = "shard-2"
    playbook: str = "playbooks/shard_quarantine.yml"
    reason: str = "index checksum mismatch reported by the shard (drill)"

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
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_DIR)),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    extra_vars = {"target": "rag-lab", "shard": drill.shard, "incident_id": incident_id, "reason": drill.reason}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), drill.playbook, "-i", str(lab.paths.inventory),
               "-e", json.dumps(extra_vars)]
    result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=PLAYBOOK_TIMEOUT_SECONDS, check=False)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(result.stdout + result.stderr)
    return result


def run_recovery(lab: Lab, drill: ShardDrill, incident_id: str, log_file: Path) -> subprocess.CompletedProcess[str]:
    """The Scenario A playbook with the timeline callback; reports under the lab's drill folder."""
    out_dir = lab.paths.root / "drill"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_DIR)),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACKS_ENABLED": "ragops.recovery.timeline",
           "RAGOPS_TIMELINE_DIR": str(out_dir / "timeline"), "RAGOPS_REPORT_DIR": str(out_dir / "reports")}
    extra_vars = {"target": "rag-lab", "shard": drill.shard, "incident_id": incident_id, "reason": drill.reason}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), RECOVERY_PLAYBOOK, "-i",
               str(lab.paths.inventory), "-e", json.dumps(extra_vars)]
    result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=PLAYBOOK_TIMEOUT_SECONDS, check=False)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(result.stdout + result.stderr)
    return result


def snapshot_every_shard(lab: Lab, log_file: Path) -> str:
    """The daily safety net: one snapshot of each shard's volume, taken with snapshot_create."""
    s3 = lab.s3()
    tasks = [{"name": f"snapshot {shard}", "ragops.recovery.snapshot_create": {
        "shard": shard, "bucket": s3.bucket, "path": str(faults.shard_volume(lab.api(), shard)),
        "endpoint_url": s3.url, "access_key": s3.access_key, "secret_key": s3.secret_key}}
        for shard in corpus.shard_ids()]
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
    return f"{len(tasks)} shards snapshotted to s3://{s3.bucket}/snapshots/"


def outcome_lines(output: str) -> str:
    """The outcome the playbook printed at its end, and its recap."""
    lines = output.splitlines()
    start = max((i for i, line in enumerate(lines) if "Show the outcome" in line), default=len(lines))
    keep = [line.strip().strip('",') for line in lines[start + 1:] if line.strip().startswith('"') or "ok=" in line]
    return "\n".join(line for line in keep if line and not line.startswith("msg"))


def recovery_drill(lab: Lab, timeline: Timeline, drill: ShardDrill) -> list[str]:
    """Scenario A end to end; returns the summary lines (raises LabError when recovery is not shown)."""
    query = golden_query(drill.shard)
    expected = list(query["expected_ids"])
    retriever = lab.endpoints().services["retriever"]
    drill_dir = lab.paths.root / "drill"
    with timeline.step("safety net: snapshot every shard (snapshot_create)"):
        timeline.note(snapshot_every_shard(lab, drill_dir / "snapshots.log"))
    with timeline.step(f"break: corrupt the index of {drill.shard}"):
        timeline.note(faults.inject(lab, "corrupt-shard", [drill.shard]))
    with timeline.step(f"symptom: golden query {query['qid']} through the retriever"):
        broken = stack.search(retriever, query["text"])
        timeline.note(describe_search(broken, expected))
    incident_id = drill.incident_id
    with timeline.step(f"recover: ansible-playbook {RECOVERY_PLAYBOOK} ({incident_id})"):
        result = run_recovery(lab, drill, incident_id, drill_dir / "recovery.log")
        timeline.note(outcome_lines(result.stdout))
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
    return [f"incident {incident_id}: {drill.shard} corrupted, recovered by {RECOVERY_PLAYBOOK}",
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


def run(lab: Lab, out: TextIO = sys.stdout, drill: ShardDrill | None = None) -> int:
    """The whole drill; the lab is stopped at the end whatever happened. Returns an exit code."""
    timeline = Timeline(out)
    code = 1
    try:
        with timeline.step("lab up"):
            lab.up(out)
        summary = recovery_drill(lab, timeline, drill or ShardDrill())
        code = 0
    except (LabError, KubeError, subprocess.TimeoutExpired) as exc:
        print(f"\nDRILL FAILED: {exc}", file=out)
        summary = []
    finally:
        with timeline.step("lab down"):
            lab.down(out)
    print("\nSummary", file=out)
    for line in summary:
        print(f"  {line}", file=out)
    print(timeline.summary(), file=out)
    print(f"\nDrill {'passed' if code == 0 else 'FAILED'}.", file=out)
    return code
