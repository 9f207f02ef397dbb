#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: provider_switch
short_description: Set the generator's active LLM provider and its ramp weights
version_added: 0.1.0
description:
  - Sets the provider the generator sends questions to (the env var O(provider_env) of the generator
    Deployment, or a key of O(flags_configmap)) and, for a generator with weighted routing, the
    share of traffic per provider (O(weights_env), for example C(primary:25,backup:75)).
  - Records the values before the first change in the annotation C(ragops.io/previous-provider), so
    that O(state=restored) rolls the switch back; the record is dropped once the flags are back at
    those values.
  - Waits until the Deployment's rollout is Ready (new pods with the new env), unless O(wait=false).
  - Check the target first with M(ragops.recovery.provider_check); this module only switches.
  - With O(require_precheck), refuses to switch to O(provider) when its last precheck recorded by
    M(ragops.recovery.provider_precheck) failed, before changing anything (a provider never prechecked
    passes), as M(ragops.recovery.provider_precheck) with O(ragops.recovery.provider_precheck#module:require_passed)
    does, without a task of its own.
author:
  - ragops.recovery maintainers (@ragops)
options:
  provider:
    description:
      - Name of the provider to send traffic to (for example V(backup)). Left as it is when omitted.
    type: str
  weights:
    description:
      - "Percent of traffic per provider, adding up to 100, in the order given (for example
        V({primary: 25, backup: 75})). V({}) removes weighted routing so that O(provider) takes all
        traffic. Left as it is when omitted."
    type: dict
  provider_env:
    description: Env var (or flags ConfigMap key) naming the active provider.
    type: str
    default: PROVIDER
  weights_env:
    description: Env var (or flags ConfigMap key) holding the weights.
    type: str
    default: PROVIDER_WEIGHTS
  require_precheck:
    description:
      - The ConfigMap in O(namespace) holding the precheck records (for example V(rag-provider-precheck)).
        Switching to O(provider) is refused when its last recorded precheck there failed. Omitted, no
        record is read.
    type: str
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
    details: The provider flags before and after; values from Secrets are shown as C(<secret>).
  idempotent:
    support: full
    details: A second run with the same arguments reports no change.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.provider_check
  - module: ragops.recovery.generator_fallback
  - module: ragops.recovery.traffic_throttle
"""

EXAMPLES = r"""
- name: Switch the generator to the backup provider
  ragops.recovery.provider_switch:
    namespace: rag-prod
    provider: backup
    weights: {}

- name: Send a quarter of the traffic back to the primary
  ragops.recovery.provider_switch:
    namespace: rag-prod
    weights:
      primary: 25
      backup: 75

- name: Roll the switch back to the values before the incident
  ragops.recovery.provider_switch:
    namespace: rag-prod
    state: restored
"""

RETURN = r"""
provider:
  description: The provider flags.
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
      sample: {"PROVIDER": "primary", "PROVIDER_WEIGHTS": null}
    after:
      description: The flags after the change (in check mode, as they would be).
      type: dict
      sample: {"PROVIDER": "backup", "PROVIDER_WEIGHTS": null}
    previous:
      description: The values recorded before the first change, which O(state=restored) sets back.
      type: dict
      sample: {"PROVIDER": "primary", "PROVIDER_WEIGHTS": null}
    active:
      description: The provider taking traffic (the one named by the provider flag).
      type: str
      sample: backup
    weights:
      description: The weights in force, empty without weighted routing.
      type: dict
      sample: {"primary": 25, "backup": 75}
    target:
      description: The object holding the flags.
      type: str
      sample: Deployment rag-prod/generator
precheck:
  description: The last precheck of O(provider) read from O(require_precheck), which did not fail.
  returned: with O(require_precheck)
  type: dict
  sample:
    configmap: ConfigMap rag/rag-provider-precheck
    provider: backup
    recorded: true
    passed: true
    last: {"passed": true, "state": "healthy", "checked_at": "2026-12-07T06:00:03Z"}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "provider": {"type": "str"},
            "weights": {"type": "dict"},
            "provider_env": {"type": "str", "default": "PROVIDER"},
            "weights_env": {"type": "str", "default": "PROVIDER_WEIGHTS"},
            "require_precheck": {"type": "str"},
        },
        groups=("k8s", "generator", "wait"),
        required_if=[["state", "present", ["provider", "weights"], True]],
    )


def desired_flags(params: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        config,
    )

    desired: t.Dict[str, t.Any] = {}
    if params["provider"] is not None:
        desired[params["provider_env"]] = params["provider"]
    if params["weights"] is not None:
        weights = {str(name): int(value) for name, value in params["weights"].items()}
        desired[params["weights_env"]] = config.format_weights(weights) or None
    return desired


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        config,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import flags
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        precheck,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import (
        Ref,
    )

    params = module.params
    found = None
    if params["require_precheck"] and not params["provider"]:
        raise RecoveryError(
            "require_precheck needs provider: it names whose precheck is read",
            reason="missing option",
            next_step="Give provider (the provider switched to) or leave require_precheck out.",
        )
    if params["require_precheck"]:
        found = precheck.require_passed(
            module.k8s_client(),
            Ref("ConfigMap", params["require_precheck"], params["namespace"]),
            params["provider"],
        )
    report = (params["provider_env"], params["weights_env"])
    change = flags.FlagChange.from_params(
        params, "provider", desired_flags(params), report
    )
    outcome = flags.set_flags(module.k8s_client(), change, check_mode=module.check_mode)
    weights = config.parse_weights(outcome.after.get(params["weights_env"]))
    active = outcome.after.get(params["provider_env"])
    provider = dict(outcome.result(), active=active, weights=weights)
    result: base.Result = {"changed": outcome.changed, "provider": provider}
    if found is not None:
        result["precheck"] = found
    if module._diff:
        result["diff"] = outcome.diff()
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
