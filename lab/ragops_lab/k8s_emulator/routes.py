"""Map API paths to a resource, a namespace, a name and a subresource."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ApiError
from .resources import ResourceType, find_resource, resources_in


@dataclass(frozen=True)
class Route:
    resource: ResourceType
    namespace: str | None  # None: every namespace (or a cluster-scoped resource)
    name: str | None
    subresource: str = ""
    legacy_watch: bool = False

    @property
    def fault_resource(self) -> str:
        return f"{self.resource.key}/{self.subresource}" if self.subresource else self.resource.key


def not_found_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})


def _group_version(segments: list[str]) -> tuple[str, str, list[str]] | None:
    if len(segments) >= 2 and segments[0] == "api":
        return "", segments[1], segments[2:]
    if len(segments) >= 3 and segments[0] == "apis":
        return segments[1], segments[2], segments[3:]
    return None


def _namespaced_route(group: str, version: str, rest: list[str], watch: bool) -> Route | None:
    """/namespaces/<ns>/<plural>[/<name>[/<subresource>]]"""
    resource = find_resource(group, version, rest[2])
    if resource is None or not resource.namespaced or len(rest) > 5:
        return None
    name = rest[3] if len(rest) > 3 else None
    sub = rest[4] if len(rest) > 4 else ""
    return Route(resource, rest[1], name, sub, watch)


def _plain_route(group: str, version: str, rest: list[str], watch: bool) -> Route | None:
    """/<plural>[/<name>[/<subresource>]]: cluster-scoped objects or lists across namespaces."""
    resource = find_resource(group, version, rest[0])
    if resource is None or len(rest) > 3:
        return None
    if resource.namespaced and len(rest) > 1:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    return Route(resource, None, name, sub, watch)


def parse_route(path: str) -> Route:
    segments = [s for s in path.split("/") if s]
    parsed = _group_version(segments)
    if parsed is None or not parsed[2] or not resources_in(parsed[0], parsed[1]):
        raise not_found_path()
    group, version, rest = parsed
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    if not rest:
        raise not_found_path()
    route = None
    if rest[0] == "namespaces" and len(rest) >= 3 and find_resource(group, version, rest[2]) is not None:
        route = _namespaced_route(group, version, rest, watch)
    else:
        route = _plain_route(group, version, rest, watch)
    if route is None:
        raise not_found_path()
    if route.subresource and route.resource.subresource(route.subresource) is None:
        raise not_found_path()
    return route
