"""Scenario B drill (LLM provider outage), run by `make drill SCENARIO=b`.

The primary provider starts failing (503 by default; 429, 401 and hang work the same): the RAG API
answers 502. `playbooks/generator_outage.yml` confirms the outage, checks the backup and switches the
generator to it; the drill measures the time from the playbook's start to the generator's first good
answer (the time to safe mode). Then the primary is healed and `playbooks/generator_failback.yml`
ramps traffic back 10 -> 25 -> 50 -> 100 % with a short soak, comparing the golden set's answers with
the baseline at each step; the drill shows every step's figures and the generator back on the primary
with the fallback and the throttle gone, then both incident timelines.

`run_outage_playbook` is the timed outage playbook on its own, for benchmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ragops_lab import corpus, faults, stack
from ragops_lab.agent.api import APPS, object_path
from ragops_lab.drills.support import incident_id, run_drill, run_playbook
from ragops_lab.lab import Lab
from ragops_lab.runtime.httpclient import Unreachable
from ragops_lab.services import LabError
from ragops_lab.timeline import Timeline

OUTAGE_PLAYBOOK = "playbooks/generator_outage.yml"
FAILBACK_PLAYBOOK = "playbooks/generator_failback.yml"
FLAGS = ("PROVIDER", "PROVIDER_WEIGHTS", "FALLBACK_MODE", "THROTTLE_RPS", "MAX_CONCURRENCY", "LONG_REQUEST_QUEUE")
POLL_SECONDS = 0.2
DRILL_SOAK_SECONDS = 2

Obj = dict[str, Any]


@dataclass(frozen=True)
class OutageDrill:
    mode: str = "503"
    probe_timeout: float = 2.0
    soak_seconds: int = DRILL_SOAK_SECONDS


@dataclass(frozen=True)
class SafeModeRun:
    """The outage playbook's run: its process result and how long things took, from its start."""

    result: subprocess.CompletedProcess[str]
    playbook_seconds: float
    # Seconds from the playbook's start to the generator's first HTTP 200 answer to a golden question
    # (from the backup, or from the cache in the fallback); None if it did not answer before the playbook ended.
    time_to_safe_mode: float | None
    first_answer: Obj | None


def golden_question(qid: str = "q001") -> Obj:
    golden = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())
    return dict(next(q for q in golden["queries"] if q["qid"] == qid))


def ask_generator(lab: Lab, question: Obj, timeout: float = 5.0) -> Obj:
    """The generator's answer to a golden question (with its qid), whatever its status."""
    try:
        return stack.ask(lab.endpoints().services["generator"], question["text"], question["qid"], timeout=timeout)
    except (Unreachable, TimeoutError) as exc:
        return {"status": None, "error": str(exc)}


def describe(reply: Obj) -> str:
    """An answer in a line."""
    if reply.get("status") == 200:
        return (f"HTTP 200, provider {reply.get('provider')}, mode {reply.get('mode')}, cached {reply.get('cached')}, "
                f"citations {reply.get('citations')}")
    error = reply.get("error")
    if isinstance(error, dict):
        return f"HTTP {reply.get('status')}: {error.get('kind')} from {error.get('provider')} ({error.get('message')})"
    return f"HTTP {reply.get('status')}: {error}"


def generator_flags(lab: Lab) -> dict[str, str]:
    """The generator Deployment's flag env vars that are set."""
    deployment = lab.api().get(object_path(APPS, "deployments", stack.NAMESPACE, "generator")) or {}
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return {item["name"]: str(item.get("value", "<ref>")) for item in env if item["name"] in FLAGS}


def first_good_answer(lab: Lab, question: Obj, started: float, stop: threading.Event,
                      found: list[tuple[float, Obj]]) -> None:
    """Ask `question` every POLL_SECONDS until an HTTP 200 answer; record its time since `started`."""
    while not stop.is_set():
        reply = ask_generator(lab, question, timeout=2.0)
        if reply.get("status") == 200:
            found.append((time.monotonic() - started, reply))
            return
        stop.wait(POLL_SECONDS)


def run_outage_playbook(lab: Lab, incident: str, drill_dir: Path, extra_vars: dict[str, Any] | None = None,
                        question: Obj | None = None) -> SafeModeRun:
    """Run playbooks/generator_outage.yml against the lab (timeline in `drill_dir/<incident>/outage/`) while
    asking the generator a golden question every POLL_SECONDS.

    Returns a SafeModeRun whose `time_to_safe_mode` is the seconds from the playbook's start to the
    generator's first HTTP 200 answer, None when it gave none before the playbook ended.
    """
    question = question or golden_question()
    out_dir = drill_dir / incident / "outage"
    variables = {"target": "rag-lab", "incident_id": incident, "generator_outage_artifacts_dir": str(out_dir),
                 **(extra_vars or {})}
    found: list[tuple[float, Obj]] = []
    stop = threading.Event()
    started = time.monotonic()
    poller = threading.Thread(target=first_good_answer, args=(lab, question, started, stop, found), daemon=True)
    poller.start()
    try:
        result = run_playbook(lab, OUTAGE_PLAYBOOK, variables, out_dir / "playbook.log", out_dir / "timeline")
        playbook_seconds = time.monotonic() - started
    finally:
        stop.set()
        poller.join(timeout=5)
    seconds, answer = found[0] if found else (None, None)
    return SafeModeRun(result, playbook_seconds, seconds, answer)


def run_failback_playbook(lab: Lab, incident: str, drill_dir: Path,
                          drill: OutageDrill) -> subprocess.CompletedProcess[str]:
    out_dir = drill_dir / incident / "failback"
    variables = {"target": "rag-lab", "incident_id": incident, "generator_failback_artifacts_dir": str(out_dir),
                 "generator_failback_soak_seconds": drill.soak_seconds,
                 "generator_failback_probe_timeout": drill.probe_timeout}
    return run_playbook(lab, FAILBACK_PLAYBOOK, variables, out_dir / "playbook.log", out_dir / "timeline")


def outcome_message(output: str, task: str) -> str:
    """The `msg` a debug task named `task` printed (the roles' "Report the outcome")."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("TASK [") and task in line:
            for following in lines[index + 1:index + 6]:
                if '"msg":' in following:
                    return str(json.loads("{" + following.strip() + "}")["msg"])
    return "(no outcome printed)"


def ramp_lines(failback_json: Path) -> list[str]:
    """Each ramp step's verdict and the figures it was judged on, from the role's failback.json."""
    if not failback_json.exists():
        return [f"({failback_json} missing)"]
    ramp = json.loads(failback_json.read_text())
    lines = []
    for step in ramp["steps"]:
        metrics = step["metrics"]
        lines.append(f"{step['step']:>3} % on the primary: {'pass' if step['passed'] else 'REGRESSION'}; "
                     f"precision@k {figure(metrics.get('precision_at_k'))}, "
                     f"error rate {figure(metrics.get('error_rate'))}, "
                     f"cache-hit rate {figure(metrics.get('cache_hit_rate'))}, "
                     f"empty rate {figure(metrics.get('empty_rate'))}")
    return lines


def figure(value: object) -> str:
    """A metric as the reports print it (4 places); the JSON keeps full precision."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def safe_mode(lab: Lab, timeline: Timeline, drill: OutageDrill, incident: str, drill_dir: Path) -> SafeModeRun:
    """The outage playbook, and the generator answering from the backup afterwards."""
    variables = {"generator_outage_probe_timeout": drill.probe_timeout}
    with timeline.step(f"recover: ansible-playbook {OUTAGE_PLAYBOOK} ({incident})"):
        run = run_outage_playbook(lab, incident, drill_dir, variables)
        timeline.note(outcome_message(run.result.stdout, "Report the outcome"))
        if run.result.returncode != 0:
            raise LabError(f"the outage playbook failed (exit {run.result.returncode}); "
                           f"see {drill_dir / incident / 'outage' / 'playbook.log'}")
    with timeline.step("verify: the generator answers from the backup"):
        reply, flags = ask_generator(lab, golden_question()), generator_flags(lab)
        timeline.note(f"generator: {describe(reply)}\nflags: {flags}")
        shown = f"{run.time_to_safe_mode:.1f}s" if run.time_to_safe_mode is not None else "not reached"
        timeline.note(f"time to safe mode: {shown} from the playbook's start (playbook {run.playbook_seconds:.1f}s)")
        if reply.get("status") != 200 or reply.get("provider") != "backup" or run.time_to_safe_mode is None:
            raise LabError(f"the generator is not answering from the backup: {describe(reply)}")
    return run


def failback(lab: Lab, timeline: Timeline, drill: OutageDrill, incident: str, drill_dir: Path) -> None:
    """Heal the primary, ramp back to it, and check that the generator is back as before the outage."""
    with timeline.step("heal: the primary answers again"):
        timeline.note(faults.inject(lab, "provider-outage", ["primary", "none"]))
    with timeline.step(f"failback: ansible-playbook {FAILBACK_PLAYBOOK}, soak {drill.soak_seconds}s per step"):
        result = run_failback_playbook(lab, incident, drill_dir, drill)
        timeline.note("\n".join(ramp_lines(drill_dir / incident / "failback" / "failback.json")))
        if result.returncode != 0:
            raise LabError(f"the failback playbook failed (exit {result.returncode}); "
                           f"see {drill_dir / incident / 'failback' / 'playbook.log'}")
    with timeline.step("verify: the generator is back on the primary, fallback and throttle removed"):
        reply, flags = ask_generator(lab, golden_question()), generator_flags(lab)
        timeline.note(f"generator: {describe(reply)}\nflags: {flags}")
        if reply.get("provider") != "primary" or flags != {"PROVIDER": "primary"}:
            raise LabError(f"the generator is not back on the primary alone: {describe(reply)}, flags {flags}")


def outage_drill(lab: Lab, timeline: Timeline, drill: OutageDrill | None = None) -> list[str]:
    """The steps after `up`; returns the summary lines (raises LabError when the recovery is not shown)."""
    drill = drill or OutageDrill()
    drill_dir = lab.paths.root / "drill"
    with timeline.step("baseline: the generator answers from the primary"):
        timeline.note(f"generator: {describe(ask_generator(lab, golden_question()))}; flags {generator_flags(lab)}")
    with timeline.step(f"break: the primary provider answers {drill.mode}"):
        timeline.note(faults.inject(lab, "provider-outage", ["primary", drill.mode]))
    with timeline.step("symptom: the RAG API"):
        timeline.note(f"generator: {describe(ask_generator(lab, golden_question()))}")
    incident = incident_id()
    run = safe_mode(lab, timeline, drill, incident, drill_dir)
    failback(lab, timeline, drill, incident, drill_dir)
    for phase in ("outage", "failback"):
        path = drill_dir / incident / phase / "timeline" / "timeline.md"
        print(f"\n--- {path}\n{path.read_text() if path.exists() else '(missing)'}", file=timeline.out)
    return [f"incident {incident}: the primary provider answered {drill.mode}; the RAG API answered 502",
            f"safe mode (the backup answering) {run.time_to_safe_mode:.1f}s after the outage playbook started; "
            f"the playbook took {run.playbook_seconds:.1f}s",
            "failback 10 -> 25 -> 50 -> 100 % passed the golden set at each step; the generator is on the primary, "
            "without weights, fallback or throttle",
            f"timelines, evidence and golden-set reports: {drill_dir / incident}"]


def run(lab: Lab, out: TextIO = sys.stdout, drill: OutageDrill | None = None) -> int:
    """The whole Scenario B drill; the lab is stopped at the end whatever happened. Returns an exit code."""
    return run_drill(lab, lambda running, timeline: outage_drill(running, timeline, drill), out)
