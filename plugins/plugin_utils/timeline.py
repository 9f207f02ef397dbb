# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident timeline: what ran, when, on which stack, and how it ended.

Pure functions over :class:`Step` records; the ``ragops.recovery.timeline``
callback feeds them and writes the JSON and Markdown files.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

# Result keys that summarise a ragops.recovery task, in the order they are tried.
SUMMARY_KEYS = ("msg", "transition", "summary", "action")
SECRET_WORDS = ("secret", "token", "password", "api_key", "presigned")


@dataclass
class Step:
    """One task on one host."""

    task: str
    action: str
    host: str
    start: float
    end: float
    status: str  # ok, changed, failed, skipped, unreachable
    summary: str

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 3)


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


def status_of(result: t.Mapping[str, t.Any], outcome: str) -> str:
    """``outcome`` is how the runner ended the task (ok, failed, skipped, unreachable)."""
    if outcome == "ok" and result.get("changed"):
        return "changed"
    return outcome


def _iso(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[
            :-4
        ]
        + "Z"
    )


def to_json(title: str, steps: t.Sequence[Step]) -> str:
    records = [
        dict(
            asdict(step),
            start=_iso(step.start),
            end=_iso(step.end),
            duration=step.duration,
        )
        for step in steps
    ]
    totals = {
        status: sum(1 for step in steps if step.status == status)
        for status in ("ok", "changed", "failed", "skipped", "unreachable")
    }
    span = (
        (min(s.start for s in steps), max(s.end for s in steps))
        if steps
        else (0.0, 0.0)
    )
    return json.dumps(
        {
            "title": title,
            "started": _iso(span[0]) if steps else None,
            "finished": _iso(span[1]) if steps else None,
            "duration": round(span[1] - span[0], 3),
            "totals": totals,
            "steps": records,
        },
        indent=2,
    )


def to_summary(title: str, steps: t.Sequence[Step], files: t.Sequence[str]) -> str:
    """The few lines the job's output shows when the playbook ends: totals, the longest
    step, the first failure and where the files are."""
    if not steps:
        return "Recovery timeline %r: no task ran.\nTimeline written to %s" % (
            title,
            ", ".join(files),
        )
    totals = ", ".join(
        "%d %s" % (sum(1 for step in steps if step.status == status), status)
        for status in ("ok", "changed", "failed", "skipped", "unreachable")
    )
    start, end = min(s.start for s in steps), max(s.end for s in steps)
    longest = max(steps, key=lambda step: step.duration)
    lines = [
        "Recovery timeline %r: %d tasks in %.1f s (%s to %s): %s"
        % (title, len(steps), end - start, _iso(start), _iso(end), totals),
        "Longest: %s on %s (%.1f s, %s)"
        % (longest.task, longest.host, longest.duration, longest.status),
    ]
    failed = [step for step in steps if step.status in ("failed", "unreachable")]
    if failed:
        first = failed[0]
        lines.append(
            "First failure: %s on %s: %s" % (first.task, first.host, first.summary)
        )
    lines.append("Timeline written to %s" % ", ".join(files))
    return "\n".join(lines)


def _gantt_label(text: str) -> str:
    # Mermaid ends a task name at ':' and starts a comment at '#'; ';' ends a statement.
    return _shorten(text, 60).replace(":", " -").replace("#", "").replace(";", ",")


GANTT_TAG = {
    "failed": "crit, ",
    "unreachable": "crit, ",
    "changed": "active, ",
    "ok": "done, ",
}


def to_markdown(title: str, steps: t.Sequence[Step]) -> str:
    """A table a person reads in the incident channel, and a Mermaid gantt chart of the same steps."""
    lines = [
        "# %s" % title,
        "",
        "| start (UTC) | duration | host | task | status | summary |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for step in steps:
        cells = (
            _iso(step.start),
            "%.1fs" % step.duration,
            step.host,
            step.task,
            step.status,
            step.summary.replace("|", "\\|"),
        )
        lines.append("| %s |" % " | ".join(cells))
    lines += [
        "",
        "```mermaid",
        "gantt",
        "    title %s" % _gantt_label(title),
        "    dateFormat x",
        "    axisFormat %H:%M:%S",
    ]
    for host in sorted({step.host for step in steps}):
        lines.append("    section %s" % _gantt_label(host))
        for step in (s for s in steps if s.host == host and s.status != "skipped"):
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
    lines += ["```", ""]
    return "\n".join(lines)
