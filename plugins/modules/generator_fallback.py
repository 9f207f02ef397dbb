#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: generator_fallback
short_description: Put the generator into a safe fallback mode (cached answers or refusal) and back
version_added: 0.1.0
description:
  - The runbook's local fallback when no provider can answer. With O(mode=cache) the generator answers
    known query ids from an answer cache and safely refuses everything else; with O(mode=refuse) it
    always refuses. Neither calls an LLM provider.
  - Builds the answer cache ConfigMap O(answer_cache_configmap) from O(answers) or O(answers_file) (one
    key per qid, the value JSON C({"answer", "citations"})) when one of them is given, then sets the
    generator's fallback flag (and the cache ConfigMap flag) in the Deployment's env or O(flags_configmap).
  - Records the flags before the first change in the annotation C(ragops.io/previous-fallback);
    O(state=restored) sets them back (normally C(off)). The answer cache ConfigMap is kept.
author:
  - ragops.recovery maintainers (@ragops)
options:
  mode:
    description: The fallback mode. V(off) answers normally through the provider.
    type: str
    choices: [cache, refuse, "off"]
    default: cache
  answers:
    description: Cached answers by qid; a value is the answer text or C({answer, citations}).
    type: dict
  answers_file:
    description:
      - JSON or YAML file on the controller with the same mapping (for example answers captured from the
        golden set on a healthy system).
    type: path
  qids:
    description: Put only these qids into the cache (all when empty); a qid without an answer fails the task.
    type: list
    elements: str
    default: []
  answer_cache_configmap:
    description: Name of the answer cache ConfigMap in O(namespace).
    type: str
    default: rag-answer-cache
  mode_env:
    description: Env var (or flags ConfigMap key) of the fallback mode.
    type: str
    default: FALLBACK_MODE
  cache_env:
    description: Env var (or flags ConfigMap key) naming the answer cache ConfigMap.
    type: str
    default: ANSWER_CACHE_CONFIGMAP
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.generator
  - ragops.recovery.wait
attributes:
  check_mode:
    support: full
    details: Writes are sent as server-side dry runs; nothing is stored and nothing rolls out.
  diff_mode:
    support: full
    details: The fallback flags before and after, and the qids added to or removed from the cache.
  idempotent:
    support: full
    details: A second run with the same arguments reports no change.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.provider_switch
  - module: ragops.recovery.provider_check
"""

EXAMPLES = r"""
- name: No provider answers; serve known questions from the cache, refuse the rest
  ragops.recovery.generator_fallback:
    namespace: rag-prod
    mode: cache
    answers_file: files/answer-cache.json

- name: Back to normal answers
  ragops.recovery.generator_fallback:
    namespace: rag-prod
    state: restored
"""

RETURN = r"""
fallback:
  description: The fallback flags and the answer cache.
  returned: always
  type: dict
  contains:
    duration:
      description: Seconds spent waiting for the rollout.
      type: float
      sample: 2.1
    effective_at:
      description:
        - When the change took effect (UTC, to the millisecond) - the rollout done, or the write when
          not waiting or when the flags live in a ConfigMap. V(null) when nothing changed and in check mode.
        - What the runbook's reports measure the time to safe mode to.
      type: str
      sample: "2026-11-27T22:10:04.512Z"
    mode:
      description: The fallback mode in force after the task (in check mode, as it would be).
      type: str
      sample: cache
    before:
      description: The flags before the change.
      type: dict
      sample: {"FALLBACK_MODE": null, "ANSWER_CACHE_CONFIGMAP": "rag-answer-cache"}
    after:
      description: The flags after the change.
      type: dict
      sample: {"FALLBACK_MODE": "cache", "ANSWER_CACHE_CONFIGMAP": "rag-answer-cache"}
    previous:
      description: The values recorded before the first change, which O(state=restored) sets back.
      type: dict
      sample: {"FALLBACK_MODE": null}
    cache:
      description: The answer cache ConfigMap, its qids, and whether it changed.
      type: dict
      sample: {"name": "rag-answer-cache", "qids": 30, "changed": false}
    target:
      description: The object holding the flags.
      type: str
      sample: Deployment rag-prod/generator
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s import client


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "mode": {
                "type": "str",
                "default": "cache",
                "choices": ["cache", "refuse", "off"],
            },
            "answers": {"type": "dict"},
            "answers_file": {"type": "path"},
            "qids": {"type": "list", "elements": "str", "default": []},
            "answer_cache_configmap": {"type": "str", "default": "rag-answer-cache"},
            "mode_env": {"type": "str", "default": "FALLBACK_MODE"},
            "cache_env": {"type": "str", "default": "ANSWER_CACHE_CONFIGMAP"},
        },
        groups=("k8s", "generator", "wait"),
        mutually_exclusive=[["answers", "answers_file"]],
    )


def build_cache(module: base.RecoveryModule, client: client.K8sClient) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        answer_cache,
    )

    params = module.params
    name = params["answer_cache_configmap"]
    cache: base.Result = {"name": name, "changed": False}
    source = params["answers"]
    if params["answers_file"]:
        source = answer_cache.load_answers(params["answers_file"])
    if source is None or params["state"] == "restored":
        return cache
    data = answer_cache.cache_data(source, params["qids"])
    changed, before = answer_cache.write_cache(
        client, params["namespace"], name, data, module.check_mode
    )
    cache.update(
        changed=changed,
        qids=len(data),
        added=sorted(set(data) - set(before)),
        removed=sorted(set(before) - set(data)),
    )
    return cache


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import flags

    params, client = module.params, module.k8s_client()
    cache = build_cache(module, client)
    desired = {params["mode_env"]: params["mode"]}
    if params["mode"] == "cache":
        desired[params["cache_env"]] = params["answer_cache_configmap"]
    report = (params["mode_env"], params["cache_env"])
    change = flags.FlagChange.from_params(params, "fallback", desired, report)
    outcome = flags.set_flags(client, change, check_mode=module.check_mode)
    mode = outcome.after.get(params["mode_env"]) or "off"
    fallback = dict(outcome.result(), cache=cache, mode=mode)
    result: base.Result = {
        "changed": outcome.changed or cache["changed"],
        "fallback": fallback,
    }
    if module._diff:
        removed, added = cache.get("removed", []), cache.get("added", [])
        result["diff"] = {
            "before": dict(outcome.before, cache_qids_removed=removed),
            "after": dict(outcome.after, cache_qids_added=added),
        }
    return result


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
