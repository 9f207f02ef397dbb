# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
import typing as t
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import Ref
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.stack.lock import (
    LockHeld,
    LockState,
    Request,
    acquire,
    holder_identity,
    lock_state,
    plan_acquire,
    plan_release,
    release,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
REF = Ref("Lease", "ragops-recovery-lock", "rag")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/rag/leases"
ME = Request(holder="me@host", incident_id="INC-1", duration=600)


def held(
    holder: str = "other@host",
    incident: str = "INC-0",
    age: int = 60,
    duration: int = 600,
) -> LockState:
    stamp = NOW - timedelta(seconds=age)
    return LockState(holder, incident, stamp, stamp, duration, 0)


def client(api: FakeTransport) -> K8sClient:
    return K8sClient(api, Retrier(sleep=lambda s: None))


def test_plan_acquire_covers_free_ours_held_and_stale() -> None:
    assert plan_acquire(None, ME, NOW, "lease") == "create"
    assert (
        plan_acquire(LockState(None, "", None, None, 600, 1), ME, NOW, "lease")
        == "take"
    )
    assert plan_acquire(held("me@host", "INC-1"), ME, NOW, "lease") == "none"
    with pytest.raises(
        LockHeld, match="locked by other@host for incident INC-0"
    ) as error:
        plan_acquire(held(), ME, NOW, "lease")
    assert error.value.reason == "lock held"
    with pytest.raises(LockHeld, match="the lock is stale") as stale:
        plan_acquire(held(age=700), ME, NOW, "lease")
    assert "takeover_stale=true" in (stale.value.next_step or "")
    takeover = Request("me@host", "INC-1", 600, takeover_stale=True)
    assert plan_acquire(held(age=700), takeover, NOW, "lease") == "takeover"
    with pytest.raises(LockHeld):
        plan_acquire(held(age=10), takeover, NOW, "lease")


def test_holding_the_lock_for_another_incident_is_refused() -> None:
    with pytest.raises(LockHeld, match="already hold the lock for incident INC-9"):
        plan_acquire(held("me@host", "INC-9"), ME, NOW, "lease")


def test_plan_release() -> None:
    assert plan_release(None, ME, "lease") == "none"
    assert plan_release(held("me@host", "INC-1"), ME, "lease") == "release"
    with pytest.raises(
        LockHeld, match="Refusing to release a lock held by someone else"
    ):
        plan_release(held(), ME, "lease")
    assert (
        plan_release(held(), Request("me@host", "INC-1", 600, force=True), "lease")
        == "release"
    )


def test_acquire_then_reacquire_then_release_then_second_holder() -> None:
    api = FakeTransport()
    first = acquire(client(api), REF, ME, NOW, check_mode=False)
    assert first.action == "create" and first.after and first.after.holder == "me@host"
    assert acquire(client(api), REF, ME, NOW, check_mode=False).action == "none"
    other = Request("other@host", "INC-2", 600)
    with pytest.raises(LockHeld, match="locked by me@host for incident INC-1"):
        acquire(client(api), REF, other, NOW, check_mode=False)
    assert release(client(api), REF, ME, check_mode=False).action == "release"
    assert release(client(api), REF, ME, check_mode=False).action == "none"
    taken = acquire(client(api), REF, other, NOW, check_mode=False)
    assert taken.action == "take" and taken.after and taken.after.transitions == 1
    assert (
        lock_state(api.objects[LEASES + "/ragops-recovery-lock"]).incident_id == "INC-2"
    )


def test_check_mode_writes_nothing() -> None:
    api = FakeTransport()
    planned = acquire(client(api), REF, ME, NOW, check_mode=True)
    assert planned.action == "create"
    assert api.objects == {}


class RacingAPI(FakeTransport):
    """Lets another run take the lock between our read and our write."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: dict[str, t.Any] | None = None

    def request(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        if method == "PUT" and self.rival is not None:
            self.add(LEASES, self.rival)
            self.rival = None
        return super().request(method, path, **kwargs)


def test_a_lost_race_rereads_and_reports_the_winner() -> None:
    api = RacingAPI()
    winner = Request("winner@host", "INC-5", 600)
    acquire(client(api), REF, winner, NOW, check_mode=False)
    release(client(api), REF, winner, check_mode=False)
    rival = copy.deepcopy(api.objects[LEASES + "/ragops-recovery-lock"])
    rival["spec"]["holderIdentity"] = "winner@host"
    api.rival = rival
    with pytest.raises(LockHeld, match="locked by winner@host"):
        acquire(client(api), REF, ME, NOW, check_mode=False)
    assert (
        lock_state(api.objects[LEASES + "/ragops-recovery-lock"]).holder
        == "winner@host"
    )


def test_two_runs_of_one_holder_are_told_apart_by_their_run_id() -> None:
    first = holder_identity("me@host", "rag-prod-a")
    second = Request(
        holder=holder_identity("me@host", "rag-prod-b"), incident_id="INC-1"
    )
    assert first == "me@host/rag-prod-a"
    assert holder_identity("me@host", "") == "me@host"
    with pytest.raises(LockHeld, match="another run of yours") as error:
        plan_acquire(held(first, "INC-1"), second, NOW, "lease")
    assert error.value.reason == "lock held by another run"
    assert "me@host/rag-prod-a" in (error.value.next_step or "")
    again = Request(holder=first, incident_id="INC-1")
    assert plan_acquire(held(first, "INC-1"), again, NOW, "lease") == "none"


def test_another_run_of_one_holder_is_taken_over_only_when_stale_and_asked() -> None:
    stale = held(holder_identity("me@host", "a"), "INC-1", age=700)
    late = Request(holder_identity("me@host", "b"), "INC-1", takeover_stale=True)
    assert plan_acquire(stale, late, NOW, "lease") == "takeover"
    with pytest.raises(LockHeld, match="the lock is stale"):
        plan_acquire(stale, Request(late.holder, "INC-1"), NOW, "lease")
