#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: component_start
short_description: Start a RAG stack's components in dependency order, each waited for before the next
version_added: 0.1.0
description:
  - Computes the start order from O(components[].depends_on) (plus the dependencies found through
    O(dependency_env)) and refuses a dependency cycle before changing anything, naming it, for example
    C(controller → indexer → controller).
  - With O(mode=in_order), goes through the components in that order. A component at zero replicas is
    scaled up (to the count recorded when the collection scaled it down, else O(components[].replicas),
    else 1); one with no Ready replica is restarted as C(kubectl rollout restart) does (see
    O(restart_unready)); one that is partly Ready is only waited for; a Ready one is left alone. Each
    component is waited for until Ready before the next one is touched.
  - With O(mode=one_by_one), and only when some component is not Ready, scales every component to zero
    first (dependents first, recording each replica count in the workload's C(ragops.io/scaled-down-from)
    annotation), waits until no pod is left, then brings the components up one at a time in order, each
    waited for until Ready.
  - A component that does not become Ready within its timeout stops the run there. The task fails naming
    the component and why it is not Ready; the components after it are not started (and stay at zero if
    they were), so nothing starts on a broken dependency. A re-run continues from the recorded counts.
author:
  - ragops.recovery maintainers (@ragops)
options:
  mode:
    description:
      - V(in_order) starts or restarts what is not Ready, in dependency order.
      - V(one_by_one) scales everything down and brings the components up one at a time (runbook
        Scenario C step 4), when any component is not Ready. It always waits; O(wait=false) is refused.
    type: str
    choices: [in_order, one_by_one]
    default: in_order
  restart_unready:
    description:
      - With O(mode=in_order), restart a component that has its replicas but none of them Ready, so that
        pods in a long crash-loop back-off start again at once. Without it, the component is only waited for.
    type: bool
    default: true
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.components
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details:
      - Every change is sent as a server-side dry run and nothing is waited for; the result lists what
        would be done to each component. A dependency cycle or a missing workload still fails the task.
  diff_mode:
    support: full
    details: Replica counts and readiness, before and after, of the components the task changes.
  idempotent:
    support: full
    details: When every component is Ready, nothing is changed.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.stack_info
  - module: ragops.recovery.migration_run
"""

EXAMPLES = r"""
- name: Start the stack in dependency order, giving each component 5 minutes
  ragops.recovery.component_start:
    namespace: rag-prod
    components: "{{ ragops_components }}"
    dependency_env: WAIT_FOR
    wait_timeout: 300

- name: Scale everything down and bring the components up one by one
  ragops.recovery.component_start:
    namespace: rag-prod
    components:
      - name: controller
      - name: vectorstore
        kind: StatefulSet
        replicas: 4
      - name: retriever
        depends_on: [controller, vectorstore]
      - name: generator
        depends_on: [retriever]
        wait_timeout: 120
    mode: one_by_one
"""

RETURN = r"""
order:
  description: The start order.
  returned: always
  type: list
  elements: str
  sample: [controller, vectorstore, retriever, generator]
mode:
  description: The mode used.
  returned: always
  type: str
  sample: in_order
components:
  description: Each component in start order, with what was done to it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Component name.
      type: str
      sample: controller
    kind:
      description: Its workload kind.
      type: str
      sample: Deployment
    action:
      description:
        - V(none), V(scale_up), V(restart), V(wait) (partly Ready, or O(restart_unready=false)) or
          V(scale_down_and_up) (O(mode=one_by_one)).
      type: str
      sample: restart
    replicas_before:
      description: Replicas wanted before the task.
      type: int
      sample: 1
    replicas:
      description: Replicas wanted after the task.
      type: int
      sample: 1
    ready_before:
      description: Whether the component was Ready before the task.
      type: bool
      sample: false
    ready:
      description: Whether it was seen Ready (false in check mode for a component that would be changed).
      type: bool
      sample: true
    duration:
      description: Seconds spent waiting for it.
      type: float
      sample: 2.4
started:
  description: Components started, restarted or scaled up, in order.
  returned: always
  type: list
  elements: str
  sample: [controller, retriever]
scaled_down:
  description: Components scaled to zero first (O(mode=one_by_one)).
  returned: always
  type: list
  elements: str
  sample: []
duration:
  description: Seconds the task took.
  returned: always
  type: float
  sample: 8.7
failed_component:
  description: The component that did not become Ready.
  returned: on a readiness timeout
  type: str
  sample: controller
not_started:
  description: Components after the failed one, not started.
  returned: on a readiness timeout
  type: list
  elements: str
  sample: [retriever, generator]
left_down:
  description: Components left at zero replicas.
  returned: on a readiness timeout
  type: list
  elements: str
  sample: [retriever, generator]
cycle:
  description: The dependency cycle that made the task refuse, closed.
  returned: when a dependency cycle is found
  type: list
  elements: str
  sample: [controller, indexer, controller]
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "mode": {
                "type": "str",
                "choices": ["in_order", "one_by_one"],
                "default": "in_order",
            },
            "restart_unready": {"type": "bool", "default": True},
        },
        groups=("k8s", "wait", "components"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils import waiter
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import (
        components,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import startup

    params = module.params
    request = argspec.from_params(
        startup.StartRequest,
        params,
        timeout=params["wait_timeout"],
        interval=params["wait_sleep"],
        check_mode=module.check_mode,
        now=audit.timestamp(),
    )
    stack = components.components_from_params(params["components"])
    result = startup.start_components(
        module.k8s_client(), stack, request, waiter.Clock()
    )
    if module._diff:
        result["diff"] = startup.start_diff(result)
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
