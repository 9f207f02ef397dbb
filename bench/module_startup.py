"""Module start-up benchmark: each of the collection's modules against ansible.builtin.stat, in the same run.

Every module of plugins/modules and ansible.builtin.stat is run the way Ansible runs it on a host: its
AnsiballZ payload (the module, the module_utils it imports and Ansible's own, zipped into one script) is
built by a real ansible-playbook run (local connection, no pipelining, ANSIBLE_KEEP_REMOTE_FILES=1), then
started again and again with this Python, `python AnsiballZ_<module>.py`, as Ansible starts it. Each payload
carries an option no module has, so every module, stat too, stops at its argument check and exits there: the
time measured is the whole process (the interpreter's start, unpacking the payload, importing the module and
its libraries, building the AnsibleModule and checking the arguments), nothing of the module's work.  A run
whose answer is not the argument check's failure is an error of the bench, not a figure.

The payloads run in a shuffled order in every round, so a change of the machine's load falls on all of them;
each figure is the median of --repeat rounds, wall time and CPU time (user + system), each also as a ratio to
stat's in the same run.  The goal is a start-up of at most 1.2 x stat's (wall).  One more run of each payload
with `python -X importtime` names the third-party packages it imported.

    python bench/module_startup.py [--repeat 10] [--json]
    make -s bench-startup BENCH_ARGS="--repeat 20 --json"     # -s: only the JSON on stdout

Progress goes to stderr, the figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "build" / "collections"
BASELINE = "ansible.builtin.stat"
GOAL = 1.2
# An option no module has: the module stops at the argument check, before any work.
PROBE_OPTION = "_startup_probe"
# The failures of AnsibleModule's argument check (ansible.module_utils.common.validation and errors).
ARGUMENT_CHECK = re.compile(r"Unsupported parameters|missing required arguments|parameters are mutually exclusive"
                            r"|is \S+ but (any|all) of the following are missing|parameters are required together"
                            r"|one of the following is required|missing parameter\(s\) required by")
# The third-party packages worth naming when a payload imports them.
HEAVY = ("kubernetes", "boto3", "botocore", "s3transfer", "urllib3", "requests", "websocket", "yaml")
PROGRESS = sys.stderr


@dataclass
class Figures:
    """One payload's medians, and the ratios to the baseline's."""

    module: str
    wall: float
    cpu: float
    wall_ratio: float
    cpu_ratio: float
    imports: list[str]


def collection_modules() -> list[str]:
    """Every module of the collection that runs as a module process, by its fully qualified name: not
    those an action plugin of their name runs on the controller alone (local_record), which start none."""
    controller_only = {path.stem for path in (ROOT / "plugins" / "action").glob("*.py")}
    return ["ragops.recovery." + path.stem for path in sorted((ROOT / "plugins" / "modules").glob("*.py"))
            if path.stem != "__init__" and path.stem not in controller_only]


def payload_name(fqcn: str) -> str:
    return "AnsiballZ_%s.py" % fqcn.rsplit(".", 1)[-1]


def build_payloads(workdir: Path, modules: t.Sequence[str]) -> dict[str, Path]:
    """The AnsiballZ payload of every module, as ansible-playbook writes it for the local host."""
    playbook = workdir / "startup.yml"
    tasks = [{"name": fqcn, fqcn: {PROBE_OPTION: True}, "ignore_errors": True} for fqcn in modules]
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    remote = workdir / "remote"
    env = dict(os.environ, ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=str(remote), ANSIBLE_PIPELINING="0",
               ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + sys.executable, str(playbook)]
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, check=False)
    found = {path.name: path for path in remote.glob("ansible-tmp-*/AnsiballZ_*.py")}
    payloads = {fqcn: found.get(payload_name(fqcn)) for fqcn in modules}
    missing = [fqcn for fqcn, path in payloads.items() if path is None]
    if missing:
        raise SystemExit("ansible-playbook wrote no payload for %s (exit %d):\n%s"
                         % (", ".join(missing), done.returncode, done.stdout[-2000:] + done.stderr[-2000:]))
    return {fqcn: path for fqcn, path in payloads.items() if path is not None}


def run_payload(fqcn: str, payload: Path, *options: str) -> tuple[float, float, str]:
    """Wall and CPU time of one run of the payload, and what it wrote on stderr; it must stop at the
    argument check."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *options, str(payload)], cwd=payload.parent, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = {}
    if not answer.get("failed") or not ARGUMENT_CHECK.search(str(answer.get("msg", ""))):
        raise SystemExit("%s did not stop at its argument check (exit %d): %s %s"
                         % (fqcn, done.returncode, done.stdout[-1000:], done.stderr[-1000:]))
    return wall, cpu, done.stderr


def third_party_imports(fqcn: str, payload: Path) -> list[str]:
    """The packages of HEAVY that the payload imports before its argument check."""
    stderr = run_payload(fqcn, payload, "-X", "importtime")[2]
    names = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def measure(payloads: dict[str, Path], repeat: int) -> dict[str, list[tuple[float, float]]]:
    """``repeat`` rounds, each running every payload once in a shuffled order, after one warm-up round."""
    samples: dict[str, list[tuple[float, float]]] = {fqcn: [] for fqcn in payloads}
    order = list(payloads)
    for round_number in range(repeat + 1):
        random.shuffle(order)
        for fqcn in order:
            wall, cpu, _ = run_payload(fqcn, payloads[fqcn])
            if round_number:
                samples[fqcn].append((wall, cpu))
        if round_number:
            print("  round %d of %d" % (round_number, repeat), file=PROGRESS)
    return samples


def figures(samples: dict[str, list[tuple[float, float]]], imports: dict[str, list[str]]) -> list[Figures]:
    medians = {fqcn: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
               for fqcn, runs in samples.items()}
    base_wall, base_cpu = medians[BASELINE]
    return [Figures(fqcn, wall, cpu, wall / base_wall, cpu / base_cpu, imports[fqcn])
            for fqcn, (wall, cpu) in medians.items()]


def print_table(rows: list[Figures], repeat: int, load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    print("module start-up, median of %d runs; machine: %d CPUs, Python %s; load average %s at the start, "
          "%s at the end" % (repeat, os.cpu_count() or 0, sys.version.split()[0],
                             " ".join("%.2f" % value for value in load[0]),
                             " ".join("%.2f" % value for value in load[1])))
    print(f"  {'module':<34} {'wall s':>7} {'x stat':>6} {'cpu s':>7} {'x stat':>6}  {'goal':<9} third-party imports")
    for row in sorted(rows, key=lambda row: (row.module != BASELINE, row.module)):
        verdict = "" if row.module == BASELINE else ("met" if row.wall_ratio <= GOAL else "NOT MET")
        print(f"  {row.module:<34} {row.wall:7.3f} {row.wall_ratio:6.2f} {row.cpu:7.3f} {row.cpu_ratio:6.2f}  "
              f"{verdict:<9} {' '.join(row.imports) or '-'}")
    modules = [row for row in rows if row.module != BASELINE]
    met = sum(row.wall_ratio <= GOAL for row in modules)
    print(f"  goal: start-up <= {GOAL} x {BASELINE}'s (wall): met by {met} of {len(modules)} modules; "
          f"slowest {max(row.wall_ratio for row in modules):.2f} x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (the payloads)")
    args = parser.parse_args()
    modules = [BASELINE, *collection_modules()]
    workdir = Path(tempfile.mkdtemp(prefix="ragops-bench-startup-"))
    try:
        print("building %d payloads with ansible-playbook ..." % len(modules), file=PROGRESS)
        payloads = build_payloads(workdir, modules)
        load_before = os.getloadavg()
        samples = measure(payloads, args.repeat)
        load_after = os.getloadavg()
        imports = {fqcn: third_party_imports(fqcn, path) for fqcn, path in payloads.items()}
    finally:
        if args.keep:
            print(f"payloads kept in {workdir}", file=PROGRESS)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = figures(samples, imports)
    if args.json:
        print(json.dumps({"goal_ratio": GOAL, "baseline": BASELINE, "repeat": args.repeat, "cpus": os.cpu_count(),
                          "load_average": {"start": load_before, "end": load_after},
                          "modules": [asdict(row) for row in rows]}, indent=1))
    else:
        print_table(rows, args.repeat, (load_before, load_after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
