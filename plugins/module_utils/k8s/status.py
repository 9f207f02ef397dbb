# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure summaries of Kubernetes object status, as the collection reports them."""

from __future__ import annotations

import typing as t

from .readiness import pod_ready

Obj = t.Dict[str, t.Any]


def _reason(statuses: t.List[Obj], state: str, phase: str) -> str | None:
    """The first reason given in ``status[state][phase]`` of the containers'
    statuses."""
    for status in statuses:
        reason = ((status.get(state) or {}).get(phase) or {}).get("reason")
        if reason:
            return str(reason)
    return None


def _exit_code(status: Obj) -> int | None:
    """Exit code of the running instance if it ended, else of the previous one."""
    for state in (status.get("state") or {}, status.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated.get("exitCode") is not None:
            return int(terminated["exitCode"])
    return None


def container_summary(status: Obj) -> Obj:
    """One container's state (``waiting``, ``running`` or ``terminated``), reason,
    restarts and exit code."""
    state = status.get("state") or {}
    current = next(
        (name for name in ("waiting", "running", "terminated") if name in state),
        "waiting",
    )
    return {
        "name": status.get("name", ""),
        "state": current,
        "reason": (state.get(current) or {}).get("reason"),
        "ready": bool(status.get("ready")),
        "restarts": int(status.get("restartCount") or 0),
        "exit_code": _exit_code(status),
    }


def stuck_init_container(pod: Obj) -> Obj | None:
    """The first init container that has not completed, while the pod is still
    initialising."""
    status = pod.get("status") or {}
    for init in status.get("initContainerStatuses") or []:
        summary = container_summary(init)
        if not (summary["state"] == "terminated" and summary["exit_code"] == 0):
            return summary
    return None


def pod_summary(pod: Obj) -> Obj:
    """Name, phase, readiness, restarts and why the pod last stopped or is waiting.

    ``init_containers`` and ``stuck_init`` show a pod that never gets past
    initialisation, one of the ways a bootstrap deadlock shows itself.
    """
    status = pod.get("status") or {}
    statuses = list(status.get("containerStatuses") or [])
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return {
        "name": pod["metadata"]["name"],
        "phase": status.get("phase", "Unknown"),
        "ready": pod_ready(pod),
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "last_termination_reason": _reason(statuses, "lastState", "terminated"),
        "last_exit_code": next(
            (code for code in map(_exit_code, statuses) if code is not None), None
        ),
        "waiting_reason": _reason(
            statuses + list(status.get("initContainerStatuses") or []),
            "state",
            "waiting",
        ),
        "init_containers": [
            container_summary(s) for s in status.get("initContainerStatuses") or []
        ],
        "stuck_init": stuck_init_container(pod),
        "labels": dict(pod["metadata"].get("labels") or {}),
        "claims": [
            v["persistentVolumeClaim"]["claimName"]
            for v in volumes
            if v.get("persistentVolumeClaim")
        ],
    }
