# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting a stack's components in dependency order (runbook Scenario C, steps 3 and
4).

``in_order`` starts (or restarts) each component that is not Ready, in order,
and waits for it before the next.  ``one_by_one`` first scales every component
to zero, recording each replica count on the workload, then brings them up one
at a time.  Either way a component that does not become Ready in time stops
the run there: what comes after it is not started, so nothing starts on a
broken dependency, and the error names the component and why it is not Ready.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..errors import RecoveryError, ResourceTimeout
from ..k8s.client import K8sClient, Obj
from ..waiter import Clock, Waiter
from .components import (
    SCALED_DOWN_ANNOTATION,
    Component,
    Workload,
    component_status,
    read_workload,
    read_workloads,
    require_existing,
    stack_graph,
)
from .graph import start_order

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MODES = ("in_order", "one_by_one")
# Actions that change the cluster; "wait" and "none" only read it.
CHANGES = ("scale_up", "restart", "scale_down_and_up")


@dataclass(frozen=True)
class StartRequest:
    """How to start: the mode, whether to restart what is stuck, and how to wait."""

    namespace: str
    mode: str = "in_order"
    restart_unready: bool = True
    wait: bool = True
    timeout: int = 300
    interval: float = 2.0
    check_mode: bool = False
    dependency_env: t.Optional[str] = None
    now: str = ""

    def __post_init__(self) -> None:
        if self.mode == "one_by_one" and not self.wait:
            raise RecoveryError(
                "mode=one_by_one waits for each component before the next; wait=false "
                "is not "
                "possible",
                reason="invalid options",
                next_step="Drop wait=false, or use mode=in_order.",
            )


def start_action(workload: Workload, restart_unready: bool) -> str:
    """What ``in_order`` does to one component: ``none``, ``scale_up``, ``restart``
    or ``wait``."""
    if workload.desired == 0:
        return "scale_up"
    if workload.ready:
        return "none"
    # A crash-looping pod may sit in a back-off of minutes even once its cause is fixed:
    # new pods start now. A component that still serves with some replicas is only
    # waited for (scoped recovery first).
    return "restart" if restart_unready and workload.ready_replicas == 0 else "wait"


def needs_recovery(workloads: t.Sequence[Workload]) -> bool:
    return any(not w.ready or w.held_down is not None for w in workloads)


def _scale(
    client: K8sClient,
    request: StartRequest,
    workload: Workload,
    replicas: int,
    remember: t.Optional[int],
) -> None:
    """Set the replica count; ``remember`` records the count to come back to
    (``None`` clears the record)."""
    annotations = {
        SCALED_DOWN_ANNOTATION: str(remember) if remember is not None else None
    }
    client.patch(
        workload.component.ref(request.namespace),
        {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}},
        dry_run=request.check_mode,
    )


def _restart(client: K8sClient, request: StartRequest, workload: Workload) -> None:
    """A rollout restart, as ``kubectl rollout restart`` does it."""
    patch = {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: request.now}}}}
    }
    client.patch(
        workload.component.ref(request.namespace), patch, dry_run=request.check_mode
    )


def _left_as_is(rest: t.Sequence[str], down: t.Sequence[str]) -> str:
    if not rest:
        return ""
    if list(rest) == list(down):
        return ": not started, left at zero: %s" % ", ".join(rest)
    return ": not started: %s%s" % (
        ", ".join(rest),
        " (at zero: %s)" % ", ".join(down) if down else "",
    )


def _item(workload: Workload, action: str, replicas: int) -> Obj:
    return {
        "name": workload.component.name,
        "kind": workload.component.kind,
        "action": action,
        "replicas_before": workload.desired,
        "replicas": replicas,
        "ready_before": workload.ready,
        "ready": workload.ready and action == "none",
        "duration": 0.0,
    }


@dataclass
class Run:
    """One start run: the request, the clock, the components in order, and what was
    done so far."""

    client: K8sClient
    request: StartRequest
    clock: Clock
    ordered: t.List[Workload]
    progress: t.List[Obj] = field(default_factory=list)

    def wait_ready(self, index: int) -> None:
        """Wait for component ``index``; on a timeout stop with everything after it
        left as it is."""
        workload, item = self.ordered[index], self.progress[-1]
        if not self.request.wait or self.request.check_mode:
            return
        timeout = workload.component.wait_timeout or self.request.timeout
        ref = workload.component.ref(self.request.namespace)
        waiter = Waiter.for_change(timeout, self.request.interval, self.clock)
        try:
            outcome = waiter.until(
                "%s to become Ready" % ref,
                lambda: read_workload(
                    self.client, self.request.namespace, workload.component
                ),
                lambda seen: seen.ready,
            )
        except ResourceTimeout as error:
            raise self.halted(index, error.last_seen, timeout) from None
        item.update(ready=True, duration=outcome.duration)

    def halted(self, index: int, seen: t.Any, timeout: float) -> ResourceTimeout:
        workload = self.ordered[index]
        status = component_status(
            seen if isinstance(seen, Workload) else workload, self.request.namespace
        )
        rest = [w.component.name for w in self.ordered[index + 1 :]]
        down = [w.component.name for w in self.ordered[index + 1 :] if self._down(w)]
        msg = (
            "Timed out after %ss waiting for %s to become Ready (%s); stopped there%s"
            % (
                timeout,
                workload.component.ref(self.request.namespace),
                status.reason,
                _left_as_is(rest, down),
            )
        )
        return ResourceTimeout(
            msg,
            last_seen={
                "name": status.name,
                "state": status.state,
                "reason": status.reason,
            },
            resource=str(workload.component.ref(self.request.namespace)),
            reason=status.state,
            next_step="Find out why %s is not Ready (ragops.recovery.stack_info shows "
            "its pods, init containers and "
            "logs), fix it, then re-run: components left at zero carry their replica "
            "count in the %s "
            "annotation and come back in order."
            % (status.name, SCALED_DOWN_ANNOTATION),
            partial={
                "changed": any(item["action"] in CHANGES for item in self.progress),
                "components": self.progress,
                "failed_component": status.name,
                "not_started": rest,
                "left_down": down,
            },
        )

    def _down(self, workload: Workload) -> bool:
        started = {item["name"] for item in self.progress}
        return workload.desired == 0 or (
            self.request.mode == "one_by_one" and workload.component.name not in started
        )

    def in_order(self) -> None:
        for index, workload in enumerate(self.ordered):
            action = start_action(workload, self.request.restart_unready)
            target = (
                workload.start_replicas() if action == "scale_up" else workload.desired
            )
            if action == "scale_up":
                _scale(self.client, self.request, workload, target, None)
            elif action == "restart":
                _restart(self.client, self.request, workload)
            self.progress.append(_item(workload, action, target))
            if action != "none":
                self.wait_ready(index)

    def one_by_one(self) -> t.List[str]:
        """Scale everything down (dependents first), wait until no pod is left, then
        start one at a time."""
        remembered: t.Dict[str, int] = {}
        stopped: t.List[str] = []
        for workload in reversed(self.ordered):
            remembered[workload.component.name] = (
                workload.desired or workload.start_replicas()
            )
            if workload.desired > 0:
                _scale(self.client, self.request, workload, 0, workload.desired)
                stopped.append(workload.component.name)
        self.wait_stopped()
        for index, workload in enumerate(self.ordered):
            target = remembered[workload.component.name]
            _scale(self.client, self.request, workload, target, None)
            action = (
                "scale_down_and_up"
                if workload.component.name in stopped
                else "scale_up"
            )
            self.progress.append(_item(workload, action, target))
            self.wait_ready(index)
        return stopped

    def wait_stopped(self) -> None:
        if self.request.check_mode:
            return
        waiter = Waiter.for_change(
            self.request.timeout, self.request.interval, self.clock
        )

        def running() -> t.Dict[str, int]:
            current = read_workloads(
                self.client, self.request.namespace, [w.component for w in self.ordered]
            )
            return {w.component.name: len(w.pods) for w in current if w.pods}

        try:
            waiter.until("the components to stop", running, lambda found: not found)
        except ResourceTimeout as error:
            raise ResourceTimeout(
                "Timed out after %ss waiting for the components to stop; still "
                "running: %s"
                % (
                    self.request.timeout,
                    ", ".join(
                        "%s (%d pods)" % item
                        for item in (error.last_seen or {}).items()
                    ),
                ),
                last_seen=error.last_seen,
                resource="components",
                reason="pods still running",
                next_step="Every component is at zero replicas with its count recorded "
                "in the %s annotation; find "
                "what keeps the pods alive (finalizers, a stuck node), then re-run."
                % SCALED_DOWN_ANNOTATION,
                partial={"changed": True, "components": self.progress},
            ) from None


def start_components(
    client: K8sClient,
    components: t.Sequence[Component],
    request: StartRequest,
    clock: Clock,
) -> Obj:
    """Start the stack; the result lists each component with what was done and how
    long it took."""
    started_at = clock.now()
    workloads = read_workloads(client, request.namespace, components)
    require_existing(workloads, request.namespace)
    stack = stack_graph(components, workloads, request.dependency_env)
    stack.require_acyclic()
    order = start_order(stack.graph)
    by_name = {w.component.name: w for w in workloads}
    run = Run(client, request, clock, [by_name[name] for name in order])
    stopped: t.List[str] = []
    if request.mode == "one_by_one":
        if needs_recovery(run.ordered):
            stopped = run.one_by_one()
        else:
            run.progress = [_item(w, "none", w.desired) for w in run.ordered]
    else:
        run.in_order()
    return {
        "changed": any(item["action"] in CHANGES for item in run.progress),
        "mode": request.mode,
        "order": order,
        "components": run.progress,
        "started": [item["name"] for item in run.progress if item["action"] in CHANGES],
        "scaled_down": stopped,
        "duration": round(clock.now() - started_at, 3),
    }


def start_diff(result: Obj) -> Obj:
    """Replica counts and readiness before and after, for the components the run
    touched."""
    touched = [item for item in result["components"] if item["action"] in CHANGES]
    return {
        "before": {
            item["name"]: {
                "replicas": item["replicas_before"],
                "ready": item["ready_before"],
            }
            for item in touched
        },
        "after": {
            item["name"]: {"replicas": item["replicas"], "ready": True}
            for item in touched
        },
    }
