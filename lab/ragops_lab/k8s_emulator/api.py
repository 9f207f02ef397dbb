"""Resource endpoints: turn a routed request into registry calls and a response."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

from . import errors, subresources
from .errors import ApiError
from .http import Request, Response, Stream
from .logs import LogStore, tail
from .patch import json_merge_patch, json_patch, strategic_merge_patch
from .registry import DeleteOptions, Patcher, Registry
from .routes import Route
from .selectors import parse_field_selector, parse_label_selector
from .tables import to_table
from .watch import DEFAULT_TIMEOUT, WatchRequest, WatchSession

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
NAMED_VERBS = frozenset({"get", "update", "patch", "delete"})


def _method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed", {})


def verb_of(request: Request, route: Route) -> str:
    """The Kubernetes verb of a request, as authorisation and fault rules name it."""
    method = request.method
    if method == "GET":
        if route.name is None:
            return "watch" if route.legacy_watch or request.flag("watch") else "list"
        return "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if route.name is not None else "deletecollection"
    return method.lower()


def _dry_run(request: Request, body: Any = None) -> bool:
    values = request.query.get("dryRun", [])
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values = values + body["dryRun"]
    for value in values:
        if value != "All":
            raise errors.bad_request(f'Invalid value: "{value}": supported values: "All"')
    return bool(values)


def _encode_continue(namespace: str, name: str, version: int) -> str:
    token = json.dumps({"ns": namespace, "name": name, "rv": version}).encode()
    return base64.urlsafe_b64encode(token).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["ns"]), str(data["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, f"continue key is not valid: {exc}", "BadRequest") from exc


class ResourceApi:
    """Get, list, watch, create, update, patch and delete for every served resource."""

    def __init__(self, registry: Registry, logs: LogStore, stopping: threading.Event) -> None:
        self.registry = registry
        self.logs = logs
        self.stopping = stopping

    def handle(self, request: Request, route: Route) -> Response | Stream:
        verb = verb_of(request, route)
        if route.subresource:
            return self._subresource(request, route, verb)
        handlers: dict[str, Callable[[Request, Route], Response | Stream]] = {
            "get": self._get, "list": self._list, "watch": self._watch, "create": self._create,
            "update": self._update, "patch": self._patch, "delete": self._delete,
            "deletecollection": self._delete_collection,
        }
        handler = handlers.get(verb)
        named = route.name is not None
        cross_namespace = route.resource.namespaced and route.namespace is None
        if (handler is None or verb not in route.resource.verbs or named != (verb in NAMED_VERBS)
                or (cross_namespace and verb not in ("list", "watch"))):
            raise _method_not_allowed()
        return handler(request, route)

    # -- reads ---------------------------------------------------------------------------

    def _namespace(self, route: Route) -> str:
        return route.namespace or ""

    def _get(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        obj = self.registry.get(route.resource, self._namespace(route), route.name)
        if request.wants_table():
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            include = request.param("includeObject", "Metadata") or "Metadata"
            return Response.json(to_table(route.resource, [obj], meta, include))
        return Response.json(obj)

    def _selectors(self, request: Request, route: Route) -> tuple[Any, Any]:
        labels = parse_label_selector(request.param("labelSelector"))
        fields = parse_field_selector(request.param("fieldSelector"), route.resource.key)
        return labels, fields

    def _list(self, request: Request, route: Route) -> Response:
        labels, fields = self._selectors(request, route)
        items, version = self.registry.list_objects(route.resource, route.namespace, labels, fields)
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        items = self._page(request, items, meta, version)
        if request.wants_table():
            include = request.param("includeObject", "Metadata") or "Metadata"
            return Response.json(to_table(route.resource, items, meta, include))
        stripped = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return Response.json({"kind": route.resource.list_kind, "apiVersion": route.resource.api_version,
                              "metadata": meta, "items": stripped})

    @staticmethod
    def _page(
        request: Request, items: list[dict[str, Any]], meta: dict[str, Any], version: int,
    ) -> list[dict[str, Any]]:
        token = request.param("continue")
        if token:
            after = _decode_continue(token)
            items = [o for o in items
                     if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
        limit = request.int_param("limit")
        if limit and limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = _encode_continue(last.get("namespace", ""), last["name"], version)
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items

    def _watch(self, request: Request, route: Route) -> Stream:
        labels, fields = self._selectors(request, route)
        version = request.param("resourceVersion", "") or ""
        if version not in ("", "0") and not version.isdigit():
            raise errors.bad_request(f"invalid resource version: {version!r}")
        timeout = request.int_param("timeoutSeconds")
        table = (request.param("includeObject", "Metadata") or "Metadata") if request.wants_table() else None
        session = WatchSession(self.registry, WatchRequest(
            route.resource, route.namespace, labels, fields, version,
            float(timeout) if timeout is not None and timeout > 0 else DEFAULT_TIMEOUT,
            request.flag("sendInitialEvents"), request.flag("allowWatchBookmarks"), table,
        ), self.stopping)
        return Stream(session.chunks)

    # -- writes --------------------------------------------------------------------------

    def _create(self, request: Request, route: Route) -> Response:
        body = request.json()
        created = self.registry.create(route.resource, self._namespace(route), body, _dry_run(request))
        return Response.json(created, 201)

    def _update(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        body = request.json()
        updated = self.registry.update(route.resource, self._namespace(route), route.name, body,
                                       _dry_run(request))
        return Response.json(updated)

    def _patcher(self, request: Request, route: Route) -> Patcher:
        content_type = request.header("content-type").split(";")[0].strip()
        if content_type not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                f"include: {', '.join(PATCH_TYPES)}", "UnsupportedMediaType")
        patch = request.json()
        if content_type == "application/json-patch+json":
            return lambda current: json_patch(current, patch)
        if content_type == "application/merge-patch+json":
            return lambda current: json_merge_patch(current, patch)
        if not isinstance(patch, dict):
            raise errors.bad_request("the patch must be a JSON object")
        return lambda current: strategic_merge_patch(current, patch, route.resource.key)

    def _patch(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        patcher = self._patcher(request, route)
        server_side_apply = request.header("content-type").startswith("application/apply-patch")
        if server_side_apply and not request.param("fieldManager"):
            raise errors.bad_request("PATCH, application/apply-patch+yaml requests require fieldManager to be set")
        namespace = self._namespace(route)
        creating = server_side_apply and self.registry.store.get(
            self.registry.key(route.resource, namespace, route.name)) is None
        patched = self.registry.patch(route.resource, namespace, route.name, patcher,
                                      _dry_run(request), create_missing=server_side_apply)
        return Response.json(patched, 201 if creating else 200)

    def _delete_options(self, request: Request) -> DeleteOptions:
        body = request.json_or_none() or {}
        if not isinstance(body, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        policy = request.param("propagationPolicy") or body.get("propagationPolicy")
        orphan = request.param("orphanDependents") or body.get("orphanDependents")
        if policy is None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy not in PROPAGATION_POLICIES:
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
        return DeleteOptions(_dry_run(request, body), policy, body.get("preconditions") or {})

    def _delete(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        answer = self.registry.delete(route.resource, self._namespace(route), route.name,
                                      self._delete_options(request))
        return Response.json(answer)

    def _delete_collection(self, request: Request, route: Route) -> Response:
        labels, fields = self._selectors(request, route)
        deleted, version = self.registry.delete_collection(
            route.resource, route.namespace, labels, fields, self._delete_options(request))
        return Response.json({"kind": route.resource.list_kind, "apiVersion": route.resource.api_version,
                              "metadata": {"resourceVersion": str(version)}, "items": deleted})

    # -- subresources --------------------------------------------------------------------

    def _subresource(self, request: Request, route: Route, verb: str) -> Response:
        assert route.name is not None
        sub = route.resource.subresource(route.subresource)
        if sub is None or verb not in sub.verbs:
            raise _method_not_allowed()
        namespace = self._namespace(route)
        if route.subresource == "log":
            return self._log(request, route)
        if route.subresource == "scale":
            return self._scale(request, route, verb)
        if route.subresource == "binding":
            return Response.json(subresources.bind_pod(self.registry, route.resource, namespace,
                                                       route.name, request.json()), 201)
        if verb == "get":
            return Response.json(self.registry.get(route.resource, namespace, route.name))
        if verb == "update":
            return Response.json(self.registry.update(route.resource, namespace, route.name, request.json(),
                                                      _dry_run(request), subresource=route.subresource))
        return Response.json(self.registry.patch(route.resource, namespace, route.name,
                                                 self._patcher(request, route), _dry_run(request),
                                                 subresource=route.subresource))

    def _scale(self, request: Request, route: Route, verb: str) -> Response:
        assert route.name is not None
        namespace = self._namespace(route)
        if verb == "get":
            return Response.json(subresources.get_scale(self.registry, route.resource, namespace, route.name))
        if verb == "update":
            return Response.json(subresources.update_scale(self.registry, route.resource, namespace, route.name,
                                                           request.json(), _dry_run(request)))
        patcher = self._patcher(request, route)
        return Response.json(subresources.patch_scale(self.registry, route.resource, namespace, route.name,
                                                      patcher, _dry_run(request)))

    def _log(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        namespace = self._namespace(route)
        pod = self.registry.get(route.resource, namespace, route.name)
        container = _log_container(pod, request.param("container"))
        previous = request.flag("previous")
        text = self.logs.read((namespace, route.name, container, previous))
        if text is None:
            text = _missing_log(pod, container, previous)
        return Response.text(tail(text, request.int_param("tailLines"), request.int_param("limitBytes")))


def _container_names(pod: dict[str, Any], field: str) -> list[str]:
    return [str(c.get("name")) for c in (pod.get("spec") or {}).get(field) or []]


def _log_container(pod: dict[str, Any], wanted: str | None) -> str:
    name = pod["metadata"]["name"]
    containers = _container_names(pod, "containers")
    others = _container_names(pod, "initContainers") + _container_names(pod, "ephemeralContainers")
    if not wanted:
        if len(containers) == 1:
            return containers[0]
        choices = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if others:
            choices += f" or one of the init containers: [{' '.join(others)}]"
        raise errors.bad_request(choices)
    if wanted not in containers + others:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _missing_log(pod: dict[str, Any], container: str, previous: bool) -> str:
    """What the kubelet answers for a container that never wrote anything."""
    name = pod["metadata"]["name"]
    if previous:
        raise errors.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (entry.get("state") or {}).get("waiting") or {}
        if entry.get("name") == container and waiting.get("reason") in ("ContainerCreating", "PodInitializing"):
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                     f'{waiting["reason"]}')
    return ""
