"""Label and field selectors with the syntax and errors of the real API server."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SET_REQUIREMENT = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQUALITY = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=()]*)$")

COMMON_FIELDS = ("metadata.name", "metadata.namespace")
# Field labels each kind supports beyond metadata.name/namespace, as registered by the server.
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    ),
    "namespaces": ("status.phase",),
    "secrets": ("type",),
    "jobs.batch": ("status.successful",),
    "replicasets.apps": ("status.replicas",),
}


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # one of: =, !=, in, notin, exists, !
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` value set."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def _check_key(key: str, source: str) -> str:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key \"{key}\" in \"{source}\"")
    return key


def _check_value(value: str, source: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value: \"{value}\" in \"{source}\"")
    return value


def _parse_requirement(term: str, source: str) -> Requirement:
    match = _SET_REQUIREMENT.match(term)
    if match:
        values = tuple(_check_value(v.strip(), source) for v in match["values"].split(",") if v.strip())
        return Requirement(_check_key(match["key"], source), match["op"], values)
    match = _EQUALITY.match(term)
    if match:
        op = "=" if match["op"] in ("=", "==") else "!="
        return Requirement(_check_key(match["key"], source), op, (_check_value(match["value"], source),))
    if term.startswith("!"):
        return Requirement(_check_key(term[1:].strip(), source), "!")
    return Requirement(_check_key(term, source), "exists")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form used by ``?labelSelector=``; raise 400 on bad syntax."""
    if not text or not text.strip():
        return LabelSelector()
    requirements = []
    for term in _split_top_level(text):
        if not term:
            raise bad_request(f"unable to parse requirement: found '', expected: identifier in \"{text}\"")
        requirements.append(_parse_requirement(term, text))
    return LabelSelector(tuple(requirements))


def selector_from_object(selector: dict[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (matchLabels/matchExpressions) for matching."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], operators[expr["operator"]], tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negated: bool

    def matches(self, obj: dict[str, Any]) -> bool:
        equal = field_value(obj, self.field) == self.value
        return equal != self.negated


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(req.matches(obj) for req in self.requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """Render a field the way the server's field-label conversion does (strings, booleans lowercase)."""
    if path == "source":
        return str((obj.get("source") or {}).get("component", ""))
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str | None, resource_key: str) -> FieldSelector:
    """Parse ``?fieldSelector=``; unsupported field labels are rejected with 400 like the server."""
    if not text or not text.strip():
        return FieldSelector()
    allowed = COMMON_FIELDS + EXTRA_FIELDS.get(resource_key, ())
    reqs = []
    for term in _split_top_level(text):
        match = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match.group(1).strip(), match.group(2), match.group(3).strip()
        if field not in allowed:
            raise ApiError(400, f'field label not supported: {field}', "BadRequest")
        reqs.append(FieldRequirement(field, value, op == "!="))
    return FieldSelector(tuple(reqs))


def selector_to_string(selector: dict[str, Any] | None) -> str:
    """The string form of a metav1.LabelSelector (Scale.status.selector, printed columns)."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            terms.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            terms.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            terms.append(expr["key"])
        elif op == "DoesNotExist":
            terms.append(f"!{expr['key']}")
    return ",".join(terms)
