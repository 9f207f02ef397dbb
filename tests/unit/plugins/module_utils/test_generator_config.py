# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning generator flag changes: recorded previous values, restore, secrets never shown."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
    config as gc,
)
from ansible_collections.ragops.recovery.plugins.module_utils.generator import providers

SECRET_REF = {"secretKeyRef": {"name": "rag-provider-keys", "key": "primary"}}


def deployment() -> dict[str, t.Any]:
    env = [
        {"name": "PROVIDER", "value": "primary"},
        {"name": "PROVIDER_KEY_PRIMARY", "valueFrom": SECRET_REF},
    ]
    return {
        "kind": "Deployment",
        "metadata": {"name": "generator"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "generator", "env": env}]}}
        },
    }


def env_of(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_switch_records_previous_and_restore_drops_the_record() -> None:
    switched = gc.plan(
        deployment(), "provider", {"PROVIDER": "backup", "PROVIDER_WEIGHTS": None}
    )
    assert switched.changed and env_of(switched.obj)["PROVIDER"] == "backup"
    recorded = json.loads(
        switched.obj["metadata"]["annotations"]["ragops.io/previous-provider"]
    )
    assert recorded == {"PROVIDER": "primary", "PROVIDER_WEIGHTS": None}
    ramp = gc.plan(
        copy.deepcopy(switched.obj),
        "provider",
        {"PROVIDER_WEIGHTS": "primary:25,backup:75"},
    )
    assert ramp.previous == {"PROVIDER": "primary", "PROVIDER_WEIGHTS": None}
    again = gc.plan(
        copy.deepcopy(ramp.obj),
        "provider",
        {"PROVIDER_WEIGHTS": "primary:25,backup:75"},
    )
    assert not again.changed
    restored = gc.plan(
        copy.deepcopy(ramp.obj), "provider", gc.restore_values(ramp.obj, "provider")
    )
    assert env_of(restored.obj) == env_of(deployment())
    assert "annotations" not in restored.obj["metadata"]


def test_secret_values_are_shown_as_references_only() -> None:
    step = gc.plan(
        deployment(), "provider", {"PROVIDER_KEY_PRIMARY": "new"}, report=["PROVIDER"]
    )
    assert step.shown("before") == {
        "PROVIDER": "primary",
        "PROVIDER_KEY_PRIMARY": "<secret>",
    }
    restored = gc.plan(step.obj, "provider", gc.restore_values(step.obj, "provider"))
    assert env_of(restored.obj)["PROVIDER_KEY_PRIMARY"] == SECRET_REF


def test_configmap_flags_and_unknown_container() -> None:
    flags = {
        "kind": "ConfigMap",
        "metadata": {"name": "flags"},
        "data": {"FALLBACK_MODE": "off"},
    }
    step = gc.plan(flags, "fallback", {"FALLBACK_MODE": "cache"})
    assert step.obj["data"] == {"FALLBACK_MODE": "cache"} and step.previous == {
        "FALLBACK_MODE": "off"
    }
    with pytest.raises(RecoveryError, match="container other"):
        gc.plan(deployment(), "provider", {"PROVIDER": "x"}, container="other")


def test_weights() -> None:
    assert gc.parse_weights("primary:25, backup:75") == {"primary": 25, "backup": 75}
    assert gc.parse_weights("") == {}
    assert gc.format_weights({"primary": 10, "backup": 90}) == "primary:10,backup:90"
    for bad in ({"primary": 10}, {"primary": 120, "backup": -20}):
        with pytest.raises(RecoveryError):
            gc.format_weights(bad)
    with pytest.raises(RecoveryError):
        gc.parse_weights("primary=25")


@pytest.mark.parametrize(
    "status, error, state",
    [
        (200, "", providers.HEALTHY),
        (503, "down", providers.OUTAGE),
        (None, "no answer within 2s", providers.OUTAGE),
        (429, "", providers.RATE_LIMITED),
        (401, "", providers.AUTH_FAILURE),
        (403, "", providers.AUTH_FAILURE),
        (200, "the answer has no choices", providers.DEGRADED),
    ],
)
def test_classification(status: int | None, error: str, state: str) -> None:
    retry = 2.0 if status == 429 else None
    verdict = providers.classify(
        [
            providers.Probe("models", 200, 0.01),
            providers.Probe("completion", status, 0.02, error, retry),
        ],
        slow_after=1,
    )
    assert verdict.state == state
    assert verdict.retry_after == retry
    assert verdict.latency()["max"] == 0.02


def test_slow_answers_are_degraded_and_auth_wins() -> None:
    assert (
        providers.classify([providers.Probe("models", 200, 3.0)], slow_after=1).state
        == providers.DEGRADED
    )
    mixed = [
        providers.Probe("models", 503, 0.1),
        providers.Probe("completion", 401, 0.1),
    ]
    assert providers.classify(mixed, 1).state == providers.AUTH_FAILURE
    assert providers.classify([], 1).state == providers.OUTAGE
    assert providers.parse_retry_after("7") == 7.0
    assert (
        providers.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
        == 10.0
    )
    assert providers.parse_retry_after("soon") is None
