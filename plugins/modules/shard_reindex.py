#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: shard_reindex
short_description: Re-index a shard's documents written since a time, and track the indexer Job
version_added: 0.1.0
description:
  - Starts the indexer as a Kubernetes Job for one shard and one start time - typically the restored
    snapshot's creation time or the newest document the restored shard holds - and tracks its progress
    from the progress lines of its pod log (C({"event":"progress","done":N,"total":M}), then
    C({"event":"completed"})).
  - The indexer reads the shard from C(SHARD) and the start time from C(SINCE) in its environment.
  - One Job per shard and start time (its name is derived from both), so a re-run finds the Job
    already there and only tracks it.
  - With O(wait=false) the task returns at once with the Job's name to check later.
author:
  - ragops.recovery maintainers (@ragops)
options:
  shard:
    description:
      - Id of the shard (for example V(shard-2)).
    type: str
    required: true
  since:
    description:
      - Re-index the documents written after this time (ISO 8601, for example V(2026-11-27T02:00:00Z)).
    type: str
    required: true
  image:
    description:
      - Image of the indexer. Used when O(job_template) is not given, or has no container.
    type: str
  job_template:
    description:
      - A Job manifest to start from. Its name and namespace are replaced; C(SINCE) and C(SHARD) are set
        in its first container's environment.
    type: dict
  env:
    description:
      - More environment variables for the indexer container.
    type: dict
    default: {}
  incident_id:
    description:
      - Incident id, recorded as an annotation on the Job.
    type: str
    default: ""
  backoff_limit:
    description:
      - Retries of the Job's pod, when the template does not set them.
    type: int
    default: 2
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details: The Job is created as a server-side dry run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: An existing Job for the shard and start time is tracked, not started again.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.snapshot_restore
"""

EXAMPLES = r"""
- name: Bring back what shard-2 lost since its snapshot, and wait for it
  ragops.recovery.shard_reindex:
    namespace: rag-prod
    shard: shard-2
    since: "{{ restored.snapshot.created }}"
    image: registry.example.com/rag/indexer:2.3
    incident_id: INC-1042
    wait_timeout: 1800

- name: Start it and check on it later
  ragops.recovery.shard_reindex:
    namespace: rag-prod
    shard: shard-2
    since: "2026-11-27T02:00:00Z"
    image: registry.example.com/rag/indexer:2.3
    wait: false
  register: reindex
"""

RETURN = r"""
reindex:
  description: The indexer Job and its progress.
  returned: always
  type: dict
  contains:
    job:
      description: Name of the Job.
      type: str
      sample: ragops-reindex-shard-2-20261127t020000z
    shard:
      description: Shard id.
      type: str
    since:
      description: Start time of the re-index.
      type: str
    state:
      description: V(running), V(succeeded), V(failed), or V(absent) (check mode before the Job exists).
      type: str
      sample: succeeded
    done:
      description: Documents re-indexed so far.
      type: int
      sample: 48
    total:
      description: Documents to re-index; null before the indexer reported.
      type: int
      sample: 48
    completed:
      description: Whether the indexer logged its completion.
      type: bool
created:
  description: Whether the Job was created (or would be, in check mode).
  returned: always
  type: bool
duration:
  description: Seconds spent waiting.
  returned: always
  type: float
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import K8sClient
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.transport import (
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
    connect,
)
from ansible_collections.ragops.recovery.plugins.module_utils.module import RecoveryModule, recovery_errors
from ansible_collections.ragops.recovery.plugins.module_utils.reindex import (
    ReindexRequest,
    Tracker,
    failed_error,
    job_manifest,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import Waiter


def argument_spec() -> dict[str, dict[str, t.Any]]:
    return {
        "shard": {"type": "str", "required": True},
        "since": {"type": "str", "required": True},
        "image": {"type": "str"},
        "job_template": {"type": "dict"},
        "env": {"type": "dict", "default": {}},
        "incident_id": {"type": "str", "default": ""},
        "backoff_limit": {"type": "int", "default": 2},
    }


def run_module(module: RecoveryModule, client: K8sClient) -> dict[str, t.Any]:
    params = module.params
    request = ReindexRequest(namespace=params["namespace"], shard=params["shard"], since=params["since"],
                             image=params["image"], template=params["job_template"], env=params["env"],
                             incident_id=params["incident_id"], backoff_limit=params["backoff_limit"])
    tracker = Tracker(client, request)
    created = tracker.job() is None
    if created:
        client.create(job_manifest(request), dry_run=module.check_mode)
    if module.check_mode:
        state = "absent" if created else tracker.snapshot()["state"]
        return {"changed": created, "created": created, "duration": 0.0,
                "reindex": {"job": request.job_name, "shard": request.shard, "since": request.since, "state": state}}
    duration = 0.0
    seen = tracker.snapshot()
    if params["wait"]:
        waiter = Waiter(timeout=params["wait_timeout"], interval=params["wait_sleep"])
        outcome = waiter.until("re-index Job %s" % request.job_name, tracker.snapshot,
                               lambda view: view["state"] != "running",
                               next_step="Check the Job later: it keeps running in the cluster.")
        seen, duration = outcome.value, outcome.duration
    if seen["state"] == "failed":
        raise failed_error(request, dict(seen, shard=request.shard, since=request.since))
    return {"changed": created, "created": created, "duration": duration,
            "reindex": dict(seen, shard=request.shard, since=request.since)}


def main() -> None:
    module = RecoveryModule(argument_spec(), groups=["k8s", "wait"],
                            libraries={KUBERNETES_REQUIREMENT: KUBERNETES_IMPORT_ERROR},
                            required_one_of=[["image", "job_template"]])
    with recovery_errors(module):
        result = run_module(module, K8sClient(connect(module.params)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
