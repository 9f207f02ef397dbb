# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure summaries of Kubernetes object status, as the collection reports them."""

from __future__ import annotations

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils.waiter import pod_ready

Obj = t.Dict[str, t.Any]


def _last_termination_reason(statuses: t.List[Obj]) -> str | None:
    for status in statuses:
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        if terminated.get("reason"):
            return str(terminated["reason"])
    return None


def _waiting_reason(statuses: t.List[Obj]) -> str | None:
    for status in statuses:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"])
    return None


def pod_summary(pod: Obj) -> Obj:
    """Name, phase, readiness, restarts and why the pod last stopped or is waiting."""
    status = pod.get("status") or {}
    statuses = list(status.get("containerStatuses") or [])
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return {
        "name": pod["metadata"]["name"],
        "phase": status.get("phase", "Unknown"),
        "ready": pod_ready(pod),
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "last_termination_reason": _last_termination_reason(statuses),
        "waiting_reason": _waiting_reason(statuses + list(status.get("initContainerStatuses") or [])),
        "labels": dict(pod["metadata"].get("labels") or {}),
        "claims": [v["persistentVolumeClaim"]["claimName"] for v in volumes if v.get("persistentVolumeClaim")],
    }
