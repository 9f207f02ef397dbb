# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    InvalidTransition,
    RegistryCorrupt,
)
from ansible_collections.ragops.recovery.plugins.module_utils.shards.rules import (
    STATES,
    TRANSITIONS,
    Entry,
    MarkRequest,
    entries,
    parse_entry,
    plan_mark,
)

NOW = "2026-11-27T10:00:00Z"
SERVING = Entry(
    state="serving", reason="", since="2026-11-01T00:00:00Z", changed_by="bootstrap"
)


def test_parse_keeps_unknown_fields_and_round_trips() -> None:
    text = json.dumps({"state": "serving", "reason": "ok", "owner": "search-team"})
    entry = parse_entry("shard-0", text)
    assert entry.state == "serving"
    assert entry.extra == {"owner": "search-team"}
    expected = {
        "state": "serving",
        "reason": "ok",
        "owner": "search-team",
        "incident_id": "",
        "since": "",
        "changed_by": "",
    }
    assert json.loads(entry.to_json()) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "invalid JSON"),
        ('["serving"]', "invalid entry"),
        ('{"state": "sleeping"}', "invalid entry"),
    ],
)
def test_unreadable_entries_are_refused_with_a_repair_hint(
    text: str, reason: str
) -> None:
    with pytest.raises(RegistryCorrupt) as error:
        parse_entry("shard-1", text, "rag-shard-registry")
    assert error.value.reason == reason
    assert "refusing to overwrite" in error.value.msg
    assert "kubectl get configmap rag-shard-registry" in (error.value.next_step or "")


def test_quarantine_records_previous_state_reason_and_route() -> None:
    request = MarkRequest(
        "quarantined",
        reason="checksum mismatch",
        incident_id="INC-1",
        route_to="shard-0-r1",
        changed_by="oncall@bastion",
    )
    plan = plan_mark("shard-0", SERVING, request, NOW)
    assert plan.changed and not plan.forced
    assert plan.transition == "serving -> quarantined"
    assert plan.after.to_dict() == {
        "state": "quarantined",
        "reason": "checksum mismatch",
        "incident_id": "INC-1",
        "since": NOW,
        "changed_by": "oncall@bastion",
        "previous_state": "serving",
        "route_to": "shard-0-r1",
    }


def test_same_request_twice_is_unchanged() -> None:
    request = MarkRequest(
        "quarantined", reason="io errors", incident_id="INC-2", changed_by="a"
    )
    first = plan_mark("shard-0", SERVING, request, NOW)
    second = plan_mark("shard-0", first.after, request, "2026-11-27T11:00:00Z")
    assert not second.changed
    assert second.after == first.after


def test_new_reason_in_same_state_keeps_since_and_previous_state() -> None:
    quarantined = plan_mark(
        "shard-0", SERVING, MarkRequest("quarantined", reason="a"), NOW
    ).after
    plan = plan_mark(
        "shard-0",
        quarantined,
        MarkRequest("quarantined", reason="b"),
        "2026-11-27T12:00:00Z",
    )
    assert plan.changed
    assert plan.after.since == NOW
    assert plan.after.previous_state == "serving"


def test_route_is_kept_until_serving_and_cleared_by_empty_string() -> None:
    routed = plan_mark(
        "shard-0", SERVING, MarkRequest("quarantined", route_to="r1"), NOW
    ).after
    restoring = plan_mark("shard-0", routed, MarkRequest("restoring"), NOW).after
    assert restoring.route_to == "r1"
    cleared = plan_mark(
        "shard-0", restoring, MarkRequest("restoring", route_to=""), NOW
    ).after
    assert cleared.route_to is None
    validating = plan_mark("shard-0", restoring, MarkRequest("validating"), NOW).after
    assert (
        plan_mark("shard-0", validating, MarkRequest("serving"), NOW).after.route_to
        is None
    )


@pytest.mark.parametrize("current", STATES)
@pytest.mark.parametrize("wanted", STATES)
def test_transition_table_is_enforced(current: str, wanted: str) -> None:
    entry = Entry(state=current)
    allowed = current == wanted or wanted in TRANSITIONS[current]
    if allowed:
        assert not plan_mark("s", entry, MarkRequest(wanted), NOW).forced
    else:
        with pytest.raises(InvalidTransition) as error:
            plan_mark("s", entry, MarkRequest(wanted), NOW)
        assert "force=true" in (error.value.next_step or "")


def test_serving_only_after_validation_unless_forced() -> None:
    quarantined = Entry(state="quarantined")
    with pytest.raises(InvalidTransition, match="only after validation"):
        plan_mark("shard-3", quarantined, MarkRequest("serving"), NOW)
    plan = plan_mark("shard-3", quarantined, MarkRequest("serving", force=True), NOW)
    assert plan.forced
    assert plan.after.forced_transition == "quarantined -> serving"


def test_a_new_entry_may_start_in_any_state() -> None:
    plan = plan_mark("shard-9", None, MarkRequest("quarantined", reason="new"), NOW)
    assert plan.transition == "unregistered -> quarantined"
    assert plan.after.previous_state is None


def test_unknown_state_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="Unknown shard state"):
        plan_mark("s", SERVING, MarkRequest("broken"), NOW)


def test_entries_reports_unreadable_values_without_failing() -> None:
    parsed = entries({"shard-0": '{"state": "serving"}', "shard-1": "oops"}, "reg")
    assert isinstance(parsed["shard-0"], Entry)
    assert isinstance(parsed["shard-1"], RegistryCorrupt)
