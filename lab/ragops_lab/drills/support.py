"""What the scenario drills share: incident ids, running a packaged playbook against the lab with the
incident timeline switched on, reading its failure, and the drill's shape (lab up, the scenario's
steps, lab down whatever happened, a summary and the step times)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ragops_lab import stack
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import KubeError
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

REPO_DIR = stack.LAB_DIR.parent
COLLECTIONS_DIR = REPO_DIR / "build" / "collections"
PLAYBOOK_TIMEOUT_SECONDS = 300

Steps = Callable[[Lab, Timeline], list[str]]


def incident_id(suffix: str = "") -> str:
    return f"DRILL-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}{suffix}"


def playbook_env(timeline_dir: Path | None = None) -> dict[str, str]:
    """ansible-playbook's environment: this checkout's collection, plain output, and the incident
    timeline (`ragops.recovery.timeline`) written into `timeline_dir` when one is given."""
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_DIR)),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if timeline_dir is not None:
        env.update({"ANSIBLE_CALLBACKS_ENABLED": "ragops.recovery.timeline", "RAGOPS_TIMELINE_DIR": str(timeline_dir)})
    return env


def run_playbook(lab: Lab, playbook: str, extra_vars: Mapping[str, Any], log_file: Path,
                 timeline_dir: Path | None = None, env: Mapping[str, str] | None = None,
                 options: Sequence[str] = (), timeout: float = PLAYBOOK_TIMEOUT_SECONDS,
                 ) -> subprocess.CompletedProcess[str]:
    """A playbook of this checkout (`playbooks/<name>.yml`) against the lab's inventory, under the
    identity bound to the Role the collection ships for it (meta/rbac/), with ansible-playbook's further
    `options` (`--check`); its output goes to `log_file` as it is written, so a run that times out still
    leaves what it did."""
    variables = {"ragops_kubeconfig": str(lab.rbac_kubeconfigs().for_playbook(playbook)), **extra_vars}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(lab.paths.inventory),
               "-e", json.dumps(variables), *options]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(command, cwd=REPO_DIR, env={**playbook_env(timeline_dir), **(env or {})},
                                  stdout=log, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{playbook} did not finish within {timeout:g}s; "
                           f"its output so far is in {log_file}") from exc
    return subprocess.CompletedProcess(command, done.returncode, log_file.read_text(encoding="utf-8"), "")


def failure_message(output: str) -> str:
    """The message the playbook failed with (its last `fatal:` line)."""
    lines = [line for line in output.splitlines() if line.startswith("fatal:") and "=> {" in line]
    if not lines:
        return ""
    try:
        return str(json.loads(lines[-1].split("=> ", 1)[1]).get("msg", ""))
    except ValueError:
        return lines[-1]


def run_drill(lab: Lab, steps: Steps, out: TextIO = sys.stdout) -> int:
    """Lab up, the scenario's `steps` (which return the summary lines, or raise LabError when the recovery
    is not shown), lab down whatever happened; then the summary and each step's time. An exit code."""
    timeline = Timeline(out)
    code, summary = 1, []
    try:
        with timeline.step("lab up"):
            lab.up(out)
        summary = steps(lab, timeline)
        code = 0
    except (LabError, KubeError, subprocess.TimeoutExpired) as exc:
        print(f"\nDRILL FAILED: {exc}", file=out)
    finally:
        with timeline.step("lab down"):
            lab.down(out)
    print("\nSummary", file=out)
    for line in summary:
        print(f"  {line}", file=out)
    print(timeline.summary(), file=out)
    print(f"\nDrill {'passed' if code == 0 else 'FAILED'}.", file=out)
    return code
