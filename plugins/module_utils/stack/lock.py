# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident lock: a Kubernetes Lease that lets one recovery at a time work on a
stack.

Planning is pure (state in, decision out); :func:`acquire` and :func:`release`
carry the decision out with writes guarded by the Lease's resourceVersion, so
two runs racing for a free lock cannot both win: the loser's write gets 409,
it re-reads and finds the lock held.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import Conflict, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import INCIDENT_ANNOTATION, MANAGED_BY, Ref

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LockHeld(RecoveryError):
    """Another holder has the lock (or the caller holds it for another incident)."""


RUN_SEPARATOR = "/"


def holder_identity(holder: str, run_id: str) -> str:
    """The Lease's holder: who (``holder``) and, when given, which of their runs
    (``run_id``, for example the inventory host), so that two runs of one person
    against one stack do not both count as the holder."""
    return "%s%s%s" % (holder, RUN_SEPARATOR, run_id) if run_id else holder


def _owner(holder: str) -> str:
    return holder.split(RUN_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class LockState:
    """What a Lease says about the lock."""

    holder: str | None
    incident_id: str
    acquired: datetime | None
    renewed: datetime | None
    duration: int
    transitions: int

    def expires(self) -> datetime | None:
        stamp = self.renewed or self.acquired
        return stamp + timedelta(seconds=self.duration) if stamp else None

    def expired(self, now: datetime) -> bool:
        expires = self.expires()
        return expires is not None and expires <= now

    def to_result(self, name: str) -> dict[str, t.Any]:
        expires = self.expires()
        return {
            "name": name,
            "holder": self.holder,
            "incident_id": self.incident_id,
            "acquired_at": format_time(self.acquired),
            "renewed_at": format_time(self.renewed),
            "expires_at": format_time(expires),
            "duration": self.duration,
            "transitions": self.transitions,
        }


def format_time(moment: datetime | None) -> str | None:
    return moment.strftime(MICRO_TIME) if moment else None


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for pattern in (MICRO_TIME, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def lock_state(lease: Obj) -> LockState:
    spec = lease.get("spec") or {}
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    return LockState(
        holder=spec.get("holderIdentity") or None,
        incident_id=annotations.get(INCIDENT_ANNOTATION, "")
        if spec.get("holderIdentity")
        else "",
        acquired=parse_time(spec.get("acquireTime")),
        renewed=parse_time(spec.get("renewTime")),
        duration=int(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


@dataclass(frozen=True)
class Request:
    """Who wants the lock, for which incident, for how long."""

    holder: str
    incident_id: str
    duration: int = 3600
    takeover_stale: bool = False
    force: bool = False


def _held_message(state: LockState, lease: str) -> str:
    return "The stack is locked by %s for incident %s since %s (until %s; Lease %s)" % (
        state.holder,
        state.incident_id or "(none)",
        format_time(state.acquired),
        format_time(state.expires()),
        lease,
    )


def plan_acquire(
    state: LockState | None, request: Request, now: datetime, lease: str
) -> str:
    """``create``, ``take``, ``takeover`` or ``none``; raises :class:`LockHeld` when
    the lock is not ours to take."""
    if state is None:
        return "create"
    if state.holder is None:
        return "take"
    if state.holder == request.holder:
        if state.incident_id != request.incident_id:
            raise LockHeld(
                "You already hold the lock for incident %s, not %s"
                % (state.incident_id, request.incident_id),
                resource=lease,
                reason="held for another incident",
                next_step="Finish or release the recovery of incident %s first "
                "(state=absent)." % state.incident_id,
            )
        return "none"
    if state.expired(now) and request.takeover_stale:
        return "takeover"
    stale = state.expired(now)
    if not stale and _owner(state.holder) == _owner(request.holder):
        raise _held_by_another_run(state, request, lease)
    raise LockHeld(
        _held_message(state, lease) + (": the lock is stale" if stale else ""),
        resource=lease,
        reason="stale lock" if stale else "lock held",
        next_step=(
            "Check that %s is no longer working on the stack, then re-run with "
            "takeover_stale=true." % state.holder
        )
        if stale
        else "Wait for %s to finish, or coordinate with them." % state.holder,
    )


def _held_by_another_run(state: LockState, request: Request, lease: str) -> LockHeld:
    return LockHeld(
        _held_message(state, lease)
        + ": another run of yours (%s) works on this stack, not this one (%s)"
        % (state.holder, request.holder),
        resource=lease,
        reason="lock held by another run",
        next_step="Two inventory hosts (or two runs) point at this stack: let %s "
        "finish, then re-run; keep one inventory host per stack." % state.holder,
    )


def plan_release(state: LockState | None, request: Request, lease: str) -> str:
    """``release`` or ``none``; raises :class:`LockHeld` when someone else holds the
    lock (unless forced)."""
    if state is None or state.holder is None:
        return "none"
    if state.holder != request.holder and not request.force:
        raise LockHeld(
            "Refusing to release a lock held by someone else: "
            + _held_message(state, lease),
            resource=lease,
            reason="lock held by another holder",
            next_step="Release it as %s, or pass force=true if that holder is gone."
            % state.holder,
        )
    return "release"


def _lease(ref: Ref, request: Request, now: datetime, transitions: int) -> Obj:
    stamp = format_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {INCIDENT_ANNOTATION: request.incident_id},
        },
        "spec": {
            "holderIdentity": request.holder,
            "leaseDurationSeconds": request.duration,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def _holding(current: Obj, desired: Obj) -> Obj:
    """``current`` with the holder fields of ``desired``; resourceVersion kept so the
    write is guarded."""
    current["spec"] = dict(current.get("spec") or {}, **desired["spec"])
    annotations = current["metadata"].setdefault("annotations", {})
    annotations.update(desired["metadata"]["annotations"])
    return current


@dataclass(frozen=True)
class Outcome:
    """What a lock request did (``create``, ``take``, ``takeover``, ``release`` or
    ``none``)."""

    action: str
    before: LockState | None
    after: LockState | None

    def to_result(self, name: str, diff: bool) -> Obj:
        """The module result: the lock after the request, and who held it before a
        takeover."""
        after = (
            self.after.to_result(name) if self.after else {"name": name, "holder": None}
        )
        result: Obj = {
            "changed": self.action != "none",
            "action": self.action,
            "lock": after,
        }
        if self.action == "takeover" and self.before:
            result["previous_holder"] = self.before.holder
        if diff:
            before = self.before
            result["diff"] = {
                "before": {"holder": before.holder, "incident_id": before.incident_id}
                if before
                else {},
                "after": {
                    "holder": after.get("holder"),
                    "incident_id": after.get("incident_id", ""),
                },
            }
        return result


def acquire(
    client: K8sClient, ref: Ref, request: Request, now: datetime, check_mode: bool
) -> Outcome:
    """Take the lock, or find it already ours; at most one of two racing runs
    succeeds."""
    for _attempt in range(client.conflict_attempts):
        current = client.get_or_none(ref)
        before = lock_state(current) if current else None
        action = plan_acquire(before, request, now, str(ref))
        if action == "none":
            return Outcome(action, before, before)
        transitions = before.transitions + 1 if before else 0
        desired = _lease(ref, request, now, transitions)
        try:
            if current is None:
                stored = client.create(desired, dry_run=check_mode)
            else:
                stored = client.replace(
                    _holding(current, desired), dry_run=check_mode, ref=ref
                )
        except Conflict:
            continue
        return Outcome(action, before, lock_state(stored))
    raise LockHeld(
        "Failed to take the lock %s: it kept changing under us" % ref,
        resource=str(ref),
        reason="write conflicts",
        next_step="Another run is taking the lock; re-run to see who holds it.",
    )


def release(client: K8sClient, ref: Ref, request: Request, check_mode: bool) -> Outcome:
    """Give the lock up by clearing its holder; the Lease stays as a record of the
    last holder's times."""

    def clear(lease: Obj) -> Obj | None:
        if plan_release(lock_state(lease), request, str(ref)) == "none":
            return None
        lease["spec"].pop("holderIdentity", None)
        return lease

    current = client.get_or_none(ref)
    before = lock_state(current) if current else None
    if plan_release(before, request, str(ref)) == "none":
        return Outcome("none", before, before)
    result = client.update(ref, clear, dry_run=check_mode)
    return Outcome(
        "release" if result.changed else "none",
        lock_state(result.before),
        lock_state(result.after),
    )
