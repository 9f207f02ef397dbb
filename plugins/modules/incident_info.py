#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: incident_info
short_description: Show where an incident stands on a stack, and the runbook's next step
version_added: 0.1.0
description:
  - Reads, without changing anything, what a second engineer asks during an incident - the stack's
    recovery lock (holder, incident, since, expiry, stale or not), every shard's registry entry
    (state, reason, since, route) with its pods, the recovery Jobs that run or failed (restore,
    snapshot, re-index, migration) with their progress read from the Job's log, the generator's
    provider, weights, fallback and throttle flags, the incident's evidence bundles in S3 and the
    postmortem entries and reports in the report folders - and says the step the runbook takes next
    from that state.
  - The incident shown is O(incident_id), else the one the lock is held for, else the one the
    registry names last.
  - A part that cannot be read (a permission missing, S3 unreachable) is reported in
    RV(incident.errors) with what to do; the other parts are still read and the task does not fail.
  - Needs only read access - C(get) on Leases, ConfigMaps and Deployments, C(list) on Pods and
    Jobs, C(get) on pod logs - as the Role in C(meta/rbac/incident-status.yaml) grants.
  - Playbook C(ragops.recovery.incident_status) shows the result as one screen of text or as JSON.
author:
  - ragops.recovery maintainers (@ragops)
options:
  incident_id:
    description:
      - Incident to show. Defaults to the incident the lock is held for, else the one the shard
        registry names last.
    type: str
  stack:
    description:
      - Name of the stack in the commands of RV(incident.next_step) (the inventory host). Defaults
        to O(namespace).
    type: str
  lock_name:
    description:
      - Name of the Lease that is the stack's recovery lock (see M(ragops.recovery.incident_lock)).
    type: str
    default: ragops-recovery-lock
  generator_deployment:
    description:
      - The generator Deployment whose flags are shown. V("") leaves the generator out.
    type: str
    default: generator
  generator_container:
    description:
      - Container of the generator Deployment that carries the flags; defaults to its first.
    type: str
  flags_configmap:
    description:
      - ConfigMap holding the generator's flags, when they are not in the Deployment's env.
    type: str
  primary_provider:
    description:
      - The generator's primary provider; any other provider, weights, fallback or throttle is
        shown as safe mode.
    type: str
    default: primary
  flag_names:
    description:
      - Env vars (or ConfigMap keys) of the flags, as the flag modules were given them.
    type: dict
    default: {}
    suboptions:
      provider:
        description:
          - The provider flag
            (O(ragops.recovery.provider_switch#module:provider_env) of M(ragops.recovery.provider_switch)).
        type: str
        default: PROVIDER
      weights:
        description:
          - The weights flag
            (O(ragops.recovery.provider_switch#module:weights_env) of M(ragops.recovery.provider_switch)).
        type: str
        default: PROVIDER_WEIGHTS
      fallback:
        description:
          - The fallback flag
            (O(ragops.recovery.generator_fallback#module:mode_env) of M(ragops.recovery.generator_fallback)).
        type: str
        default: FALLBACK_MODE
      rps:
        description: The throttle's requests per second (M(ragops.recovery.traffic_throttle)).
        type: str
        default: THROTTLE_RPS
      max_concurrency:
        description: The throttle's concurrency limit.
        type: str
        default: MAX_CONCURRENCY
      long_request_queue:
        description: The throttle's long-request queue switch.
        type: str
        default: LONG_REQUEST_QUEUE
  bucket:
    description:
      - S3 bucket of the evidence bundles
        (O(ragops.recovery.evidence_collect#module:bucket) of M(ragops.recovery.evidence_collect)).
        Without it S3 is not read.
    type: str
  evidence_prefix:
    description:
      - Key prefix of the evidence bundles in O(bucket).
    type: str
    default: evidence
  report_dirs:
    description:
      - Folders on the host that runs the module (the controller, for the playbooks) whose
        C(<folder>/<incident id>/) subfolder holds the incident's postmortem entries, golden-set
        reports and evidence; every file there is listed.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.s3_auth
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
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
seealso:
  - module: ragops.recovery.shard_info
  - module: ragops.recovery.incident_lock
  - module: ragops.recovery.evidence_collect
"""

EXAMPLES = r"""
- name: Where does incident INC-1042 stand on the production stack?
  ragops.recovery.incident_info:
    namespace: rag-prod
    incident_id: INC-1042
    bucket: rag-evidence
    report_dirs: [/var/lib/ragops/reports]
  register: status

- name: Say what to do next
  ansible.builtin.debug:
    msg: "{{ status.incident.next_step.action }} ({{ status.incident.next_step.reason }})"
"""

RETURN = r"""
incident:
  description: Where the incident stands.
  returned: always
  type: dict
  contains:
    stack:
      description: The stack's name (O(stack)).
      type: str
      sample: rag-prod
    namespace:
      description: Its namespace.
      type: str
      sample: rag-prod
    read_at:
      description: When the status was read (UTC).
      type: str
      sample: "2026-11-27T22:14:05Z"
    incident_id:
      description: The incident shown; empty when none is given, held or recorded.
      type: str
      sample: INC-1042
    incident_from:
      description: Where RV(incident.incident_id) came from - V(given), V(lock), V(registry) or V(none).
      type: str
      sample: lock
    lock:
      description:
        - The recovery lock - C(name), C(exists), C(held), C(stale) (held past its expiry), and when
          it exists C(holder), C(incident_id), C(acquired_at), C(renewed_at), C(expires_at),
          C(duration), C(transitions).
      type: dict
      sample:
        name: ragops-recovery-lock
        exists: true
        held: true
        stale: false
        holder: oncall@bastion
        incident_id: INC-1042
        acquired_at: "2026-11-27T22:10:01.123456Z"
        renewed_at: "2026-11-27T22:10:01.123456Z"
        expires_at: "2026-11-27T23:10:01.123456Z"
        duration: 3600
        transitions: 0
    registry:
      description: The registry ConfigMap, as M(ragops.recovery.shard_info) returns it.
      type: dict
    shards:
      description:
        - Every shard - its registry entry as M(ragops.recovery.shard_info) returns it (C(shard),
          C(state), C(serving), C(reason), C(incident_id), C(since), C(changed_by),
          C(previous_state), C(route_to)) with its pods' C(name), C(phase), C(ready), C(restarts),
          C(waiting_reason) and C(claims).
      type: list
      elements: dict
      sample:
        - shard: shard-2
          state: restoring
          serving: false
          reason: restoring the newest verified snapshot
          incident_id: INC-1042
          since: "2026-11-27T22:10:09Z"
          previous_state: quarantined
          pods: [{name: vectorstore-2, phase: Running, ready: false, restarts: 0, waiting_reason: null,
                  claims: [data-vectorstore-2]}]
    jobs:
      description:
        - The collection's Jobs (label C(app.kubernetes.io/managed-by=ragops.recovery)) worth
          showing - every running one, and the finished ones of the incident (without an incident,
          the failed ones) - oldest first; C(hidden) counts the others.
        - C(kind) is V(restore) (annotated with a snapshot and its manifest digest), V(snapshot)
          (annotated with a snapshot id alone), V(reindex), V(migration) or V(other); C(state) is
          V(running), V(succeeded) or V(failed); C(progress) (bytes for a restore or a snapshot, documents for a
          re-index, from the log of the Job's newest pod) has C(done), C(total), C(unit),
          C(percent) and C(text).
      type: dict
      sample:
        hidden: 0
        items:
          - name: ragops-restore-shard-2-20261127t021500z
            kind: restore
            state: running
            shard: shard-2
            incident_id: INC-1042
            started: "2026-11-27T22:10:10Z"
            completed: null
            failure: null
            error: null
            progress: {done: 12582912, total: 27917287, unit: bytes, percent: 45.1,
                       text: "12.0 MiB of 26.6 MiB (45 %)"}
    generator:
      description:
        - The generator's flags; V(null) when O(generator_deployment) is empty or they cannot be
          read. C(safe_mode) is true when any provider but the primary, weights, a fallback or a
          throttle is set; C(changed_groups) are the flag groups whose values before the
          runbook's first change are recorded (C(provider), C(fallback), C(throttle)).
          Values from a Secret are shown as C(<secret>).
      type: dict
      sample:
        source: Deployment rag-prod/generator
        exists: true
        ready: true
        primary: primary
        provider: backup
        on_primary: false
        weights: {}
        weights_error: null
        fallback: "off"
        throttle: {rps: "50", max_concurrency: "8", long_request_queue: "on"}
        throttled: true
        safe_mode: true
        flags: {PROVIDER: backup, THROTTLE_RPS: "50", MAX_CONCURRENCY: "8", LONG_REQUEST_QUEUE: "on"}
        changed_groups: [provider, throttle]
    artifacts:
      description:
        - What the incident left - C(evidence) (bundles and their manifests in S3 and evidence
          files in the report folders) and C(reports) (postmortem entries, golden-set reports,
          timelines), each item with C(location), C(kind) (V(evidence), V(evidence-manifest),
          V(postmortem), V(timeline) or V(report); a run's records bundle, C(postmortem-*.tar.gz), is
          V(postmortem)), C(size) and C(modified).
      type: dict
      sample:
        evidence:
          - {location: "s3://rag-evidence/evidence/INC-1042/evidence-shard-2.tar.gz", kind: evidence,
             size: 48213, modified: "2026-11-27T22:10:05Z"}
        reports:
          - {location: /var/lib/ragops/reports/INC-1042/postmortem-shard-2.md, kind: postmortem,
             size: 1893, modified: "2026-11-27T22:12:40Z"}
    next_step:
      description:
        - The step the runbook takes next from this state - C(action), C(reason) (the state that
          calls for it), C(command) (or null) and C(scenario) (V(A), V(B), V(C) or empty).
      type: dict
      sample:
        scenario: ""
        action: >-
          Wait: oncall@bastion is recovering the stack for incident INC-1042; its restore Job
          ragops-restore-shard-2-20261127t021500z is running (12.0 MiB of 26.6 MiB (45 %))
        reason: the recovery lock ragops-recovery-lock is held since 2026-11-27T22:10:01.123456Z
        command: kubectl -n rag-prod logs -f job/ragops-restore-shard-2-20261127t021500z
    errors:
      description: The parts that could not be read, each with C(part), C(msg) and C(next_step).
      type: list
      elements: dict
      sample: []
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.incident import status

# The flags' names by default, as generator.state.FlagNames has them.
FLAG_NAMES = {
    "provider": "PROVIDER",
    "weights": "PROVIDER_WEIGHTS",
    "fallback": "FALLBACK_MODE",
    "rps": "THROTTLE_RPS",
    "max_concurrency": "MAX_CONCURRENCY",
    "long_request_queue": "LONG_REQUEST_QUEUE",
}


def argument_spec() -> argspec.ArgumentSpec:
    names = {
        name: {"type": "str", "default": default}
        for name, default in FLAG_NAMES.items()
    }
    return argspec.ArgumentSpec(
        options={
            "incident_id": {"type": "str"},
            "stack": {"type": "str"},
            "lock_name": {"type": "str", "default": "ragops-recovery-lock"},
            "generator_deployment": {"type": "str", "default": "generator"},
            "generator_container": {"type": "str"},
            "flags_configmap": {"type": "str"},
            "primary_provider": {"type": "str", "default": "primary"},
            "flag_names": {"type": "dict", "default": {}, "options": names},
            "bucket": {"type": "str"},
            "evidence_prefix": {"type": "str", "default": "evidence"},
            "report_dirs": {"type": "list", "elements": "path", "default": []},
        },
        groups=("k8s", "s3", "shard", "registry"),
    )


def request_of(params: base.Result) -> status.StatusRequest:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import flags
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import state
    from ansible_collections.ragops.recovery.plugins.module_utils.incident import status

    generator = None
    if params["generator_deployment"]:
        generator = flags.FlagTarget(
            params["namespace"],
            params["generator_deployment"],
            params["generator_container"],
            params["flags_configmap"],
        )
    names = {k: v for k, v in (params["flag_names"] or {}).items() if v}
    return argspec.from_params(
        status.StatusRequest,
        params,
        stack=params["stack"] or params["namespace"],
        incident_id=params["incident_id"] or "",
        generator=generator,
        flag_names=state.FlagNames(**names),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.incident import status

    bucket = module.params["bucket"]
    return status.read_status(
        module.k8s_client(),
        request_of(module.params),
        lambda: module.s3_store(bucket) if bucket else None,
    )


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
