#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: shard_reopen
short_description: Gracefully re-open a vectorstore shard's index and check its health
version_added: 0.1.0
description:
  - Asks one vectorstore shard to re-load its index from disk, then waits until it is healthy.
  - With O(method=http) (the default), calls the shard's admin HTTP endpoint (default
    C(POST /admin/reopen)) and judges health by the shard's own health check. It talks to the
    shard's pod directly (a Ready pod first, else the newest pod labelled O(shard_label)=O(shard)),
    because a Service sends no traffic to a pod that is not Ready. Run it where pod addresses are
    reachable (inside the cluster, for example from an AWX execution environment), or pass O(url).
  - With O(method=exec), runs O(command) in the shard's pod through the Kubernetes API (the
    C(pods/exec) subresource, as C(kubectl exec) does), with a time limit, and reports its exit code
    and output; health is the pod's C(Ready) condition (the shard's readiness probe, as the kubelet
    reports it). Only the Kubernetes API needs to be reachable. The identity needs C(create) and
    C(get) on C(pods/exec) (C(meta/rbac/shard-recovery.yaml) grants both).
  - A shard that is already healthy is left alone (no change) unless O(force=true).
  - Reports the shard's health before and after, so the next step can decide between validation
    and a restore.
author:
  - ragops.recovery maintainers (@ragops)
options:
  shard:
    description:
      - Id of the shard (for example V(shard-2)).
    type: str
    required: true
  method:
    description:
      - How the re-open is asked for.
      - V(http) calls O(reopen_path) on the shard's HTTP API.
      - V(exec) runs O(command) in a container of the shard's running pod (a Ready pod first,
        else the newest).
    type: str
    choices: [http, exec]
    default: http
    version_added: 0.2.0
  command:
    description:
      - With O(method=exec), the command that re-opens the index, as an argv list run without a shell
        (for example V([python, -m, ragops_lab.programs.shard, reopen]) in the lab, or
        your store's own admin command). Exit code 0 means re-opened; any other exit code is a failure,
        reported with the command's output.
      - Required with O(method=exec).
    type: list
    elements: str
    version_added: 0.2.0
  container:
    description:
      - With O(method=exec), the container to run O(command) in. Default the pod's
        C(kubectl.kubernetes.io/default-container) annotation, else its first container.
    type: str
    version_added: 0.2.0
  command_timeout:
    description:
      - With O(method=exec), seconds O(command) may run. When they are up the module stops waiting,
        closes the stream and fails (or, with O(require_healthy=false), reports
        RV(shard.exec.timed_out)). Whether the command itself is stopped is up to the node (the lab's
        node agent kills it; container runtimes may leave it running), so make the command safe to
        run twice.
    type: float
    default: 60
    version_added: 0.2.0
  url:
    description:
      - With O(method=http), the shard's base URL (for example V(http://10.0.3.7:8080)). When given,
        no pod is looked up. Not allowed with O(method=exec).
    type: str
  port:
    description:
      - With O(method=http), the port of the shard's HTTP API on its pod.
    type: int
    default: 8080
  health_path:
    description:
      - With O(method=http), the path of the shard's health check; a 2xx answer means healthy.
    type: str
    default: /readyz
  stats_path:
    description:
      - With O(method=http), the path of the shard's stats (document count, newest document, last
        error); V("") skips it.
    type: str
    default: /stats
  reopen_path:
    description:
      - With O(method=http), the path that re-opens the index when called with C(POST).
    type: str
    default: /admin/reopen
  http_timeout:
    description:
      - With O(method=http), seconds one HTTP call to the shard may take.
    type: float
    default: 10
  force:
    description:
      - Re-open even when the shard is healthy.
    type: bool
    default: false
  require_healthy:
    description:
      - Fail the task when the shard is not healthy after the re-open (a refused call, a command that
        failed or ran out of time, or health that does not come back within O(wait_timeout)).
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
    details: >-
      The health check runs; the re-open is not sent (no command is run) and is reported in
      RV(planned).
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

- name: Re-open as the runbook does by hand, with a command in the shard's pod
  ragops.recovery.shard_reopen:
    namespace: rag-prod
    shard: shard-2
    method: exec
    command: [vectorstore-admin, reopen, --wait]
    container: shard
    command_timeout: 120
    wait_timeout: 60
"""

RETURN = r"""
duration:
  description: Seconds the task took.
  returned: always
  type: float
shard:
  description: The shard, where it was reached, and its health before and after.
  returned: always
  type: dict
  contains:
    name:
      description: Shard id.
      type: str
      sample: shard-2
    method:
      description: How the re-open was asked for (O(method)).
      type: str
      sample: exec
    pod:
      description: The pod talked to (O(method=http)) or the command ran in (O(method=exec)); null
        when O(url) was given.
      type: str
      sample: vectorstore-2
    url:
      description: Base URL used.
      type: str
      returned: with O(method=http)
      sample: http://10.0.3.7:8080
    container:
      description: The container the command ran in.
      type: str
      returned: with O(method=exec)
      sample: shard
    reopened:
      description: Whether the re-open was sent (the command run).
      type: bool
    healthy:
      description: Whether the shard was healthy at the end.
      type: bool
    before:
      description:
        - Health before the re-open.
        - With O(method=http), the health check's answer and the stats; with O(method=exec),
          C(healthy), the pod's C(phase) and its C(ready) condition (status, reason, message).
      type: dict
    after:
      description: Health after the re-open, as in RV(shard.before).
      type: dict
      returned: when the re-open was sent
    answer:
      description: The shard's answer to the HTTP re-open.
      type: dict
      returned: when the re-open was sent with O(method=http)
    exec:
      description: How the command ended.
      type: dict
      returned: when the command was run (O(method=exec))
      contains:
        command:
          description: The command run.
          type: list
          elements: str
        exit_code:
          description: Its exit code; null when it ran out of time or could not start.
          type: int
          sample: 0
        stdout:
          description: What it printed on stdout (the last 64 KiB).
          type: str
        stderr:
          description: What it printed on stderr (the last 64 KiB).
          type: str
        timed_out:
          description: Whether O(command_timeout) ran out before it ended.
          type: bool
        duration:
          description: Seconds it ran.
          type: float
        error:
          description: Why it did not run, as the node reported it (for example a missing program).
          type: str
          returned: when the command could not start
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
  description:
    - The re-open that would be done, in check mode.
    - With O(method=http) the HTTP call; with O(method=exec) the pod, container, command and timeout.
  returned: in check mode when a re-open is needed
  type: dict
  sample: {"method": "exec", "pod": "vectorstore-2", "container": "shard",
           "command": ["vectorstore-admin", "reopen"], "timeout": 60.0}
"""

import time
import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils import errors

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import reopen
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import (
        reopen_exec,
    )


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "shard": {"type": "str", "required": True},
            "method": {"type": "str", "choices": ["http", "exec"], "default": "http"},
            "command": {"type": "list", "elements": "str"},
            "container": {"type": "str"},
            "command_timeout": {"type": "float", "default": 60.0},
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
        required_if=[("method", "exec", ["command"])],
    )


def endpoint_of(module: base.RecoveryModule) -> admin.ShardEndpoint:
    """The URL given, else the shard's pod (the Kubernetes client is needed only then)."""
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin

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


def finish(
    module: base.RecoveryModule,
    outcome: reopen.ReopenOutcome,
    resource: str,
    target: base.Result,
    planned: base.Result,
) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import reopen

    params = module.params
    if outcome.reopened and not outcome.healthy and params["require_healthy"]:
        raise reopen.unhealthy_error(params["shard"], resource, outcome)
    return outcome.to_result(params["shard"], target, planned, module.check_mode)


def reopen_by_http(module: base.RecoveryModule, call: admin.HttpCall) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import reopen

    params = module.params
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
    target, planned = reopen.http_target(endpoint, api)
    return finish(module, outcome, endpoint.pod or endpoint.url, target, planned)


def exec_request(params: base.Result) -> reopen_exec.ExecReopen:
    """The command to run, once the options make sense for method=exec."""
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import (
        reopen_exec,
    )

    if params["url"]:
        raise errors.RecoveryError(
            "Failed to re-open shard %s: url is for method=http" % params["shard"],
            reason="method=exec runs the command in the shard's pod, found by "
            "shard_label; it calls no URL",
            next_step="Leave out url, or use method=http.",
        )
    if not params["command"] or not params["command"][0]:
        raise errors.RecoveryError(
            "Failed to re-open shard %s: command is empty" % params["shard"],
            reason="method=exec needs the command that re-opens the index",
            next_step="Set command to the stack's re-open command as a list, "
            "for example [vectorstore-admin, reopen].",
        )
    return reopen_exec.ExecReopen(
        tuple(params["command"]), params["container"], params["command_timeout"]
    )


def reopen_by_exec(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import (
        reopen_exec,
    )

    params = module.params
    request = exec_request(params)
    client = module.k8s_client()
    target, pod = reopen_exec.find_target(
        client,
        params["namespace"],
        params["shard"],
        params["shard_label"],
        params["container"],
    )
    outcome = reopen_exec.reopen_by_exec(
        client,
        target,
        pod,
        request,
        module.waiter(),
        force=params["force"],
        check_mode=module.check_mode,
    )
    plan = reopen_exec.plan(target, request)
    return finish(module, outcome, "pod %s" % target.pod, target.to_dict(), plan)


def run_module(
    module: base.RecoveryModule, call: admin.HttpCall | None = None
) -> base.Result:
    """Re-open by exec, or by HTTP with ``call`` (the HTTP client by default, imported
    only then)."""
    started = time.monotonic()
    if module.params["method"] == "exec":
        result = reopen_by_exec(module)
    else:
        if call is None:
            from ansible_collections.ragops.recovery.plugins.module_utils.shards import (
                admin,
            )

            call = admin.http_call
        result = reopen_by_http(module, call)
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
