# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One read of a whole RAG stack and the diagnosis of runbook Scenario C (bootstrap
deadlock).

:func:`describe_stack` reads; :func:`diagnose` is pure and decides, in this
order, what keeps the stack from coming up: a dependency cycle, a missing
workload, a failed, running or pending migration, components scaled down, or
components that are not Ready (naming the ones at the root, whose own
dependencies are fine, and the ones blocked behind them).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..k8s.client import K8sClient, Obj
from ..k8s.status import pod_summary
from .components import (
    Component,
    ComponentStatus,
    StackGraph,
    Workload,
    component_status,
    pod_logs,
    read_workloads,
    stack_graph,
)
from .graph import find_cycle, format_cycle, groups, start_order, transitive_dependents
from .migration import MigrationSource, read_migration
from .migration_job import job_outcome

START_STEP = (
    "Start the components in dependency order (ragops.recovery.component_start); if "
    "one never becomes "
    "Ready, scale everything down and bring the components up one by one "
    "(mode=one_by_one)."
)

MIGRATION_CAUSES: t.Mapping[str, str] = {
    "migration_running": "running",
    "migration_failed": "failed",
    "pending_migration": "pending",
}


@dataclass(frozen=True)
class Finding:
    """The diagnosis: one cause, what it blocks, and what to do."""

    cause: str
    summary: str
    next_step: str
    blocked: t.Tuple[str, ...] = ()
    root_causes: t.Tuple[str, ...] = ()


def _cycle_finding(stack: StackGraph) -> t.Optional[Finding]:
    cycle = find_cycle(stack.graph)
    if cycle is None:
        return None
    members = list(dict.fromkeys(cycle))
    blocked = members + transitive_dependents(stack.graph, members)
    summary = "Dependency cycle %s: %s. None of them can become Ready." % (
        format_cycle(cycle),
        stack.explain(cycle),
    )
    return Finding(
        "dependency_cycle",
        summary,
        "Break the cycle: remove one of these dependencies, then re-run. Starting in "
        "any order "
        "cannot help while a component waits for itself.",
        tuple(blocked),
        tuple(members),
    )


def _unready(statuses: t.Sequence[ComponentStatus]) -> t.List[ComponentStatus]:
    return [status for status in statuses if not status.ready]


def _listing(statuses: t.Sequence[ComponentStatus]) -> str:
    return "; ".join("%s: %s" % (status.name, status.reason) for status in statuses)


def _migration_finding(
    migration: t.Optional[Obj], statuses: t.Sequence[ComponentStatus]
) -> t.Optional[Finding]:
    if not migration or not migration["pending"]:
        return None
    unready = _unready(statuses)
    blocked = tuple(status.name for status in unready)
    versions = "the stack is at version %s, the migration brings it to %s" % (
        migration["current_version"] or "(none recorded)",
        migration["target_version"],
    )
    waiting = " Not Ready: %s." % _listing(unready) if unready else ""
    if migration["active"]:
        return Finding(
            "migration_running",
            "Migration Job %s is running (%s).%s"
            % (", ".join(migration["active"]), versions, waiting),
            "Wait for the migration Job to finish, then start the components in "
            "dependency order.",
            blocked,
        )
    if migration["failed"]:
        return Finding(
            "migration_failed",
            "Migration Job %s failed (%s).%s"
            % (migration["failed"][-1], versions, waiting),
            "Read the failed Job's logs and fix the migration; "
            "ragops.recovery.migration_run then starts a new "
            "attempt (the failed Job is kept as evidence).",
            blocked,
        )
    return Finding(
        "pending_migration",
        "A migration is pending: %s.%s" % (versions, waiting),
        "Run the migration once (ragops.recovery.migration_run), then "
        + START_STEP[0].lower()
        + START_STEP[1:],
        blocked,
    )


def _roots(
    unready: t.Sequence[ComponentStatus], stack: StackGraph
) -> t.List[ComponentStatus]:
    """Unready components none of whose dependencies is unready: where the trouble
    starts."""
    names = {status.name for status in unready}
    return [
        s for s in unready if not names.intersection(stack.graph.depends_on[s.name])
    ]


def _missing_finding(
    statuses: t.Sequence[ComponentStatus], stack: StackGraph
) -> t.Optional[Finding]:
    """A missing workload outranks a migration: nothing can start it."""
    missing = [s for s in statuses if s.state == "missing"]
    if not missing:
        return None
    names = [s.name for s in missing]
    return Finding(
        "missing_components",
        "Components missing: %s." % _listing(missing),
        "Deploy the missing components, or fix their name and kind in the inventory.",
        tuple(transitive_dependents(stack.graph, names)),
        tuple(names),
    )


def _readiness_finding(
    statuses: t.Sequence[ComponentStatus], stack: StackGraph
) -> Finding:
    unready = _unready(statuses)
    if not unready:
        return Finding("healthy", "Every component is Ready.", "Nothing to do.")
    roots = _roots(unready, stack)
    blocked = tuple(s.name for s in unready if s not in roots)
    cause = (
        "scaled_down" if all(s.state == "scaled_down" for s in unready) else "not_ready"
    )
    summary = "Not Ready: %s." % _listing(roots)
    if blocked:
        summary += " Blocked behind them: %s." % ", ".join(blocked)
    return Finding(cause, summary, START_STEP, blocked, tuple(s.name for s in roots))


def _blocking_migration(cause: str, migration: t.Optional[Obj]) -> t.Optional[Obj]:
    status = MIGRATION_CAUSES.get(cause)
    if status is None or not migration:
        return None
    jobs = {"running": migration["active"][:1], "failed": migration["failed"][-1:]}.get(
        status
    ) or [None]
    return {
        "job": jobs[0],
        "status": status,
        "current_version": migration["current_version"],
        "target_version": migration["target_version"],
    }


def diagnose(
    statuses: t.Sequence[ComponentStatus], stack: StackGraph, migration: t.Optional[Obj]
) -> Obj:
    """The one cause that keeps the stack down, what it blocks, and the next step."""
    finding = (
        _cycle_finding(stack)
        or _missing_finding(statuses, stack)
        or _migration_finding(migration, statuses)
        or _readiness_finding(statuses, stack)
    )
    cycle = find_cycle(stack.graph)
    return {
        "healthy": finding.cause == "healthy",
        "cause": finding.cause,
        "summary": finding.summary,
        "next_step": finding.next_step,
        "cycle": cycle,
        "cycle_text": format_cycle(cycle) if cycle else None,
        "blocking_migration": _blocking_migration(finding.cause, migration),
        "root_causes": list(finding.root_causes),
        "blocked": list(finding.blocked),
        "not_ready": [status.name for status in _unready(statuses)],
    }


def pod_report(client: K8sClient, namespace: str, pod: Obj, log_lines: int) -> Obj:
    """A pod's summary; pods that are not Ready also get their last log lines."""
    summary = pod_summary(pod)
    summary.pop("labels", None)
    if not summary["ready"] and log_lines > 0:
        summary["logs"] = pod_logs(client, namespace, pod, log_lines)
    return summary


def component_report(
    client: K8sClient,
    namespace: str,
    workload: Workload,
    status: ComponentStatus,
    stack: StackGraph,
    log_lines: int,
) -> Obj:
    component = workload.component
    observed = [
        dep
        for dep in stack.graph.depends_on[component.name]
        if dep not in component.depends_on
    ]
    return {
        "name": component.name,
        "kind": component.kind,
        "exists": workload.obj is not None,
        "state": status.state,
        "reason": status.reason,
        "ready": status.ready,
        "replicas": workload.desired if workload.obj else 0,
        "ready_replicas": workload.ready_replicas,
        "held_down": workload.held_down
        if workload.obj and workload.desired == 0
        else None,
        "depends_on": list(component.depends_on),
        "observed_depends_on": observed,
        "pods": [
            pod_report(client, namespace, pod, log_lines) for pod in workload.pods
        ],
    }


def graph_report(stack: StackGraph) -> Obj:
    cycle = find_cycle(stack.graph)
    return {
        "order": None if cycle else start_order(stack.graph),
        "cycle": cycle,
        "cycle_text": format_cycle(cycle) if cycle else None,
        "cycle_edges": stack.explain(cycle) if cycle else None,
        "groups": groups(stack.graph),
    }


def migration_report(client: K8sClient, source: MigrationSource, log_lines: int) -> Obj:
    """The migration, with the pod, exit code and last log lines of the Jobs that
    matter: running, failed, newest."""
    state = read_migration(client, source)
    report = state.report()
    for index, (job, summary) in enumerate(zip(state.jobs, report["jobs"])):
        if log_lines > 0 and (
            summary["status"] != "succeeded" or index == len(state.jobs) - 1
        ):
            summary.update(job_outcome(client, source.namespace, job, log_lines))
    return report


@dataclass(frozen=True)
class StackQuery:
    """What to read: the components, the dependency env, the migration (if any), and
    how many log lines."""

    namespace: str
    components: t.Sequence[Component]
    dependency_env: t.Optional[str] = None
    migration: t.Optional[MigrationSource] = None
    log_lines: int = 20


def describe_stack(client: K8sClient, query: StackQuery) -> Obj:
    """Every component with its pods, the dependency graph, the migration, and the
    diagnosis."""
    workloads = read_workloads(client, query.namespace, query.components)
    stack = stack_graph(query.components, workloads, query.dependency_env)
    statuses = [component_status(workload, query.namespace) for workload in workloads]
    migration = (
        migration_report(client, query.migration, query.log_lines)
        if query.migration
        else None
    )
    return {
        "components": [
            component_report(
                client, query.namespace, workload, status, stack, query.log_lines
            )
            for workload, status in zip(workloads, statuses)
        ],
        "graph": graph_report(stack),
        "migration": migration or {"configured": False, "pending": False},
        "diagnosis": diagnose(statuses, stack, migration),
    }
