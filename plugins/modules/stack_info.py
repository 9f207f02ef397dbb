#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_info
short_description: Read a whole RAG stack and diagnose why it does not come up
version_added: 0.1.0
description:
  - Reads every component of the stack listed in O(components) (a Deployment or StatefulSet each) with
    its pods (phase, readiness, restarts, waiting reason such as C(CrashLoopBackOff), init containers
    that never finish and why, exit codes, and the last log lines of pods that are not Ready), the
    stack's migration Jobs with their status and logs, the version its schema is at, and the dependency graph.
  - Returns a diagnosis naming the one cause that keeps the stack down, in this order of precedence,
    a dependency cycle (for example C(controller → indexer → controller)), a missing workload, a
    migration that failed, runs or is pending, components scaled down, or components that are not
    Ready, with the components at the root of the trouble, the ones blocked behind them, and the next step.
  - Read-only. Use its result as evidence before changing anything (see the C(bootstrap_recovery) role).
author:
  - ragops.recovery maintainers (@ragops)
options:
  log_lines:
    description:
      - How many of the last log lines to return for each pod that is not Ready (current and, for a
        container that restarted, previous instance) and for the migration Jobs that matter. V(0) reads no logs.
    type: int
    default: 20
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.components
  - ragops.recovery.migration
attributes:
  check_mode:
    support: full
    details: Read-only; runs unchanged in check mode, so C(--check) still diagnoses.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    support: full
seealso:
  - module: ragops.recovery.migration_run
  - module: ragops.recovery.component_start
"""

EXAMPLES = r"""
- name: Diagnose the stack
  ragops.recovery.stack_info:
    namespace: rag-prod
    components: "{{ ragops_components }}"
    dependency_env: WAIT_FOR
    migration_configmap: rag-migration-job
  register: stack

- name: Say what keeps it down
  ansible.builtin.debug:
    msg: "{{ stack.diagnosis.cause }}: {{ stack.diagnosis.summary }} Next: {{ stack.diagnosis.next_step }}"

- name: Refuse to go on with a dependency cycle
  ansible.builtin.fail:
    msg: "Dependency cycle {{ stack.diagnosis.cycle_text }}"
  when: stack.diagnosis.cause == 'dependency_cycle'
"""

RETURN = r"""
components:
  description: Every component in O(components) order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Component (and workload) name.
      type: str
      sample: controller
    kind:
      description: V(Deployment) or V(StatefulSet).
      type: str
      sample: Deployment
    exists:
      description: Whether the workload exists.
      type: bool
      sample: true
    state:
      description:
        - V(ready), V(scaled_down), V(crash_looping), V(init_stuck), V(waiting) (for example
          C(ImagePullBackOff)), V(not_ready) (running, readiness failing), V(pending) or V(missing).
      type: str
      sample: crash_looping
    reason:
      description: Why, in one line.
      type: str
      sample: "pod controller-7d9f-x2x4q: CrashLoopBackOff (3 restarts, last exit code 1)"
    ready:
      description: Whether every wanted replica is Ready.
      type: bool
      sample: false
    replicas:
      description: Wanted replicas (C(spec.replicas)).
      type: int
      sample: 1
    ready_replicas:
      description: Ready replicas.
      type: int
      sample: 0
    held_down:
      description: The replica count recorded when the collection scaled the component to zero, if it did.
      type: int
      sample: 4
    depends_on:
      description: Dependencies declared in O(components).
      type: list
      elements: str
      sample: [controller, vectorstore]
    observed_depends_on:
      description: Further dependencies found through O(dependency_env).
      type: list
      elements: str
      sample: []
    pods:
      description:
        - The component's pods. Those not Ready carry C(logs) with C(container), C(lines) and C(previous_lines).
      type: list
      elements: dict
      sample:
        - name: controller-7d9f-x2x4q
          phase: Running
          ready: false
          restarts: 3
          waiting_reason: CrashLoopBackOff
          last_termination_reason: Error
          last_exit_code: 1
          init_containers: []
          stuck_init: null
          claims: []
          logs:
            container: controller
            lines: []
            previous_lines: ['{"event": "schema_version_too_old", "required": 2, "found": 1}']
graph:
  description: The dependency graph, declared plus observed.
  returned: always
  type: dict
  contains:
    order:
      description: The start order; null when there is a cycle.
      type: list
      elements: str
      sample: [controller, vectorstore, retriever, generator]
    cycle:
      description: A cycle, closed (its first member repeated at the end); null when there is none.
      type: list
      elements: str
      sample: [controller, indexer, controller]
    cycle_text:
      description: The cycle as text.
      type: str
      sample: controller → indexer → controller
    cycle_edges:
      description: Where each dependency of the cycle comes from.
      type: str
      sample: controller depends on indexer (depends_on), indexer depends on controller (depends_on)
    groups:
      description: Independent groups of components (no dependency between two groups).
      type: list
      elements: list
      sample: [[controller, retriever, generator], [indexer]]
migration:
  description: The migration, when O(migration_configmap) or O(migration_template) is given.
  returned: always
  type: dict
  contains:
    configured:
      description: Whether a migration is configured.
      type: bool
      sample: true
    pending:
      description: Whether the stack's schema is below the version the migration brings it to.
      type: bool
      sample: true
    current_version:
      description: The version recorded in O(schema_configmap); null when none is.
      type: str
      sample: "1"
    target_version:
      description: The version the migration brings the stack to.
      type: str
      sample: "2"
    template:
      description: Where the Job template was read.
      type: str
      sample: ConfigMap rag-prod/rag-migration-job key job.yaml
    jobs:
      description:
        - The stack's migration Jobs, oldest first (name, version, status, reason, started, completed, managed).
        - Jobs that are running or failed, and the newest one, also carry the C(pod) that ran last, its
          C(exit_code), its last C(logs) lines (O(log_lines)) and how many pods the Job ran (C(attempts)).
      type: list
      elements: dict
      sample:
        - name: rag-migrate-v2
          version: "2"
          status: failed
          reason: BackoffLimitExceeded
          pod: rag-migrate-v2-8xk2p
          exit_code: 1
          logs: ['{"event": "migration_failed", "error": "migration to version 2 failed"}']
          attempts: 3
    active:
      description: Names of migration Jobs still running.
      type: list
      elements: str
      sample: []
    failed:
      description: Names of failed Jobs for the target version.
      type: list
      elements: str
      sample: []
diagnosis:
  description: What keeps the stack down and what to do.
  returned: always
  type: dict
  contains:
    healthy:
      description: Whether every component is Ready and nothing is pending.
      type: bool
      sample: false
    cause:
      description:
        - V(healthy), V(dependency_cycle), V(missing_components), V(migration_failed), V(migration_running),
          V(pending_migration), V(scaled_down) or V(not_ready).
      type: str
      sample: pending_migration
    summary:
      description: The diagnosis in a sentence or two.
      type: str
      sample: "A migration is pending: the stack is at version 1, the migration brings it to 2."
    next_step:
      description: What to do next.
      type: str
      sample: Run the migration once (ragops.recovery.migration_run), then start the components in dependency order.
    cycle:
      description: The dependency cycle, closed; null when there is none.
      type: list
      elements: str
      sample: null
    cycle_text:
      description: The cycle as text.
      type: str
      sample: null
    blocking_migration:
      description: The migration that blocks the stack (job, status, current_version, target_version), or null.
      type: dict
      sample: {"job": null, "status": "pending", "current_version": "1", "target_version": "2"}
    root_causes:
      description: Components where the trouble starts (their own dependencies are fine).
      type: list
      elements: str
      sample: [controller]
    blocked:
      description: Components that cannot come up because of the cause.
      type: list
      elements: str
      sample: [controller, retriever, generator]
    not_ready:
      description: Every component that is not Ready.
      type: list
      elements: str
      sample: [controller, retriever, generator]
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={"log_lines": {"type": "int", "default": 20}},
        groups=("k8s", "components", "migration"),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import (
        components,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import diagnosis
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import migration

    params = module.params
    query = argspec.from_params(
        diagnosis.StackQuery,
        params,
        components=components.components_from_params(params["components"]),
        migration=migration.MigrationSource.from_params(params),
    )
    return dict(diagnosis.describe_stack(module.k8s_client(), query), changed=False)


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
