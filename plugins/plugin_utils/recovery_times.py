# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two times every report states: time to safe mode and time to recover, from
the playbook's start and, when the alert's time is known, from the alert.

Pure: moments in (ISO 8601 text, seconds since the epoch or ``datetime``), figures
and the lines a report prints out.  The ``ragops.recovery.recovery_times`` filter and
the ``ragops.recovery.timeline`` callback both use it.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone

Moment = t.Union[str, int, float, datetime, None]
# YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][Z|±HH:MM]
ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
ALERT_HINT = (
    "give the alert's time as ISO 8601, such as 2026-11-27T22:10:00Z, or as seconds "
    "since the epoch"
)


def parse_moment(value: Moment) -> float | None:
    """Seconds since the epoch; ``None`` for no moment; ValueError for a value that is
    not a time (a time without a zone is UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("%r is not a time" % value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    text = str(value).strip()
    if re.match(r"^\d+(\.\d+)?$", text):
        return float(text)
    found = ISO.match(text)
    if not found:
        raise ValueError("%r is not a time" % value)
    day, clock, fraction, zone = found.groups()
    clock = clock if clock.count(":") == 2 else clock + ":00"
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    zone = zone if ":" in zone else zone[:3] + ":" + zone[3:]
    micro = (fraction or "0")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat("%sT%s.%s%s" % (day, clock, micro, zone))
    return parsed.timestamp()


def iso(moment: float | None) -> str | None:
    """A moment as UTC ISO 8601 to the millisecond."""
    if moment is None:
        return None
    text = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def elapsed(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 1)


@dataclass(frozen=True)
class RecoveryTimes:
    """When the run started, the alert came, safe mode was reached and the service
    was back; what is not known is ``None``, and ``notes`` say why."""

    started: float
    alert: float | None = None
    safe_mode: float | None = None
    recovered: float | None = None
    safe_mode_note: str = ""
    recovered_note: str = ""
    alert_error: str = ""

    def since_start(self, moment: float | None) -> float | None:
        """Seconds from the start; None when not reached, or reached before this run
        (an earlier run's quarantine is not this run's time to safe mode)."""
        if moment is None or moment < self.started:
            return None
        return elapsed(self.started, moment)

    def figures(self) -> t.Dict[str, t.Any]:
        return {
            "started_at": iso(self.started),
            "alert_received_at": iso(self.alert),
            "safe_mode_at": iso(self.safe_mode),
            "recovered_at": iso(self.recovered),
            "time_to_safe_mode": self.since_start(self.safe_mode),
            "time_to_recover": self.since_start(self.recovered),
            "time_to_safe_mode_from_alert": elapsed(self.alert, self.safe_mode),
            "time_to_recover_from_alert": elapsed(self.alert, self.recovered),
        }

    def text(self, moment: float | None, note: str) -> str:
        """``3.2 s from the playbook's start (7.9 s from the alert)``, or why not."""
        if moment is None:
            return note or "not reached in this run"
        if moment < self.started:
            return "reached before this run started (at %s)" % iso(moment)
        text = "%.1f s from the playbook's start" % (moment - self.started)
        if self.alert is not None:
            text += " (%.1f s from the alert)" % (moment - self.alert)
        return text

    def lines(self) -> t.List[str]:
        found = [
            "time to safe mode: " + self.text(self.safe_mode, self.safe_mode_note),
            "time to recover: " + self.text(self.recovered, self.recovered_note),
        ]
        if self.alert_error:
            found.append("alert time not used: " + self.alert_error)
        return found

    def to_dict(self) -> t.Dict[str, t.Any]:
        return dict(
            self.figures(),
            safe_mode_text=self.text(self.safe_mode, self.safe_mode_note),
            recovered_text=self.text(self.recovered, self.recovered_note),
            lines=self.lines(),
            alert_error=self.alert_error,
        )


def alert_moment(value: Moment) -> t.Tuple[float | None, str]:
    """The alert's time, or why it cannot be used: a malformed alert time never stops
    a recovery, it is only left out of the figures."""
    try:
        return parse_moment(value), ""
    except ValueError:
        return None, "alert_received_at %r is not a time: %s" % (value, ALERT_HINT)


def recovery_times(moments: t.Mapping[str, t.Any]) -> RecoveryTimes:
    """``moments``: ``started`` (required), ``alert``, ``safe_mode``, ``recovered``,
    ``safe_mode_note``, ``recovered_note``.  ValueError when a moment other than the
    alert is not a time."""
    started = parse_moment(moments.get("started"))
    if started is None:
        raise ValueError("the run's start (started) is required")
    alert, alert_error = alert_moment(moments.get("alert"))
    return RecoveryTimes(
        started,
        alert,
        parse_moment(moments.get("safe_mode")),
        parse_moment(moments.get("recovered")),
        str(moments.get("safe_mode_note") or ""),
        str(moments.get("recovered_note") or ""),
        alert_error,
    )
