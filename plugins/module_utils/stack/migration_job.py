# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one migration Job: create it (or adopt ours), wait for it, read its exit
status and logs, verify.

The decisions are made in :mod:`migration`; this module only carries them out.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import ApiError, MigrationFailed, ResourceTimeout
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished
from ..k8s.resources import Ref
from ..k8s.status import container_summary
from ..waiter import Waiter
from .migration import (
    JobOverrides,
    MigrationSource,
    MigrationState,
    RunPlan,
    applied_version,
    build_job,
    job_report,
    plan_run,
    read_migration,
    version_reached,
)


@dataclass(frozen=True)
class RunRequest:
    """How to run the Job: overrides, incident, whether to wait, how many log lines
    to return."""

    overrides: JobOverrides
    incident_id: str = ""
    wait: bool = True
    log_lines: int = 50
    check_mode: bool = False
    diff: bool = False


def job_pods(client: K8sClient, namespace: str, job: Obj) -> t.List[Obj]:
    """The Job's pods, oldest first: owned by its uid, or labelled with its name as
    Kubernetes does."""
    meta = job["metadata"]
    labels = ((job.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
        "labels"
    ) or {}
    selector = (
        ",".join("%s=%s" % item for item in sorted(labels.items()))
        or "job-name=%s" % meta["name"]
    )
    pods = client.list("Pod", namespace, label_selector=selector)

    def owned(pod: Obj) -> bool:
        pod_meta = pod.get("metadata") or {}
        owners = [ref.get("uid") for ref in pod_meta.get("ownerReferences") or []]
        return (
            meta.get("uid") in owners
            if owners and meta.get("uid")
            else (pod_meta.get("labels") or {}).get("job-name") == meta["name"]
        )

    return sorted(
        filter(owned, pods),
        key=lambda pod: pod["metadata"].get("creationTimestamp") or "",
    )


def job_outcome(client: K8sClient, namespace: str, job: Obj, lines: int) -> Obj:
    """Pod, exit code and last log lines of the Job's latest pod (the one that
    decided the outcome)."""
    pods = job_pods(client, namespace, job)
    if not pods:
        return {"pod": None, "exit_code": None, "logs": []}
    pod = pods[-1]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    exit_code = container_summary(statuses[0])["exit_code"] if statuses else None
    try:
        text = client.pod_log(namespace, pod["metadata"]["name"], tail_lines=lines)
        logs = [line for line in text.splitlines() if line.strip()]
    except ApiError as error:
        logs = ["(log unavailable: %s)" % error.msg]
    return {
        "pod": pod["metadata"]["name"],
        "exit_code": exit_code,
        "logs": logs,
        "attempts": len(pods),
    }


def run_migration(
    client: K8sClient,
    state: MigrationState,
    plan: RunPlan,
    request: RunRequest,
    waiter: Waiter,
) -> Obj:
    """Carry out ``plan``; returns the ``migration`` result (raises when the
    migration did not succeed)."""
    report: Obj = {
        "job": plan.name,
        "action": plan.action,
        "previous_version": state.current,
        "version": state.target,
        "earlier_attempts": list(plan.earlier_attempts),
    }
    if plan.action == "skip":
        return dict(report, status="applied", current_version=state.current)
    ref = Ref("Job", plan.name, state.source.namespace)
    if plan.action == "create":
        client.create(
            build_job(state, plan.name, request.overrides, request.incident_id),
            dry_run=request.check_mode,
        )
    if request.check_mode or not request.wait:
        status = "planned" if request.check_mode else "running"
        return dict(report, status=status, current_version=state.current)
    job = _wait(client, ref, state, request, waiter, report)
    report.update(job_outcome(client, state.source.namespace, job, request.log_lines))
    if job_report(job)["status"] != "succeeded":
        raise MigrationFailed(
            "Migration %s failed (%s): exit code %s"
            % (ref, job_report(job)["reason"], report["exit_code"]),
            resource=str(ref),
            reason=job_report(job)["reason"] or "job failed",
            next_step="Read its logs (kubectl -n %s logs job/%s), fix the migration, "
            "then re-run: the failed Job "
            "is kept as evidence and the next attempt gets a new name."
            % (ref.namespace, ref.name),
            partial={
                "changed": plan.action == "create",
                "migration": dict(report, status="failed"),
            },
        )
    return _verified(client, state, dict(report, status="succeeded"), plan)


def _wait(
    client: K8sClient,
    ref: Ref,
    state: MigrationState,
    request: RunRequest,
    waiter: Waiter,
    report: Obj,
) -> Obj:
    try:
        return waiter.until(
            "%s to finish" % ref, lambda: client.get(ref), job_finished
        ).value
    except ResourceTimeout as timeout:
        seen = timeout.last_seen if isinstance(timeout.last_seen, dict) else {}
        progress = (
            job_outcome(client, state.source.namespace, seen, request.log_lines)
            if seen
            else {}
        )
        raise ResourceTimeout(
            "Timed out after %ss waiting for migration %s to finish"
            % (waiter.timeout, ref),
            last_seen=job_report(seen) if seen else None,
            resource=str(ref),
            reason="migration still running",
            next_step="It keeps running: follow it with kubectl -n %s logs -f job/%s; "
            "re-run to wait for it again "
            "(it is never started twice)." % (ref.namespace, ref.name),
            partial={
                "changed": report["action"] == "create",
                "migration": dict(report, status="running", **progress),
            },
        ) from None


def _verified(
    client: K8sClient, state: MigrationState, report: Obj, plan: RunPlan
) -> Obj:
    """The report once the stack records the new version (when it keeps a record at
    all)."""
    current = applied_version(client, state.source)
    report["current_version"] = current
    if state.source.schema_configmap and not version_reached(current, state.target):
        raise MigrationFailed(
            "Migration Job %s completed, but ConfigMap %s/%s records version %s, not %s"
            % (
                plan.name,
                state.source.namespace,
                state.source.schema_configmap,
                current,
                state.target,
            ),
            resource="Job %s/%s" % (state.source.namespace, plan.name),
            reason="version not recorded",
            next_step="Read the Job's logs: the migration did not record its version.",
            partial={"changed": True, "migration": report},
        )
    return report


def migrate(
    client: K8sClient,
    source: MigrationSource,
    name: str | None,
    request: RunRequest,
    waiter: Waiter,
) -> Obj:
    """Read where the stack stands, run its migration once unless it is applied, and
    report.

    ``name`` is the Job's base name (the template's by default); the result is the
    module's.
    """
    started = waiter.clock.now()
    state = read_migration(client, source)
    plan = plan_run(client, state, name)
    migration = run_migration(client, state, plan, request, waiter)
    result: Obj = {
        "changed": plan.action == "create",
        "migration": migration,
        "duration": round(waiter.clock.now() - started, 3),
    }
    if request.diff:
        after = state.target if plan.action != "skip" else state.current
        result["diff"] = {
            "before": {"version": state.current},
            "after": {"version": after},
        }
    return result
