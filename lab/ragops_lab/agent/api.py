"""The REST calls the agent makes, with the content types the API server expects."""

from __future__ import annotations

import json
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ragops_lab.clock import rfc3339
from ragops_lab.runtime.httpclient import Unreachable, http_json
from ragops_lab.runtime.kubeapi import KubeError

MERGE_PATCH = "application/merge-patch+json"
# Cluster-wide collections the agent reads every cycle: (API prefix, plural).
CORE = "/api/v1"
APPS = "/apis/apps/v1"
BATCH = "/apis/batch/v1"

Obj = dict[str, Any]


def object_path(prefix: str, plural: str, namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"{prefix}/namespaces/{urllib.parse.quote(namespace)}/{plural}"
    if name:
        path += f"/{urllib.parse.quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def path_of(obj: Mapping[str, Any], plural: str, subresource: str = "") -> str:
    """The path of an object the API returned, from its apiVersion."""
    api_version = str(obj.get("apiVersion") or "v1")
    prefix = CORE if api_version == "v1" else f"/apis/{api_version}"
    meta = obj["metadata"]
    return object_path(prefix, plural, meta["namespace"], meta["name"], subresource)


class Api:
    """A bearer-token client for the few verbs the agent needs; errors raise KubeError."""

    def __init__(self, base_url: str, token: str, ca_file: str = "", timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            result = http_json(method, self.base_url + path, body, headers, self.timeout, self.context)
        except (TimeoutError, Unreachable) as exc:
            raise KubeError(0, str(exc)) from exc
        if result.status >= 400:
            detail = result.body.get("message", result.body) if isinstance(result.body, dict) else result.body
            raise KubeError(result.status, f"{method} {path}: {detail}")
        return result.body

    def list(self, prefix: str, plural: str, namespace: str = "", selector: str = "") -> tuple[list[Obj], str]:
        """Items (with kind and apiVersion filled in) and the list's resourceVersion."""
        path = object_path(prefix, plural, namespace) if namespace else f"{prefix}/{plural}"
        if selector:
            path += "?" + urllib.parse.urlencode({"labelSelector": selector})
        body = self.call("GET", path)
        kind = str(body.get("kind", "")).removesuffix("List")
        items = [{"kind": kind, "apiVersion": body.get("apiVersion"), **item} for item in body.get("items") or []]
        return items, str((body.get("metadata") or {}).get("resourceVersion", ""))

    def current_version(self) -> str:
        """The store's resourceVersion now (what any list reports), from the smallest list there is."""
        body = self.call("GET", f"{CORE}/namespaces?limit=1")
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    def list_path(self, path: str) -> list[Obj]:
        body = self.call("GET", path)
        kind = str(body.get("kind", "")).removesuffix("List")
        return [{"kind": kind, "apiVersion": body.get("apiVersion"), **item} for item in body.get("items") or []]

    def get(self, path: str) -> Obj | None:
        try:
            found = self.call("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def create(self, path: str, body: Obj) -> Obj:
        created = self.call("POST", path, body)
        return created if isinstance(created, dict) else body

    def merge_patch(self, path: str, patch: Obj) -> Any:
        return self.call("PATCH", path, patch, MERGE_PATCH)

    def delete(self, path: str) -> bool:
        """Delete (dependents in the background, as kubectl does); False when it was already gone."""
        try:
            self.call("DELETE", path, {"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_now(self, path: str, uid: str) -> None:
        """Delete without a grace period, only the object with this uid (a pod of the same name may follow)."""
        try:
            self.call("DELETE", path, {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise

    def record_event(self, involved: Mapping[str, Any], kind: str, reason: str, message: str,
                     source: str, event_type: str = "Normal") -> None:
        """An Event about `involved`, as kubectl describe and evidence collection read them."""
        meta = involved["metadata"]
        moment = rfc3339()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"kind": kind, "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid", ""), "apiVersion": involved.get("apiVersion", "v1")},
            "reason": reason, "message": message, "type": event_type, "count": 1,
            "firstTimestamp": moment, "lastTimestamp": moment, "source": {"component": source},
            "reportingComponent": source, "reportingInstance": source,
        }
        try:
            self.create(object_path(CORE, "events", meta["namespace"]), body)
        except KubeError:
            # Events are best effort, as on a real node: losing one must not stop the agent.
            return


def replacement_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """A merge patch turning the top-level keys of `old` into `new` (keys not in `new` are removed)."""
    patch: Obj = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


def canonical(obj: Any) -> str:
    """A stable text form of a JSON value, for hashing and comparisons."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
