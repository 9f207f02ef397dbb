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
  - One Job per shard, start time and incident (its name is derived from the three), so a re-run
    of the incident finds the Job already there and only tracks it.
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
      - Incident id, recorded as an annotation on the Job and part of its name (a short digest of it), so
        that each incident re-indexes for itself; a later incident that restores the same snapshot does
        not take the earlier incident's finished Job for its own.
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
duration:
  description: Seconds spent waiting.
  returned: always
  type: float
reindex:
  description: The indexer Job and its progress.
  returned: always
  type: dict
  contains:
    job:
      description: Name of the Job.
      type: str
      sample: ragops-reindex-shard-2-20261127t020000z-7cacee3b
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
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "shard": {"type": "str", "required": True},
            "since": {"type": "str", "required": True},
            "image": {"type": "str"},
            "job_template": {"type": "dict"},
            "env": {"type": "dict", "default": {}},
            "incident_id": {"type": "str", "default": ""},
            "backoff_limit": {"type": "int", "default": 2},
        },
        groups=("k8s", "wait"),
        required_one_of=[["image", "job_template"]],
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import reindex

    params = module.params
    request = argspec.from_params(
        reindex.ReindexRequest, params, template=params["job_template"]
    )
    poller = module.waiter() if params["wait"] else None
    return reindex.reindex(
        module.k8s_client(), request, poller, check_mode=module.check_mode
    )


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
