"""The scale and binding subresources, expressed through ordinary registry updates."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import errors
from .clock import rfc3339
from .registry import Registry
from .resources import ResourceType
from .selectors import selector_to_string


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    status = obj.get("status") or {}
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas") or 0)}
    selector = selector_to_string((obj.get("spec") or {}).get("selector"))
    if selector:
        scale_status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
        "status": scale_status,
    }


def get_scale(registry: Registry, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
    return scale_of(registry.get(resource, namespace, name))


def _replicas_of(scale: Any) -> int:
    if not isinstance(scale, dict):
        raise errors.bad_request("the body of the request was in an unknown format")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", (scale.get("metadata") or {}).get("name", ""),
                             [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                             "autoscaling")
    return replicas


def update_scale(
    registry: Registry, resource: ResourceType, namespace: str, name: str,
    scale: Any, dry_run: bool,
) -> dict[str, Any]:
    return patch_scale(registry, resource, namespace, name, lambda _current: scale, dry_run)


def patch_scale(
    registry: Registry, resource: ResourceType, namespace: str, name: str,
    patch_scale_object: Callable[[dict[str, Any]], Any], dry_run: bool,
) -> dict[str, Any]:
    """Apply a change expressed on the Scale object to the owning workload's spec.replicas."""

    def change_workload(current: dict[str, Any]) -> dict[str, Any]:
        wanted = patch_scale_object(scale_of(current))
        replicas = _replicas_of(wanted)
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        sent_version = (wanted.get("metadata") or {}).get("resourceVersion")
        updated["metadata"]["resourceVersion"] = sent_version or current["metadata"]["resourceVersion"]
        return updated

    return scale_of(registry.patch(resource, namespace, name, change_workload, dry_run))


def bind_pod(registry: Registry, resource: ResourceType, namespace: str, name: str, binding: Any) -> dict[str, Any]:
    """pods/binding: what the scheduler calls to place a pod on a node."""
    target = (binding.get("target") or {}) if isinstance(binding, dict) else {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", name, [("target.name", "Required value")])

    def assign(current: dict[str, Any]) -> dict[str, Any]:
        assigned = current["spec"].get("nodeName")
        if assigned:
            raise errors.conflict(resource.plural, name, "", f"pod {name} is already assigned to node \"{assigned}\"")
        current["spec"]["nodeName"] = node
        conditions = current.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": rfc3339()})
        return current

    registry.system_update(resource, namespace, name, assign)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
