"""The monthly restore drill against the lab, run by `make drill SCENARIO=restore`.

Lab up → a snapshot of every shard (the nightly safety net) → `playbooks/restore_drill.yml` under the
identity bound to `meta/rbac/restore-drill.yaml` alone: each shard's newest verified snapshot restored into
a scratch namespace, a shard pod started on it from the StatefulSet's pod template, its golden queries run,
its RTO and RPO measured → the per-shard RTO/RPO table from the drill's JSON report → the scratch namespace
gone and the production namespace as it was → lab down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ragops_lab import stack
from ragops_lab.agent.api import APPS, BATCH, CORE, Api
from ragops_lab.drills import shard_recovery, support
from ragops_lab.drills.support import failure_message, run_drill
from ragops_lab.lab import Lab
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

PLAYBOOK = "playbooks/restore_drill.yml"
DRILL_LABEL = "ragops.io/restore-drill"
# Every shard restored, started, validated and its namespace deleted: four times a scenario's module runs.
PLAYBOOK_TIMEOUT_SECONDS = 900
# What a drill could change in the production namespace, were it wrong: every object of these kinds.
PRODUCTION_KINDS = ((CORE, "pods"), (CORE, "persistentvolumeclaims"), (CORE, "services"), (CORE, "configmaps"),
                    (CORE, "secrets"), (APPS, "statefulsets"), (APPS, "deployments"), (BATCH, "jobs"))

Obj = dict[str, Any]


def drill_id() -> str:
    return f"drill-{datetime.now(UTC).strftime('%Y%m%dt%H%M%Sz')}"


def production_objects(api: Api, namespace: str = stack.NAMESPACE) -> dict[str, Obj]:
    """Every object of the production namespace a drill could touch, by kind and name: its uid, labels,
    annotations and spec (what a write would change; status and resourceVersion move on their own)."""
    found = {}
    for prefix, plural in PRODUCTION_KINDS:
        for obj in api.list(prefix, plural, namespace)[0]:
            meta = obj["metadata"]
            found[f"{plural}/{meta['name']}"] = {"uid": meta.get("uid"), "labels": meta.get("labels") or {},
                                                  "annotations": meta.get("annotations") or {},
                                                  "spec": obj.get("spec"), "data": obj.get("data")}
    return found


def changed_objects(before: dict[str, Obj], after: dict[str, Obj]) -> list[str]:
    """The objects created, deleted or changed between two readings of `production_objects`."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def drill_namespaces(api: Api) -> list[str]:
    """The namespaces labelled as a restore drill's (none once a drill has cleaned up)."""
    return sorted(n["metadata"]["name"] for n in api.list(CORE, "namespaces", "", DRILL_LABEL)[0])


def run_restore_drill(lab: Lab, drill: str, log_file: Path, check: bool = False,
                      **extra: Any) -> subprocess.CompletedProcess[str]:
    """The packaged playbook against the lab, as its own Role's identity; reports under the drill folder."""
    reports = log_file.parent / "reports"
    return support.run_playbook(lab, PLAYBOOK, {"target": "rag-lab", "drill_id": drill, **extra}, log_file,
                                env={"RAGOPS_REPORT_DIR": str(reports)}, options=["--check"] if check else [],
                                timeout=PLAYBOOK_TIMEOUT_SECONDS)


def report_of(log_file: Path, drill: str) -> Obj:
    path = log_file.parent / "reports" / f"restore-drill-{drill}" / "restore-drill.json"
    if not path.exists():
        raise LabError(f"the drill wrote no JSON report at {path}; see {log_file}")
    return dict(json.loads(path.read_text()))


def drill_steps(lab: Lab, timeline: Timeline) -> list[str]:
    """Snapshots, the drill, its table and the checks that it cleaned up; the summary lines."""
    drill_dir = lab.paths.root / "drill"
    with timeline.step("safety net: snapshot every shard (snapshot_create)"):
        timeline.note(shard_recovery.snapshot_every_shard(lab, drill_dir / "snapshots.log"))
    before = production_objects(lab.api())
    drill = drill_id()
    log_file = drill_dir / "restore-drill.log"
    with timeline.step(f"drill: ansible-playbook {PLAYBOOK} ({drill})"):
        result = run_restore_drill(lab, drill, log_file)
        if result.returncode != 0:
            raise LabError(f"the drill failed (exit {result.returncode}): {failure_message(result.stdout)}; "
                           f"see {log_file}")
    report = report_of(log_file, drill)
    with timeline.step("verify: scratch namespace gone, production namespace unchanged"):
        left = drill_namespaces(lab.api())
        changed = changed_objects(before, production_objects(lab.api()))
        timeline.note(f"drill namespaces left: {left or 'none'}; production objects changed: {changed or 'none'}")
        if left or changed:
            raise LabError(f"the drill did not clean up: namespaces {left}, production objects changed {changed}")
    print("\nPer-shard RTO/RPO (restore-drill.json):", file=timeline.out)
    for line in report["table"]:
        print(f"  {line}", file=timeline.out)
    return [f"drill {drill}: {report['summary']}", *report["table"],
            f"scratch namespace {report['namespace']} deleted; {len(before)} production objects unchanged",
            f"reports: {log_file.parent / 'reports' / f'restore-drill-{drill}'}"]


def run(lab: Lab, out: TextIO = sys.stdout) -> int:
    """The whole drill; the lab is stopped at the end whatever happened. An exit code."""
    return run_drill(lab, drill_steps, out)
