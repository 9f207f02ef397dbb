# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's components: how the inventory lists them, how they are read back, what
state each is in.

A component is a Deployment or StatefulSet with the components it depends on.
Reading is separate from judging: :func:`read_workloads` does the API calls,
:func:`component_status` and :func:`observed_dependencies` are pure.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..errors import ApiError, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import deployment_ready, statefulset_ready
from ..k8s.resources import Ref
from ..k8s.status import pod_summary
from .graph import Graph, cycle_error, find_cycle

# Where a component scaled to zero by the collection keeps the replica count it had, so
# that a later run (or another engineer) brings it back as it was, even after the run
# that scaled it down failed.
SCALED_DOWN_ANNOTATION = "ragops.io/scaled-down-from"
READY_PREDICATES: t.Mapping[str, t.Callable[[Obj], bool]] = {
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
}
DECLARED = "depends_on"
# Which pod tells most about a component that is not Ready: a crash or a stuck init
# container says more than a pod that merely fails its readiness probe (often only
# because it waits for another component).
STATE_RANK = ("crash_looping", "init_stuck", "waiting", "not_ready", "pending")


@dataclass(frozen=True)
class Component:
    """One entry of the inventory's component list."""

    name: str
    kind: str = "Deployment"
    depends_on: t.Tuple[str, ...] = ()
    replicas: t.Optional[int] = None
    wait_timeout: t.Optional[int] = None

    @classmethod
    def from_params(cls, item: t.Mapping[str, t.Any]) -> Component:
        return cls(
            name=item["name"],
            kind=item.get("kind") or "Deployment",
            depends_on=tuple(item.get("depends_on") or ()),
            replicas=item.get("replicas"),
            wait_timeout=item.get("wait_timeout"),
        )

    def ref(self, namespace: str) -> Ref:
        return Ref(self.kind, self.name, namespace)


def components_from_params(
    items: t.Sequence[t.Mapping[str, t.Any]],
) -> t.List[Component]:
    """The components, checked (unique names, known dependencies) before the cluster
    is asked anything."""
    components = [Component.from_params(item) for item in items]
    if not components:
        raise RecoveryError(
            "No components given",
            reason="empty component list",
            next_step="Pass the stack's components (inventory variable ragops_components).",
        )
    declared_graph(components)
    return components


def declared_graph(components: t.Sequence[Component]) -> Graph:
    return Graph.build([(c.name, c.depends_on) for c in components])


@dataclass
class Workload:
    """A component's Deployment or StatefulSet as read, with its pods (``obj`` is
    None when it is missing)."""

    component: Component
    obj: t.Optional[Obj]
    pods: t.List[Obj] = field(default_factory=list)

    @property
    def desired(self) -> int:
        return int(((self.obj or {}).get("spec") or {}).get("replicas", 1))

    @property
    def held_down(self) -> t.Optional[int]:
        """The replica count the collection recorded when it scaled this component to
        zero."""
        annotations = ((self.obj or {}).get("metadata") or {}).get("annotations") or {}
        try:
            return int(annotations[SCALED_DOWN_ANNOTATION])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def ready_replicas(self) -> int:
        return int(((self.obj or {}).get("status") or {}).get("readyReplicas") or 0)

    @property
    def ready(self) -> bool:
        return (
            bool(self.obj)
            and self.desired > 0
            and READY_PREDICATES[self.component.kind](self.obj or {})
        )

    def start_replicas(self) -> int:
        """How many replicas to start a component with that is at zero."""
        return self.held_down or self.component.replicas or 1


def selector_of(workload: Obj) -> str:
    """The workload's ``matchLabels`` as a label selector (``matchExpressions`` are
    not needed to find its pods)."""
    labels = ((workload.get("spec") or {}).get("selector") or {}).get(
        "matchLabels"
    ) or {}
    return ",".join("%s=%s" % item for item in sorted(labels.items()))


def read_workload(client: K8sClient, namespace: str, component: Component) -> Workload:
    obj = client.get_or_none(component.ref(namespace))
    if obj is None:
        return Workload(component, None)
    selector = selector_of(obj)
    pods = client.list("Pod", namespace, label_selector=selector) if selector else []
    return Workload(component, obj, pods)


def read_workloads(
    client: K8sClient, namespace: str, components: t.Sequence[Component]
) -> t.List[Workload]:
    return [read_workload(client, namespace, component) for component in components]


def require_existing(workloads: t.Sequence[Workload], namespace: str) -> None:
    """Refuse to act on a stack where a listed component does not exist; nothing has
    changed yet."""
    missing = [str(w.component.ref(namespace)) for w in workloads if w.obj is None]
    if missing:
        raise RecoveryError(
            "Failed to find the components' workloads: %s not found"
            % ", ".join(missing),
            resource=missing[0],
            reason="missing workload",
            next_step="Deploy the missing components, or fix their name and kind in "
            "the inventory.",
        )


def _env_value(template: Obj, variable: str) -> str:
    for container in (template.get("spec") or {}).get("containers") or []:
        for entry in container.get("env") or []:
            if entry.get("name") == variable and entry.get("value"):
                return str(entry["value"])
    return ""


def observed_dependencies(
    workloads: t.Sequence[Workload], variable: str
) -> t.Dict[str, t.List[str]]:
    """Components each workload waits for according to ``variable`` in its pod template.

    ``retriever.rag.svc:8080`` names the component ``retriever``; names of no component
    are left out.
    """
    names = {w.component.name for w in workloads}
    found: t.Dict[str, t.List[str]] = {}
    for workload in workloads:
        template = ((workload.obj or {}).get("spec") or {}).get("template") or {}
        services = [
            item.strip().split(":")[0].split(".")[0]
            for item in _env_value(template, variable).split(",")
        ]
        waits = [
            s
            for s in dict.fromkeys(services)
            if s in names and s != workload.component.name
        ]
        if waits:
            found[workload.component.name] = waits
    return found


@dataclass(frozen=True)
class StackGraph:
    """The declared graph plus what the pods say they wait for, and where each edge
    comes from."""

    graph: Graph
    sources: t.Mapping[t.Tuple[str, str], str]

    def explain(self, cycle: t.Sequence[str]) -> str:
        """``controller waits for retriever (env WAIT_FOR), retriever depends on
        controller (depends_on)``."""
        links = []
        for first, second in zip(cycle, cycle[1:]):
            source = self.sources.get((first, second), DECLARED)
            verb = "depends on" if source == DECLARED else "waits for"
            links.append("%s %s %s (%s)" % (first, verb, second, source))
        return ", ".join(links)

    def require_acyclic(self) -> None:
        cycle = find_cycle(self.graph)
        if cycle is not None:
            raise cycle_error(cycle, self.explain(cycle))


def stack_graph(
    components: t.Sequence[Component],
    workloads: t.Sequence[Workload],
    dependency_env: t.Optional[str],
) -> StackGraph:
    declared = declared_graph(components)
    sources: t.Dict[t.Tuple[str, str], str] = {}
    for component in components:
        for dependency in component.depends_on:
            sources[(component.name, dependency)] = DECLARED
    if not dependency_env:
        return StackGraph(declared, sources)
    observed = observed_dependencies(workloads, dependency_env)
    for name, waits in observed.items():
        for dependency in waits:
            sources.setdefault((name, dependency), "env %s" % dependency_env)
    return StackGraph(declared.with_edges(observed), sources)


@dataclass(frozen=True)
class ComponentStatus:
    """What state a component is in and why, in one line an engineer can act on."""

    name: str
    state: str
    reason: str

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def _pod_reason(pod: Obj) -> t.Tuple[str, str]:
    """The state of one pod that is not Ready, and why."""
    summary = pod_summary(pod)
    name = summary["name"]
    stuck = summary["stuck_init"]
    if stuck is not None and summary["phase"] == "Pending":
        return "init_stuck", "pod %s: init container %s %s%s" % (
            name,
            stuck["name"],
            stuck["reason"] or stuck["state"],
            _restarts(stuck["restarts"], stuck["exit_code"]),
        )
    waiting = summary["waiting_reason"]
    if waiting == "CrashLoopBackOff" or (
        summary["restarts"] and summary["last_exit_code"]
    ):
        return "crash_looping", "pod %s: %s%s" % (
            name,
            waiting or "restarting",
            _restarts(summary["restarts"], summary["last_exit_code"]),
        )
    if waiting:
        return "waiting", "pod %s: %s" % (name, waiting)
    if summary["phase"] == "Pending":
        return "pending", "pod %s: Pending" % name
    return "not_ready", "pod %s: %s but not Ready (readiness probe failing)" % (
        name,
        summary["phase"],
    )


def _restarts(count: int, exit_code: t.Optional[int]) -> str:
    if not count:
        return ""
    code = ", last exit code %s" % exit_code if exit_code is not None else ""
    return " (%d restart%s%s)" % (count, "" if count == 1 else "s", code)


def component_status(workload: Workload, namespace: str) -> ComponentStatus:
    name = workload.component.name
    if workload.obj is None:
        return ComponentStatus(
            name, "missing", "%s not found" % workload.component.ref(namespace)
        )
    if workload.desired == 0:
        held = workload.held_down
        return ComponentStatus(
            name,
            "scaled_down",
            "scaled to 0" + (" by the collection (had %d)" % held if held else ""),
        )
    if workload.ready:
        return ComponentStatus(
            name, "ready", "%d/%d Ready" % (workload.desired, workload.desired)
        )
    unready = [pod for pod in workload.pods if not pod_summary(pod)["ready"]]
    if not unready:
        return ComponentStatus(
            name,
            "pending",
            "%d of %d pods exist, none failing yet"
            % (len(workload.pods), workload.desired),
        )
    reasons = sorted(
        (_pod_reason(pod) for pod in unready),
        key=lambda item: STATE_RANK.index(item[0]),
    )
    state = reasons[0][0]
    return ComponentStatus(
        name, state, "; ".join(reason for _state, reason in reasons[:3])
    )


def pod_logs(client: K8sClient, namespace: str, pod: Obj, lines: int) -> Obj:
    """The last lines of the container that explains a pod's trouble: a stuck init
    container, else the first.

    A container that restarted also gets its previous instance's lines: a crash-looping
    container's reason is in the log of the run that crashed.
    """
    summary = pod_summary(pod)
    stuck = summary["stuck_init"]
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    container = stuck["name"] if stuck else containers[0].get("name")
    restarts = stuck["restarts"] if stuck else summary["restarts"]
    found: Obj = {"container": container, "lines": [], "previous_lines": []}
    try:
        found["lines"] = _tail(
            client.pod_log(
                namespace, summary["name"], container=container, tail_lines=lines
            )
        )
        if restarts:
            found["previous_lines"] = _tail(
                client.pod_log(
                    namespace,
                    summary["name"],
                    container=container,
                    previous=True,
                    tail_lines=lines,
                )
            )
    except ApiError as error:
        # A log that cannot be read is reported, not fatal: the rest of the picture
        # still matters.
        found["error"] = error.msg
    return found


def _tail(text: str) -> t.List[str]:
    return [line for line in text.splitlines() if line.strip()]
