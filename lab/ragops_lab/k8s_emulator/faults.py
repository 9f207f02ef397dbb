"""Injected failures: the next N matching requests answer with an error or slowly."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ApiError, bad_request

VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"})
STATUSES = frozenset({0, 401, 403, 404, 409, 429, 500, 503, 504})


@dataclass
class FaultRule:
    """One rule; ``times`` counts down, -1 keeps the rule until it is cleared."""

    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    name: str | None = None
    status: int = 500
    times: int = 1
    delay: float = 0.0
    retry_after: int | None = None
    message: str | None = None

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        if self.verb != "*" and self.verb != verb and not (self.verb == "delete" and verb == "deletecollection"):
            return False
        if self.resource != "*" and self.resource not in _resource_names(resource):
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.name is None or self.name == name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resource_names(resource: str) -> set[str]:
    """A rule for "deployments" also matches "deployments.apps" and "deployments/scale"."""
    base, _, sub = resource.partition("/")
    plural = base.split(".", 1)[0]
    names = {resource, base, plural}
    if sub:
        names |= {f"{plural}/{sub}"}
    return names


def rule_from_json(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise bad_request("a fault is a JSON object")
    unknown = set(spec) - set(FaultRule.__dataclass_fields__)
    if unknown:
        raise bad_request(f"unknown fault fields: {sorted(unknown)}")
    rule = FaultRule(**spec)
    if rule.verb not in VERBS:
        raise bad_request(f"verb must be one of {sorted(VERBS)}")
    if rule.status not in STATUSES:
        raise bad_request(f"status must be one of {sorted(STATUSES)}")
    if not isinstance(rule.times, int) or rule.times == 0 or rule.times < -1:
        raise bad_request("times must be a positive integer, or -1 for every request")
    if not isinstance(rule.delay, (int, float)) or rule.delay < 0:
        raise bad_request("delay must be a non-negative number of seconds")
    return rule


def fault_error(rule: FaultRule, resource: str, name: str) -> ApiError:
    plural = resource.split("/", 1)[0]
    if rule.status == 409:
        return ApiError(409, rule.message or f'Operation cannot be fulfilled on {plural} "{name}": the object '
                        "has been modified; please apply your changes to the latest version and try again",
                        "Conflict", {"name": name, "kind": plural})
    if rule.status == 429:
        retry = rule.retry_after if rule.retry_after is not None else 1
        return ApiError(429, rule.message or "Too many requests, please try again later.", "TooManyRequests",
                        {"retryAfterSeconds": retry}, {"Retry-After": str(retry)})
    defaults = {401: "Unauthorized", 403: f"{plural} is forbidden: injected fault",
                404: f'{plural} "{name}" not found', 500: "Internal error occurred: injected fault",
                503: "the server is currently unable to handle the request",
                504: "the server was unable to return a response in the time allotted"}
    details = {"name": name, "kind": plural} if rule.status == 404 else None
    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
    return ApiError(rule.status, rule.message or defaults[rule.status], None, details, headers)


class FaultInjector:
    """Thread-safe list of rules consulted before each API request is served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def take(self, verb: str, resource: str, namespace: str, name: str) -> FaultRule | None:
        """Consume one use of the first matching rule, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(verb, resource, namespace, name):
                    if rule.times > 0:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule
        return None
