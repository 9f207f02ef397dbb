# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Graceful re-open of a shard's index: check health, ask the shard to re-load, check
health again.

Here the HTTP way (the shard's admin endpoint) and the outcome both ways share;
``reopen_exec`` asks by a command run in the shard's pod."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError, ResourceTimeout
from ..waiter import Waiter
from .admin import Answer, HttpCall, ShardEndpoint, join

Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class ShardApi:
    """The shard's admin contract: where health, stats and re-open live, and how long
    a call may take."""

    health_path: str = "/readyz"
    stats_path: str = "/stats"
    reopen_path: str = "/admin/reopen"
    timeout: float = 10.0


@dataclass(frozen=True)
class Health:
    """The shard's answers to a health check and, when it has one, its stats."""

    healthy: bool
    health: Answer
    stats: Answer | None

    def to_dict(self) -> Obj:
        view: Obj = {"healthy": self.healthy, "health": self.health.to_dict()}
        if self.stats is not None:
            view["stats"] = self.stats.body if self.stats.ok else self.stats.to_dict()
        return view


def probe(call: HttpCall, endpoint: ShardEndpoint, api: ShardApi) -> Health:
    health = call("GET", join(endpoint.url, api.health_path), None, api.timeout)
    stats = (
        call("GET", join(endpoint.url, api.stats_path), None, api.timeout)
        if api.stats_path
        else None
    )
    return Health(health.ok, health, stats)


class HealthView(t.Protocol):
    """A shard's health as one way of checking it sees it."""

    @property
    def healthy(self) -> bool: ...

    def to_dict(self) -> Obj: ...


class Reply(t.Protocol):
    """What the re-open itself answered: the shard's HTTP answer, or a command's end."""

    def to_dict(self) -> Obj: ...


@dataclass(frozen=True)
class ReopenOutcome:
    """What a re-open did: whether it was sent, the reply, and the health before and
    after.

    ``reply_key`` names the reply in the result (``answer`` for the HTTP call,
    ``exec`` for a command run in the pod); ``how`` completes the summary's "index
    re-opened".
    """

    changed: bool
    reopened: bool
    healthy: bool
    before: HealthView
    after: HealthView | None = None
    reply: Reply | None = None
    error: str | None = None
    reply_key: str = "answer"
    how: str = ""

    def to_dict(self) -> Obj:
        view: Obj = {
            "reopened": self.reopened,
            "healthy": self.healthy,
            "before": self.before.to_dict(),
        }
        if self.after is not None:
            view["after"] = self.after.to_dict()
        if self.reply is not None:
            view[self.reply_key] = self.reply.to_dict()
        if self.error:
            view["error"] = self.error
        return view

    def summary(self) -> str:
        """One line saying what was tried and how it ended, for a recovery's
        narrative."""
        if not self.changed:
            return "re-open: not needed, the shard was healthy"
        if not self.reopened:
            return "re-open: would re-open the index%s (check mode)" % self.how
        if self.healthy:
            return "re-open: index re-opened%s, the shard is healthy" % self.how
        return "re-open: %s" % (self.error or "shard still unhealthy")

    def to_result(self, shard: str, target: Obj, planned: Obj, check_mode: bool) -> Obj:
        """The module result: ``target`` says where the shard was reached; in check
        mode ``planned`` is what would be done."""
        result: Obj = {
            "changed": self.changed,
            "shard": dict(self.to_dict(), name=shard, **target),
            "summary": self.summary(),
        }
        if check_mode and self.changed:
            result["planned"] = planned
        return result


def http_target(endpoint: ShardEndpoint, api: ShardApi) -> t.Tuple[Obj, Obj]:
    """Where the HTTP re-open reaches the shard, and the call check mode reports."""
    target = {"method": "http", "pod": endpoint.pod, "url": endpoint.url}
    return target, {"method": "POST", "url": join(endpoint.url, api.reopen_path)}


def _wait_healthy(
    call: HttpCall, endpoint: ShardEndpoint, api: ShardApi, waiter: Waiter
) -> t.Tuple[Health, str]:
    try:
        outcome = waiter.until(
            "shard at %s to become healthy" % endpoint.url,
            lambda: probe(call, endpoint, api),
            lambda health: health.healthy,
        )
    except ResourceTimeout as timeout:
        last = timeout.last_seen
        return last, "not healthy after the re-open: %s" % _describe(last.health)
    return outcome.value, ""


def _describe(answer: Answer) -> str:
    body = answer.body
    detail = body.get("reason") or body.get("error") if isinstance(body, dict) else body
    return "HTTP %d: %s" % (answer.status, detail) if answer.status else str(detail)


def reopen_shard(
    call: HttpCall,
    endpoint: ShardEndpoint,
    api: ShardApi,
    waiter: Waiter,
    *,
    force: bool,
    check_mode: bool,
) -> ReopenOutcome:
    """Re-open unless the shard is already healthy (or ``force``); then wait for
    health."""
    before = probe(call, endpoint, api)
    if before.healthy and not force:
        return ReopenOutcome(False, False, True, before)
    if check_mode:
        return ReopenOutcome(True, False, before.healthy, before)
    answer = call("POST", join(endpoint.url, api.reopen_path), {}, api.timeout)
    if not answer.ok:
        error = "the re-open was refused: %s" % _describe(answer)
        after = probe(call, endpoint, api)
        return ReopenOutcome(True, True, False, before, after, answer, error)
    after, error = _wait_healthy(call, endpoint, api, waiter)
    return ReopenOutcome(
        True, True, after.healthy, before, after, answer, error or None
    )


def unhealthy_error(shard: str, resource: str, outcome: ReopenOutcome) -> RecoveryError:
    return RecoveryError(
        "Failed to re-open shard %s: %s" % (shard, outcome.error or "still unhealthy"),
        resource=resource,
        reason=outcome.error,
        next_step="Keep the shard quarantined; read its log for the index error and "
        "restore the newest "
        "verified snapshot (ragops.recovery.snapshot_restore, or the "
        "vectorstore_shard_recovery "
        "playbook).",
        partial={"changed": outcome.changed, "reopen": outcome.to_dict()},
    )
