# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generator's flags as they stand: which provider, what share each provider
gets, whether it answers from the cache, whether it is throttled.

Read-only: the flags are read where ``provider_switch``, ``generator_fallback`` and
``traffic_throttle`` write them (the Deployment's env, or a flags ConfigMap), with the
same names, and the groups the runbook changed are those with values recorded in a
``ragops.io/previous-<group>`` annotation.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field, replace

from ..errors import RecoveryError
from ..k8s.client import K8sClient
from ..k8s.readiness import deployment_ready
from ..k8s.resources import Ref
from . import config
from .flags import FlagTarget

Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class FlagNames:
    """The env var (or ConfigMap key) of each flag, as the flag modules name them."""

    provider: str = "PROVIDER"
    weights: str = "PROVIDER_WEIGHTS"
    fallback: str = "FALLBACK_MODE"
    rps: str = "THROTTLE_RPS"
    max_concurrency: str = "MAX_CONCURRENCY"
    long_request_queue: str = "LONG_REQUEST_QUEUE"

    def throttle(self) -> t.Dict[str, str]:
        return {
            "rps": self.rps,
            "max_concurrency": self.max_concurrency,
            "long_request_queue": self.long_request_queue,
        }

    def all(self) -> t.List[str]:
        return [self.provider, self.weights, self.fallback, *self.throttle().values()]


@dataclass(frozen=True)
class GeneratorState:
    """The flags read, and what they mean for the runbook."""

    source: str
    exists: bool
    primary: str
    ready: bool | None = None
    provider: str | None = None
    weights: t.Dict[str, int] = field(default_factory=dict)
    weights_error: str | None = None
    fallback: str = "off"
    throttle: t.Dict[str, str] = field(default_factory=dict)
    flags: t.Dict[str, str | None] = field(default_factory=dict)
    changed_groups: t.List[str] = field(default_factory=list)

    @property
    def on_primary(self) -> bool:
        return self.provider in (None, "", self.primary) and not self.weights

    @property
    def safe_mode(self) -> bool:
        """Anything but the primary alone, unthrottled, answering itself."""
        return self.exists and (
            not self.on_primary or self.fallback != "off" or bool(self.throttle)
        )

    def to_dict(self) -> Obj:
        return {
            "source": self.source,
            "exists": self.exists,
            "ready": self.ready,
            "primary": self.primary,
            "provider": self.provider,
            "on_primary": self.on_primary,
            "weights": dict(self.weights),
            "weights_error": self.weights_error,
            "fallback": self.fallback,
            "throttle": dict(self.throttle),
            "throttled": bool(self.throttle),
            "safe_mode": self.safe_mode,
            "flags": dict(self.flags),
            "changed_groups": list(self.changed_groups),
        }


def changed_groups(obj: Obj) -> t.List[str]:
    """The flag groups whose values before the runbook's first change are recorded."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    prefix = config.ANNOTATION_PREFIX
    return sorted(key[len(prefix) :] for key in annotations if key.startswith(prefix))


def _weights(text: str | None) -> t.Tuple[t.Dict[str, int], str | None]:
    try:
        return config.parse_weights(text), None
    except RecoveryError as error:
        return {}, error.msg


def flags_state(
    obj: Obj,
    names: FlagNames,
    *,
    primary: str,
    source: str,
    container: str | None = None,
) -> GeneratorState:
    """What the Deployment (or the flags ConfigMap) ``obj`` says about the flags."""
    wanted = names.all()
    if obj.get("kind") == "ConfigMap":
        values = config.read_data(obj, wanted)
        ready = None
    else:
        values = config.read_env(obj, container, wanted)
        ready = deployment_ready(obj)
    shown = {name: config.shown(value) for name, value in values.items()}
    weights, weights_error = _weights(shown[names.weights])
    throttle = {
        limit: str(shown[name])
        for limit, name in names.throttle().items()
        if shown[name] not in (None, "", "off")
    }
    return GeneratorState(
        source=source,
        exists=True,
        primary=primary,
        ready=ready,
        provider=shown[names.provider],
        weights=weights,
        weights_error=weights_error,
        fallback=shown[names.fallback] or "off",
        throttle=throttle,
        flags={name: value for name, value in shown.items() if value is not None},
        changed_groups=changed_groups(obj),
    )


def read_state(
    client: K8sClient, target: FlagTarget, names: FlagNames, primary: str
) -> GeneratorState:
    """The generator's flags from the cluster; ``exists`` is false when the object
    holding them is missing."""
    ref = target.ref()
    obj = client.get_or_none(ref)
    if obj is None:
        return GeneratorState(source=str(ref), exists=False, primary=primary)
    state = flags_state(
        obj, names, primary=primary, source=str(ref), container=target.container
    )
    if target.flags_configmap:
        ref = Ref("Deployment", target.deployment, target.namespace)
        deployment = client.get_or_none(ref)
        state = replace(
            state, ready=deployment_ready(deployment) if deployment else None
        )
    return state
