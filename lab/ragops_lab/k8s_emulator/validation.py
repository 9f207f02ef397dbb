"""Validation the real server performs on create and update, reported as 422 Invalid."""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid
from .resources import ResourceType
from .selectors import selector_from_object

Cause = tuple[str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# Kinds whose names must be DNS labels rather than subdomains.
LABEL_NAMED = frozenset({"namespaces", "services"})
POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)
IMMUTABLE_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "deployments.apps": (("spec", "selector"),),
    "replicasets.apps": (("spec", "selector"),),
    "statefulsets.apps": (
        ("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates"),
        ("spec", "podManagementPolicy"),
    ),
    "jobs.batch": (("spec", "selector"), ("spec", "template"), ("spec", "completionMode")),
    "persistentvolumeclaims": (
        ("spec", "accessModes"), ("spec", "volumeMode"), ("spec", "selector"), ("spec", "dataSource"),
    ),
    "services": (("spec", "clusterIP"),),
}


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _name_causes(obj: dict[str, Any], resource: ResourceType) -> list[Cause]:
    name = obj.get("metadata", {}).get("name", "")
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if resource.key in LABEL_NAMED:
        if len(name) > 63 or not _LABEL.match(name):
            return [("metadata.name", f"Invalid value: {_quote(name)}: {LABEL_MSG}")]
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return [("metadata.name", f"Invalid value: {_quote(name)}: {SUBDOMAIN_MSG}")]
    return []


def _metadata_causes(meta: dict[str, Any], prefix: str) -> list[Cause]:
    causes: list[Cause] = []
    for value in (meta.get("labels") or {}).values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            message = (f"Invalid value: {_quote(value)}: a valid label must be an empty string or "
                       "consist of alphanumeric characters, '-', '_' or '.'")
            causes.append((f"{prefix}.labels", message))
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            causes.append((f"{prefix}.annotations[{key}]", f"Invalid value: {value!r}: must be a string"))
    for index, ref in enumerate(meta.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, dict) or not ref.get(field):
                causes.append((f"{prefix}.ownerReferences[{index}].{field}", "Required value"))
    return causes


def _container_causes(containers: list[Any], prefix: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        path = f"{prefix}[{index}]"
        if not isinstance(container, dict):
            causes.append((path, "Invalid value: must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append((f"{path}.name", "Required value"))
        elif name in seen:
            causes.append((f"{path}.name", f"Duplicate value: {_quote(name)}"))
        elif not _LABEL.match(str(name)):
            causes.append((f"{path}.name", f"Invalid value: {_quote(name)}: {LABEL_MSG}"))
        seen.add(str(name))
        if not container.get("image"):
            causes.append((f"{path}.image", "Required value"))
        for m_index, mount in enumerate(container.get("volumeMounts") or []):
            if isinstance(mount, dict) and mount.get("name") not in volumes:
                causes.append((f"{path}.volumeMounts[{m_index}].name",
                               f"Not found: {_quote(mount.get('name'))}"))
    return causes


def pod_spec_causes(spec: Any, prefix: str, restart_policies: tuple[str, ...],
                    claim_templates: frozenset[str] = frozenset()) -> list[Cause]:
    if not isinstance(spec, dict):
        return [(prefix, "Required value")]
    volumes = {str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, dict)} | claim_templates
    containers = spec.get("containers") or []
    causes: list[Cause] = []
    if not containers:
        causes.append((f"{prefix}.containers", "Required value"))
    causes += _container_causes(containers, f"{prefix}.containers", volumes)
    causes += _container_causes(spec.get("initContainers") or [], f"{prefix}.initContainers", volumes)
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        allowed = ", ".join(f'"{p}"' for p in restart_policies)
        causes.append((f"{prefix}.restartPolicy", f"Unsupported value: {_quote(policy)}: supported values: {allowed}"))
    return causes


def _workload_causes(obj: dict[str, Any], resource: ResourceType) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    template = spec.get("template") or {}
    policies = ("OnFailure", "Never") if resource.key == "jobs.batch" else ("Always",)
    # A StatefulSet's pods mount their volumeClaimTemplates by name.
    claims = frozenset(str((c.get("metadata") or {}).get("name")) for c in spec.get("volumeClaimTemplates") or []
                       if isinstance(c, dict))
    causes += pod_spec_causes(template.get("spec"), "spec.template.spec", policies, claims)
    causes += _metadata_causes(template.get("metadata") or {}, "spec.template.metadata")
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(("spec.replicas", f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
    selector = spec.get("selector")
    if not selector:
        causes.append(("spec.selector", "Required value"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector_from_object(selector).matches(labels):
        causes.append(("spec.template.metadata.labels",
                       f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    return causes


def _kind_causes(obj: dict[str, Any], resource: ResourceType) -> list[Cause]:
    key = resource.key
    if key == "pods":
        return pod_spec_causes(obj.get("spec"), "spec", ("Always", "OnFailure", "Never"))
    if key in ("deployments.apps", "statefulsets.apps", "replicasets.apps", "jobs.batch"):
        return _workload_causes(obj, resource)
    if key == "services":
        spec = obj.get("spec") or {}
        headless = spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"
        if not spec.get("ports") and not headless:
            return [("spec.ports", "Required value")]
        return [(f"spec.ports[{i}].port", f"Invalid value: {p.get('port')!r}: must be between 1 and 65535")
                for i, p in enumerate(spec.get("ports") or [])
                if not isinstance(p.get("port"), int) or not 0 < p["port"] < 65536]
    if key == "persistentvolumeclaims":
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        if not spec.get("accessModes"):
            causes.append(("spec.accessModes", "Required value: at least 1 access mode is required"))
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            causes.append(("spec.resources[storage]", "Required value"))
        return causes
    return []


def validate(obj: dict[str, Any], resource: ResourceType) -> None:
    """Raise 422 when the object would be rejected by the real server's validation."""
    causes = _name_causes(obj, resource)
    causes += _metadata_causes(obj.get("metadata") or {}, "metadata")
    causes += _kind_causes(obj, resource)
    if causes:
        raise invalid(resource.kind, obj.get("metadata", {}).get("name", ""), causes, resource.group)


def _field(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _pod_mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in spec.items()
            if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
    for key in ("containers", "initContainers"):
        view[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(key) or []]
    return view


def validate_update(old: dict[str, Any], new: dict[str, Any], resource: ResourceType) -> None:
    """Raise 422 for changes to fields the server treats as immutable."""
    causes: list[Cause] = []
    for path in IMMUTABLE_FIELDS.get(resource.key, ()):
        if _field(old, path) != _field(new, path):
            causes.append((".".join(path), "Invalid value: field is immutable"))
    pod_spec_changed = _pod_mutable_view(old.get("spec") or {}) != _pod_mutable_view(new.get("spec") or {})
    if resource.key == "pods" and pod_spec_changed:
        causes.append(("spec", f"Forbidden: {POD_UPDATE_MSG}"))
    if resource.key in ("configmaps", "secrets") and old.get("immutable"):
        for field in ("data", "binaryData", "immutable"):
            if old.get(field) != new.get(field):
                causes.append((field, "Forbidden: field is immutable when `immutable` is set"))
    if causes:
        raise invalid(resource.kind, new.get("metadata", {}).get("name", ""), causes, resource.group)
