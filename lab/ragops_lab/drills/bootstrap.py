"""Scenario C drill (bootstrap deadlock), run by `make drill SCENARIO=c`.

A release that needs schema version 2 is rolled out before its migration ran: controller, retriever and
generator crash-loop, and the RAG API stops answering. `playbooks/bootstrap_recovery.yml` diagnoses the
stack, runs the migration once, starts the components in dependency order and verifies them. Then a
dependency cycle (the controller made to wait for the retriever, which waits for the controller) shows
the other diagnosis: the playbook names the cycle and refuses to start anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TextIO

from ragops_lab import faults, stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.drills.support import failure_message, incident_id, run_drill, run_playbook
from ragops_lab.lab import Lab
from ragops_lab.runtime.httpclient import Unreachable
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

PLAYBOOK = "playbooks/bootstrap_recovery.yml"
QUESTION = "How do I rotate the ingress certificate?"


def recover(lab: Lab, incident: str, log_file: Path) -> subprocess.CompletedProcess[str]:
    """The packaged playbook against the lab's inventory, with the incident timeline switched on."""
    drill_dir = log_file.parent
    extra_vars = {"target": "rag-lab", "incident_id": incident, "bootstrap_recovery_wait_sleep": 1,
                  "bootstrap_recovery_report_dir": str(drill_dir / incident)}
    return run_playbook(lab, PLAYBOOK, extra_vars, log_file, drill_dir / incident / "timeline")


def postmortem_sections(lab: Lab, incident: str, *titles: str) -> str:
    """The named sections of the run's postmortem entry, as the playbook wrote them ("": its heading table)."""
    entries = sorted((lab.paths.root / "drill" / incident).glob("*/postmortem.md"))
    if not entries:
        return "(no postmortem entry written)"
    lines, keep = [], "" in titles
    for line in entries[-1].read_text().splitlines():
        if line.startswith("## "):
            keep = line[3:] in titles
        if keep and line.strip() and not line.startswith(("# ", "| |", "| ---")):
            lines.append(line)
    return "\n".join(lines)


def answer(lab: Lab) -> str:
    """What the RAG API says to one question, in a line."""
    try:
        reply = stack.ask(lab.endpoints().services["generator"], QUESTION, timeout=5)
    except (Unreachable, TimeoutError) as exc:
        return f"no answer ({exc})"
    if reply["status"] == 200:
        return f"HTTP 200, provider {reply.get('provider')}, citations {reply.get('citations')}"
    return f"HTTP {reply['status']}: {reply.get('error')}"


def schema_version(lab: Lab) -> str:
    configmap = lab.api().get(object_path(CORE, "configmaps", stack.NAMESPACE, "rag-schema")) or {}
    return str((configmap.get("data") or {}).get("version"))


def bootstrap_drill(lab: Lab, timeline: Timeline) -> list[str]:
    """The steps after `up`; returns the summary lines (raises LabError when the recovery is not shown)."""
    with timeline.step("baseline: every component Ready, the RAG API answers"):
        timeline.note(f"not Ready: {stack.not_ready(lab.api()) or 'none'}; schema version {schema_version(lab)}; "
                      f"generator: {answer(lab)}")
    with timeline.step("break: a release needing schema 2 rolled out before its migration"):
        timeline.note(faults.inject(lab, "pending-migration", []))
    with timeline.step("symptom: the RAG API"):
        timeline.note(f"generator: {answer(lab)}")
    incident = incident_id()
    with timeline.step(f"recover: the bootstrap_recovery playbook ({incident})"):
        result = recover(lab, incident, lab.paths.root / "drill" / f"{incident}.log")
        if result.returncode != 0:
            raise LabError(f"the playbook failed (exit {result.returncode}); see {lab.paths.root}/drill/{incident}.log")
        timeline.note(postmortem_sections(lab, incident, "", "Diagnosis", "What was done"))
    with timeline.step("verify: every component Ready, schema at 2, the RAG API answers"):
        unready, version, reply = stack.not_ready(lab.api()), schema_version(lab), answer(lab)
        timeline.note(f"not Ready: {unready or 'none'}; schema version {version}; generator: {reply}")
        if unready or version != "2" or not reply.startswith("HTTP 200"):
            raise LabError(f"the stack is not back: not Ready {unready}, schema {version}, generator {reply}")
    refused = incident_id("-CYCLE")
    with timeline.step("break again: controller and retriever wait for each other"):
        timeline.note(faults.inject(lab, "dependency-cycle", []))
    with timeline.step(f"diagnose: the playbook must refuse, naming the cycle ({refused})"):
        cycle = recover(lab, refused, lab.paths.root / "drill" / f"{refused}.log")
        message = failure_message(cycle.stdout)
        timeline.note(message)
        if cycle.returncode == 0 or "Dependency cycle controller \u2192 retriever \u2192 controller" not in message:
            raise LabError(f"expected the playbook to refuse the cycle; see {lab.paths.root}/drill/{refused}.log")
    return [f"incident {incident}: schema 1 but a release needing 2; controller, retriever and generator "
            "crash-looped (schema_version_too_old) and the RAG API stopped answering",
            "the playbook diagnosed the pending migration, ran it once (Job rag-migrate-v2), restarted the "
            "components in dependency order (controller before retriever and generator) and verified all Ready",
            f"incident {refused}: a dependency cycle was named and nothing was started",
            f"postmortem entries, evidence and timelines: {lab.paths.root / 'drill'}"]


def run(lab: Lab, out: TextIO = sys.stdout) -> int:
    """The whole Scenario C drill; the lab is stopped at the end whatever happened. Returns an exit code."""
    return run_drill(lab, bootstrap_drill, out)
