"""Discovery documents (/version, /api, /apis...) and the minimal OpenAPI v3 that kubectl consults."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ResourceType, group_versions, resources_in

SERVER_VERSION: dict[str, str] = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-ragops-lab",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.26.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Query parameters a real server accepts on PATCH; kubectl only checks for fieldValidation.
PATCH_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def version() -> dict[str, str]:
    return dict(SERVER_VERSION)


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in group_versions() if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    for group, _version in group_versions():
        if group and group not in [g["name"] for g in groups]:
            groups.append(_group_entry(group))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    if not group or all(g != group for g, _ in group_versions()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def _storage_hash(resource: ResourceType) -> str:
    return hashlib.sha256(resource.key.encode()).hexdigest()[:12]


def _resource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
        "storageVersionHash": _storage_hash(resource),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    entries = [entry]
    for sub in resource.subresources:
        sub_entry: dict[str, Any] = {
            "name": f"{resource.plural}/{sub.name}",
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": sub.kind or resource.kind,
            "verbs": list(sub.verbs),
        }
        if sub.group:
            sub_entry["group"], sub_entry["version"] = sub.group, sub.version
        entries.append(sub_entry)
    return entries


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    served = resources_in(group, version)
    if not served:
        return None
    entries = [e for res in served for e in _resource_entries(res)]
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _openapi_paths(resource: ResourceType) -> dict[str, Any]:
    base = f"/{_gv_path(resource.group, resource.version)}"
    scope = "/namespaces/{namespace}" if resource.namespaced else ""
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    parameters = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in PATCH_PARAMETERS]
    ok = {"200": {"description": "OK"}}

    def operation(action: str, verb: str) -> dict[str, Any]:
        return {"operationId": f"{verb}{resource.kind}", "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk, "parameters": parameters, "responses": ok}

    return {
        f"{base}{scope}/{resource.plural}": {
            "get": operation("list", "list"), "post": operation("post", "create"),
        },
        f"{base}{scope}/{resource.plural}/{{name}}": {
            "get": operation("get", "read"), "put": operation("put", "replace"),
            "patch": operation("patch", "patch"), "delete": operation("delete", "delete"),
        },
    }


def openapi_v3_document(group: str, version: str) -> dict[str, Any] | None:
    """Paths only: enough for kubectl to see that the server validates fields itself."""
    served = resources_in(group, version)
    if not served:
        return None
    paths: dict[str, Any] = {}
    for res in served:
        paths.update(_openapi_paths(res))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v3_index() -> dict[str, Any]:
    index = {}
    for group, version in group_versions():
        document = json.dumps(openapi_v3_document(group, version), sort_keys=True)
        digest = hashlib.sha512(document.encode()).hexdigest()[:32].upper()
        path = _gv_path(group, version)
        index[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": index}
