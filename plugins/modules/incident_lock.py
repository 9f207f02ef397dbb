#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: incident_lock
short_description: Make sure only one recovery runs against a RAG stack at a time
version_added: 0.1.0
description:
  - Takes or releases a Kubernetes Lease that stands for "a recovery is running on this stack", so that
    a double-launched AWX job or a second engineer fails at once, told who holds the lock and for which
    incident, instead of working against the first.
  - Taking a lock you already hold for the same incident changes nothing, so a recovery that was
    interrupted can be re-run. A lock whose holder stopped renewing it past O(duration) is stale;
    it is taken over only when O(takeover_stale=true).
  - Releasing clears the holder; the Lease itself is kept as the record of the last holder.
author:
  - ragops.recovery maintainers (@ragops)
options:
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the Lease in O(namespace).
    type: str
    default: ragops-recovery-lock
  incident_id:
    description:
      - The incident the recovery belongs to. Required with O(state=present).
    type: str
  holder:
    description:
      - Who holds the lock. Defaults to C(user@host) of the process running the module.
      - In AWX, pass something unique per job, for example C(awx-job-{{ awx_job_id }}).
    type: str
  run_id:
    description:
      - Tells apart the runs of one holder, for example the inventory host a play runs for. The Lease's
        holder becomes C(<holder>/<run_id>). Two inventory hosts that point at one stack then take turns
        instead of both counting as the holder; the second is refused, told which run holds the lock.
      - A re-run with the same O(holder) and O(run_id) holds the lock already, so an interrupted
        recovery can be re-run. Release with the same O(run_id) that took the lock.
      - The shard recovery playbook passes the inventory host name.
    type: str
  duration:
    description:
      - Seconds after which a lock that was not renewed counts as stale.
    type: int
    default: 3600
  takeover_stale:
    description:
      - Take over a stale lock held by someone else. Its previous holder is reported.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), release a lock held by someone else.
    type: bool
    default: false
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Writes are sent as server-side dry runs; a held lock still fails the task.
  diff_mode:
    support: full
    details: The lock's holder and incident before and after.
  idempotent:
    support: full
    details: Taking a lock already held for the same incident, or releasing a free one, changes nothing.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.shard_mark
"""

EXAMPLES = r"""
- name: Take the stack's recovery lock
  ragops.recovery.incident_lock:
    namespace: rag-prod
    incident_id: INC-1042

- name: Take over the lock of a run that died an hour ago
  ragops.recovery.incident_lock:
    namespace: rag-prod
    incident_id: INC-1042
    takeover_stale: true

- name: Release the lock at the end of the recovery
  ragops.recovery.incident_lock:
    namespace: rag-prod
    incident_id: INC-1042
    state: absent
"""

RETURN = r"""
lock:
  description: The lock after the task (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the Lease.
      type: str
      sample: ragops-recovery-lock
    holder:
      description: Who holds the lock; null when it is free.
      type: str
      sample: oncall@bastion
    incident_id:
      description: The incident the holder works on.
      type: str
      sample: INC-1042
    acquired_at:
      description: When the lock was taken (UTC).
      type: str
      sample: "2026-11-27T22:10:03.000000Z"
    renewed_at:
      description: When the lock was last renewed (UTC).
      type: str
      sample: "2026-11-27T22:10:03.000000Z"
    expires_at:
      description: When the lock becomes stale (UTC).
      type: str
      sample: "2026-11-27T23:10:03.000000Z"
    duration:
      description: Seconds the lock lasts without renewal.
      type: int
      sample: 3600
    transitions:
      description: How many times the lock changed hands.
      type: int
      sample: 0
action:
  description: What the task did, V(create), V(take), V(takeover), V(release) or V(none).
  returned: always
  type: str
  sample: create
previous_holder:
  description: The holder of a stale lock that was taken over.
  returned: when the action is V(takeover)
  type: str
  sample: oncall@laptop
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
            "name": {"type": "str", "default": "ragops-recovery-lock"},
            "incident_id": {"type": "str"},
            "holder": {"type": "str"},
            "run_id": {"type": "str"},
            "duration": {"type": "int", "default": 3600},
            "takeover_stale": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
        },
        groups=("k8s",),
        required_if=[("state", "present", ["incident_id"])],
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s import resources
    from ansible_collections.ragops.recovery.plugins.module_utils.stack import lock

    params, client = module.params, module.k8s_client()
    ref = resources.Ref("Lease", params["name"], params["namespace"])
    holder = lock.holder_identity(
        params["holder"] or audit.default_actor(), params["run_id"] or ""
    )
    incident = params["incident_id"] or ""
    request = argspec.from_params(
        lock.Request, params, holder=holder, incident_id=incident
    )
    if params["state"] == "present":
        outcome = lock.acquire(client, ref, request, audit.utc_now(), module.check_mode)
    else:
        outcome = lock.release(client, ref, request, module.check_mode)
    if outcome.action == "takeover" and outcome.before:
        module.warn(
            "Took over the stale lock of %s (incident %s)"
            % (outcome.before.holder, outcome.before.incident_id)
        )
    return outcome.to_result(ref.name, diff=module._diff)


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
