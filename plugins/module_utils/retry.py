# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Explicit retries: jittered, capped, and only where a repeat is harmless.

The official Kubernetes client retries neither 409 nor 5xx.  Calls that are
safe to repeat (reads, replaces guarded by a resourceVersion, merge patches
that set fields) are retried on throttling, server errors and lost
connections; calls that are not (create, JSON patch) only on 429, where the
server states it did not process the request.
"""

from __future__ import annotations

import random
import time
import typing as t
from dataclasses import dataclass, field

from .errors import ApiError

T = t.TypeVar("T")

THROTTLED = 429
# 0 stands for "no answer": connection refused, reset or timed out.
RETRYABLE_STATUSES = frozenset({0, THROTTLED, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a failed call."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    statuses: t.FrozenSet[int] = field(default=RETRYABLE_STATUSES)

    def should_retry(self, status: int, attempt: int, idempotent: bool) -> bool:
        """Whether failed attempt number ``attempt`` (1-based) is followed by
        another."""
        if attempt >= self.attempts:
            return False
        if status == THROTTLED:
            return True
        return idempotent and status in self.statuses

    def delay(
        self, attempt: int, retry_after: float | None, rand: t.Callable[[], float]
    ) -> float:
        """Full-jitter exponential backoff, never shorter than the server's
        Retry-After."""
        ceiling: float = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        jittered: float = ceiling * rand()
        if retry_after is not None:
            return min(max(jittered, retry_after), max(self.max_delay, retry_after))
        return jittered


@dataclass
class Retrier:
    """Runs calls under a :class:`RetryPolicy` with an injectable sleep and
    randomness."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: t.Callable[[float], None] = time.sleep
    rand: t.Callable[[], float] = random.random
    attempts_made: int = 0

    def call(self, func: t.Callable[[], T], *, idempotent: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            self.attempts_made += 1
            try:
                return func()
            except ApiError as error:
                if not self.policy.should_retry(error.status, attempt, idempotent):
                    error.attempts = attempt
                    raise
                self.sleep(self.policy.delay(attempt, error.retry_after, self.rand))
