# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shard registry: one ConfigMap key per shard, each value a JSON entry.

The pure part (parsing, transitions, planning a change) is separate from the
part that reads and writes the ConfigMap, so that the runbook's rules can be
tested without a cluster.  See docs/contract.md for the format.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field

from ..errors import InvalidTransition, RegistryCorrupt

STATES = ("serving", "quarantined", "restoring", "validating")

# The runbook's order: quarantine, then re-open or restore, then validate, and
# only a passed validation puts a shard back into service.
TRANSITIONS: t.Mapping[str, t.Tuple[str, ...]] = {
    "serving": ("quarantined",),
    "quarantined": ("restoring", "validating"),
    "restoring": ("validating", "quarantined"),
    "validating": ("serving", "quarantined", "restoring"),
}

# Fields a registry entry is made of; anything else found in an entry is kept as it is.
ENTRY_FIELDS = (
    "state",
    "reason",
    "incident_id",
    "since",
    "changed_by",
    "previous_state",
    "route_to",
    "forced_transition",
)


@dataclass(frozen=True)
class Entry:
    """One shard's registry entry."""

    state: str
    reason: str = ""
    incident_id: str = ""
    since: str = ""
    changed_by: str = ""
    previous_state: str | None = None
    route_to: str | None = None
    forced_transition: str | None = None
    extra: t.Mapping[str, t.Any] = field(default_factory=dict)

    def to_dict(self) -> t.Dict[str, t.Any]:
        data = dict(self.extra)
        for name in ENTRY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def parse_entry(shard: str, text: str, registry: str = "the shard registry") -> Entry:
    """The entry stored under ``shard``; :class:`RegistryCorrupt` when it is not a
    valid entry."""
    next_step = (
        "Inspect it with: kubectl get configmap %s -o jsonpath='{.data.%s}'; repair "
        "the value by hand "
        "(the collection never overwrites an entry it cannot read), then re-run."
        % (registry, shard)
    )
    try:
        data = json.loads(text)
    except ValueError as error:
        raise RegistryCorrupt(
            "Shard %s's entry in %s is not valid JSON (%s); refusing to overwrite it"
            % (shard, registry, error),
            resource=registry,
            reason="invalid JSON",
            next_step=next_step,
        ) from None
    if not isinstance(data, dict) or data.get("state") not in STATES:
        raise RegistryCorrupt(
            "Shard %s's entry in %s has no valid state (expected one of %s); refusing "
            "to overwrite it" % (shard, registry, ", ".join(STATES)),
            resource=registry,
            reason="invalid entry",
            next_step=next_step,
        )
    known: t.Dict[str, t.Any] = {
        name: data[name] for name in ENTRY_FIELDS if name in data
    }
    extra = {key: value for key, value in data.items() if key not in ENTRY_FIELDS}
    return Entry(extra=extra, **known)


@dataclass(frozen=True)
class MarkRequest:
    """What the caller wants a shard's entry to say."""

    state: str
    reason: str = ""
    incident_id: str = ""
    route_to: str | None = None
    changed_by: str = ""
    force: bool = False


@dataclass(frozen=True)
class MarkPlan:
    """The outcome of planning a mark: the entry after it, and whether anything
    changes."""

    before: Entry | None
    after: Entry
    changed: bool
    forced: bool = False

    @property
    def transition(self) -> str:
        before = self.before.state if self.before else "unregistered"
        return "%s -> %s" % (before, self.after.state)


def check_transition(shard: str, current: str, wanted: str, force: bool) -> bool:
    """Whether the change is forced; raises :class:`InvalidTransition` if not allowed
    without force."""
    if current == wanted or wanted in TRANSITIONS.get(current, ()):
        return False
    if force:
        return True
    allowed = ", ".join(TRANSITIONS.get(current, ())) or "none"
    hint = ""
    if wanted == "serving":
        hint = (
            " (a shard returns to service only after validation: mark it validating "
            "first)"
        )
    raise InvalidTransition(
        "Refusing to move shard %s from %s to %s%s; allowed from %s: %s"
        % (shard, current, wanted, hint, current, allowed),
        resource=shard,
        reason="invalid transition %s -> %s" % (current, wanted),
        next_step="Follow the runbook order, or pass force=true to override (recorded "
        "in the entry).",
    )


def _route_after(current: Entry | None, request: MarkRequest) -> str | None:
    if request.route_to is not None:
        return request.route_to or None
    if request.state == "serving" or current is None:
        return None
    return current.route_to


def plan_mark(
    shard: str, current: Entry | None, request: MarkRequest, now: str
) -> MarkPlan:
    """Plan a mark: unchanged when the entry already says what is asked."""
    if request.state not in STATES:
        raise InvalidTransition(
            "Unknown shard state %r; expected one of %s"
            % (request.state, ", ".join(STATES))
        )
    forced = current is not None and check_transition(
        shard, current.state, request.state, request.force
    )
    route_to = _route_after(current, request)
    if current is not None and (
        current.state,
        current.reason,
        current.incident_id,
        current.route_to,
    ) == (request.state, request.reason, request.incident_id, route_to):
        return MarkPlan(current, current, False)
    state_changes = current is None or current.state != request.state
    after = Entry(
        state=request.state,
        reason=request.reason,
        incident_id=request.incident_id,
        since=now if state_changes or current is None else current.since,
        changed_by=request.changed_by,
        previous_state=(current.state if state_changes else current.previous_state)
        if current
        else None,
        route_to=route_to,
        forced_transition="%s -> %s" % (current.state, request.state)
        if forced and current
        else None,
        extra=current.extra if current else {},
    )
    return MarkPlan(current, after, True, forced)


def entries(
    data: t.Mapping[str, str], registry: str
) -> t.Dict[str, t.Union[Entry, RegistryCorrupt]]:
    """Every entry of a registry's data; unreadable ones as the error that describes
    them."""
    parsed: t.Dict[str, t.Union[Entry, RegistryCorrupt]] = {}
    for shard, text in sorted(data.items()):
        try:
            parsed[shard] = parse_entry(shard, text, registry)
        except RegistryCorrupt as error:
            parsed[shard] = error
    return parsed
