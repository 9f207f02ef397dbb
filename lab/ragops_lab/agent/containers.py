"""One container of a pod through its life: waiting, running, terminated, restarted with back-off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops_lab.clock import rfc3339

from .probes import ReadinessTracker
from .process import ContainerProcess, exit_reason

# The kubelet's crash back-off (10 s doubling to 5 min) scaled down so the lab recovers in seconds.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# A container that ran this long before failing starts its back-off afresh.
BACKOFF_RESET_SECONDS = 30.0

Obj = dict[str, Any]


def backoff_delay(failures_in_a_row: int) -> float:
    return float(min(BACKOFF_BASE_SECONDS * 2 ** max(failures_in_a_row - 1, 0), BACKOFF_CAP_SECONDS))


def should_restart(policy: str, exit_code: int, init: bool) -> bool:
    """The pod's restartPolicy applied to a finished container (init containers only rerun on failure)."""
    if init or policy == "OnFailure":
        return exit_code != 0 and policy != "Never"
    return policy == "Always"


@dataclass
class ContainerRun:
    """State of one container; `start` is supplied by the pod, which knows env, mounts and logs."""

    name: str
    image: str
    init: bool
    process: ContainerProcess | None = None
    readiness: ReadinessTracker | None = None
    restart_count: int = 0
    failures_in_a_row: int = 0
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    terminated: Obj | None = None
    last_terminated: Obj | None = None
    not_before: float = 0.0
    started_clock: float = 0.0

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated["exitCode"] == 0

    @property
    def ready(self) -> bool:
        """Running and passing its readiness probe; an init container once it has succeeded."""
        if self.init:
            return self.succeeded
        if self.process is None:
            return False
        return self.readiness.ready if self.readiness is not None else True

    @property
    def ever_started(self) -> bool:
        return self.process is not None or self.terminated is not None or self.last_terminated is not None

    def wait(self, reason: str, message: str, not_before: float) -> None:
        self.waiting, self.not_before = (reason, message), not_before

    def started(self, process: ContainerProcess, now: float, readiness: ReadinessTracker | None) -> None:
        if self.terminated is not None or self.last_terminated is not None:
            self.restart_count += 1
        self.process, self.readiness, self.started_clock = process, readiness, now
        self.waiting = self.terminated = None

    def due(self, now: float) -> bool:
        """Whether the container should be (re)started now."""
        return self.process is None and self.terminated is None and now >= self.not_before

    def observe_exit(self, policy: str, now: float) -> bool:
        """Check the process; when it has exited, record it and plan a restart. True if it exited."""
        if self.process is None or self.process.poll() is None:
            return False
        process, self.process, self.readiness = self.process, None, None
        exit_code, reason, signal = exit_reason(process.returncode or 0)
        record: Obj = {"exitCode": exit_code, "reason": reason, "startedAt": process.started_at,
                       "finishedAt": rfc3339(), "containerID": f"lab://{process.pid}"}
        if signal:
            record["signal"] = signal
        if not should_restart(policy, exit_code, self.init):
            self.terminated = record
            return True
        self.last_terminated = record
        ran_long = now - self.started_clock >= BACKOFF_RESET_SECONDS
        self.failures_in_a_row = 1 if ran_long else self.failures_in_a_row + 1
        delay = backoff_delay(self.failures_in_a_row)
        self.not_before = now + delay
        self.waiting = ("CrashLoopBackOff", f"back-off {delay:g}s restarting failed container={self.name}")
        return True

    def state(self) -> Obj:
        if self.process is not None:
            return {"running": {"startedAt": self.process.started_at}}
        if self.terminated is not None:
            return {"terminated": self.terminated}
        reason, message = self.waiting or ("ContainerCreating", "")
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def status(self) -> Obj:
        status: Obj = {
            "name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
            "restartCount": self.restart_count, "started": self.process is not None, "state": self.state(),
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.process is not None:
            status["containerID"] = f"lab://{self.process.pid}"
        elif self.terminated is not None:
            status["containerID"] = self.terminated["containerID"]
        return status
