"""Recovery drills against the lab: start it, break it, show the symptom, recover with the collection's
playbook, show the recovery, always stop the lab. Each step is timed on the printed timeline.

Scenario A (vectorstore shard index corrupt): the most complete recovery the collection offers today
is taking the shard out of service (playbooks/shard_quarantine.yml); the drill shows the retriever
stop calling it.
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
        summary = quarantine_drill(lab, timeline, drill or ShardDrill())
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
