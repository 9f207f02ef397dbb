# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident timeline: what the runbook did, phase by phase, when it reached the
moments that matter, and how long that took from the start (and from the alert).

Pure functions over :class:`Step` records; the ``ragops.recovery.timeline``
callback feeds them and writes the JSON and Markdown files.

Roles declare the runbook's structure with task tags: ``phase_<name>`` puts a task
(or every task of a block) in a phase, the innermost tag winning; ``milestone_<name>``
on a task marks a moment reached when that task ends ok or changed.  The Markdown
shows the runbook (tasks that did something or failed, grouped by phase, and the
milestones); the JSON keeps every task.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict, dataclass, field

from .recovery_times import RecoveryTimes, elapsed, iso

# Result keys that summarise a ragops.recovery task, in the order they are tried.
SUMMARY_KEYS = ("msg", "transition", "summary", "action")
SECRET_WORDS = ("secret", "token", "password", "api_key", "presigned")
PHASE_TAG = "phase_"
MILESTONE_TAG = "milestone_"
# The runbook's phases (Scenarios A, B and C) by tag; an unknown tag names itself.
PHASES = {
    "lock": "lock",
    "diagnosis": "diagnosis",
    "evidence": "evidence",
    "safe_mode": "safe mode",
    "reopen": "re-open",
    "restore": "restore",
    "validation": "validation",
    "return_to_service": "return to service",
    "reindex": "re-index",
    "throttle": "throttle",
    "ramp": "ramp",
    "rollback": "rollback",
    "migration": "migration",
    "start": "start in order",
    "report": "report",
}
MILESTONES = {
    "safe_mode": "safe mode reached",
    "snapshot_chosen": "snapshot chosen",
    "golden_verdict": "golden verdict",
    "back_in_service": "back in service",
}
# Ansible's bookkeeping: shown only when it failed (or marks a milestone).
PLUMBING = frozenset(
    {
        "set_fact",
        "set_stats",
        "include_tasks",
        "import_tasks",
        "include_role",
        "import_role",
        "include_vars",
        "validate_argument_spec",
        "debug",
        "assert",
        "fail",
        "meta",
        "add_host",
        "group_by",
    }
)
REACHED = ("ok", "changed")


@dataclass
class Step:
    """One task on one host, with the phase and milestones its tags declare."""

    task: str
    action: str
    host: str
    start: float
    end: float
    status: str  # ok, changed, failed, skipped, unreachable
    summary: str
    phase: str = ""
    milestones: t.Tuple[str, ...] = ()
    detail: str = ""

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 3)


@dataclass(frozen=True)
class Run:
    """The playbook run: its title, its start, and the alert that started it."""

    title: str
    started: float | None = None
    alert: float | None = None
    alert_error: str = ""


@dataclass(frozen=True)
class Milestone:
    name: str
    host: str
    task: str
    at: float
    detail: str


@dataclass
class PhaseSpan:
    phase: str
    host: str
    start: float
    end: float
    shown: int = 0
    statuses: t.List[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        for status in ("unreachable", "failed", "changed", "ok"):
            if status in self.statuses:
                return status
        return "skipped"


def _shorten(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summarize(result: t.Mapping[str, t.Any]) -> str:
    """One line for a task result: its message or a ragops.recovery summary key, never a secret."""
    for key in SUMMARY_KEYS:
        value = result.get(key)
        if (
            isinstance(value, str)
            and value
            and not any(word in value.lower() for word in SECRET_WORDS)
        ):
            return _shorten(value)
    if result.get("skip_reason"):
        return _shorten(str(result["skip_reason"]))
    return "changed" if result.get("changed") else "ok"


def milestone_detail(result: t.Mapping[str, t.Any]) -> str:
    """What a milestone task found: a verdict, the snapshot chosen, else its summary."""
    validation = result.get("validation")
    if isinstance(validation, t.Mapping) and validation.get("verdict"):
        return _shorten(
            "%s: %s" % (validation["verdict"], validation.get("summary") or "")
        )
    snapshot = result.get("snapshot")
    if isinstance(snapshot, t.Mapping) and snapshot.get("snapshot_id"):
        created = snapshot.get("created")
        return "snapshot %s%s" % (
            snapshot["snapshot_id"],
            " (taken %s)" % created if created else "",
        )
    return summarize(result)


def status_of(result: t.Mapping[str, t.Any], outcome: str) -> str:
    """``outcome`` is how the runner ended the task (ok, failed, skipped, unreachable)."""
    if outcome == "ok" and result.get("changed"):
        return "changed"
    return outcome


def markers(tags: t.Iterable[str]) -> t.Tuple[str, t.Tuple[str, ...]]:
    """The phase and milestones a task's tags declare.

    A task's own tags come before those it inherits from its blocks, so the first
    phase tag is the innermost.
    """
    names = [str(tag) for tag in tags]
    phase = next((n[len(PHASE_TAG) :] for n in names if n.startswith(PHASE_TAG)), "")
    found = [n[len(MILESTONE_TAG) :] for n in names if n.startswith(MILESTONE_TAG)]
    return phase, tuple(dict.fromkeys(found))


def phase_label(phase: str) -> str:
    return PHASES.get(phase, phase.replace("_", " "))


def milestone_label(name: str) -> str:
    return MILESTONES.get(name, name.replace("_", " "))


def shown(step: Step) -> bool:
    """Whether the runbook's view shows the step: it failed, marked a milestone, or
    did something (a task that is not Ansible's bookkeeping and was not skipped)."""
    if step.status in ("failed", "unreachable"):
        return True
    if step.status == "skipped":
        return False
    return bool(step.milestones) or step.action.rsplit(".", 1)[-1] not in PLUMBING


def milestones(steps: t.Sequence[Step]) -> t.List[Milestone]:
    """Every milestone reached, in order."""
    found = [
        Milestone(name, step.host, step.task, step.end, step.detail)
        for step in steps
        if step.status in REACHED
        for name in step.milestones
    ]
    return sorted(found, key=lambda m: m.at)


def run_start(run: Run, steps: t.Sequence[Step]) -> float:
    starts = [s.start for s in steps]
    if run.started is not None:
        starts.append(run.started)
    return min(starts) if starts else 0.0


def hosts(steps: t.Sequence[Step]) -> t.List[str]:
    return list(dict.fromkeys(step.host for step in steps))


def host_times(run: Run, steps: t.Sequence[Step], host: str) -> RecoveryTimes:
    """When ``host`` reached safe mode (the first time) and was back in service (the
    last time); a note says when the playbook has no such step. A stack whose shards
    ran as hosts of their own (``<stack>/<shard>``) counts theirs: safe mode when the
    first reached it, back in service when the last did, and only if every one that
    had that step reached it."""
    mine = [s for s in steps if s.host == host or s.host.startswith(host + "/")]
    reached = [
        m for m in milestones(mine) if m.name in ("safe_mode", "back_in_service")
    ]
    declared = {name for step in mine for name in step.milestones}
    returned: t.Dict[str, float | None] = {
        step.host: None for step in mine if "back_in_service" in step.milestones
    }
    returned.update((m.host, m.at) for m in reached if m.name == "back_in_service")

    def note(name: str) -> str:
        if name in declared:
            return "not reached in this run"
        return "this playbook has no %s step" % milestone_label(name)

    safe = [m.at for m in reached if m.name == "safe_mode"]
    back = list(returned.values())
    return RecoveryTimes(
        run_start(run, steps),
        run.alert,
        safe[0] if safe else None,
        max(t.cast(t.List[float], back)) if back and None not in back else None,
        note("safe_mode"),
        note("back_in_service"),
        run.alert_error,
    )


def phase_spans(steps: t.Sequence[Step]) -> t.List[PhaseSpan]:
    """Each phase of each host that ran, in the order it began."""
    spans: t.Dict[t.Tuple[str, str], PhaseSpan] = {}
    for step in steps:
        if not step.phase or step.status == "skipped":
            continue
        key = (step.host, step.phase)
        span = spans.setdefault(
            key, PhaseSpan(step.phase, step.host, step.start, step.end)
        )
        span.start, span.end = min(span.start, step.start), max(span.end, step.end)
        span.shown += int(shown(step))
        span.statuses.append(step.status)
    return sorted(spans.values(), key=lambda span: span.start)


def to_json(run: Run, steps: t.Sequence[Step]) -> str:
    """Everything: every step (shown or not), the phases, the milestones, the times."""
    start = run_start(run, steps)
    records = [
        dict(
            asdict(step),
            start=iso(step.start),
            end=iso(step.end),
            duration=step.duration,
            since_start=round(step.start - start, 3),
            phase_label=phase_label(step.phase) if step.phase else "",
            shown=shown(step),
        )
        for step in steps
    ]
    reached = [
        {
            "milestone": m.name,
            "label": milestone_label(m.name),
            "host": m.host,
            "task": m.task,
            "at": iso(m.at),
            "since_start": elapsed(start, m.at),
            "since_alert": elapsed(run.alert, m.at),
            "detail": m.detail,
        }
        for m in milestones(steps)
    ]
    phases = [
        {
            "phase": span.phase,
            "label": phase_label(span.phase),
            "host": span.host,
            "start": iso(span.start),
            "end": iso(span.end),
            "since_start": round(span.start - start, 3),
            "duration": round(span.end - span.start, 3),
            "steps_shown": span.shown,
            "outcome": span.outcome,
        }
        for span in phase_spans(steps)
    ]
    end = max([s.end for s in steps] + [start])
    totals = {
        status: sum(1 for step in steps if step.status == status)
        for status in ("ok", "changed", "failed", "skipped", "unreachable")
    }
    return json.dumps(
        {
            "title": run.title,
            "started": iso(start) if steps else None,
            "finished": iso(end) if steps else None,
            "duration": round(end - start, 3),
            "alert_received_at": iso(run.alert),
            "alert_error": run.alert_error,
            "times": {h: host_times(run, steps, h).figures() for h in hosts(steps)},
            "milestones": reached,
            "phases": phases,
            "totals": totals,
            "hidden": sum(1 for step in steps if not shown(step)),
            "steps": records,
        },
        indent=2,
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _seconds(value: float | None) -> str:
    return "" if value is None else "+%.1f s" % value


def times_table(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    lines = ["| stack | time to safe mode | time to recover |", "| --- | --- | --- |"]
    for host in hosts(steps):
        times = host_times(run, steps, host)
        cells = (
            host,
            times.text(times.safe_mode, times.safe_mode_note),
            times.text(times.recovered, times.recovered_note),
        )
        lines.append("| %s |" % " | ".join(_cell(c) for c in cells))
    return lines


def header(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    start = run_start(run, steps)
    end = max([s.end for s in steps] + [start])
    lines = [
        "# %s" % run.title,
        "",
        "Started %s, finished %s (%.1f s)." % (iso(start), iso(end), end - start),
    ]
    if run.alert is not None:
        lines[-1] += " Alert received %s, %.1f s before the start." % (
            iso(run.alert),
            start - run.alert,
        )
    if run.alert_error:
        lines[-1] += " The alert's time is not used: %s." % run.alert_error
    return [*lines, "", *times_table(run, steps), ""]


def milestone_table(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    start = run_start(run, steps)
    lines = [
        "## Milestones",
        "",
        "| milestone | at (UTC) | from the start | from the alert | host | task | detail |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for m in milestones(steps):
        cells = (
            milestone_label(m.name),
            str(iso(m.at)),
            _seconds(elapsed(start, m.at)),
            _seconds(elapsed(run.alert, m.at)),
            m.host,
            m.task,
            m.detail,
        )
        lines.append("| %s |" % " | ".join(_cell(c) for c in cells))
    return [*lines, ""]


def phase_table(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    start = run_start(run, steps)
    lines = [
        "## Phases",
        "",
        "| phase | host | from | to | took | steps | outcome |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for span in (span for span in phase_spans(steps) if span.shown):
        cells = (
            phase_label(span.phase),
            span.host,
            _seconds(span.start - start),
            _seconds(span.end - start),
            "%.1f s" % (span.end - span.start),
            str(span.shown),
            span.outcome,
        )
        lines.append("| %s |" % " | ".join(cells))
    return [*lines, ""]


def step_table(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    start = run_start(run, steps)
    lines = [
        "## Steps",
        "",
        "| phase | start (UTC) | from the start | duration | host | task | status | summary |",
        "| --- | --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    for step in filter(shown, steps):
        cells = (
            phase_label(step.phase) if step.phase else "",
            str(iso(step.start)),
            _seconds(step.start - start),
            "%.1f s" % step.duration,
            step.host,
            step.task,
            step.status,
            step.summary,
        )
        lines.append("| %s |" % " | ".join(_cell(c) for c in cells))
    hidden = sum(1 for step in steps if not shown(step))
    if hidden:
        lines += [
            "",
            "%d more Ansible steps are left out (skipped, or bookkeeping such as "
            "set_fact, include_tasks and argument validation); timeline.json lists "
            "every step." % hidden,
        ]
    return [*lines, ""]


def to_summary(run: Run, steps: t.Sequence[Step], files: t.Sequence[str]) -> str:
    """The few lines the job's output shows when the playbook ends: totals, the longest
    step, the first failure, each host's time to safe mode and to recover, and where
    the files are."""
    written = "Timeline written to %s" % ", ".join(files)
    if not steps:
        return "Recovery timeline %r: no task ran.\n%s" % (run.title, written)
    totals = ", ".join(
        "%d %s" % (sum(1 for step in steps if step.status == status), status)
        for status in ("ok", "changed", "failed", "skipped", "unreachable")
    )
    start, end = min(s.start for s in steps), max(s.end for s in steps)
    longest = max(steps, key=lambda step: step.duration)
    lines = [
        "Recovery timeline %r: %d tasks in %.1f s (%s to %s): %s"
        % (run.title, len(steps), end - start, iso(start), iso(end), totals),
        "Longest: %s on %s (%.1f s, %s)"
        % (longest.task, longest.host, longest.duration, longest.status),
    ]
    failed = [step for step in steps if step.status in ("failed", "unreachable")]
    if failed:
        first = failed[0]
        lines.append(
            "First failure: %s on %s: %s" % (first.task, first.host, first.summary)
        )
    for host in hosts(steps):
        lines += [
            "%s: %s" % (host, line) for line in host_times(run, steps, host).lines()
        ]
    return "\n".join([*lines, written])


def _gantt_label(text: str) -> str:
    # Mermaid ends a task name at ':' and starts a comment at '#'; ';' ends a statement.
    return _shorten(text, 60).replace(":", " -").replace("#", "").replace(";", ",")


GANTT_TAG = {
    "failed": "crit, ",
    "unreachable": "crit, ",
    "changed": "active, ",
    "ok": "done, ",
}


def _section(step: Step, several_hosts: bool) -> str:
    if not step.phase:
        return step.host
    label = phase_label(step.phase)
    return "%s - %s" % (step.host, label) if several_hosts else label


def gantt(run: Run, steps: t.Sequence[Step]) -> t.List[str]:
    """A Mermaid gantt chart: a section per phase, the steps shown, the milestones."""
    start = run_start(run, steps)
    lines = [
        "```mermaid",
        "gantt",
        "    title %s" % _gantt_label(run.title),
        "    dateFormat x",
        "    axisFormat %H:%M:%S",
    ]
    several = len(hosts(steps)) > 1
    visible = list(filter(shown, steps))
    for section in dict.fromkeys(_section(s, several) for s in visible):
        lines.append("    section %s" % _gantt_label(section))
        for step in (s for s in visible if _section(s, several) == section):
            end = max(step.end, step.start + 0.001)
            lines.append(
                "    %s :%s%d, %d"
                % (
                    _gantt_label(step.task),
                    GANTT_TAG.get(step.status, ""),
                    int(step.start * 1000),
                    int(end * 1000),
                )
            )
    reached = milestones(steps)
    if reached:
        lines.append("    section milestones")
    for m in reached:
        name = "%s %s" % (milestone_label(m.name), _seconds(elapsed(start, m.at)))
        at = int(m.at * 1000)
        lines.append("    %s :milestone, %d, %d" % (_gantt_label(name), at, at))
    return [*lines, "```", ""]


def to_markdown(run: Run, steps: t.Sequence[Step]) -> str:
    """What a person reads in the incident channel: the two times, the milestones, the
    phases, the steps that did something, and a Mermaid gantt chart of them."""
    return "\n".join(
        [
            *header(run, steps),
            *milestone_table(run, steps),
            *phase_table(run, steps),
            *step_table(run, steps),
            *gantt(run, steps),
        ]
    )
