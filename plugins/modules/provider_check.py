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
    description: Name of the provider, as the generator knows it (for example V(backup)).
    type: str
    required: true
  url:
    description: Base URL of the provider's OpenAI-compatible API, without C(/v1).
    type: str
    required: true
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
      - Fail the task unless the provider is V(healthy) (for example before switching traffic to it).
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

- name: Warm-failover check of the backup's credentials (fails unless healthy)
  ragops.recovery.provider_check:
    name: backup
    url: https://llm-backup.example.com
    api_key: "{{ backup_api_key }}"
    require_healthy: true
"""

RETURN = r"""
provider:
  description: The provider's health.
  returned: always
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


def argument_spec() -> argspec.ArgumentSpec:
    secret_ref = {
        "name": {"type": "str", "required": True},
        "key": {"type": "str", "required": True, "no_log": False},
    }
    return argspec.ArgumentSpec(
        options={
            "name": {"type": "str", "required": True},
            "url": {"type": "str", "required": True},
            "api_key": {"type": "str", "no_log": True},
            "api_key_secret": {"type": "dict", "no_log": False, "options": secret_ref},
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
        mutually_exclusive=[["api_key", "api_key_secret"]],
    )


def api_key(module: base.RecoveryModule) -> str | None:
    """The key given, or read from its Secret (the Kubernetes client is needed only then)."""
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        providers,
    )

    params, ref = module.params, module.params["api_key_secret"]
    if not ref:
        return t.cast(t.Optional[str], params["api_key"])
    client = module.k8s_client()
    key = providers.read_api_key(client, params["namespace"], ref["name"], ref["key"])
    module.no_log_values.add(key)
    return key


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        providers,
    )

    params = module.params
    endpoint = argspec.from_params(
        providers.Endpoint,
        params,
        api_key=api_key(module),
        validate_certs=params["provider_validate_certs"],
        ca_path=params["provider_ca_path"],
    )
    probes = providers.probe_provider(endpoint, params["checks"])
    verdict = providers.classify(probes, params["slow_after"])
    provider = providers.report(params["name"], endpoint, verdict)
    if params["require_healthy"] and not verdict.healthy:
        raise providers.unhealthy_error(provider)
    return {"changed": False, "provider": provider}


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
