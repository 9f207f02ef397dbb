#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: provider_precheck
short_description: Record the warm-failover precheck of backup LLM providers, or refuse one that failed it
version_added: 0.1.0
description:
  - With O(record), stores each backup provider's last check (the registered results of a
    M(ragops.recovery.provider_check) loop) in the ConfigMap O(configmap) of O(namespace), one key per
    provider whose value is JSON C({provider, passed, state, reason, url, latency, checked_at}); the
    records of providers not in O(record) are kept. A provider passes only when it was V(healthy); a
    check that failed outright (for example its key's Secret is missing) is recorded as failed with its
    message.
  - With O(record) and O(golden_set), also measures the answer cache's coverage of the golden set's
    qids (the cache ConfigMap O(answer_cache_configmap) that M(ragops.recovery.generator_fallback)
    builds, one key per qid) and records it in the annotation C(ragops.io/answer-cache-coverage).
  - With O(require_passed), reads the last recorded precheck of that provider and fails when it failed,
    so that a switch does not go to a backup known to be broken. A provider never prechecked passes
    (RV(precheck.recorded) is false).
  - Never fails because a provider or the coverage failed when recording; the play decides from
    RV(precheck.passed).
author:
  - ragops.recovery maintainers (@ragops)
options:
  record:
    description:
      - The registered C(results) of a M(ragops.recovery.provider_check) loop over the providers' names
        (each item has C(provider), or C(msg) and C(item) when the check failed).
      - Mutually exclusive with O(require_passed); one of the two is required.
    type: list
    elements: dict
  require_passed:
    description:
      - Name of a provider whose last recorded precheck must not have failed.
    type: str
  configmap:
    description: The ConfigMap in O(namespace) that holds the precheck records.
    type: str
    default: rag-provider-precheck
  golden_set:
    description:
      - The golden set file (YAML or JSON) whose qids the answer cache should cover. Only with O(record).
    type: path
  answer_cache_configmap:
    description: The answer cache ConfigMap in O(namespace).
    type: str
    default: rag-answer-cache
  min_cache_coverage:
    description:
      - Share of the golden qids (0 to 1) the answer cache must answer for its coverage to pass (C(passed) in
        RV(precheck.cache)).
    type: float
    default: 1.0
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: The record is written as a server-side dry run; O(require_passed) only reads.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Each O(record) run stores the time it checked, so it reports a change; O(require_passed)
      never changes anything.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.provider_check
  - module: ragops.recovery.provider_switch
  - module: ragops.recovery.generator_fallback
"""

EXAMPLES = r"""
- name: Check each backup provider
  ragops.recovery.provider_check:
    name: "{{ item }}"
    url: "{{ provider_urls[item] }}"
    api_key_secret:
      name: rag-provider-keys
      key: "{{ item }}"
  loop: [backup]
  register: checks
  ignore_errors: true

- name: Record the precheck and the answer cache's coverage
  ragops.recovery.provider_precheck:
    record: "{{ checks.results }}"
    golden_set: files/golden.yml
  register: precheck

- name: Before a switch, refuse a backup whose last precheck failed
  ragops.recovery.provider_precheck:
    require_passed: backup
"""

RETURN = r"""
precheck:
  description: What was recorded or read.
  returned: always
  type: dict
  contains:
    configmap:
      description: The ConfigMap holding the records.
      type: str
      sample: ConfigMap rag/rag-provider-precheck
    passed:
      description:
        - With O(record), whether every provider and the answer cache passed; with O(require_passed),
          whether that provider may be switched to.
      type: bool
      sample: false
    checked_at:
      description: The time recorded (O(record) only).
      type: str
      sample: "2026-12-07T06:00:03Z"
    providers:
      description: The records written, by provider (O(record) only).
      type: dict
      sample: {"backup": {"passed": false, "state": "outage", "reason": "models: HTTP 503"}}
    failed:
      description: Names of the providers that failed (O(record) only).
      type: list
      elements: str
      sample: [backup]
    cache:
      description:
        - The answer cache's coverage of the golden qids, with the qids missing from it and those whose
          entry is not a usable answer (O(record) with O(golden_set) only, else null).
      type: dict
      sample: {"qids": 30, "cached": 28, "coverage": 0.9333, "missing": ["q029", "q030"], "passed": false}
    summary:
      description: One line per provider and one for the answer cache, each PASSED or FAILED (O(record) only).
      type: list
      elements: str
      sample: ["provider backup: FAILED, outage (models: HTTP 503: unavailable), slowest answer 0.012s"]
    provider:
      description: The provider asked about (O(require_passed) only).
      type: str
      sample: backup
    recorded:
      description: Whether that provider has a recorded precheck (O(require_passed) only).
      type: bool
      sample: true
    last:
      description: Its last record, or null (O(require_passed) only).
      type: dict
      sample: {"passed": true, "state": "healthy", "checked_at": "2026-12-07T06:00:03Z"}
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import (
        Ref,
    )


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "record": {"type": "list", "elements": "dict"},
            "require_passed": {"type": "str", "no_log": False},
            "configmap": {"type": "str", "default": "rag-provider-precheck"},
            "golden_set": {"type": "path"},
            "answer_cache_configmap": {"type": "str", "default": "rag-answer-cache"},
            "min_cache_coverage": {"type": "float", "default": 1.0},
        },
        groups=("k8s",),
        mutually_exclusive=[["record", "require_passed"]],
        required_one_of=[["record", "require_passed"]],
    )


def coverage(module: base.RecoveryModule) -> base.Result | None:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        precheck,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.golden import (
        goldenset,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import (
        Ref,
    )

    params = module.params
    if not params["golden_set"]:
        return None
    golden = goldenset.load_golden_file(params["golden_set"], require_expected=False)
    ref = Ref("ConfigMap", params["answer_cache_configmap"], params["namespace"])
    cache = module.k8s_client().get_or_none(ref)
    data = None if cache is None else dict(cache.get("data") or {})
    qids = [query.qid for query in golden.queries]
    found = precheck.cache_coverage(qids, data, params["min_cache_coverage"])
    return dict(found, configmap=str(ref))


def record(module: base.RecoveryModule, ref: Ref) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        precheck,
    )

    checked_at = precheck.now_text()
    records = [precheck.provider_record(r, checked_at) for r in module.params["record"]]
    cache = coverage(module)
    changed = precheck.write_records(
        module.k8s_client(), ref, records, cache, module.check_mode
    )
    failed = [r["provider"] for r in records if not r["passed"]]
    found = {
        "configmap": str(ref),
        "checked_at": checked_at,
        "providers": {r["provider"]: r for r in records},
        "failed": failed,
        "cache": cache,
        "passed": not failed and (cache is None or cache["passed"]),
        "summary": precheck.summary(records, cache),
    }
    return {"changed": changed, "precheck": found}


def require_passed(module: base.RecoveryModule, ref: Ref) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.generator import (
        precheck,
    )

    found = precheck.require_passed(
        module.k8s_client(), ref, module.params["require_passed"]
    )
    return {"changed": False, "precheck": found}


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import (
        Ref,
    )

    ref = Ref("ConfigMap", module.params["configmap"], module.params["namespace"])
    if module.params["record"] is not None:
        return record(module, ref)
    return require_passed(module, ref)


def main() -> None:
    module = base.RecoveryModule(argument_spec(), libraries=argspec.yaml_library)
    module.run(run_module)


if __name__ == "__main__":
    main()
