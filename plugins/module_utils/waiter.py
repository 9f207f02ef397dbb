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


# The first pause of a wait on a change the run just made (Waiter.for_change).
FIRST_PAUSE = 0.1


@dataclass
class Waiter:
    """Polls ``fetch`` until ``ready`` holds or ``timeout`` seconds have passed.

    Pauses ``interval`` seconds between two looks, or, with ``first``, ``first``
    seconds at first, doubled after each look up to ``interval``.
    """

    timeout: float
    interval: float = 2.0
    clock: Clock = field(default_factory=Clock)
    first: float | None = None

    @classmethod
    def for_change(
        cls, timeout: float, interval: float, clock: Clock | None = None
    ) -> Waiter:
        """A waiter on something the run just changed (a rollout, a Job, a pod): it
        looks again after 0.1 s, then less and less often, up to ``interval``.  A
        change that takes a second is seen within a tenth of it, not up to a whole
        ``interval`` late; a long one costs a few more reads at its start."""
        return cls(
            timeout, interval, clock or Clock(), first=min(FIRST_PAUSE, interval)
        )

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
        pause = self.interval if self.first is None else self.first
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
            self.clock.sleep(max(0.0, min(pause, deadline - now)))
            pause = min(pause * 2, self.interval)
