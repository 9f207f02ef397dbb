#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_throttle
short_description: Limit the generator's request rate and concurrency and queue long requests
version_added: 0.1.0
description:
  - Sets the generator's request-rate limit, its in-flight limit and the long-request queue flag
    (requests marked long, or longer than O(long_request_chars), go to a worker-queue backlog
    instead of an LLM call), as env vars of the generator Deployment or keys of O(flags_configmap).
  - Only the limits given are managed; the others are left as they are.
  - Records the values before the first change in the annotation C(ragops.io/previous-throttle);
    O(state=restored) sets them back.
author:
  - ragops.recovery maintainers (@ragops)
options:
  rps:
    description: Requests per second the generator accepts; V(0) turns the limit off.
    type: float
  max_concurrency:
    description: Requests in flight at once; V(0) turns the limit off.
    type: int
  long_request_queue:
    description: Send long requests to the worker-queue backlog.
    type: bool
  long_request_chars:
    description: Questions longer than this count as long.
    type: int
  env_names:
    description: The env vars (or flags ConfigMap keys) of the limits.
    type: dict
    default: {}
    suboptions:
      rps:
        description: Name of the request-rate flag.
        type: str
        default: THROTTLE_RPS
      max_concurrency:
        description: Name of the concurrency flag.
        type: str
        default: MAX_CONCURRENCY
      long_request_queue:
        description: Name of the long-request queue flag (values V(on) and V(off)).
        type: str
        default: LONG_REQUEST_QUEUE
      long_request_chars:
        description: Name of the long-request length flag.
        type: str
        default: LONG_REQUEST_CHARS
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.generator
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details: The change is sent as a server-side dry run; nothing is stored and nothing rolls out.
  diff_mode:
    support: full
    details: The throttle flags before and after.
  idempotent:
    support: full
    details: A second run with the same arguments reports no change.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.provider_switch
  - module: ragops.recovery.generator_fallback
"""

EXAMPLES = r"""
- name: Protect the backup provider during the outage
  ragops.recovery.traffic_throttle:
    namespace: rag-prod
    rps: 20
    max_concurrency: 8
    long_request_queue: true

- name: Remove the throttle once the primary has all traffic again
  ragops.recovery.traffic_throttle:
    namespace: rag-prod
    state: restored
"""

RETURN = r"""
throttle:
  description: The throttle flags.
  returned: always
  type: dict
  contains:
    duration:
      description: Seconds spent waiting for the rollout.
      type: float
      sample: 2.1
    effective_at:
      description:
        - When the change took effect (UTC, to the millisecond) - the rollout done, or the write when
          not waiting or when the flags live in a ConfigMap. V(null) when nothing changed and in check mode.
        - What the runbook's reports measure the time to safe mode to.
      type: str
      sample: "2026-11-27T22:10:04.512Z"
    before:
      description: The flags before the change.
      type: dict
      sample: {"THROTTLE_RPS": null, "MAX_CONCURRENCY": null, "LONG_REQUEST_QUEUE": null}
    after:
      description: The flags after the change (in check mode, as they would be).
      type: dict
      sample: {"THROTTLE_RPS": "20", "MAX_CONCURRENCY": "8", "LONG_REQUEST_QUEUE": "on"}
    previous:
      description: The values recorded before the first change, which O(state=restored) sets back.
      type: dict
      sample: {"THROTTLE_RPS": null}
    target:
      description: The object holding the flags.
      type: str
      sample: Deployment rag-prod/generator
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

LIMITS = ("rps", "max_concurrency", "long_request_queue", "long_request_chars")
DEFAULT_NAMES = {
    "rps": "THROTTLE_RPS",
    "max_concurrency": "MAX_CONCURRENCY",
    "long_request_queue": "LONG_REQUEST_QUEUE",
    "long_request_chars": "LONG_REQUEST_CHARS",
}


def argument_spec() -> argspec.ArgumentSpec:
    names = {
        limit: {"type": "str", "default": DEFAULT_NAMES[limit]} for limit in LIMITS
    }
    return argspec.ArgumentSpec(
        options={
            "rps": {"type": "float"},
            "max_concurrency": {"type": "int"},
            "long_request_queue": {"type": "bool"},
            "long_request_chars": {"type": "int"},
            "env_names": {"type": "dict", "default": {}, "options": names},
        },
        groups=("k8s", "generator", "wait"),
        required_if=[["state", "present", list(LIMITS), True]],
    )


def flag_text(limit: str, value: t.Any) -> str:
    if limit == "long_request_queue":
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import flags

    params = module.params
    chosen = {k: v for k, v in (params["env_names"] or {}).items() if v}
    names = dict(DEFAULT_NAMES, **chosen)
    desired = {
        names[limit]: flag_text(limit, params[limit])
        for limit in LIMITS
        if params[limit] is not None
    }
    report = [names[limit] for limit in LIMITS[:3]]
    change = flags.FlagChange.from_params(params, "throttle", desired, report)
    outcome = flags.set_flags(module.k8s_client(), change, check_mode=module.check_mode)
    result: base.Result = {"changed": outcome.changed, "throttle": outcome.result()}
    if module._diff:
        result["diff"] = outcome.diff()
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
