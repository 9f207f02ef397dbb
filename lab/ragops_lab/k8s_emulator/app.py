"""The emulator's request pipeline: health, authentication, control, discovery, faults, resources."""

from __future__ import annotations

import hmac
import threading
from pathlib import Path
from typing import Any

from . import discovery
from .api import ResourceApi, verb_of
from .control import PREFIX as CONTROL_PREFIX
from .control import ControlApi
from .errors import ApiError
from .faults import FaultInjector, fault_error
from .http import Request, Response, Stream
from .logs import LogStore
from .registry import Registry
from .routes import Route, not_found_path, parse_route
from .store import Store

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
FORBIDDEN_USER = "system:serviceaccount:lab:forbidden"
ROOT_PATHS = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]


class Emulator:
    """All server state; ``serve`` answers one request, whatever transport carried it."""

    def __init__(self, token: str, forbidden_token: str | None = None, log_dir: Path | None = None) -> None:
        if not token:
            raise ValueError("a bearer token is required")
        self.token = token
        self.forbidden_token = forbidden_token
        self.stopping = threading.Event()
        self.store = Store()
        self.registry = Registry(self.store)
        self.registry.bootstrap()
        self.faults = FaultInjector()
        self.logs = LogStore(log_dir)
        self.resources = ResourceApi(self.registry, self.logs, self.stopping)
        self.control = ControlApi(self.registry, self.faults, self.logs)

    def stop(self) -> None:
        self.stopping.set()
        self.store.close()

    def serve(self, request: Request, server_address: str) -> Response | Stream:
        if request.path in OPEN_PATHS:
            if request.path == "/version":
                return Response.json(discovery.version())
            return Response.text("ok")
        forbidden = self._authenticate(request)
        if request.path.startswith(CONTROL_PREFIX):
            if forbidden:
                raise ApiError(403, f'forbidden: User "{FORBIDDEN_USER}" cannot use the emulator controls')
            return self.control.handle(request)
        found = self._discovery(request, server_address)
        if found is not None:
            if forbidden:
                raise ApiError(403, f'forbidden: User "{FORBIDDEN_USER}" cannot get path "{request.path}"',
                               "Forbidden", {})
            return found
        route = parse_route(request.path)
        verb = verb_of(request, route)
        if forbidden:
            raise self._forbidden(route, verb)
        self._inject_fault(route, verb)
        return self.resources.handle(request, route)

    def _authenticate(self, request: Request) -> bool:
        """Raise 401 for a missing or unknown token; True when the token is the forbidden one."""
        scheme, _, presented = request.header("authorization").partition(" ")
        presented = presented.strip()
        if scheme.lower() == "bearer" and presented:
            if hmac.compare_digest(presented, self.token):
                return False
            if self.forbidden_token and hmac.compare_digest(presented, self.forbidden_token):
                return True
        raise ApiError(401, "Unauthorized", "Unauthorized")

    @staticmethod
    def _forbidden(route: Route, verb: str) -> ApiError:
        resource = route.resource
        target = f"{resource.plural}/{route.subresource}" if route.subresource else resource.plural
        where = f' in the namespace "{route.namespace}"' if route.namespace else ""
        message = (f'{resource.plural} is forbidden: User "{FORBIDDEN_USER}" cannot {verb} resource '
                   f'"{target}" in API group "{resource.group}"{where}')
        details = {"kind": resource.plural, **({"name": route.name} if route.name else {})}
        if resource.group:
            details["group"] = resource.group
        return ApiError(403, message, "Forbidden", details)

    def _inject_fault(self, route: Route, verb: str) -> None:
        rule = self.faults.take(verb, route.fault_resource, route.namespace or "", route.name or "")
        if rule is None:
            return
        if rule.delay:
            self.stopping.wait(rule.delay)
        if rule.status:
            raise fault_error(rule, route.fault_resource, route.name or "")

    @staticmethod
    def _discovery(request: Request, server_address: str) -> Response | None:
        """Discovery and OpenAPI documents; None when the path is not one of them."""
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        document: dict[str, Any] | None = None
        if path == "/":
            document = {"paths": ROOT_PATHS}
        elif path == "/api":
            document = discovery.api_versions(server_address)
        elif path == "/apis":
            document = discovery.api_group_list()
        elif parts[0] == "api" and len(parts) == 2:
            document = discovery.api_resource_list("", parts[1])
        elif parts[0] == "apis" and len(parts) in (2, 3):
            document = (discovery.api_group(parts[1]) if len(parts) == 2
                        else discovery.api_resource_list(parts[1], parts[2]))
        elif parts[0] == "openapi":
            document = Emulator._openapi(parts[1:])
        else:
            return None
        if document is None:
            raise not_found_path()
        if request.method != "GET":
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           "MethodNotAllowed", {})
        return Response.json(document)

    @staticmethod
    def _openapi(parts: list[str]) -> dict[str, Any] | None:
        if parts == ["v3"]:
            return discovery.openapi_v3_index()
        if len(parts) == 3 and parts[:2] == ["v3", "api"]:
            return discovery.openapi_v3_document("", parts[2])
        if len(parts) == 4 and parts[:2] == ["v3", "apis"]:
            return discovery.openapi_v3_document(parts[2], parts[3])
        return None
