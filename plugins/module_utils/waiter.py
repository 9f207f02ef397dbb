# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one waiter: a monotonic clock, an injectable sleep and a predicate to wait for.

A wait never ends silently: it returns the object that satisfied the
predicate, or raises :class:`ResourceTimeout` carrying the last state seen.
The readiness predicates per Kubernetes kind are in ``k8s/readiness.py``.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from .errors import ResourceTimeout

T = t.TypeVar("T")


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

    def until(
        self,
        what: str,
        fetch: t.Callable[[], T],
        ready: t.Callable[[T], bool],
        next_step: str | None = None,
    ) -> WaitOutcome[T]:
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
                    last_seen=value,
                    resource=what,
                    next_step=next_step,
                )
            self.clock.sleep(max(0.0, min(self.interval, deadline - now)))
