#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: shard_mark
short_description: Set a vectorstore shard's state in the shard registry
version_added: 0.1.0
description:
  - Sets one shard's entry in the shard registry ConfigMap to V(serving), V(quarantined),
    V(restoring) or V(validating), with a reason, an incident id and an optional replica to route
    the shard's traffic to. The retriever serves only shards in V(serving) (or their O(route_to)).
  - Follows the runbook's order (serving, quarantined, restoring or validating, serving) and refuses
    any other transition unless O(force=true); a forced transition is recorded in the entry and
    reported as a warning.
  - Keeps the previous state in the entry. Never overwrites an entry it cannot parse.
  - Writes only the shard's own key, guarded by the ConfigMap's resourceVersion, so a concurrent
    writer's change to another shard is never lost.
  - The registry format is described in the collection's C(docs/contract.md).
author:
  - ragops.recovery maintainers (@ragops)
options:
  shard:
    description:
      - Id of the shard, the key of its entry in the registry (for example V(shard-2)).
    type: str
    required: true
  state:
    description:
      - The state the shard's entry should have.
    type: str
    required: true
    choices: [serving, quarantined, restoring, validating]
  reason:
    description:
      - Why the shard is in this state. Shown to whoever reads the registry.
    type: str
    default: ""
  incident_id:
    description:
      - Id of the incident this change belongs to.
    type: str
    default: ""
  route_to:
    description:
      - Replica that takes the shard's traffic while it is out of service.
      - When omitted, an existing route is kept, except that V(serving) clears it. V("") clears it.
    type: str
  changed_by:
    description:
      - Who made the change, recorded in the entry. Defaults to C(user@host) of the process running
        the module.
    type: str
  force:
    description:
      - Allow a transition the runbook does not allow (for example V(quarantined) straight to
        V(serving)). The entry records it in C(forced_transition) and the task warns.
    type: bool
    default: false
  create_registry:
    description:
      - Create the registry ConfigMap when it does not exist, and add the shard to it.
      - Without it, a missing registry fails the task.
    type: bool
    default: false
  register:
    description:
      - Add the shard when the registry has no entry for it. Without it, an unknown shard fails the task.
    type: bool
    default: false
  label_pods:
    description:
      - Also label the shard's pods (selected by O(shard_label)=O(shard)) with C(ragops.io/serving=true)
        when the state is V(serving) and C(ragops.io/serving=false) otherwise, so a Service whose
        selector requires C(ragops.io/serving=true) stops sending them traffic.
    type: bool
    default: false
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.shard
  - ragops.recovery.shard.registry
attributes:
  check_mode:
    support: full
    details: Writes are sent as server-side dry runs; nothing is stored.
  diff_mode:
    support: full
    details: The shard's entry before and after.
  idempotent:
    support: full
    details: A second run with the same arguments reports no change.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.shard_info
"""

EXAMPLES = r"""
- name: Take shard-2 out of service and send its traffic to its replica
  ragops.recovery.shard_mark:
    namespace: rag-prod
    shard: shard-2
    state: quarantined
    reason: index checksum mismatch in shard logs
    incident_id: INC-1042
    route_to: shard-2-replica
    label_pods: true

- name: Start validating the re-opened shard
  ragops.recovery.shard_mark:
    namespace: rag-prod
    shard: shard-2
    state: validating
    reason: index re-opened
    incident_id: INC-1042

- name: Put the shard back into service after the golden queries passed
  ragops.recovery.shard_mark:
    namespace: rag-prod
    shard: shard-2
    state: serving
    reason: golden set passed
    incident_id: INC-1042
    label_pods: true
"""

RETURN = r"""
shard:
  description: The shard's entry after the change (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Shard id.
      type: str
      sample: shard-2
    state:
      description: The shard's state.
      type: str
      sample: quarantined
    reason:
      description: Why the shard is in this state.
      type: str
      sample: index checksum mismatch
    incident_id:
      description: The incident the change belongs to.
      type: str
      sample: INC-1042
    since:
      description: When the shard entered this state (UTC).
      type: str
      sample: "2026-11-27T22:10:03Z"
    changed_by:
      description: Who made the change.
      type: str
      sample: oncall@bastion
    previous_state:
      description: The state before this one; absent for a new entry.
      type: str
      sample: serving
    route_to:
      description: Replica taking the shard's traffic; absent when none.
      type: str
      sample: shard-2-replica
    forced_transition:
      description: Present when the last change was forced.
      type: str
      sample: quarantined -> serving
transition:
  description: The state change, C(before -> after); C(unregistered) for a new entry.
  returned: always
  type: str
  sample: serving -> quarantined
forced:
  description: Whether the change needed O(force).
  returned: always
  type: bool
  sample: false
registry:
  description: The registry ConfigMap.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the ConfigMap.
      type: str
      sample: rag-shard-registry
    namespace:
      description: Its namespace.
      type: str
      sample: rag-prod
    created:
      description: Whether the ConfigMap was created (or would be, in check mode).
      type: bool
      sample: false
effective_at:
  description:
    - When the change took effect (UTC, to the millisecond) - the entry written and the pods labelled.
      V(null) when nothing changed and in check mode.
    - What the runbook's reports measure the time to safe mode (a quarantine) and the time to recover
      (the return to service) to; C(shard.since) keeps the registry's second precision.
  returned: always
  type: str
  sample: "2026-11-27T22:10:03.217Z"
pods:
  description: The shard's pods and their C(ragops.io/serving) label before and after.
  returned: when O(label_pods=true)
  type: list
  elements: dict
  sample: [{"name": "vectorstore-2", "before": "true", "after": "false", "changed": true}]
"""


from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "shard": {"type": "str", "required": True},
            "state": {
                "type": "str",
                "required": True,
                "choices": ["serving", "quarantined", "restoring", "validating"],
            },
            "reason": {"type": "str", "default": ""},
            "incident_id": {"type": "str", "default": ""},
            "route_to": {"type": "str"},
            "changed_by": {"type": "str"},
            "force": {"type": "bool", "default": False},
            "create_registry": {"type": "bool", "default": False},
            "register": {"type": "bool", "default": False},
            "label_pods": {"type": "bool", "default": False},
        },
        groups=("k8s", "shard", "registry"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import registry
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import rules

    params, client = module.params, module.k8s_client()
    where = registry.Registry(params["namespace"], params["registry"])
    actor = params["changed_by"] or audit.default_actor()
    outcome = registry.mark_shard(
        client,
        where,
        params["shard"],
        argspec.from_params(rules.MarkRequest, params, changed_by=actor),
        now=audit.timestamp(),
        check_mode=module.check_mode,
        create_registry=params["create_registry"],
        register=params["register"],
    )
    plan = outcome.plan
    if plan.forced:
        module.warn(
            "Forced shard %s transition %s (recorded in the registry entry)"
            % (params["shard"], plan.transition)
        )
    result = outcome.to_result(params["shard"], diff=module._diff)
    if params["label_pods"]:
        serving = params["state"] == "serving"
        result["pods"] = registry.label_shard_pods(
            client,
            where.namespace,
            params["shard"],
            params["shard_label"],
            serving,
            module.check_mode,
        )
        result["changed"] = result["changed"] or any(
            pod["changed"] for pod in result["pods"]
        )
    changed = result["changed"] and not module.check_mode
    result["effective_at"] = audit.instant() if changed else None
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
