#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_run
short_description: Run a RAG stack's schema migration once, in a controlled Job, and wait for it
version_added: 0.1.0
description:
  - Builds a Job from the stack's migration template (O(migration_configmap) or O(migration_template)),
    optionally with another O(image), O(command), O(args), O(env) or O(service_account), runs it once and
    waits for it, then returns its exit status and the last lines of its log.
  - Idempotent. A migration whose version the stack already records in O(schema_configmap) is not run
    again. A Job of this module for the same version that is still running (from an interrupted run) is
    waited for instead of started twice.
  - Refuses to start while another migration Job of the stack (O(migration_selector)) is running.
  - A failed Job is kept as evidence; the next attempt gets a new name (C(<name>-attempt-2), ...).
  - After the Job completes, checks that the stack now records the new version.
author:
  - ragops.recovery maintainers (@ragops)
options:
  name:
    description:
      - Base of the Job's name; the Job is called C(<name>-v<version>).
      - Defaults to the template's C(metadata.name).
    type: str
  image:
    description:
      - Image of the migration container (the template's first container), instead of the template's.
    type: str
  command:
    description:
      - Command of the migration container, instead of the template's.
    type: list
    elements: str
  args:
    description:
      - Arguments of the migration container, instead of the template's.
    type: list
    elements: str
  env:
    description:
      - Environment variables of the migration container; each replaces the template's variable of the
        same name or is added.
    type: dict
  service_account:
    description:
      - Service account the migration pod runs as.
    type: str
  incident_id:
    description:
      - Incident the migration belongs to, recorded as the Job's C(ragops.io/incident-id) annotation.
    type: str
    default: ""
  log_lines:
    description:
      - How many of the last lines of the migration pod's log to return.
    type: int
    default: 50
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.migration
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details:
      - The Job is created as a server-side dry run and not waited for; a migration already applied is
        reported unchanged, and a running migration Job still fails the task.
  diff_mode:
    support: full
    details: The stack's schema version before and after.
  idempotent:
    support: full
    details: A migration version the stack already records is not run again.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.stack_info
  - module: ragops.recovery.component_start
"""

EXAMPLES = r"""
- name: Run the pending migration from the stack's template and wait up to 10 minutes
  ragops.recovery.migration_run:
    namespace: rag-prod
    migration_configmap: rag-migration-job
    incident_id: INC-1042
    wait_timeout: 600
  register: migration

- name: Run it with a fixed image, under a dedicated service account
  ragops.recovery.migration_run:
    namespace: rag-prod
    migration_configmap: rag-migration-job
    image: registry.example.com/rag/migrate:2.4.1
    service_account: rag-migrator
    env:
      LOG_LEVEL: debug
"""

RETURN = r"""
duration:
  description: Seconds the task spent, most of it waiting for the Job.
  returned: always
  type: float
  sample: 4.2
migration:
  description: What the migration did (in check mode, what it would do).
  returned: always
  type: dict
  contains:
    job:
      description: Name of the Job that ran (or would run, or ran earlier).
      type: str
      sample: rag-migrate-v2
    action:
      description: V(create) (a new Job), V(adopt) (our Job was already running) or V(skip) (version reached).
      type: str
      sample: create
    status:
      description: V(succeeded), V(applied) (nothing to do), V(planned) (check mode) or V(running) (O(wait=false)).
      type: str
      sample: succeeded
    version:
      description: The version the migration brings the stack to.
      type: str
      sample: "2"
    previous_version:
      description: The version the stack recorded before.
      type: str
      sample: "1"
    current_version:
      description: The version the stack records now.
      type: str
      sample: "2"
    pod:
      description: The pod that ran the migration.
      type: str
      returned: when the Job ran
      sample: rag-migrate-v2-8xk2p
    exit_code:
      description: Exit code of the migration container.
      type: int
      returned: when the Job ran
      sample: 0
    logs:
      description: The last lines of the migration pod's log.
      type: list
      elements: str
      returned: when the Job ran
      sample: ['{"event": "migration_applied", "version": 2}']
    attempts:
      description: How many pods the Job ran.
      type: int
      returned: when the Job ran
      sample: 1
    earlier_attempts:
      description: Failed Jobs of earlier attempts, kept as evidence.
      type: list
      elements: str
      sample: []
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "name": {"type": "str"},
            "incident_id": {"type": "str", "default": ""},
            "log_lines": {"type": "int", "default": 50},
            # What the Job takes from these instead of the template.
            "image": {"type": "str"},
            "command": {"type": "list", "elements": "str"},
            "args": {"type": "list", "elements": "str"},
            "env": {"type": "dict"},
            "service_account": {"type": "str"},
        },
        groups=("k8s", "wait", "migration"),
        required_one_of=[["migration_configmap", "migration_template"]],
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import migration
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import (
        migration_job,
    )

    params = module.params
    request = argspec.from_params(
        migration_job.RunRequest,
        params,
        overrides=argspec.from_params(migration.JobOverrides, params),
        check_mode=module.check_mode,
        diff=module._diff,
    )
    # required_one_of guarantees a template, so there is a source.
    source = t.cast(
        migration.MigrationSource, migration.MigrationSource.from_params(params)
    )
    poller = module.waiter()
    return migration_job.migrate(
        module.k8s_client(), source, params["name"], request, poller
    )


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
