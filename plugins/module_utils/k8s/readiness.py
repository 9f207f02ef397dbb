# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure readiness predicates per kind, for :class:`~..waiter.Waiter` and for status
reports."""

from __future__ import annotations

import typing as t

Obj = t.Dict[str, t.Any]


def _conditions(obj: Obj) -> t.Dict[str, str]:
    status = obj.get("status") or {}
    return {
        c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []
    }


def pod_ready(pod: Obj) -> bool:
    """Running and every readiness gate passed (condition Ready=True)."""
    phase = (pod.get("status") or {}).get("phase")
    return bool(phase == "Running" and _conditions(pod).get("Ready") == "True")


def _rolled_out(obj: Obj, wanted: int, ready_key: str) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    return bool(
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) == wanted
        and status.get(ready_key, 0) == wanted
        and status.get("replicas", 0) == wanted
    )


def deployment_ready(deployment: Obj) -> bool:
    """The newest generation is observed and all wanted replicas are updated and
    available."""
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    return _rolled_out(deployment, wanted, "availableReplicas")


def statefulset_ready(statefulset: Obj) -> bool:
    """The newest generation is observed and all wanted replicas are updated and
    ready."""
    wanted = (statefulset.get("spec") or {}).get("replicas", 1)
    return _rolled_out(statefulset, wanted, "readyReplicas")


def job_finished(job: Obj) -> bool:
    """The Job has completed or failed for good (condition Complete or Failed is
    True)."""
    conditions = _conditions(job)
    return conditions.get("Complete") == "True" or conditions.get("Failed") == "True"


def job_succeeded(job: Obj) -> bool:
    return _conditions(job).get("Complete") == "True"
