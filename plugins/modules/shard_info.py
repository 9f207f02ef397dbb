#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: shard_info
short_description: Show vectorstore shards' registry entries with their pods' status
version_added: 0.1.0
description:
  - Reads the shard registry ConfigMap and joins each shard's entry with the status of the pods
    labelled with its id (phase, readiness, restarts, last termination reason, volume claims).
  - Entries that cannot be parsed are reported with state V(invalid) instead of failing the task,
    and shards that have pods but no entry with state V(unregistered).
  - A missing registry is reported as C(registry.exists=false), not as a failure.
author:
  - ragops.recovery maintainers (@ragops)
options:
  shards:
    description:
      - Shard ids to report. All shards in the registry or with labelled pods when empty.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.shard
  - ragops.recovery.shard.registry
attributes:
  check_mode:
    support: full
    details: Read-only; runs unchanged in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    support: full
seealso:
  - module: ragops.recovery.shard_mark
"""

EXAMPLES = r"""
- name: Read the state of every shard
  ragops.recovery.shard_info:
    namespace: rag-prod
  register: shards

- name: Fail when a shard is out of service
  ansible.builtin.assert:
    that: shards.shards | rejectattr('serving') | list | length == 0
    fail_msg: "Out of service: {{ shards.shards | rejectattr('serving') | map(attribute='shard') | join(', ') }}"

- name: Show one shard
  ragops.recovery.shard_info:
    namespace: rag-prod
    shards: [shard-2]
"""

RETURN = r"""
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
    exists:
      description: Whether the ConfigMap exists.
      type: bool
      sample: true
    invalid_entries:
      description: Shards whose entry cannot be parsed.
      type: list
      elements: str
      sample: []
shards:
  description: One item per shard, its registry entry merged with its pods.
  returned: always
  type: list
  elements: dict
  contains:
    shard:
      description: Shard id.
      type: str
      sample: shard-2
    state:
      description: Registry state, or V(invalid) / V(unregistered).
      type: str
      sample: serving
    serving:
      description: Whether the retriever serves this shard.
      type: bool
      sample: true
    error:
      description: Why the entry could not be parsed.
      type: str
      returned: when state is V(invalid)
    pods:
      description: The shard's pods.
      type: list
      elements: dict
      sample:
        - name: vectorstore-2
          phase: Running
          ready: true
          restarts: 0
          last_termination_reason: null
          waiting_reason: null
          labels: {"ragops.io/shard": "shard-2"}
          claims: [data-vectorstore-2]
  sample:
    - shard: shard-2
      state: quarantined
      serving: false
      reason: index checksum mismatch
      incident_id: INC-1042
      since: "2026-11-27T22:10:03Z"
      changed_by: oncall@bastion
      previous_state: serving
      pods: []
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={"shards": {"type": "list", "elements": "str", "default": []}},
        groups=("k8s", "shard", "registry"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import registry

    params = module.params
    where = registry.Registry(params["namespace"], params["registry"])
    report = registry.describe_shards(
        module.k8s_client(), where, params["shards"], params["shard_label"]
    )
    return dict(report, changed=False)


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
