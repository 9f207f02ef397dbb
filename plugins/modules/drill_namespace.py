#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drill_namespace
short_description: Create or delete the scratch namespace of a restore drill
version_added: 0.1.0
description:
  - Creates the namespace a restore drill restores the shards of O(namespace) into, labelled
    C(ragops.io/restore-drill=<drill id>) and C(ragops.io/drill-of=<production namespace>), and
    annotated with its time to live (C(ragops.io/ttl-seconds)) and when it expires
    (C(ragops.io/expires-at)), so that a namespace left by a killed run or kept on failure can be
    found and removed.
  - Deletes it with V(state=absent), and with it everything the drill created in it; only a
    namespace carrying this drill's labels is ever deleted. A namespace of that name without them is
    refused both ways, as are O(namespace) itself and the system namespaces.
  - Namespaces are cluster-scoped; the ClusterRole of C(meta/rbac/restore-drill.yaml) allows what
    this module does (see C(docs/rbac.md)).
author:
  - ragops.recovery maintainers (@ragops)
options:
  state:
    description:
      - V(present) creates the scratch namespace; V(absent) deletes it and, with O(wait), waits
        until it is gone.
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - The scratch namespace. Never O(namespace), C(default) or a C(kube-) namespace.
    type: str
    required: true
  drill_id:
    description:
      - The drill's id, a label value (for example V(20261207t1500z)).
    type: str
    required: true
  ttl:
    description:
      - Seconds the scratch namespace may live; recorded in its annotations.
    type: int
    default: 86400
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details: The creation or deletion is sent as a server-side dry run; nothing is written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The drill's own namespace is left as it is when present, and a missing one is not deleted.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.drill_restore
  - module: ragops.recovery.drill_report
"""

EXAMPLES = r"""
- name: Create the drill's scratch namespace for a day at most
  ragops.recovery.drill_namespace:
    namespace: rag-prod
    name: rag-prod-drill-20261207t1500z
    drill_id: 20261207t1500z

- name: Delete it at the end of the drill and wait until it is gone
  ragops.recovery.drill_namespace:
    namespace: rag-prod
    name: rag-prod-drill-20261207t1500z
    drill_id: 20261207t1500z
    state: absent
"""

RETURN = r"""
namespace:
  description: The scratch namespace.
  returned: always
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: rag-prod-drill-20261207t1500z
    drill_id:
      description: The drill's id.
      type: str
      sample: 20261207t1500z
    production:
      description: The namespace whose shards the drill restores (O(namespace)).
      type: str
      sample: rag-prod
    state:
      description:
        - V(created), V(present), V(deleted), V(deleting) (with O(wait=false)), V(absent), or in check
          mode V(would be created) or V(would be deleted).
      type: str
      sample: created
    labels:
      description: Its labels.
      type: dict
      sample: {"ragops.io/restore-drill": "20261207t1500z", "ragops.io/drill-of": "rag-prod"}
    expires_at:
      description: When it expires (UTC); null when it does not exist.
      type: str
      sample: "2026-12-08T15:00:00Z"
duration:
  description: Seconds spent waiting for the namespace to be gone.
  returned: always
  type: float
  sample: 6.2
summary:
  description: One line saying what became of the namespace.
  returned: always
  type: str
  sample: "scratch namespace rag-prod-drill-20261207t1500z: deleted"
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "state": {
                "type": "str",
                "choices": ["present", "absent"],
                "default": "present",
            },
            "name": {"type": "str", "required": True},
            "drill_id": {"type": "str", "required": True},
            "ttl": {"type": "int", "default": 86400},
        },
        groups=("k8s", "wait"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import scratch

    params, client = module.params, module.k8s_client()
    where = scratch.Scratch(
        params["name"], params["drill_id"], params["namespace"], params["ttl"]
    )
    if params["state"] == "present":
        outcome = scratch.present(client, where, module.check_mode)
    else:
        waiter = module.waiter() if params["wait"] else None
        outcome = scratch.absent(client, where, module.check_mode, waiter)
    return outcome.to_result()


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
