#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: shard_reopen
short_description: Gracefully re-open a vectorstore shard's index and check its health
version_added: 0.1.0
description:
  - Asks one vectorstore shard to re-load its index from disk through its admin HTTP endpoint
    (default C(POST /admin/reopen)), then waits until its health check passes.
  - A shard whose health check already passes is left alone (no change) unless O(force=true).
  - Talks to the shard's pod directly (a Ready pod first, else the newest pod labelled
    O(shard_label)=O(shard)), because a Service sends no traffic to a pod that is not Ready. Run it
    where pod addresses are reachable (inside the cluster, for example from an AWX execution
    environment), or pass O(url).
  - Reports the shard's health and stats before and after, so the next step can decide between
    validation and a restore.
author:
  - ragops.recovery maintainers (@ragops)
options:
  shard:
    description:
      - Id of the shard (for example V(shard-2)).
    type: str
    required: true
  url:
    description:
      - Base URL of the shard (for example V(http://10.0.3.7:8080)). When given, no pod is looked up.
    type: str
  port:
    description:
      - Port of the shard's HTTP API on its pod.
    type: int
    default: 8080
  health_path:
    description:
      - Path of the shard's health check; a 2xx answer means healthy.
    type: str
    default: /readyz
  stats_path:
    description:
      - Path of the shard's stats (document count, newest document, last error); V("") skips it.
    type: str
    default: /stats
  reopen_path:
    description:
      - Path that re-opens the index when called with C(POST).
    type: str
    default: /admin/reopen
  http_timeout:
    description:
      - Seconds one HTTP call to the shard may take.
    type: float
    default: 10
  force:
    description:
      - Re-open even when the shard is healthy.
    type: bool
    default: false
  require_healthy:
    description:
      - Fail the task when the shard is not healthy after the re-open.
      - With V(false) the task succeeds and RV(shard.healthy) says whether the re-open worked, so a
        playbook can go on to a restore.
    type: bool
    default: true
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.wait
  - ragops.recovery.shard
attributes:
  check_mode:
    support: full
    details: The health check runs; the re-open is not sent and is reported in RV(planned).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A healthy shard is not re-opened again.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.shard_mark
  - module: ragops.recovery.snapshot_restore
  - module: ragops.recovery.golden_validate
"""

EXAMPLES = r"""
- name: Try a graceful re-open of shard-2; go on to a restore when it does not help
  ragops.recovery.shard_reopen:
    namespace: rag-prod
    shard: shard-2
    wait_timeout: 30
    require_healthy: false
  register: reopen

- name: Re-open a shard at a known address
  ragops.recovery.shard_reopen:
    shard: shard-2
    url: http://10.0.3.7:8080
"""

RETURN = r"""
duration:
  description: Seconds the task took.
  returned: always
  type: float
shard:
  description: The shard, the pod and URL used, and its health before and after.
  returned: always
  type: dict
  contains:
    name:
      description: Shard id.
      type: str
      sample: shard-2
    pod:
      description: The pod talked to; null when O(url) was given.
      type: str
      sample: vectorstore-2
    url:
      description: Base URL used.
      type: str
      sample: http://10.0.3.7:8080
    reopened:
      description: Whether the re-open was sent.
      type: bool
    healthy:
      description: Whether the shard passed its health check at the end.
      type: bool
    before:
      description: Health and stats before the re-open.
      type: dict
    after:
      description: Health and stats after the re-open.
      type: dict
      returned: when the re-open was sent
    answer:
      description: The shard's answer to the re-open.
      type: dict
      returned: when the re-open was sent
    error:
      description: Why the shard is still unhealthy.
      type: str
      returned: when the re-open did not help
summary:
  description:
    - One line saying what was tried and how it ended, for a recovery's account of what it tried.
  returned: always
  type: str
  sample: "re-open: not healthy after the re-open: HTTP 503: index not loaded"
planned:
  description: The call that would be made, in check mode.
  returned: in check mode when a re-open is needed
  type: dict
  sample: {"method": "POST", "url": "http://10.0.3.7:8080/admin/reopen"}
"""

import time

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin
from ansible_collections.ragops.recovery.plugins.module_utils.shards import reopen


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "shard": {"type": "str", "required": True},
            "url": {"type": "str"},
            "port": {"type": "int", "default": 8080},
            "health_path": {"type": "str", "default": "/readyz"},
            "stats_path": {"type": "str", "default": "/stats"},
            "reopen_path": {"type": "str", "default": "/admin/reopen"},
            "http_timeout": {"type": "float", "default": 10.0},
            "force": {"type": "bool", "default": False},
            "require_healthy": {"type": "bool", "default": True},
        },
        groups=("k8s", "shard", "wait"),
    )


def endpoint_of(module: base.RecoveryModule) -> admin.ShardEndpoint:
    """The URL given, else the shard's pod (the Kubernetes client is needed only then)."""
    params = module.params
    if params["url"]:
        return admin.ShardEndpoint(params["url"])
    return admin.find_endpoint(
        module.k8s_client(),
        params["namespace"],
        params["shard"],
        params["shard_label"],
        params["port"],
    )


def run_module(module: base.RecoveryModule, call: admin.HttpCall) -> base.Result:
    params = module.params
    started = time.monotonic()
    endpoint = endpoint_of(module)
    api = argspec.from_params(reopen.ShardApi, params, timeout=params["http_timeout"])
    outcome = reopen.reopen_shard(
        call,
        endpoint,
        api,
        module.waiter(),
        force=params["force"],
        check_mode=module.check_mode,
    )
    if outcome.reopened and not outcome.healthy and params["require_healthy"]:
        raise reopen.unhealthy_error(params["shard"], endpoint, outcome)
    result = outcome.to_result(params["shard"], endpoint, api, module.check_mode)
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(
        lambda module: run_module(module, admin.http_call)
    )


if __name__ == "__main__":
    main()
