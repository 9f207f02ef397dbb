# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one waiter: pure readiness predicates, a monotonic clock and an injectable sleep.

A wait never ends silently: it returns the object that satisfied the
predicate, or raises :class:`ResourceTimeout` carrying the last state seen.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.ragops.recovery.plugins.module_utils.errors import ResourceTimeout

T = t.TypeVar("T")
Obj = t.Dict[str, t.Any]


@dataclass
class Clock:
    """Time as the waiter sees it; tests pass a fake one and never really sleep."""

    now: t.Callable[[], float] = time.monotonic
    sleep: t.Callable[[float], None] = time.sleep


@dataclass
class WaitOutcome(t.Generic[T]):
    """What a successful wait returns: the final state and how long it took."""

    value: T
    duration: float
    polls: int


@dataclass
class Waiter:
    """Polls ``fetch`` until ``ready`` holds or ``timeout`` seconds have passed."""

    timeout: float
    interval: float = 2.0
    clock: Clock = field(default_factory=Clock)

    def until(self, what: str, fetch: t.Callable[[], T], ready: t.Callable[[T], bool],
              next_step: str | None = None) -> WaitOutcome[T]:
        start = self.clock.now()
        deadline = start + self.timeout
        polls = 0
        while True:
            value = fetch()
            polls += 1
            now = self.clock.now()
            if ready(value):
                return WaitOutcome(value, round(now - start, 3), polls)
            if now >= deadline:
                raise ResourceTimeout(
                    "Timed out after %ss waiting for %s" % (self.timeout, what),
                    last_seen=value, resource=what, next_step=next_step,
                )
            self.clock.sleep(max(0.0, min(self.interval, deadline - now)))


def _conditions(obj: Obj) -> t.Dict[str, str]:
    status = obj.get("status") or {}
    return {c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []}


def pod_ready(pod: Obj) -> bool:
    """Running and every readiness gate passed (condition Ready=True)."""
    phase = (pod.get("status") or {}).get("phase")
    return bool(phase == "Running" and _conditions(pod).get("Ready") == "True")


def _rolled_out(obj: Obj, wanted: int, ready_key: str) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    return bool(
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) == wanted
        and status.get(ready_key, 0) == wanted
        and status.get("replicas", 0) == wanted
    )


def deployment_ready(deployment: Obj) -> bool:
    """The newest generation is observed and all wanted replicas are updated and available."""
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    return _rolled_out(deployment, wanted, "availableReplicas")


def statefulset_ready(statefulset: Obj) -> bool:
    """The newest generation is observed and all wanted replicas are updated and ready."""
    wanted = (statefulset.get("spec") or {}).get("replicas", 1)
    return _rolled_out(statefulset, wanted, "readyReplicas")


def job_finished(job: Obj) -> bool:
    """The Job has completed or failed for good (condition Complete or Failed is True)."""
    conditions = _conditions(job)
    return conditions.get("Complete") == "True" or conditions.get("Failed") == "True"


def job_succeeded(job: Obj) -> bool:
    return _conditions(job).get("Complete") == "True"
