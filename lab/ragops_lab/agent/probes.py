"""Readiness probes: httpGet against the pod's address, run on a thread pool so the loop never waits."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from ragops_lab.runtime.httpclient import Unreachable, http_json

# The lab probes at least once a second (a cluster's default is 10 s) and every 0.2 s until the
# first success, so that start-up and fault symptoms show within a second or two.
MAX_PERIOD_SECONDS = 1.0
UNTIL_READY_SECONDS = 0.2


@dataclass(frozen=True)
class HttpProbe:
    url: str
    period: float
    timeout: float
    initial_delay: float
    failure_threshold: int
    success_threshold: int

    @classmethod
    def from_container(cls, container: Mapping[str, Any], pod_ip: str) -> HttpProbe | None:
        spec = container.get("readinessProbe") or {}
        http_get = spec.get("httpGet")
        if not http_get:
            return None
        port = http_get.get("port")
        if not isinstance(port, int) and not str(port).isdigit():
            named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
            port = named.get(port, port)
        host = http_get.get("host") or pod_ip
        path = http_get.get("path") or "/"
        return cls(
            url=f"{str(http_get.get('scheme', 'HTTP')).lower()}://{host}:{port}{path}",
            period=min(float(spec.get("periodSeconds", 10)), MAX_PERIOD_SECONDS),
            timeout=float(spec.get("timeoutSeconds", 1)),
            initial_delay=float(spec.get("initialDelaySeconds", 0)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
            success_threshold=int(spec.get("successThreshold", 1)),
        )


def check(url: str, timeout: float) -> str | None:
    """None when the endpoint answers 2xx/3xx, else what went wrong (for the Unhealthy event)."""
    try:
        result = http_json("GET", url, timeout=timeout)
    except (TimeoutError, Unreachable) as exc:
        return f"Readiness probe failed: {exc}"
    if 200 <= result.status < 400:
        return None
    return f"Readiness probe failed: HTTP probe failed with statuscode: {result.status}"


class ReadinessTracker:
    """One container's readiness: results of its probe folded with the thresholds."""

    def __init__(self, probe: HttpProbe, executor: Executor, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self._executor = executor
        self._clock = clock
        self._due = clock() + probe.initial_delay
        self._pending: Future[str | None] | None = None
        self._successes = 0
        self._failures = 0
        self.ready = False
        self.last_failure = ""

    def poll(self) -> bool:
        """Fold in a finished probe and start the next one when due; True when readiness changed."""
        changed = False
        if self._pending is not None and self._pending.done():
            changed = self._record(self._pending.result())
            self._pending = None
        now = self._clock()
        if self._pending is None and now >= self._due:
            self._pending = self._executor.submit(check, self.probe.url, self.probe.timeout)
            self._due = now + (self.probe.period if self.ready else min(self.probe.period, UNTIL_READY_SECONDS))
        return changed

    def _record(self, failure: str | None) -> bool:
        before = self.ready
        if failure is None:
            self._successes, self._failures = self._successes + 1, 0
            if self._successes >= self.probe.success_threshold:
                self.ready = True
        else:
            self._successes, self._failures = 0, self._failures + 1
            self.last_failure = failure
            if self._failures >= self.probe.failure_threshold:
                self.ready = False
        return before != self.ready
