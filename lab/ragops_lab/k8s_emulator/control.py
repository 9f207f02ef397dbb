"""The lab's control endpoints under /_emulator/: faults, pod logs and reset."""

from __future__ import annotations

from .errors import ApiError, bad_request
from .faults import FaultInjector, rule_from_json
from .http import Request, Response
from .logs import LogStore
from .registry import Registry

PREFIX = "/_emulator/"


class ControlApi:
    def __init__(self, registry: Registry, faults: FaultInjector, logs: LogStore) -> None:
        self.registry = registry
        self.faults = faults
        self.logs = logs

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path[len(PREFIX):].split("/") if p]
        if parts == ["faults"]:
            return self._faults(request)
        if parts and parts[0] == "logs":
            return self._logs(request, parts[1:])
        if parts == ["reset"] and request.method == "POST":
            self.registry.reset()
            self.faults.clear()
            self.logs.clear()
            return Response.json({"reset": True})
        raise ApiError(404, f"no control endpoint {request.method} {request.path}", "NotFound")

    def _faults(self, request: Request) -> Response:
        if request.method == "GET":
            return Response.json({"faults": self.faults.active()})
        if request.method == "DELETE":
            self.faults.clear()
            return Response.json({"faults": []})
        if request.method == "POST":
            body = request.json()
            rules = [rule_from_json(spec) for spec in (body if isinstance(body, list) else [body])]
            for rule in rules:
                self.faults.add(rule)
            return Response.json({"faults": [r.to_dict() for r in rules]}, 201)
        raise ApiError(405, "faults accept GET, POST and DELETE", "MethodNotAllowed")

    def _logs(self, request: Request, parts: list[str]) -> Response:
        if request.method == "DELETE" and not parts:
            self.logs.clear()
            return Response.json({"logs": "cleared"})
        if request.method not in ("PUT", "POST") or len(parts) != 3:
            raise bad_request("set logs with PUT or POST /_emulator/logs/<namespace>/<pod>/<container>")
        namespace, pod, container = parts
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request("log text must be UTF-8") from exc
        self.logs.set((namespace, pod, container, request.flag("previous")), text, request.flag("append"))
        return Response.json({"namespace": namespace, "pod": pod, "container": container,
                              "previous": request.flag("previous"), "bytes": len(request.body)})
