# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a recovery tells people: one event, as a generic JSON document and as a
Slack-compatible message (``text`` plus ``blocks``).

Pure: nothing here sends anything or knows where a message goes.
"""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass, field

EVENTS = ("opened", "safe_mode", "recovered", "failed")
TITLES = {
    "opened": "Incident opened",
    "safe_mode": "Safe mode reached",
    "recovered": "Recovered",
    "failed": "Recovery FAILED",
}
SCHEMA = "ragops.recovery/notification/v1"
# Slack's limits: a section's text, a field's text and a header's text.
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150


@dataclass(frozen=True)
class Event:
    """One moment of a scenario run that people are told about."""

    event: str
    scenario: str
    incident_id: str
    summary: str
    stack: str = ""
    run_id: str = ""
    seconds_to_safe_mode: float | None = None
    seconds_to_recover: float | None = None
    tried: t.Sequence[str] = field(default_factory=tuple)
    next_step: str = ""
    links: t.Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return "%s: %s, %s" % (TITLES[self.event], self.scenario, self.incident_id)

    def event_id(self) -> str:
        """The same for every delivery of this event: receivers drop repeats by it."""
        parts = (self.scenario, self.incident_id, self.stack, self.run_id, self.event)
        return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else "%.1f s" % value


def generic_payload(event: Event, sent_at: str) -> t.Dict[str, t.Any]:
    """The event as one JSON document, every field always present."""
    return {
        "schema": SCHEMA,
        "event_id": event.event_id(),
        "event": event.event,
        "title": event.title,
        "scenario": event.scenario,
        "incident_id": event.incident_id,
        "stack": event.stack,
        "run_id": event.run_id,
        "summary": event.summary,
        "seconds_to_safe_mode": event.seconds_to_safe_mode,
        "seconds_to_recover": event.seconds_to_recover,
        "tried": list(event.tried),
        "next_step": event.next_step,
        "links": dict(event.links),
        "sent_at": sent_at,
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(event: Event) -> t.List[t.Dict[str, str]]:
    pairs = [("Incident", event.incident_id), ("Scenario", event.scenario)]
    if event.stack:
        pairs.append(("Stack", event.stack))
    measured = (event.seconds_to_safe_mode, event.seconds_to_recover) != (None, None)
    # An opened incident has no times yet; a run that measured none (a safety net, a
    # failure before safe mode) shows none.
    if event.event in ("safe_mode", "recovered") or (
        event.event == "failed" and measured
    ):
        pairs.append(("Time to safe mode", _seconds(event.seconds_to_safe_mode)))
        if event.event != "safe_mode":
            pairs.append(("Time to recover", _seconds(event.seconds_to_recover)))
    return [
        {"type": "mrkdwn", "text": _clip("*%s*\n%s" % pair, FIELD_LIMIT)}
        for pair in pairs
    ]


def _details(event: Event) -> t.List[str]:
    lines = []
    if event.tried:
        lines.append("*Tried:*\n" + "\n".join("• " + step for step in event.tried))
    if event.next_step:
        lines.append("*Next step:* " + event.next_step)
    if event.links:
        links = ("%s: %s" % item for item in sorted(event.links.items()))
        lines.append("*Records:*\n" + "\n".join("• " + link for link in links))
    return lines


def slack_payload(event: Event) -> t.Dict[str, t.Any]:
    """A message for a Slack incoming webhook (or any receiver of its format)."""
    blocks: t.List[t.Dict[str, t.Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(event.title, HEADER_LIMIT)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(event.summary, SECTION_LIMIT)},
            "fields": _fields(event),
        },
    ]
    for text in _details(event):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT)},
            }
        )
    return {"text": "%s: %s" % (event.title, event.summary), "blocks": blocks}
