#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: provider_check
short_description: Probe an OpenAI-compatible LLM provider and classify its health
version_added: 0.1.0
description:
  - Lists the provider's models (C(GET /v1/models)) and asks for a one-token chat completion
    (C(POST /v1/chat/completions)) with the provider's API key, and classifies what came back as
    V(healthy), V(degraded) (slower than O(slow_after), or a malformed answer), V(rate_limited) (HTTP 429,
    with the C(Retry-After) seconds), V(auth_failure) (HTTP 401 or 403) or V(outage) (5xx, other
    errors, no answer within O(timeout), connection refused).
  - Used before a switch (never switch to a backup that is itself down) and on a schedule as the
    warm-failover check of the backup's credentials.
  - The API key comes from a Kubernetes Secret (O(api_key_secret)) or from O(api_key). It is sent only
    in the C(Authorization) header and never returned or logged; error bodies are scrubbed.
  - Read-only. A provider that hangs costs one O(timeout), since no further check is sent after one
    got no answer.
author:
  - ragops.recovery maintainers (@ragops)
options:
  name:
    description:
      - Name of the provider, as the generator knows it (for example V(backup)).
      - One of O(name) (with O(url)) and O(providers) is required.
    type: str
  url:
    description: Base URL of the provider's OpenAI-compatible API, without C(/v1).
    type: str
  api_key:
    description:
      - The provider's API key. Mutually exclusive with O(api_key_secret).
    type: str
  api_key_secret:
    description:
      - Read the API key from a key of a Secret in O(namespace).
    type: dict
    suboptions:
      name:
        description: Name of the Secret.
        type: str
        required: true
      key:
        description: Data key of the API key in the Secret.
        type: str
        required: true
  providers:
    description:
      - Check several providers in one task, all at the same time (a provider that hangs costs one
        O(timeout) for all of them), instead of O(name), O(url), O(api_key) and O(api_key_secret).
      - Each item names a provider once, with its O(url) and its key as O(api_key) or
        O(api_key_secret) (or neither, for a provider without a key).
      - A provider whose key cannot be read from its Secret is not probed and is reported as
        V(auth_failure) (C(API key not read) and why); the others are still checked. With O(name), the
        task fails instead.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the provider.
        type: str
        required: true
      url:
        description: Base URL of its OpenAI-compatible API, without C(/v1).
        type: str
        required: true
      api_key:
        description: Its API key. Mutually exclusive with O(providers[].api_key_secret).
        type: str
      api_key_secret:
        description: Read its API key from a key of a Secret in O(namespace).
        type: dict
        suboptions:
          name:
            description: Name of the Secret.
            type: str
            required: true
          key:
            description: Data key of the API key in the Secret.
            type: str
            required: true
  model:
    description: Model asked for the completion.
    type: str
    default: lab-model
  checks:
    description: The requests to send, in order.
    type: list
    elements: str
    choices: [models, completion]
    default: [models, completion]
  timeout:
    description: Seconds each request may take before the provider counts as down.
    type: float
    default: 10
  slow_after:
    description: Seconds after which a successful answer counts as V(degraded).
    type: float
    default: 5
  require_healthy:
    description:
      - Fail the task unless the provider is V(healthy) (for example before switching traffic to it);
        with O(providers), unless every one of them is.
    type: bool
    default: false
  provider_validate_certs:
    description: Verify the provider's TLS certificate.
    type: bool
    default: true
  provider_ca_path:
    description: CA bundle to verify the provider's certificate with.
    type: path
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: The checks only read, so they run in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.provider_switch
  - module: ragops.recovery.generator_fallback
"""

EXAMPLES = r"""
- name: Is the primary provider down, and how?
  ragops.recovery.provider_check:
    name: primary
    url: https://llm-primary.example.com
    api_key_secret:
      name: rag-provider-keys
      key: primary
  register: primary

- name: Check the primary and the backup at the same time
  ragops.recovery.provider_check:
    providers:
      - name: primary
        url: https://llm-primary.example.com
        api_key_secret: {name: rag-provider-keys, key: primary}
      - name: backup
        url: https://llm-backup.example.com
        api_key_secret: {name: rag-provider-keys, key: backup}
  register: checked
  # checked.providers.primary.healthy, checked.providers.backup.state, ...

- name: Warm-failover check of the backup's credentials (fails unless healthy)
  ragops.recovery.provider_check:
    name: backup
    url: https://llm-backup.example.com
    api_key: "{{ backup_api_key }}"
    require_healthy: true
"""

RETURN = r"""
providers:
  description: The health of each provider checked, by name, in the order given; each as RV(provider).
  returned: always
  type: dict
  sample:
    primary: {"name": "primary", "state": "outage", "healthy": false}
    backup: {"name": "backup", "state": "healthy", "healthy": true}
provider:
  description: The provider's health.
  returned: with O(name)
  type: dict
  contains:
    name:
      description: The provider's name.
      type: str
      sample: primary
    url:
      description: The base URL (scheme, host and path only).
      type: str
      sample: https://llm-primary.example.com
    state:
      description: V(healthy), V(degraded), V(rate_limited), V(auth_failure) or V(outage).
      type: str
      sample: outage
    healthy:
      description: Whether the state is V(healthy).
      type: bool
      sample: false
    reason:
      description: Why, per check that led to the state.
      type: str
      sample: "models: HTTP 503: upstream unavailable"
    retry_after:
      description: Seconds the provider asked to wait (V(rate_limited) only), else null.
      type: float
      sample: 2.0
    latency:
      description: Seconds per check, and the maximum.
      type: dict
      sample: {"models": 0.012, "completion": 0.031, "max": 0.031}
    checks:
      description: Each request sent, with its HTTP status (null without an answer) and error.
      type: list
      elements: dict
      sample: [{"check": "models", "status": 503, "latency": 0.01, "error": "unavailable", "retry_after": null}]
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator.providers import (
        Endpoint,
    )

SECRET_REF = {
    "name": {"type": "str", "required": True},
    "key": {"type": "str", "required": True, "no_log": False},
}


def argument_spec() -> argspec.ArgumentSpec:
    provider = {
        "name": {"type": "str", "required": True},
        "url": {"type": "str", "required": True},
        "api_key": {"type": "str", "no_log": True},
        "api_key_secret": {"type": "dict", "no_log": False, "options": SECRET_REF},
    }
    return argspec.ArgumentSpec(
        options={
            "name": {"type": "str"},
            "url": {"type": "str"},
            "api_key": {"type": "str", "no_log": True},
            "api_key_secret": {"type": "dict", "no_log": False, "options": SECRET_REF},
            "providers": {
                "type": "list",
                "elements": "dict",
                "options": provider,
                "mutually_exclusive": [["api_key", "api_key_secret"]],
            },
            "model": {"type": "str", "default": "lab-model"},
            "checks": {
                "type": "list",
                "elements": "str",
                "choices": ["models", "completion"],
                "default": ["models", "completion"],
            },
            "timeout": {"type": "float", "default": 10.0},
            "slow_after": {"type": "float", "default": 5.0},
            "require_healthy": {"type": "bool", "default": False},
            "provider_validate_certs": {"type": "bool", "default": True},
            "provider_ca_path": {"type": "path"},
        },
        groups=("k8s",),
        mutually_exclusive=[
            ["api_key", "api_key_secret"],
            ["name", "providers"],
            ["url", "providers"],
            ["api_key", "providers"],
            ["api_key_secret", "providers"],
        ],
        required_one_of=[["name", "providers"]],
        required_together=[["name", "url"]],
    )


def targets(params: t.Mapping[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    """The providers to check, each with its name, url and key or key's Secret."""
    if params["providers"] is None:
        return [
            {key: params[key] for key in ("name", "url", "api_key", "api_key_secret")}
        ]
    names = [item["name"] for item in params["providers"]]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RecoveryError(
            "providers names %s more than once" % ", ".join(twice),
            reason="duplicate provider",
            next_step="List each provider once in providers.",
        )
    return list(params["providers"])


def api_key(module: base.RecoveryModule, target: t.Mapping[str, t.Any]) -> str | None:
    """The key given, or read from its Secret (the Kubernetes client is needed only then)."""
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        providers,
    )

    ref = target["api_key_secret"]
    if not ref:
        return t.cast(t.Optional[str], target["api_key"])
    client = module.k8s_client()
    key = providers.read_api_key(
        client, module.params["namespace"], ref["name"], ref["key"]
    )
    module.no_log_values.add(key)
    return key


def endpoint(module: base.RecoveryModule, target: t.Mapping[str, t.Any]) -> Endpoint:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        providers,
    )

    params = module.params
    return argspec.from_params(
        providers.Endpoint,
        params,
        url=target["url"],
        api_key=api_key(module, target),
        validate_certs=params["provider_validate_certs"],
        ca_path=params["provider_ca_path"],
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        providers,
    )

    params = module.params
    given = targets(params)
    chosen, unread = [], {}
    for target in given:
        try:
            chosen.append((target["name"], endpoint(module, target)))
        except RecoveryError as error:
            if params["providers"] is None:
                raise
            unread[target["name"]] = providers.key_not_read(
                target["name"], target["url"], error.msg
            )
    checked = providers.check_all(chosen, params["checks"], params["slow_after"])
    found = dict(unread, **{report["name"]: report for report in checked})
    reports = [found[target["name"]] for target in given]
    result: base.Result = {
        "changed": False,
        "providers": {report["name"]: report for report in reports},
    }
    if params["providers"] is None:
        result["provider"] = reports[0]
    if params["require_healthy"] and not all(report["healthy"] for report in reports):
        raise providers.unhealthy_error(reports, partial=dict(result))
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
