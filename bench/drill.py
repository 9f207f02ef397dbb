"""Drill benchmark: a scenario's real playbook run against the lab, its wall time split into waiting on the
system and Ansible's own overhead.

Each repetition starts a lab of its own (state in a temporary folder), breaks it the way the scenario
describes and runs the scenario's playbook with ansible-playbook and the lab's inventory, as `make drill`
does, with one difference: `-e ansible_python_interpreter=` names a small wrapper that runs the same
Python and logs every module process's start and end, plus the moment its AnsibleModule is built
(a `sitecustomize` on the module's path; the modules are unchanged; lab/ragops_lab/overhead.py). Then:

  wall time          the ansible-playbook process, from its start to its exit;
  module processes   the union of the module processes' intervals: the modules talking to the
                     Kubernetes API, S3, the shards and the providers, and waiting for restores,
                     rollouts, readiness and queries;
    start-up         of which, per process, the time up to its AnsibleModule: the interpreter's start,
                     unpacking the module, importing it and its libraries, checking the arguments;
  controller         wall time minus module time: ansible-playbook's own start, templating, task set-up,
                     temporary files, callbacks and the controller-side tasks (set_fact, assert, debug).

The goal (issue 6) is an overhead under 10% of the total; both readings are reported: the controller
alone, and the controller plus the modules' start-up.  The timeline callback's JSON gives the slowest
tasks with their share of the run.

  a  vectorstore shard index corrupt: every shard snapshotted, shard-2 corrupted, then
     playbooks/vectorstore_shard_recovery.yml (lab/ragops_lab/drill.py); the time to safe mode is from the
     playbook's start to the moment the shard's registry entry, read every 0.05 s from outside the
     playbook, first shows it quarantined for the incident (the retriever stops asking it);
  b  LLM provider outage: the primary provider answers 503, then playbooks/generator_outage.yml as
     lab/ragops_lab/drill_outage.py runs it, asking the generator a golden question every 0.2 s during
     the run; the time to safe mode is from the playbook's start to the first answer (HTTP 200), split
     the same way.

    python bench/drill.py --scenario a|b [--repeat 1] [--json] [--keep]
    make -s bench-drill SCENARIO=b BENCH_ARGS="--repeat 3 --json"     # -s: only the JSON on stdout

Progress goes to stderr, the figures to stdout.  Nothing is left running when it ends, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))

from ragops_lab import faults, overhead, stack  # noqa: E402
from ragops_lab.drills import provider_outage, shard_recovery  # noqa: E402
from ragops_lab.drills.support import incident_id, run_playbook  # noqa: E402
from ragops_lab.lab import Lab  # noqa: E402
from ragops_lab.runtime.kubeapi import KubeError  # noqa: E402
from ragops_lab.services import LabError, is_running  # noqa: E402

GOAL = 0.10
MARKER = "RAGOPS_BENCH_DRILL"
PROGRESS = sys.stderr


# --- the interpreter wrapper ----------------------------------------------------------------------


class Instrument:
    """The logging interpreter wrapper of one run, and what it logged."""

    def __init__(self, folder: Path, tag: str) -> None:
        self.path, self.log, self.marks = overhead.write_interpreter(folder, sys.executable, MARKER, tag)

    @property
    def extra_vars(self) -> dict[str, str]:
        """Given with -e, this wins over the inventory's interpreter."""
        return {"ansible_python_interpreter": str(self.path)}

    def runs(self) -> list[overhead.ModuleRun]:
        def text(path: Path) -> str:
            return path.read_text() if path.exists() else ""

        return overhead.parse_module_runs(text(self.log), text(self.marks))


def marked_processes(tag: str) -> list[int]:
    """Live processes started through a wrapper of this bench (module processes of a killed playbook)."""
    wanted = f"{MARKER}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid() and is_running(pid)]


def stop_marked(tag: str) -> None:
    for signum, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        pids = marked_processes(tag)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = [pid for pid in pids if is_running(pid)]
        if not pids:
            return


# --- a measured run ------------------------------------------------------------------------------


@dataclass
class Measured:
    """One playbook run: its window (epoch seconds), its module processes and timeline, and for scenario b
    when the generator first answered and how."""

    scenario: str
    playbook: str
    start: float
    end: float
    runs: list[overhead.ModuleRun]
    steps: list[overhead.Step]
    load: tuple[tuple[float, ...], tuple[float, ...]]
    safe_at: float | None = None
    safe_answer: str = ""  # what showed the safe mode: B's first answer, A's registry entry


@contextlib.contextmanager
def running_lab(root: Path) -> Iterator[Lab]:
    lab = Lab(root)
    output = io.StringIO()
    began = time.monotonic()
    try:
        lab.up(output)
    except BaseException:
        print(output.getvalue(), file=PROGRESS)
        raise
    print(f"  lab up in {time.monotonic() - began:.1f}s ({root})", file=PROGRESS)
    try:
        yield lab
    finally:
        lab.down(out=None)
        print("  lab down", file=PROGRESS)


def checked(result: subprocess.CompletedProcess[str], what: str, log: Path) -> None:
    if result.returncode != 0:
        raise LabError(f"{what} failed (exit {result.returncode}); see {log}")


class Quarantine:
    """Watches the shard's registry entry from outside the playbook, every POLL seconds, and notes when it
    first shows the shard quarantined for the incident: Scenario A's safe mode, as the retriever sees it."""

    POLL = 0.05

    def __init__(self, lab: Lab, shard: str, incident: str) -> None:
        self.lab, self.shard, self.incident = lab, shard, incident
        self.at: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        api = self.lab.api()
        while not self.done.is_set():
            with contextlib.suppress(KubeError, OSError):
                entry = stack.registry_entry(api, self.shard)
                if entry.get("state") == "quarantined" and entry.get("incident_id") == self.incident:
                    self.at = time.time()
                    return
            self.done.wait(self.POLL)

    def __enter__(self) -> Quarantine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def scenario_a(lab: Lab, folder: Path, instrument: Instrument) -> Measured:
    """Snapshot every shard, corrupt one, run the recovery playbook as the drill does, noting when the shard
    is first seen quarantined (the time to safe mode)."""
    shard_drill = shard_recovery.ShardDrill()
    print("  " + shard_recovery.snapshot_every_shard(lab, folder / "snapshots.log"), file=PROGRESS)
    print("  " + faults.inject(lab, "corrupt-shard", [shard_drill.shard]).splitlines()[0], file=PROGRESS)
    incident = incident_id()
    variables = {"target": "rag-lab", "shard": shard_drill.shard, "incident_id": incident,
                 "reason": shard_drill.reason, "shard_recovery_report_dir": str(folder / "reports"),
                 **instrument.extra_vars}
    load_before = os.getloadavg()
    playbook = shard_recovery.RECOVERY_PLAYBOOK
    print(f"  ansible-playbook {playbook} ...", file=PROGRESS)
    with Quarantine(lab, shard_drill.shard, incident) as quarantine:
        start = time.time()
        result = run_playbook(lab, playbook, variables, folder / "recovery.log", folder / "timeline")
        end = time.time()
    checked(result, playbook, folder / "recovery.log")
    entry = stack.registry_entry(lab.api(), shard_drill.shard)
    if entry.get("state") != "serving":
        raise LabError(f"{shard_drill.shard} is not serving after the playbook: {entry}")
    steps = overhead.parse_timeline((folder / "timeline" / "timeline.json").read_text())
    if quarantine.at is None:
        raise LabError(f"{shard_drill.shard} was never seen quarantined during the playbook; "
                       f"see {folder / 'recovery.log'}")
    return Measured("a", playbook, start, end, instrument.runs(), steps, (load_before, os.getloadavg()),
                    safe_at=quarantine.at, safe_answer=f"{shard_drill.shard} quarantined in the registry")


def scenario_b(lab: Lab, folder: Path, instrument: Instrument) -> Measured:
    """The primary provider down, then the outage playbook as the drill runs it, which also times the first
    good answer of the generator (asked every provider_outage.POLL_SECONDS)."""
    print("  " + faults.inject(lab, "provider-outage", ["primary", "503"]).replace("\n", "; "), file=PROGRESS)
    question = provider_outage.golden_question()
    symptom = provider_outage.ask_generator(lab, question)
    if symptom.get("status") == 200:
        raise LabError(f"the generator still answers with the primary down: {provider_outage.describe(symptom)}")
    incident = incident_id()
    load_before = os.getloadavg()
    print(f"  ansible-playbook {provider_outage.OUTAGE_PLAYBOOK} ...", file=PROGRESS)
    start = time.time()
    variables = {"generator_outage_probe_timeout": provider_outage.OutageDrill().probe_timeout, **instrument.extra_vars}
    run = provider_outage.run_outage_playbook(lab, incident, folder, variables, question)
    log = folder / incident / "outage" / "playbook.log"
    checked(run.result, provider_outage.OUTAGE_PLAYBOOK, log)
    if run.time_to_safe_mode is None or run.first_answer is None:
        raise LabError(f"the generator gave no good answer before the playbook ended; see {log}")
    steps = overhead.parse_timeline((folder / incident / "outage" / "timeline" / "timeline.json").read_text())
    return Measured("b", provider_outage.OUTAGE_PLAYBOOK, start, start + run.playbook_seconds, instrument.runs(), steps,
                    (load_before, os.getloadavg()), safe_at=start + run.time_to_safe_mode,
                    safe_answer=provider_outage.describe(run.first_answer))


# --- figures ----------------------------------------------------------------------------------------


def analyse(run: Measured) -> dict[str, t.Any]:
    whole = overhead.split((run.start, run.end), run.runs)
    modules: dict[str, dict[str, float]] = {}
    for process in run.runs:
        entry = modules.setdefault(process.module, {"processes": 0, "seconds": 0.0, "startup": 0.0})
        entry["processes"] += 1
        entry["seconds"] += process.duration
        entry["startup"] += overhead.startup_interval(process)[1] - process.start
    figures: dict[str, t.Any] = {
        "scenario": run.scenario, "playbook": run.playbook,
        "load_average_before": [round(v, 2) for v in run.load[0]],
        "load_average_after": [round(v, 2) for v in run.load[1]],
        "playbook_split": whole.as_dict(), "tasks": len(run.steps),
        "controller_phases": overhead.controller_phases((run.start, run.end), run.steps),
        "slowest_tasks": [asdict(f) for f in overhead.slowest_tasks(run.steps, run.runs, whole.wall)],
        "modules": dict(sorted(modules.items(), key=lambda item: -item[1]["seconds"])),
        "failed_module_processes": sum(1 for process in run.runs if process.code != 0),
        "processes_never_ready": sum(1 for process in run.runs if process.ready is None),
    }
    if run.safe_at is not None:
        figures["time_to_safe_mode"] = overhead.split((run.start, run.safe_at), run.runs).as_dict()
        figures["safe_mode_seen"] = run.safe_answer
    return figures


def verdict(share: float) -> str:
    return "met" if share < GOAL else "MISSED"


def print_split(title: str, split: dict[str, float]) -> None:
    wall = split["wall"] or 1.0
    print(f"  {title:<42} {'seconds':>8} {'share':>7}")
    rows = (("wall time", split["wall"]), ("module processes (union)", split["module"]),
            ("  at work: calls and waits on the system", split["work"]),
            ("  start-up, up to AnsibleModule", split["startup"]),
            ("    of which the interpreter's start", split["interpreter"]),
            ("controller overhead (wall - modules)", split["controller"]))
    for label, seconds in rows:
        print(f"  {label:<42} {seconds:8.2f} {100 * seconds / wall:6.1f}%")
    print(f"  overhead, controller alone: {100 * split['controller_share']:5.1f}% "
          f"(goal < {100 * GOAL:.0f}%: {verdict(split['controller_share'])}); controller + start-up: "
          f"{100 * split['overhead_share']:5.1f}% (goal: {verdict(split['overhead_share'])})")


def print_run(number: int, figures: dict[str, t.Any]) -> None:
    load = " ".join(f"{value:.2f}" for value in figures["load_average_before"])
    load_after = " ".join(f"{value:.2f}" for value in figures["load_average_after"])
    split = figures["playbook_split"]
    print(f"\nrun {number}: {figures['playbook']} ({int(split['processes'])} module processes; "
          f"load average {load} before, {load_after} after)")
    print_split("the whole playbook", split)
    print_modules(figures)
    phases = figures["controller_phases"]
    between = split["controller"] - phases["before_first_task"] - phases["after_last_task"]
    print(f"  controller overhead: {phases['before_first_task']:.2f}s before the first task (start, parsing), "
          f"{between:.2f}s around {figures['tasks']} tasks ({between / max(figures['tasks'], 1):.2f}s each), "
          f"{phases['after_last_task']:.2f}s after the last")
    if "time_to_safe_mode" in figures:
        print(f"\n  time to safe mode: {figures['time_to_safe_mode']['wall']:.2f}s from the playbook's start "
              f"({figures['safe_mode_seen']})")
        print_split("playbook start -> safe mode", figures["time_to_safe_mode"])
    print(f"\n  slowest tasks {'':<47} {'seconds':>8} {'share':>6} {'in modules':>10} {'start-up':>8}")
    for task in figures["slowest_tasks"]:
        name = f"{task['task'].rsplit(' : ', 1)[-1]} ({task['action'].split('.')[-1]})"
        print(f"  {name[:61]:<61} {task['duration']:8.2f} {100 * task['share']:5.1f}% {task['module']:10.2f} "
              f"{task['startup']:8.2f}")


def print_summary(reports: Sequence[dict[str, t.Any]]) -> None:
    def median(path: tuple[str, str]) -> float:
        return statistics.median(report[path[0]][path[1]] for report in reports)

    print(f"\nmedian of {len(reports)} runs: wall {median(('playbook_split', 'wall')):.2f}s, controller overhead "
          f"{100 * median(('playbook_split', 'controller_share')):.1f}%, controller + start-up "
          f"{100 * median(('playbook_split', 'overhead_share')):.1f}% (goal < {100 * GOAL:.0f}%)")
    if "time_to_safe_mode" in reports[0]:
        print(f"median time to safe mode {median(('time_to_safe_mode', 'wall')):.2f}s")


def print_modules(figures: dict[str, t.Any]) -> None:
    print(f"\n  {'module':<24} {'processes':>9} {'seconds':>8} {'start-up':>8}")
    for module, entry in figures["modules"].items():
        print(f"  {module:<24} {int(entry['processes']):9d} {entry['seconds']:8.2f} {entry['startup']:8.2f}")
    never = figures["processes_never_ready"]
    if never:
        print(f"  {never} module process(es) never built their AnsibleModule: counted as start-up throughout")


# --- main ------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, workdir: Path, tag: str) -> list[Measured]:
    measured: list[Measured] = []
    for number in range(1, args.repeat + 1):
        folder = workdir / f"run-{number}"
        print(f"scenario {args.scenario}, run {number} of {args.repeat}", file=PROGRESS)
        with running_lab(folder / "lab") as lab:
            instrument = Instrument(folder / "interpreter", tag)
            if args.scenario == "a":
                measured.append(scenario_a(lab, folder, instrument))
            else:
                measured.append(scenario_b(lab, folder, instrument))
    return measured


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("a", "b"), default="a")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, timelines, labs)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    # Started in the background by a shell without job control, Python would inherit SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    tag = uuid.uuid4().hex
    workdir = Path(tempfile.mkdtemp(prefix="ragops-bench-drill-"))
    keep = True
    try:
        measured = measure(args, workdir, tag)
        keep = args.keep
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=PROGRESS)
        return 130
    except (LabError, KubeError, subprocess.TimeoutExpired) as exc:
        print(f"bench failed: {exc}", file=PROGRESS)
        return 1
    finally:
        stop_marked(tag)
        if keep:
            print(f"logs kept in {workdir}", file=PROGRESS)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    reports = [analyse(run) for run in measured]
    if args.json:
        print(json.dumps({"scenario": args.scenario, "goal_overhead_share": GOAL, "cpus": os.cpu_count(),
                          "runs": reports}, indent=1))
        return 0
    print(f"scenario {args.scenario}; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for number, report in enumerate(reports, 1):
        print_run(number, report)
    if len(reports) > 1:
        print_summary(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
