# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which shards one run of Scenario A recovers, and the run's verdict over them."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.filter.shard_selection import (
    FilterModule as Selection,
)
from ansible_collections.ragops.recovery.plugins.filter.shard_verdicts import (
    FilterModule as Verdicts,
)
from ansible_collections.ragops.recovery.plugins.plugin_utils import shard_fleet

select = Selection().filters()["shard_selection"]
verdicts = Verdicts().filters()["shard_verdicts"]
Obj = t.Dict[str, t.Any]


def pod(name: str, ready: bool = True, waiting: t.Optional[str] = None) -> Obj:
    return {
        "name": name,
        "phase": "Running",
        "ready": ready,
        "restarts": 0 if ready else 4,
        "last_termination_reason": "Error" if not ready else None,
        "waiting_reason": waiting,
    }


def entry(number: int, state: str = "serving", **pod_state: t.Any) -> Obj:
    """One item of shard_info's ``shards``, as it reports a shard of the lab."""
    found: Obj = {
        "shard": "shard-%d" % number,
        "state": state,
        "serving": state == "serving",
        "pods": [pod("vectorstore-%d" % number, **pod_state)],
    }
    if state != "serving":
        found["reason"] = "index errors"
    return found


def stack(*broken: Obj) -> t.List[Obj]:
    healthy = {number: entry(number) for number in range(4)}
    healthy.update({int(item["shard"][-1]): item for item in broken})
    return [healthy[number] for number in range(4)]


FAILED_CANARY = {"passed": False, "summary": "FAILED: 1 of 1 queries failed"}


@pytest.mark.parametrize(
    ("shards", "shard", "expected"),
    [
        ("shard-1,shard-2", None, ["shard-1", "shard-2"]),
        ("[shard-2, 'shard-1']", None, ["shard-2", "shard-1"]),
        (["shard-2", "shard-2", "shard-0"], None, ["shard-2", "shard-0"]),
        ("", "shard-3", ["shard-3"]),
        (None, None, []),
        (" Unhealthy ", "shard-1", "unhealthy"),
        ("", "unhealthy", "unhealthy"),
        ([], "shard-1, shard-2", ["shard-1", "shard-2"]),
    ],
)
def test_the_request_reads_lists_text_one_shard_or_unhealthy(
    shards: t.Any, shard: t.Any, expected: t.Any
) -> None:
    assert shard_fleet.requested(shards, shard) == expected


def test_unhealthy_mixed_with_ids_or_an_open_bracket_is_refused() -> None:
    with pytest.raises(shard_fleet.ShardSelectionError, match="mixes unhealthy"):
        shard_fleet.requested("shard-1,unhealthy")
    with pytest.raises(shard_fleet.ShardSelectionError, match="unmatched bracket"):
        shard_fleet.requested("[shard-1,shard-2")


def test_findings_name_the_registry_the_pods_and_the_canary() -> None:
    found = shard_fleet.findings(
        [
            entry(0),
            entry(1, state="quarantined"),
            entry(2, ready=False, waiting="CrashLoopBackOff"),
            entry(3),
            {"shard": "shard-4", "state": "serving", "pods": []},
        ],
        {"shard-3": FAILED_CANARY, "shard-0": {"passed": True, "summary": "PASSED"}},
    )
    assert found == {
        "shard-0": [],
        "shard-1": ["registry: quarantined (index errors)"],
        "shard-2": ["pod vectorstore-2 not Ready (CrashLoopBackOff)"],
        "shard-3": ["canary: FAILED: 1 of 1 queries failed"],
        "shard-4": ["no pod"],
    }


def test_unhealthy_chooses_exactly_the_broken_shards_in_the_stacks_order() -> None:
    chosen = select(
        stack(entry(3, ready=False)),
        shards="unhealthy",
        canaries={"shard-1": FAILED_CANARY},
    )
    assert chosen["shards"] == ["shard-1", "shard-3"]
    assert sorted(chosen["unhealthy"]) == ["shard-1", "shard-3"]
    assert chosen["max_parallel"] == 4
    healthy = select(stack(), shards="unhealthy")
    assert healthy["shards"] == [] and healthy["unhealthy"] == {}


def test_unhealthy_beyond_the_bound_or_everywhere_needs_scope_stack() -> None:
    three = stack(
        entry(0, "quarantined"), entry(1, "quarantined"), entry(2, ready=False)
    )
    with pytest.raises(AnsibleFilterError, match="more than the bound of 2") as error:
        select(three, shards="unhealthy")
    assert "-e scope=stack" in str(error.value)
    assert select(three, shards="unhealthy", max_unhealthy=3)["shards"] == [
        "shard-0",
        "shard-1",
        "shard-2",
    ]
    everything = stack(*(entry(number, "quarantined") for number in range(4)))
    with pytest.raises(AnsibleFilterError, match="every shard of the stack looks"):
        select(everything, shards="unhealthy", max_unhealthy=9)
    assert select(everything, scope="stack")["shards"] == [
        "shard-%d" % n for n in range(4)
    ]


def test_a_list_of_every_shard_is_refused_without_scope_stack() -> None:
    with pytest.raises(AnsibleFilterError, match="names every shard") as error:
        select(stack(), shards="shard-3,shard-2,shard-1,shard-0")
    assert "pass -e scope=stack" in str(error.value)
    every = select(stack(), shards="shard-0,shard-1,shard-2,shard-3", scope="stack")
    assert every["shards"] == ["shard-0", "shard-1", "shard-2", "shard-3"]
    alone = [entry(0, "quarantined")]
    assert select(alone, shard="shard-0")["shards"] == ["shard-0"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"shards": "shard-1,shard-9"},
            "Unknown shard.s. shard-9: the stack's registry",
        ),
        ({}, "No shard named: pass -e shard=<id>"),
        ({"shards": "shard-1", "scope": "stack"}, "scope=stack recovers every shard"),
        ({"shard": "shard-1", "scope": "cluster"}, "scope: 'cluster' is not one of"),
        ({"shard": "shard-1", "max_parallel": "0"}, "max_parallel: '0' is not"),
        ({"shard": "shard-1", "max_parallel": "four"}, "max_parallel: 'four'"),
    ],
)
def test_a_request_that_cannot_be_met_says_what_to_give(
    request_: Obj, message: str
) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        select(stack(), **request_)


def test_max_parallel_is_read_as_a_number() -> None:
    assert select(stack(), shard="shard-1", max_parallel="2")["max_parallel"] == 2
    assert shard_fleet.parallel(1) == 1


def test_verdicts_fail_the_run_when_any_shard_failed_and_name_every_shard() -> None:
    records = [
        {"shard": "shard-1", "outcome": "recovered", "snapshot": "20261207t010203z"},
        {"shard": "shard-2", "outcome": "failed", "failure": "golden queries failed"},
        {"shard": "shard-3", "outcome": "already recovered"},
    ]
    judged = verdicts(records)
    assert judged["outcome"] == "failed"
    assert judged["failed"] == ["shard-2"] and judged["recovered"] == ["shard-1"]
    assert judged["already_recovered"] == ["shard-3"]
    assert judged["lines"] == [
        "shard-1: recovered (snapshot 20261207t010203z)",
        "shard-2: failed - golden queries failed",
        "shard-3: already recovered",
    ]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], "nothing to recover"),
        (["planned", "planned"], "planned"),
        (["already recovered"], "already recovered"),
        (["already recovered", "recovered"], "recovered"),
        (["recovered", "in progress"], "failed"),
    ],
)
def test_the_runs_outcome(outcomes: t.List[str], expected: str) -> None:
    records = [{"shard": "shard-%d" % n, "outcome": o} for n, o in enumerate(outcomes)]
    assert verdicts(records)["outcome"] == expected


def test_a_shard_without_a_record_failed_and_the_order_is_the_runs() -> None:
    records = [{"shard": "shard-2", "outcome": "recovered"}, {}]
    judged = verdicts(records, shards=["shard-1", "shard-2"])
    assert judged["outcome"] == "failed" and judged["failed"] == ["shard-1"]
    assert [r["shard"] for r in judged["records"]] == ["shard-1", "shard-2"]
    assert judged["lines"][0].startswith(
        "shard-1: failed - its recovery did not finish"
    )
