# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The re-open as the runbook's operator does it by hand: a command run in the shard's
pod (``kubectl exec``), through the API server's ``pods/exec``.

Everything goes through the Kubernetes API, so it works wherever the API is
reachable: the shard's health is its pod's Ready condition (the shard's readiness
probe, as the kubelet reports it), before the command and after it.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError, ResourceTimeout
from ..k8s.client import K8sClient, Obj
from ..k8s.podexec import ExecResult
from ..k8s.readiness import pod_ready
from ..k8s.resources import Ref
from ..waiter import Waiter
from .admin import no_pod_error, preferred, shard_pods
from .reopen import ReopenOutcome

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
# How much of a failed command's output goes into the one-line error.
ERROR_OUTPUT_CHARS = 300


@dataclass(frozen=True)
class ExecReopen:
    """The command that re-opens the shard's index, where to run it, and how long it
    may take."""

    command: t.Tuple[str, ...]
    container: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class ExecTarget:
    namespace: str
    pod: str
    container: str

    def to_dict(self) -> Obj:
        return {"method": "exec", "pod": self.pod, "container": self.container}


@dataclass(frozen=True)
class PodHealth:
    """The pod's phase and Ready condition, as the kubelet reports them."""

    healthy: bool
    phase: str
    ready: Obj

    @classmethod
    def of(cls, pod: Obj) -> PodHealth:
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        ready: Obj = next((c for c in conditions if c.get("type") == "Ready"), {})
        fields = ("status", "reason", "message", "lastTransitionTime")
        view = {key: ready[key] for key in fields if ready.get(key)}
        return cls(pod_ready(pod), str(status.get("phase") or ""), view)

    def describe(self) -> str:
        detail = self.ready.get("message") or self.ready.get("reason") or "no reason"
        return "pod not Ready (%s: %s)" % (self.phase or "no phase", detail)

    def to_dict(self) -> Obj:
        return {"healthy": self.healthy, "phase": self.phase, "ready": self.ready}


def _running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _container(pod: Obj, wanted: str | None) -> str:
    """The container asked for, else the pod's default container, else its first."""
    names = [c["name"] for c in pod["spec"]["containers"]]
    annotations = pod["metadata"].get("annotations") or {}
    chosen = wanted or annotations.get(DEFAULT_CONTAINER_ANNOTATION) or names[0]
    if chosen not in names:
        raise RecoveryError(
            "Failed to re-open: pod %s has no container %s"
            % (pod["metadata"]["name"], chosen),
            resource="pod %s" % pod["metadata"]["name"],
            reason="containers: %s" % ", ".join(names),
            next_step="Set container to one of %s." % ", ".join(names),
        )
    return chosen


def find_target(
    client: K8sClient,
    namespace: str,
    shard: str,
    shard_label: str,
    container: str | None,
) -> t.Tuple[ExecTarget, Obj]:
    """The shard's running pod to run the command in (a Ready one first, then the
    newest), with the pod as read."""
    pods = shard_pods(client, namespace, shard, shard_label)
    running = [pod for pod in pods if _running(pod)]
    if not running:
        reason = "no pod of the shard" if not pods else "no pod of the shard is Running"
        raise no_pod_error(shard, namespace, shard_label, "that is running", reason)
    pod = preferred(running)
    name = pod["metadata"]["name"]
    return ExecTarget(namespace, name, _container(pod, container)), pod


def plan(target: ExecTarget, request: ExecReopen) -> Obj:
    """What check mode reports: the command that would run, and where."""
    return dict(
        target.to_dict(), command=list(request.command), timeout=request.timeout
    )


def command_error(result: ExecResult) -> str:
    """Why the command did not re-open the shard, with the end of what it printed."""
    output = (result.stderr.strip() or result.stdout.strip())[-ERROR_OUTPUT_CHARS:]
    error = "the re-open command failed (%s)" % result.describe()
    return "%s: %s" % (error, output) if output else error


def _wait_ready(
    client: K8sClient, target: ExecTarget, waiter: Waiter
) -> t.Tuple[PodHealth, str]:
    ref = Ref("Pod", target.pod, target.namespace)
    try:
        outcome = waiter.until(
            "pod %s to become Ready" % target.pod, lambda: client.get(ref), pod_ready
        )
    except ResourceTimeout as timeout:
        health = PodHealth.of(timeout.last_seen or {})
        return health, "not healthy after the re-open: %s" % health.describe()
    return PodHealth.of(outcome.value), ""


def reopen_by_exec(
    client: K8sClient,
    target: ExecTarget,
    pod: Obj,
    request: ExecReopen,
    waiter: Waiter,
    *,
    force: bool,
    check_mode: bool,
) -> ReopenOutcome:
    """Run the re-open command unless the pod is already Ready (or ``force``); then
    wait for it to be Ready."""
    how = " by a command in pod %s" % target.pod
    before = PodHealth.of(pod)
    if before.healthy and not force:
        return ReopenOutcome(False, False, True, before, reply_key="exec")
    if check_mode:
        return ReopenOutcome(
            True, False, before.healthy, before, reply_key="exec", how=how
        )
    result = client.pod_exec(
        target.namespace,
        target.pod,
        request.command,
        container=target.container,
        timeout=request.timeout,
    )
    if not result.ok:
        after = PodHealth.of(client.get(Ref("Pod", target.pod, target.namespace)))
        error = command_error(result)
        return ReopenOutcome(True, True, False, before, after, result, error, "exec")
    after, error = _wait_ready(client, target, waiter)
    return ReopenOutcome(
        True, True, after.healthy, before, after, result, error or None, "exec", how
    )
