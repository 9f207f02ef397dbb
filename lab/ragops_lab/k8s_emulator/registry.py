"""API semantics over the store: create/update/patch/delete with the real server's rules."""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .clock import rfc3339
from .defaults import apply_defaults, fill_zero_values, initial_status
from .errors import ApiError
from .resources import ResourceType, find_by_key
from .selectors import FieldSelector, LabelSelector
from .store import ObjectKey, Store
from .validation import validate, validate_update

NAMESPACES = find_by_key("namespaces")
# Kinds whose PUT on a missing name creates it (AllowCreateOnUpdate in the real strategies).
CREATE_ON_UPDATE = frozenset({"events", "leases.coordination.k8s.io"})
# Kinds whose DELETE answers with the deleted object rather than a Status.
RETURNS_DELETED_OBJECT = frozenset({"pods", "services", "namespaces", "persistentvolumeclaims", "serviceaccounts"})
GENERATE_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
ROOT_CA = "-----BEGIN CERTIFICATE-----\nbGFiLWVtdWxhdG9yLWNh\n-----END CERTIFICATE-----\n"

Patcher = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class DeleteOptions:
    dry_run: bool = False
    propagation: str = "Background"
    preconditions: dict[str, Any] = field(default_factory=dict)


def _namespaces() -> ResourceType:
    assert NAMESPACES is not None
    return NAMESPACES


class Registry:
    """The API server's storage layer: every mutation goes through here under the store lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def key(resource: ResourceType, namespace: str, name: str) -> ObjectKey:
        return (resource.key, namespace if resource.namespaced else "", name)

    def _require(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(self.key(resource, namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        return obj

    def _require_namespace(self, resource: ResourceType, namespace: str) -> None:
        if resource.namespaced and self.store.get(("namespaces", "", namespace)) is None:
            raise errors.not_found("namespaces", namespace)

    @staticmethod
    def _check_type(resource: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != resource.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({resource.api_version})"
            )
        if kind and kind != resource.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

    @staticmethod
    def _check_namespace(resource: ResourceType, obj: dict[str, Any], namespace: str) -> None:
        meta = obj["metadata"]
        if not resource.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace

    # -- reads ---------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return self._require(resource, namespace, name)

    def list_objects(
        self, resource: ResourceType, namespace: str | None,
        labels: LabelSelector, fields: FieldSelector,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.store.lock:
            scope = namespace if resource.namespaced else None
            found = [o for o in self.store.items(resource.key, scope)
                     if labels.matches(o["metadata"].get("labels")) and fields.matches(o)]
            return found, self.store.resource_version

    # -- create --------------------------------------------------------------------------

    def create(self, resource: ResourceType, namespace: str, body: Any, dry_run: bool) -> dict[str, Any]:
        obj = self._check_type(resource, body)
        self._check_namespace(resource, obj, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(GENERATE_NAME_CHARS) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(server_field, None)
        if resource.has_generation:
            meta["generation"] = 1
        apply_defaults(obj, resource, creating=True)
        status = initial_status(obj, resource)
        if resource.has_status():
            obj["status"] = status if status is not None else {}
        fill_zero_values(obj, resource)
        validate(obj, resource)
        with self.store.lock:
            self._require_namespace(resource, namespace)
            key = self.key(resource, namespace, meta["name"])
            if self.store.get(key) is not None:
                raise errors.already_exists(resource.plural, meta["name"], resource.group)
            if dry_run:
                return obj
            created = self.store.put(key, obj, "ADDED")
            if resource.key == "namespaces":
                self._populate_namespace(meta["name"])
            return created

    def _populate_namespace(self, namespace: str) -> None:
        """What the controllers put into every new namespace."""
        for kind, body in (
            ("serviceaccounts", {"metadata": {"name": "default"}}),
            ("configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ROOT_CA}}),
        ):
            resource = find_by_key(kind)
            assert resource is not None
            self.create(resource, namespace, body, dry_run=False)

    def bootstrap(self) -> None:
        self.create(_namespaces(), "", {"metadata": {"name": "default"}}, dry_run=False)

    # -- update and patch ----------------------------------------------------------------

    def update(
        self, resource: ResourceType, namespace: str, name: str, body: Any,
        dry_run: bool, subresource: str = "",
    ) -> dict[str, Any]:
        obj = self._check_type(resource, body)
        self._check_namespace(resource, obj, namespace)
        if obj["metadata"].get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({obj['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        with self.store.lock:
            current = self.store.get(self.key(resource, namespace, name))
            if current is None:
                if resource.key in CREATE_ON_UPDATE and not subresource:
                    obj["metadata"].pop("resourceVersion", None)
                    return self.create(resource, namespace, obj, dry_run)
                raise errors.not_found(resource.plural, name, resource.group)
            return self._write_update(resource, current, obj, dry_run, subresource)

    def patch(
        self, resource: ResourceType, namespace: str, name: str, patcher: Patcher,
        dry_run: bool, subresource: str = "", create_missing: bool = False,
    ) -> dict[str, Any]:
        with self.store.lock:
            current = self.store.get(self.key(resource, namespace, name))
            if current is None:
                if not create_missing:
                    raise errors.not_found(resource.plural, name, resource.group)
                body = patcher({"apiVersion": resource.api_version, "kind": resource.kind,
                                "metadata": {"name": name, "namespace": namespace}})
                return self.create(resource, namespace, body, dry_run)
            patched = self._check_type(resource, patcher(copy.deepcopy(current)))
            self._check_namespace(resource, patched, namespace)
            if patched["metadata"].get("name") != name:
                raise errors.bad_request("metadata.name: Invalid value: the name cannot be changed by a patch")
            return self._write_update(resource, current, patched, dry_run, subresource)

    def _merge_update(
        self, resource: ResourceType, current: dict[str, Any], new: dict[str, Any], subresource: str,
    ) -> dict[str, Any]:
        """Combine what the client sent with what the server keeps for itself."""
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
            return merged
        meta, old_meta = new["metadata"], current["metadata"]
        for kept in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                     "deletionGracePeriodSeconds"):
            if kept in old_meta:
                meta[kept] = old_meta[kept]
            else:
                meta.pop(kept, None)
        if resource.has_status():
            new["status"] = copy.deepcopy(current.get("status", {}))
        apply_defaults(new, resource, creating=False)
        return new

    def _check_preconditions(self, resource: ResourceType, current: dict[str, Any], new: dict[str, Any]) -> None:
        name = current["metadata"]["name"]
        sent_version = new["metadata"].get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, name, resource.group)
        sent_uid = new["metadata"].get("uid")
        if sent_uid and sent_uid != current["metadata"]["uid"]:
            raise errors.conflict(
                resource.plural, name, resource.group,
                f"Precondition failed: UID in precondition: {sent_uid}, UID in object meta: "
                f"{current['metadata']['uid']}",
            )

    def _write_update(
        self, resource: ResourceType, current: dict[str, Any], new: dict[str, Any],
        dry_run: bool, subresource: str,
    ) -> dict[str, Any]:
        self._check_preconditions(resource, current, new)
        merged = self._merge_update(resource, current, new, subresource)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        fill_zero_values(merged, resource)
        validate(merged, resource)
        validate_update(current, merged, resource)
        if resource.has_generation and merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if merged == current or dry_run:
            return merged
        key = self.key(resource, current["metadata"].get("namespace", ""), current["metadata"]["name"])
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            self.store.put(key, merged, "MODIFIED")
            return self._remove(resource, key, DeleteOptions())
        return self.store.put(key, merged, "MODIFIED")

    # -- delete --------------------------------------------------------------------------

    def delete(
        self, resource: ResourceType, namespace: str, name: str, options: DeleteOptions,
    ) -> dict[str, Any]:
        with self.store.lock:
            current = self._require(resource, namespace, name)
            self._check_delete_preconditions(resource, current, options)
            key = self.key(resource, namespace, name)
            if options.dry_run:
                return self._delete_answer(resource, current)
            if current["metadata"].get("finalizers"):
                return self._mark_deleting(resource, key, current)
            return self._delete_answer(resource, self._remove(resource, key, options))

    def _check_delete_preconditions(
        self, resource: ResourceType, current: dict[str, Any], options: DeleteOptions,
    ) -> None:
        name = current["metadata"]["name"]
        uid = options.preconditions.get("uid")
        if uid and uid != current["metadata"]["uid"]:
            raise errors.conflict(resource.plural, name, resource.group,
                                  f"Precondition failed: UID in precondition: {uid}, "
                                  f"UID in object meta: {current['metadata']['uid']}")
        version = options.preconditions.get("resourceVersion")
        if version and version != current["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, name, resource.group,
                                  f"Precondition failed: ResourceVersion in precondition: {version}, "
                                  f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}")

    def _mark_deleting(self, resource: ResourceType, key: ObjectKey, current: dict[str, Any]) -> dict[str, Any]:
        if current["metadata"].get("deletionTimestamp"):
            return self._delete_answer(resource, current)
        current["metadata"]["deletionTimestamp"] = rfc3339()
        current["metadata"]["deletionGracePeriodSeconds"] = 0
        return self._delete_answer(resource, self.store.put(key, current, "MODIFIED"))

    def _remove(self, resource: ResourceType, key: ObjectKey, options: DeleteOptions) -> dict[str, Any]:
        removed = self.store.remove(key)
        assert removed is not None
        if resource.key == "namespaces":
            self._empty_namespace(key[2])
            removed.setdefault("status", {})["phase"] = "Terminating"
            removed["metadata"].setdefault("deletionTimestamp", rfc3339())
        self._collect_dependents(removed["metadata"]["uid"], options.propagation)
        return removed

    def _empty_namespace(self, namespace: str) -> None:
        for key, _obj in self.store.all_items():
            if key[1] == namespace and key[0] != "namespaces":
                self.store.remove(key)

    def _collect_dependents(self, owner_uid: str, propagation: str) -> None:
        """Garbage-collect (or orphan) objects whose ownerReferences name the deleted owner."""
        for key, obj in self.store.all_items():
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in refs):
                continue
            resource = find_by_key(key[0])
            if resource is None or self.store.get(key) is None:
                continue
            if propagation == "Orphan":
                obj["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                if not obj["metadata"]["ownerReferences"]:
                    del obj["metadata"]["ownerReferences"]
                self.store.put(key, obj, "MODIFIED")
            elif obj["metadata"].get("finalizers"):
                self._mark_deleting(resource, key, obj)
            else:
                self._remove(resource, key, DeleteOptions())

    @staticmethod
    def _delete_answer(resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if resource.key in RETURNS_DELETED_OBJECT:
            return obj
        details = {"name": obj["metadata"]["name"], "kind": resource.plural, "uid": obj["metadata"]["uid"]}
        if resource.group:
            details["group"] = resource.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def delete_collection(
        self, resource: ResourceType, namespace: str | None,
        labels: LabelSelector, fields: FieldSelector, options: DeleteOptions,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.store.lock:
            found, _ = self.list_objects(resource, namespace, labels, fields)
            deleted = []
            for obj in found:
                meta = obj["metadata"]
                if self.store.get(self.key(resource, meta.get("namespace", ""), meta["name"])) is None:
                    continue
                self.delete(resource, meta.get("namespace", ""), meta["name"], options)
                deleted.append(obj)
            return deleted, self.store.resource_version

    def system_update(
        self, resource: ResourceType, namespace: str, name: str, mutate: Patcher,
    ) -> dict[str, Any]:
        """A write the server makes itself (the scheduler's binding), outside the client rules."""
        with self.store.lock:
            current = self._require(resource, namespace, name)
            return self.store.put(self.key(resource, namespace, name), mutate(current), "MODIFIED")

    # -- whole-store operations ----------------------------------------------------------

    def reset(self) -> None:
        """Forget every object except the default namespace and what it starts with."""
        keep = {("namespaces", "", "default"), ("serviceaccounts", "default", "default"),
                ("configmaps", "default", "kube-root-ca.crt")}
        with self.store.lock:
            self.store.clear(keep)
            if self.store.get(("namespaces", "", "default")) is None:
                self.bootstrap()
