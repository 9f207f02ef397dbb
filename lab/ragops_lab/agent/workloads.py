"""What the workload controllers share: ownership, template hashes, pods made from templates."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ragops_lab.k8s_emulator.clock import rfc3339
from ragops_lab.runtime import pod_is_ready

from .api import canonical

Obj = dict[str, Any]


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owned_pods(owner: Mapping[str, Any], pods: Iterable[Obj]) -> list[Obj]:
    """The live pods whose controller is `owner`, by name."""
    uid = owner["metadata"]["uid"]
    found = [p for p in pods if not p["metadata"].get("deletionTimestamp")
             and any(r.get("uid") == uid and r.get("controller") for r in p["metadata"].get("ownerReferences") or [])]
    return sorted(found, key=lambda p: p["metadata"]["name"])


def template_hash(template: Mapping[str, Any]) -> str:
    """A short stable hash of a pod template, like pod-template-hash and controller-revision-hash."""
    return hashlib.sha256(canonical(template).encode()).hexdigest()[:10]


def pod_from_template(owner: Mapping[str, Any], template: Mapping[str, Any], labels: Mapping[str, str],
                      name: str = "", generate_name: str = "") -> Obj:
    body = copy.deepcopy(dict(template))
    meta = body.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    meta["ownerReferences"] = [owner_reference(owner)]
    meta["namespace"] = owner["metadata"]["namespace"]
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    return {"apiVersion": "v1", "kind": "Pod", **body}


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def ready_count(pods: Iterable[Obj]) -> int:
    return sum(1 for pod in pods if pod_is_ready(pod))


def scaled(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent field (maxSurge, maxUnavailable) resolved against `total`."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def merge_conditions(previous: list[Obj], wanted: list[Obj], update_field: str) -> list[Obj]:
    """Conditions stamped like the API's: lastTransitionTime moves only when the status changes."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for entry in wanted:
        old = before.get(entry["type"])
        if old is not None and all(old.get(key) == value for key, value in entry.items()):
            merged.append(old)
            continue
        now = rfc3339()
        transition = old["lastTransitionTime"] if old is not None and old.get("status") == entry["status"] else now
        merged.append({**entry, update_field: now, "lastTransitionTime": transition})
    return merged
