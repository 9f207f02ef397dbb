"""The three patch formats the API server accepts: JSON merge, JSON patch and strategic merge."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .errors import ApiError, bad_request

Path = tuple[str, ...]

# Lists inside a pod spec that strategic merge treats as maps keyed by a field
# (the patchMergeKey tags of k8s.io/api/core/v1); everything else is replaced whole.
POD_SPEC_LISTS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "topologySpreadConstraints": "topologyKey",
}
CONTAINER_LISTS: dict[str, str] = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}
STATUS_LISTS: dict[str, str] = {"conditions": "type", "podIPs": "ip", "hostIPs": "ip"}
METADATA_LISTS: dict[str, str] = {"ownerReferences": "uid"}
# Primitive lists whose strategy is "merge" (union) instead of replace.
PRIMITIVE_MERGE_LISTS: frozenset[Path] = frozenset(
    {("metadata", "finalizers"), ("spec", "template", "metadata", "finalizers")}
)
POD_TEMPLATE_KINDS = frozenset({"deployments.apps", "statefulsets.apps", "replicasets.apps", "jobs.batch"})

SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


def _pod_spec_keys(prefix: Path) -> dict[Path, str]:
    keys = {(*prefix, field): key for field, key in POD_SPEC_LISTS.items()}
    for container_list in ("containers", "initContainers", "ephemeralContainers"):
        for field, key in CONTAINER_LISTS.items():
            keys[(*prefix, container_list, field)] = key
    return keys


def merge_keys_for(resource_key: str) -> dict[Path, str]:
    """Merge keys by field path (list positions omitted) for one resource."""
    keys: dict[Path, str] = {("metadata", f): k for f, k in METADATA_LISTS.items()}
    keys.update({("status", f): k for f, k in STATUS_LISTS.items()})
    if resource_key == "pods":
        keys.update(_pod_spec_keys(("spec",)))
    if resource_key in POD_TEMPLATE_KINDS:
        keys.update(_pod_spec_keys(("spec", "template", "spec")))
        keys.update({("spec", "template", "metadata", f): k for f, k in METADATA_LISTS.items()})
    if resource_key == "services":
        keys[("spec", "ports")] = "port"
    return keys


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


class StrategicMerge:
    """Strategic merge patch as the API server applies it, driven by a merge-key table."""

    def __init__(self, merge_keys: Mapping[Path, str]) -> None:
        self.merge_keys = merge_keys

    def apply(self, original: dict[str, Any], patch: Any) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        return self._merge_map(copy.deepcopy(original), patch, ())

    def _merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: Path) -> dict[str, Any]:
        directive = patch.get("$patch")
        if directive == "replace":
            return self._merge_map({}, {k: v for k, v in patch.items() if k != "$patch"}, path)
        if directive == "delete":
            return {}
        if directive is not None:
            raise bad_request(f"Unknown patch type: {directive!r} in map: {patch}")
        retain = patch.get("$retainKeys")
        if retain is not None:
            if not isinstance(retain, list):
                raise bad_request("invalid patch: $retainKeys must be a list")
            original = {k: v for k, v in original.items() if k in retain}
        orders: dict[str, list[Any]] = {}
        for key, value in patch.items():
            if key in ("$retainKeys", "$patch"):
                continue
            if key.startswith(SET_ORDER):
                orders[key[len(SET_ORDER):]] = value
            elif key.startswith(DELETE_PRIMITIVES):
                field = key[len(DELETE_PRIMITIVES):]
                if isinstance(original.get(field), list):
                    original[field] = [v for v in original[field] if v not in value]
            elif value is None:
                original.pop(key, None)
            else:
                original[key] = self._merge_value(original.get(key), value, (*path, key))
        for field, order in orders.items():
            if isinstance(original.get(field), list):
                original[field] = self._reorder(original[field], order, (*path, field))
        return original

    def _merge_value(self, original: Any, patch: Any, path: Path) -> Any:
        if isinstance(patch, dict):
            return self._merge_map(original if isinstance(original, dict) else {}, patch, path)
        if isinstance(patch, list):
            return self._merge_list(original if isinstance(original, list) else [], patch, path)
        return copy.deepcopy(patch)

    def _merge_list(self, original: list[Any], patch: list[Any], path: Path) -> list[Any]:
        key = self.merge_keys.get(path)
        if key is None:
            if path in PRIMITIVE_MERGE_LISTS:
                return original + [v for v in patch if v not in original]
            return [self._merge_value(None, item, path) for item in patch]
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            rest = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
            return self._merge_list([], rest, path)
        merged = list(original)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise bad_request(f"map: {item} does not contain declared merge key: {key}")
            index = next((i for i, o in enumerate(merged) if isinstance(o, dict) and o.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                merged = [o for o in merged if not (isinstance(o, dict) and o.get(key) == item[key])]
            elif index is None:
                merged.append(self._merge_map({}, item, path))
            else:
                merged[index] = self._merge_map(merged[index], item, path)
        return merged

    def _reorder(self, items: list[Any], order: list[Any], path: Path) -> list[Any]:
        """Put the listed elements in the given order in the slots they occupy; others stay put."""
        key = self.merge_keys.get(path)

        def identity(item: Any) -> Any:
            return item.get(key) if key and isinstance(item, dict) else item

        wanted = [identity(o) for o in order]
        listed = sorted((i for i in items if identity(i) in wanted), key=lambda i: wanted.index(identity(i)))
        slots = iter(listed)
        return [next(slots) if identity(i) in wanted else i for i in items]


def strategic_merge_patch(original: dict[str, Any], patch: Any, resource_key: str) -> dict[str, Any]:
    return StrategicMerge(merge_keys_for(resource_key)).apply(original, patch)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [_unescape(t) for t in path.split("/")[1:]] if path else []


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, message, "Invalid")


def _container(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            raise _unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return current


def _get(doc: Any, path: str, op: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _container(doc, tokens[:-1], op, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')


def _remove(doc: Any, path: str, op: str = "remove") -> Any:
    tokens = _pointer(path)
    _get(doc, path, op)
    parent = _container(doc, tokens[:-1], op, path)
    return parent.pop(int(tokens[-1]) if isinstance(parent, list) else tokens[-1])


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _container(doc, tokens[:-1], op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list) and (last == "-" or (last.isdigit() and int(last) <= len(parent))):
        parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(value))
    else:
        raise _unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _apply_operation(doc: Any, operation: Any) -> Any:
    if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
        raise bad_request(f"invalid JSON patch operation: {operation!r}")
    op, path = operation["op"], operation["path"]
    if op in ("add", "replace", "test") and "value" not in operation:
        raise bad_request(f"invalid JSON patch operation, missing value: {operation!r}")
    if op == "add":
        return _add(doc, path, operation["value"])
    if op == "remove":
        _remove(doc, path)
        return doc
    if op == "replace":
        _get(doc, path, "replace")
        if not _pointer(path):
            return copy.deepcopy(operation["value"])
        _remove(doc, path, "replace")
        return _add(doc, path, operation["value"], "replace")
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise bad_request(f"invalid JSON patch operation, missing from: {operation!r}")
        value = _remove(doc, source, op) if op == "move" else copy.deepcopy(_get(doc, source, op))
        return _add(doc, path, value, op)
    if op == "test":
        if _get(doc, path, "test") != operation["value"]:
            raise _unprocessable(f"testing value {path} failed: test operation failed")
        return doc
    raise bad_request(f"Unexpected kind: {op}")


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902; malformed patches are 400, patches that do not apply are 422."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(document)
    for operation in operations:
        doc = _apply_operation(doc, operation)
    return doc
