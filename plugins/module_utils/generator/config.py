# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generator's flags (provider, weights, fallback, throttle): pure planning of a
change.

A flag lives either in an env var of the generator Deployment's container or in a key of
a flags ConfigMap.  Before the first change of a flag group, its values are recorded in
an annotation (``ragops.io/previous-<group>``) on the object that holds the flags, so
that ``state: restored`` puts them back; once the flags are back at those values the
annotation is removed.  Values that come from a Secret are never copied: they are
recorded as the reference and shown as ``<secret>``.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError

ANNOTATION_PREFIX = "ragops.io/previous-"
SECRET_SHOWN = "<secret>"
REFERENCE_SHOWN = "<from configmap>"
# A flag's value: text, None for "not set", or an env ``valueFrom`` reference.
Value = t.Union[str, None, t.Dict[str, t.Any]]
Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class FlagPlan:
    """The object with the flags changed, the flags before and after, and what was
    recorded."""

    obj: Obj
    before: t.Dict[str, Value]
    after: t.Dict[str, Value]
    previous: t.Dict[str, Value]
    changed: bool

    def shown(self, which: str) -> t.Dict[str, str | None]:
        return {name: shown(value) for name, value in getattr(self, which).items()}


def shown(value: Value) -> str | None:
    """A flag's value as it may be returned: a reference is never resolved."""
    if isinstance(value, dict):
        return SECRET_SHOWN if "secretKeyRef" in value else REFERENCE_SHOWN
    return value


def annotation_key(group: str) -> str:
    return ANNOTATION_PREFIX + group


def container_of(deployment: Obj, container: str | None) -> Obj:
    """The named container of the Deployment's pod template, or its first one."""
    containers = (
        deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
        or []
    )
    for candidate in containers:
        if container is None or candidate.get("name") == container:
            return t.cast(Obj, candidate)
    name = deployment.get("metadata", {}).get("name", "")
    raise RecoveryError(
        "Failed to find container %s in Deployment %s" % (container or "(any)", name),
        resource="Deployment %s" % name,
        reason="no such container",
        next_step="Set container to one of: %s"
        % ", ".join(c.get("name", "") for c in containers),
    )


def read_env(
    deployment: Obj, container: str | None, names: t.Iterable[str]
) -> t.Dict[str, Value]:
    env = {
        item.get("name"): item
        for item in container_of(deployment, container).get("env") or []
    }
    values: t.Dict[str, Value] = {}
    for name in names:
        item = env.get(name)
        values[name] = (
            None
            if item is None
            else item.get("valueFrom") or str(item.get("value", ""))
        )
    return values


def write_env(
    deployment: Obj, container: str | None, desired: t.Mapping[str, Value]
) -> None:
    """Set (or remove, for ``None``) env vars in place, keeping the order of the
    others."""
    target = container_of(deployment, container)
    removed = {name for name, value in desired.items() if value is None}
    env: t.List[Obj] = [
        item for item in target.get("env") or [] if item.get("name") not in removed
    ]
    for name, value in desired.items():
        if value is None:
            continue
        item = (
            {"name": name, "valueFrom": value}
            if isinstance(value, dict)
            else {"name": name, "value": value}
        )
        for index, existing in enumerate(env):
            if existing.get("name") == name:
                env[index] = item
                break
        else:
            env.append(item)
    target["env"] = env


def read_data(configmap: Obj, names: t.Iterable[str]) -> t.Dict[str, Value]:
    data = configmap.get("data") or {}
    return {name: data.get(name) for name in names}


def write_data(configmap: Obj, desired: t.Mapping[str, Value]) -> None:
    data = dict(configmap.get("data") or {})
    for name, value in desired.items():
        if value is None:
            data.pop(name, None)
        elif isinstance(value, dict):
            raise RecoveryError(
                "Cannot store a reference in ConfigMap key %s" % name, resource=name
            )
        else:
            data[name] = value
    configmap["data"] = data


def recorded(obj: Obj, group: str) -> t.Dict[str, Value] | None:
    """The values recorded before the group's first change, or ``None`` when there
    are none."""
    text = (obj.get("metadata", {}).get("annotations") or {}).get(annotation_key(group))
    if text is None:
        return None
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise RecoveryError(
            "Failed to read annotation %s: not a JSON object" % annotation_key(group),
            resource=annotation_key(group),
            reason="invalid annotation",
            next_step="Fix or remove the annotation by hand (kubectl annotate ... %s-)"
            % annotation_key(group),
        )
    return values


def _record(
    obj: Obj, group: str, previous: t.Mapping[str, Value], after: t.Mapping[str, Value]
) -> None:
    """Keep ``previous`` in the annotation, or drop it once the flags are back at
    those values."""
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    back = set(previous) <= set(after) and all(
        after[name] == value for name, value in previous.items()
    )
    if back:
        annotations.pop(annotation_key(group), None)
    else:
        annotations[annotation_key(group)] = json.dumps(
            dict(previous), sort_keys=True, separators=(",", ":")
        )
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)


def plan(
    obj: Obj,
    group: str,
    desired: t.Mapping[str, Value],
    *,
    container: str | None = None,
    report: t.Iterable[str] = (),
) -> FlagPlan:
    """``obj`` (a Deployment, or a flags ConfigMap) with ``desired`` set.

    The values before the group's first change stay recorded; nothing is written when
    the flags already have the desired values.  The flags named in ``report`` are read
    (and reported) too.
    """
    is_configmap = obj.get("kind") == "ConfigMap"
    names = [*report, *(name for name in desired if name not in report)]
    before = read_data(obj, names) if is_configmap else read_env(obj, container, names)
    after = dict(before, **desired)
    previous = dict(recorded(obj, group) or {})
    if after == before:
        return FlagPlan(obj, before, after, previous, False)
    for name in desired:
        previous.setdefault(name, before[name])
    if is_configmap:
        write_data(obj, desired)
    else:
        write_env(obj, container, desired)
    _record(obj, group, previous, after)
    return FlagPlan(obj, before, after, previous, True)


def restore_values(obj: Obj, group: str) -> t.Dict[str, Value]:
    """What ``state: restored`` sets: the recorded values, or nothing when none were
    recorded."""
    return dict(recorded(obj, group) or {})


def parse_weights(text: str | None) -> t.Dict[str, int]:
    """``primary:25,backup:75`` as ``{"primary": 25, "backup": 75}``; empty for none."""
    weights: t.Dict[str, int] = {}
    for term in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = term.partition(":")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise RecoveryError(
                "Invalid provider weights %r: expected name:percent pairs" % text,
                reason="invalid weights",
                next_step="Write weights as primary:25,backup:75",
            )
        weights[name.strip()] = int(value)
    return weights


def format_weights(weights: t.Mapping[str, int]) -> str:
    """The env form of ``weights`` in the order given; they must add up to 100."""
    for name, weight in weights.items():
        if weight < 0 or weight > 100:
            raise RecoveryError(
                "Invalid weight %d for provider %s: must be 0 to 100" % (weight, name),
                reason="invalid weights",
            )
    if weights and sum(weights.values()) != 100:
        raise RecoveryError(
            "Provider weights must add up to 100, not %d" % sum(weights.values()),
            reason="invalid weights",
            next_step="For example: primary: 25, backup: 75",
        )
    return ",".join("%s:%d" % (name, weight) for name, weight in weights.items())
