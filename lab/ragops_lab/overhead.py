"""Where a playbook run's time goes: waiting on the system inside module processes, or Ansible's own work.

bench/drill.py runs a scenario's playbook with `ansible_python_interpreter` set to a small wrapper
(`write_interpreter`) that starts the real Python as its child and logs each module process's start, end,
exit code and module name. A `sitecustomize` on the child's path adds one mark: the moment the module's
`AnsibleModule` is built (the interpreter started, the AnsiballZ payload unpacked, the module and its
module_utils imported, the arguments checked); nothing in the modules changes. The pure functions here
turn those logs, the run's wall time and the timeline callback's steps into the split the bench prints:

- module time: the union of the module processes' intervals (the collection's modules talking to the
  Kubernetes API, S3, the shards and the providers, and waiting for restores, rollouts, readiness and
  queries);
- of which start-up: from each process's start to its mark (the whole process when it has none, such as
  a module that failed on its arguments), and of that the interpreter's own start (up to `sitecustomize`);
- controller overhead: wall time minus module time (ansible-playbook's start, templating, task set-up,
  temporary files, callbacks, and the controller-side tasks such as set_fact and assert).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

Interval = tuple[float, float]

MODULE_FILE = re.compile(r"AnsiballZ_(?P<module>\w+)\.py$")
# The timeline callback writes times to the hundredth of a second.
TIMELINE_RESOLUTION = 0.01

WRAPPER = """#!/bin/bash
# ansible_python_interpreter for a measured run: the module runs in {python} as a child, and
# "wrapper-pid start end exit-code module" (epoch seconds) is appended to the log when it ends.
export {marker}={tag}
export PYTHONPATH={hook_dir}${{PYTHONPATH:+:$PYTHONPATH}}
started=$EPOCHREALTIME
{python} "$@"
code=$?
script=${{@: -1}}
echo "$$ $started $EPOCHREALTIME $code ${{script##*/}}" >> {log}
exit $code
"""

# Appends "parent-pid interpreter-up module-ready" once the module's AnsibleModule is built.
SITECUSTOMIZE = """import os
import sys
import time

_SITE = time.time()


class _ReadyMark:
    \"\"\"Wraps the loader of ansible.module_utils.basic so that AnsibleModule.__init__ leaves a mark.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name != "ansible.module_utils.basic":
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


class _Loader:
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, attribute):
        return getattr(self._loader, attribute)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        built = module.AnsibleModule.__init__

        def __init__(instance, *args, **kwargs):
            built(instance, *args, **kwargs)
            module.AnsibleModule.__init__ = built
            try:
                with open({log!r}, "a") as log:
                    log.write("%d %.6f %.6f\\n" % (os.getppid(), _SITE, time.time()))
            except OSError:
                pass

        module.AnsibleModule.__init__ = __init__


sys.meta_path.insert(0, _ReadyMark())
"""


@dataclass(frozen=True)
class ModuleRun:
    """One module process: its module, when it started and ended (epoch seconds), its exit code, and when
    its interpreter was up and its AnsibleModule built (None when it never got that far)."""

    module: str
    start: float
    end: float
    code: int
    site: float | None = None
    ready: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Step:
    """One task of the timeline callback's JSON."""

    task: str
    action: str
    status: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Split:
    """A window of a run (the whole playbook, or up to a point such as the first safe answer) split up."""

    wall: float
    module: float  # union of module processes
    startup: float  # of which start-up: interpreter, module unpacking, imports and argument checking
    interpreter: float  # of which the interpreter's own start
    controller: float  # wall - module
    processes: int

    @property
    def work(self) -> float:
        """Module time after start-up: the modules' calls and waits on the system."""
        return self.module - self.startup

    @property
    def controller_share(self) -> float:
        return self.controller / self.wall if self.wall else 0.0

    @property
    def overhead_share(self) -> float:
        """Controller overhead plus module start-up, as a share of the wall time."""
        return (self.controller + self.startup) / self.wall if self.wall else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "work": self.work, "controller_share": self.controller_share,
                "overhead_share": self.overhead_share}


# --- the interpreter wrapper and its logs ------------------------------------------------------------


def write_interpreter(folder: Path, python: str, marker: str, tag: str) -> tuple[Path, Path, Path]:
    """The wrapper (every process it starts carries `marker=tag` in its environment), its log and the
    marks' log, in `folder`."""
    hook_dir = folder / "hook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    log, marks = folder / "modules.log", folder / "marks.log"
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE.replace("{log!r}", repr(str(marks))))
    wrapper = folder / "python"
    wrapper.write_text(WRAPPER.format(python=shlex.quote(python), log=shlex.quote(str(log)), marker=marker,
                                      tag=shlex.quote(tag), hook_dir=shlex.quote(str(hook_dir))))
    wrapper.chmod(0o755)
    return wrapper, log, marks


def _seconds(field: str) -> float:
    # bash writes $EPOCHREALTIME with the locale's decimal separator
    return float(field.replace(",", "."))


def parse_module_runs(text: str, marks: str = "") -> list[ModuleRun]:
    """The wrapper's log lines joined with the marks (by the wrapper's pid, inside the process's
    interval); a process that ran something other than a module file is named "-"."""
    marked: dict[int, list[tuple[float, float]]] = {}
    for line in marks.splitlines():
        fields = line.split()
        if len(fields) == 3:
            marked.setdefault(int(fields[0]), []).append((float(fields[1]), float(fields[2])))
    runs = []
    for line in text.splitlines():
        fields = line.split(maxsplit=4)
        if len(fields) < 4:
            continue
        match = MODULE_FILE.search(fields[4]) if len(fields) == 5 else None
        start, end = _seconds(fields[1]), _seconds(fields[2])
        site, ready = next(((s, r) for s, r in marked.get(int(fields[0]), []) if start <= s <= r <= end),
                           (None, None))
        runs.append(ModuleRun(match.group("module") if match else "-", start, end, int(fields[3]), site, ready))
    return sorted(runs, key=lambda run: run.start)


# --- interval arithmetic -----------------------------------------------------------------------------


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """The intervals merged where they overlap or touch, in order."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covered(intervals: Iterable[Interval], window: Interval | None = None) -> float:
    """Seconds covered by at least one interval, counting only what falls inside `window`."""
    low, high = window if window else (float("-inf"), float("inf"))
    return sum(max(0.0, min(end, high) - max(start, low)) for start, end in union(intervals))


def startup_interval(run: ModuleRun) -> Interval:
    """The part of a process before its module was ready to work: all of it when it never was."""
    return run.start, run.ready if run.ready is not None else run.end


def interpreter_interval(run: ModuleRun) -> Interval:
    return run.start, run.site if run.site is not None else run.start


def split(window: Interval, runs: Sequence[ModuleRun]) -> Split:
    """`window` (epoch seconds) split into module time, its start-up part, and controller overhead."""
    wall = window[1] - window[0]
    inside = [run for run in runs if run.end > window[0] and run.start < window[1]]
    module = covered(((run.start, run.end) for run in inside), window)
    starting = covered((startup_interval(run) for run in inside), window)
    interpreter = covered((interpreter_interval(run) for run in inside), window)
    return Split(wall, module, starting, interpreter, wall - module, len(inside))


def controller_phases(window: Interval, steps: Sequence[Step]) -> dict[str, float]:
    """Controller time before the first task starts (ansible-playbook's start, parsing the playbook and the
    inventory) and after the last one ends (the recap, the callbacks' files, the exit): no module runs then."""
    if not steps:
        return {"before_first_task": 0.0, "after_last_task": 0.0}
    return {"before_first_task": max(0.0, min(s.start for s in steps) - window[0]),
            "after_last_task": max(0.0, window[1] - max(s.end for s in steps))}


# --- the timeline callback's steps -------------------------------------------------------------------


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def parse_timeline(text: str) -> list[Step]:
    steps = []
    for record in json.loads(text)["steps"]:
        start = _epoch(record["start"])
        steps.append(Step(record["task"], record["action"], record["status"], start,
                          start + float(record["duration"])))
    return steps


@dataclass(frozen=True)
class TaskFigure:
    task: str
    action: str
    duration: float
    share: float  # of the run's wall time
    module: float  # module-process time inside the task
    startup: float  # of which start-up


def slowest_tasks(steps: Sequence[Step], runs: Sequence[ModuleRun], wall: float, count: int = 5) -> list[TaskFigure]:
    """The `count` longest tasks with their share of the run and the module time inside each."""
    figures = []
    for step in sorted(steps, key=lambda s: s.duration, reverse=True)[:count]:
        window = (step.start - TIMELINE_RESOLUTION, step.end + TIMELINE_RESOLUTION)
        inside = split(window, runs)
        figures.append(TaskFigure(step.task, step.action, step.duration, step.duration / wall if wall else 0.0,
                                  min(inside.module, step.duration), min(inside.startup, step.duration)))
    return figures
