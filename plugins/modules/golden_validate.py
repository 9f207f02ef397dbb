#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: golden_validate
short_description: Run the golden-query suite against a retriever or shard and gate on the verdict
version_added: 0.1.0
description:
  - Sends every query of a golden set to a query API (a shard's own endpoint or the retriever's),
    concurrently with a per-query timeout and an overall deadline, pulls the ranked document ids
    (and scores) out of each answer with JMESPath, and computes hit@k, recall@k, precision@k, MRR@k
    and nDCG@k (graded when the golden set gives grades) with the definitions trec_eval uses, plus
    the empty-result rate, the error rate, latency p50/p95/max, the score spread and the rank
    agreement and score drift against a recorded baseline.
  - "The verdict passes only when every must-pass query passes, every aggregate threshold in
    O(thresholds) is met and no baseline metric dropped by more than O(tolerance); with O(rounds)
    it must hold for that many consecutive rounds. A failed verdict fails the task with the failing
    queries and the next manual step, unless O(report_only=true)."
  - This is the gate of the runbook's shard recovery (only a pass reintroduces a restored shard),
    the quality check of a provider ramp-back and the verdict of a restore drill.
  - Read-only towards the system under test. Reports (JSON, JUnit XML, Markdown) are written where
    O(reports) says, in check mode too, since they are the validation's output.
  - With O(mode=capture) it records the current answers of a healthy system as the golden set's
    baseline in O(capture_dest) instead of judging them.
  - The golden set format (with a JSON Schema), the metric definitions and the verdict rules are in
    the collection's C(docs/golden.md).
  - The Kubernetes connection options are used only to read O(golden_configmap); they are accepted
    so that the credentials in a play's C(module_defaults) for C(group/ragops.recovery.rag) apply.
author:
  - ragops.recovery maintainers (@ragops)
requirements:
  - jmespath
  - PyYAML
  - kubernetes (only with O(golden_configmap))
options:
  golden_set:
    description:
      - Path of the golden set file (YAML or JSON) on the controller.
      - Exactly one of O(golden_set) and O(golden_configmap) is required.
    type: path
  golden_configmap:
    description:
      - Read the golden set from a key of a ConfigMap in O(namespace) instead of a file.
    type: dict
    suboptions:
      name:
        description: Name of the ConfigMap.
        type: str
        required: true
      key:
        description: Data key holding the golden set YAML.
        type: str
        default: golden.yml
  mode:
    description:
      - V(validate) runs the queries and judges them.
      - V(capture) runs them once and writes the golden set with the answers recorded as its baseline
        (per query ranked ids and scores, and the set's metrics) to O(capture_dest). A capture refuses
        to record errors or empty answers.
    type: str
    choices: [validate, capture]
    default: validate
  url:
    description:
      - URL of the query API, for example a shard's V(http://vectorstore-2:8080/search) or the
        retriever's V(http://retriever:8080/search).
      - May contain the placeholders V(${query}), V(${k}), V(${qid}) and V(${shard}), URL-encoded when
        filled in (for GET APIs that take the query in the query string).
      - Only the scheme, host and path are ever returned or reported.
    type: str
    required: true
  method:
    description: HTTP method of the query API.
    type: str
    choices: [GET, POST, PUT]
    default: POST
  headers:
    description:
      - Request headers that are not secret.
      - "A dictionary or list body is sent as JSON with C(Content-Type: application/json) unless a header
        says otherwise."
    type: dict
    default: {}
  secret_headers:
    description:
      - Request headers that carry credentials (C(Authorization), C(api-key)). Merged over O(headers),
        never logged or returned.
    type: dict
    default: {}
  body:
    description:
      - Request body template. A dictionary or list is sent as JSON; a string is sent as it is.
      - Placeholders V(${query}), V(${k}), V(${qid}) and V(${shard}) are filled in; a value that is
        exactly one placeholder becomes the value itself (V(${k}) gives a number). Write V($$) for
        a literal V($).
      - 'Defaults to V({"query": "${query}", "k": "${k}"}) (the contract of the lab''s retriever and shard)
        for V(POST) and V(PUT), and to no body for V(GET).'
    type: raw
  ids_path:
    description:
      - JMESPath expression that gives the ranked list of document ids from an answer. Integer ids are
        compared as text.
      - An answer where it finds nothing (C(null)) is a query error; an empty list is an empty result.
    type: str
    default: results[].id
  scores_path:
    description:
      - JMESPath expression that gives the scores, one finite number per id. An answer without scores
        is accepted and simply has none. Set to V("") to ignore scores.
    type: str
    default: results[].score
  errors_path:
    description:
      - JMESPath expression that gives a non-empty value when the endpoint reports a partial failure
        in a successful answer (the lab retriever's V(errors), OpenSearch's V(_shards.failures)).
        Such an answer counts as a query error.
    type: str
  cached_path:
    description:
      - JMESPath expression that gives V(true) when the endpoint answered from its answer cache rather than
        computing the answer (the lab generator's V(cached)), and V(false) otherwise. It gives the
        C(cache_hit_rate) metric and makes O(thresholds.max_cache_hit_rate) checkable.
      - An answer where it finds nothing (C(null)) is not counted; any other value than a boolean makes the
        answer a query error.
    type: str
  ranking:
    description:
      - V(response) ranks documents in the order of the answer, the order the application consumes.
      - V(score) re-ranks them as trec_eval does, by descending score with ties broken by document id
        in descending byte order; it needs O(scores_path). An empty answer is an empty result.
    type: str
    choices: [response, score]
    default: response
  k:
    description:
      - The cutoff of every metric and the V(${k}) of the request. Defaults to the golden set's C(k),
        else 10.
      - The golden set's baseline metrics are compared only when they were recorded at the same k.
    type: int
  qids:
    description: Run only these queries of the golden set (all when empty).
    type: list
    elements: str
    default: []
  shard:
    description:
      - Run only the queries whose C(shard) is this shard, for validating one shard through its own
        endpoint. Also named in the next step of a failed verdict.
    type: str
  query_timeout:
    description:
      - Seconds a query may take, from sending to the whole answer. A query without an answer by then is
        a query error of kind C(timeout).
    type: float
    default: 10
  deadline:
    description:
      - Seconds the whole validation (every round) may take. Queries not answered by then are query
        errors of kind C(deadline); the task still ends on time.
    type: float
    default: 300
  concurrency:
    description:
      - Queries in flight at once, each worker keeping its HTTP/1.1 connection to the query API open for its
        next query.
    type: int
    default: 8
  query_validate_certs:
    description: Verify the query API's TLS certificate.
    type: bool
    default: true
  query_ca_path:
    description: CA bundle to verify the query API's certificate with.
    type: path
  use_proxy:
    description: Use the proxy from the environment (E(https_proxy), E(no_proxy)) for the query API.
    type: bool
    default: true
  thresholds:
    description:
      - Aggregate metrics the verdict requires. Minimums and rates are between 0 and 1, latencies in
        seconds. An unset threshold is not checked.
    type: dict
    default: {}
    suboptions:
      hit_at_k:
        description: Minimum mean hit@k.
        type: float
      recall_at_k:
        description: Minimum mean recall@k.
        type: float
      precision_at_k:
        description: Minimum mean precision@k.
        type: float
      mrr:
        description: Minimum mean reciprocal rank at k.
        type: float
      ndcg_at_k:
        description: Minimum mean nDCG@k.
        type: float
      must_pass_rate:
        description: Minimum share of must-pass queries that pass (every must-pass query must pass anyway).
        type: float
      rank_agreement:
        description: Minimum mean rank agreement with the queries' recorded baseline answers.
        type: float
      max_error_rate:
        description: Maximum share of queries that errored (HTTP errors, timeouts, unreadable answers).
        type: float
        default: 0
      max_empty_rate:
        description: Maximum share of queries that came back without results.
        type: float
        default: 0
      max_cache_hit_rate:
        description:
          - Maximum share of the answered queries that came from the endpoint's answer cache (O(cached_path)
            must be set, else the threshold cannot be met). During a provider ramp-back, answers from the
            cache hide what the provider answers.
        type: float
      max_latency_p95:
        description: Maximum 95th percentile latency in seconds.
        type: float
      max_latency:
        description: Maximum latency of any query in seconds.
        type: float
      max_score_drift:
        description: Maximum change of a document's score against the recorded baseline answers.
        type: float
  query_min_recall:
    description:
      - Recall@k a query needs to pass. The default requires every relevant expected document (grade 1 or
        more) in the top k.
    type: float
    default: 1.0
  baseline:
    description:
      - Baseline metrics to compare with, overriding the golden set's C(baseline), for example the
        RV(validation.metrics) registered from a run on a known-good system.
      - Compared are V(hit_at_k), V(recall_at_k), V(precision_at_k), V(mrr), V(ndcg_at_k),
        V(must_pass_rate) and V(rank_agreement); the other metrics of RV(validation.metrics) and C(null)
        values are left out; any other key fails the task.
    type: dict
  tolerance:
    description: How far (absolute) a metric may drop below its baseline before the verdict fails.
    type: float
    default: 0.05
  rounds:
    description:
      - Consecutive passing rounds the verdict requires; each round runs every selected query once.
      - A failing round starts the count again, so with V(2) (and O(max_rounds) left at V(2)) a system
        whose validation flaps, passing once and then failing, fails the verdict. Gate a shard's return
        to service on more than one round for that reason.
    type: int
    default: 1
  max_rounds:
    description:
      - Rounds allowed to reach O(rounds) consecutive passes (for a system still warming up). Defaults
        to O(rounds). Stops early once the rounds left cannot reach the streak.
    type: int
  round_interval:
    description: Seconds between two rounds.
    type: float
    default: 5
  report_only:
    description:
      - Do not fail the task on a failed verdict; report it in RV(validation) and as a warning.
    type: bool
    default: false
  reports:
    description: Where to write the reports; each is written only when given.
    type: dict
    default: {}
    suboptions:
      json:
        description: Path of the JSON report (the RV(validation) result).
        type: path
      junit:
        description:
          - Path of the JUnit XML report, for CI. One test case per query (a failure for a query that
            missed, an error for one that errored) and one per gate check.
        type: path
      markdown:
        description: Path of the Markdown report, a table for the incident channel.
        type: path
  capture_dest:
    description: Where O(mode=capture) writes the golden set with its recorded baseline.
    type: path
  capture_expected_top:
    description:
      - With O(mode=capture), fill in the C(expected_ids) of queries that have none with this many
        top ids of the current answer, to start a golden set from production queries. Review them.
    type: int
    default: 0
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details:
      - The queries only read, so check mode runs the whole validation and gives the same verdict.
      - Reports are written in check mode too; a capture does not write O(capture_dest) in check mode
        and reports whether it would change it.
  diff_mode:
    support: partial
    details: A capture shows the golden set file before and after; a validation changes nothing to diff.
  idempotent:
    support: full
    details: A validation never changes anything; a second capture of an unchanged system reports no change.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.shard_mark
  - module: ragops.recovery.shard_info
"""

EXAMPLES = r"""
- name: Gate shard-2 on its golden queries before it goes back into service
  ragops.recovery.golden_validate:
    golden_set: files/golden.yml
    url: http://vectorstore-2.rag-prod.svc:8080/search
    shard: shard-2
    thresholds:
      ndcg_at_k: 0.8
      max_latency_p95: 0.5
    rounds: 2
    round_interval: 10
    reports:
      junit: "{{ playbook_dir }}/out/golden-shard-2.xml"
      markdown: "{{ playbook_dir }}/out/golden-shard-2.md"

- name: Check the whole retriever, treating a shard error in an answer as a failed query
  ragops.recovery.golden_validate:
    golden_set: files/golden.yml
    url: http://retriever.rag-prod.svc:8080/search
    errors_path: errors
    report_only: true
  register: golden

- name: Qdrant (query API with server-side inference); ids live in the payload
  ragops.recovery.golden_validate:
    golden_set: files/golden.yml
    url: https://qdrant.example.com:6333/collections/docs/points/query
    secret_headers:
      api-key: "{{ qdrant_api_key }}"
    body:
      query:
        text: "${query}"
        model: sentence-transformers/all-minilm-l6-v2
      limit: "${k}"
      with_payload: true
    # answer: {"result": {"points": [{"id": 17, "score": 0.83, "payload": {"doc_id": "doc-00042"}}]},
    #          "status": "ok", "time": 0.002}
    ids_path: result.points[].payload.doc_id
    scores_path: result.points[].score

- name: OpenSearch (full-text match); shard failures in the answer count as errors
  ragops.recovery.golden_validate:
    golden_set: files/golden.yml
    url: https://opensearch.example.com:9200/docs/_search
    secret_headers:
      Authorization: "Basic {{ (os_user ~ ':' ~ os_password) | b64encode }}"
    body:
      size: "${k}"
      query:
        match:
          text: "${query}"
    # answer: {"took": 3, "timed_out": false, "_shards": {"total": 2, "successful": 2, "failed": 0},
    #          "hits": {"hits": [{"_id": "doc-00042", "_score": 7.1, "_source": {...}}]}}
    ids_path: hits.hits[]._id
    scores_path: hits.hits[]._score
    errors_path: _shards.failures
    ranking: score

- name: Record today's answers of the healthy system as the baseline
  ragops.recovery.golden_validate:
    golden_set: files/golden.yml
    url: http://retriever.rag-prod.svc:8080/search
    mode: capture
    capture_dest: files/golden-with-baseline.yml

- name: Ramp-back check against the metrics measured before the outage
  ragops.recovery.golden_validate:
    golden_configmap:
      name: rag-golden-set
    url: http://retriever.rag-prod.svc:8080/search
    baseline: "{{ golden_before.validation.metrics }}"
    tolerance: 0.02
"""

RETURN = r"""
validation:
  description: The verdict and everything it was based on; also the content of the JSON report.
  returned: when O(mode=validate), also in the result of a failed task
  type: dict
  contains:
    passed:
      description: Whether the verdict passed.
      type: bool
      sample: false
    verdict:
      description: V(pass) or V(fail).
      type: str
      sample: fail
    summary:
      description: One line saying how many queries passed and why the verdict failed.
      type: str
      sample: "4 of 6 golden queries passed; must-pass failed: q001; error_rate 0.3333 is above the limit 0"
    next_step:
      description: The next manual step; present when the verdict failed.
      type: str
      sample: "Keep shard shard-2 out of service (do not mark it serving). The endpoint is failing (http): ..."
    started_at:
      description: When the validation started (UTC).
      type: str
      sample: "2026-11-27T22:10:03Z"
    duration:
      description: Seconds the validation took, every round included.
      type: float
      sample: 0.84
    golden_set:
      description: The golden set (C(source), C(name), C(queries), C(selected), C(k), C(shard)).
      type: dict
      sample: {"source": "files/golden.yml", "name": "golden", "queries": 30, "selected": 6, "k": 3, "shard": "shard-2"}
    endpoint:
      description: The query API, without credentials or query string.
      type: dict
      sample: {"url": "http://vectorstore-2:8080/search", "method": "POST"}
    metrics:
      description:
        - Aggregate metrics of the last round, at full precision (the Markdown report and the messages
          round them to 4 decimals); C(null) where not measurable.
        - hit_at_k, recall_at_k, precision_at_k, mrr, ndcg_at_k (means over the judged queries, those
          with expected ids, an error or an empty answer scoring 0, as trec_eval -c averages),
          must_pass_rate, pass_rate, error_rate, empty_rate, cache_hit_rate (with O(cached_path), the
          share of answered queries that came from the cache), latency_p50, latency_p95, latency_max
          (seconds), rank_agreement (mean), score_drift (max) and score_spread (mean).
      type: dict
      sample: {"hit_at_k": 1.0, "recall_at_k": 1.0, "precision_at_k": 0.4222222222222222, "mrr": 1.0,
               "ndcg_at_k": 0.9927880866633306}
    criteria:
      description: The thresholds, limits, per-query recall and tolerance applied.
      type: dict
      sample: {"thresholds": {"ndcg_at_k": 0.8}, "limits": {"error_rate": 0.0}, "query_min_recall": 1.0,
               "tolerance": 0.05}
    baseline:
      description: For each baseline metric compared, the baseline, the current value and the change, at full precision.
      type: dict
      sample: {"ndcg_at_k": {"baseline": 0.9928, "current": 0.9927880866633306, "change": -1.1913336669389096e-05}}
    findings:
      description:
        - What the gate observed, C(fail) findings first; any C(fail) finding fails the verdict.
        - Each has C(level), C(check) (must_pass, query, threshold, regression, rounds, baseline,
          duplicates, no_expected_ids, no_relevant_ids), C(message) and where relevant C(qid), C(metric),
          C(value), C(limit).
      type: list
      elements: dict
      sample: [{"level": "fail", "check": "must_pass", "qid": "q001",
                "message": "q001 (must pass) failed: http: HTTP 503: checksum mismatch in vectors.bin"}]
    failing_queries:
      description: The queries that failed in the last round, must-pass first, with the reasons.
      type: list
      elements: dict
      sample: [{"qid": "q001", "must_pass": true, "shard": "shard-2", "reasons": ["no results (expected doc-03700)"]}]
    queries:
      description:
        - Every query of the last round, with its ranked ids and scores, its grades (C(relevance)), its
          metrics (C(hit), C(recall), C(precision), C(reciprocal_rank), C(ndcg), at full precision;
          C(null) for a query without expected ids), latency and error (C(error), C(error_kind)).
      type: list
      elements: dict
    rounds:
      description: Each round's number, verdict, failing query count and duration.
      type: list
      elements: dict
      sample: [{"round": 1, "passed": true, "failing_queries": 0, "duration": 0.21}]
    rounds_required:
      description: The consecutive passing rounds required (O(rounds)).
      type: int
      sample: 1
    consecutive_passes:
      description: Passing rounds in a row at the end of the run.
      type: int
      sample: 1
reports:
  description: The reports written, by format.
  returned: when O(mode=validate)
  type: dict
  sample: {"junit": "out/golden-shard-2.xml", "markdown": "out/golden-shard-2.md"}
capture:
  description: What a capture recorded.
  returned: when O(mode=capture)
  type: dict
  contains:
    dest:
      description: The file written (O(capture_dest)).
      type: str
      sample: files/golden-with-baseline.yml
    queries:
      description: Queries recorded.
      type: int
      sample: 30
    k:
      description: The cutoff the answers were recorded at.
      type: int
      sample: 3
    baseline:
      description: The set's baseline metrics now in the file.
      type: dict
      sample: {"hit_at_k": 1.0, "recall_at_k": 1.0, "precision_at_k": 0.4222, "mrr": 1.0, "ndcg_at_k": 0.9928}
    latency_max:
      description: Slowest query in seconds.
      type: float
      sample: 0.012
    endpoint:
      description: The query API, without credentials or query string.
      type: str
      sample: http://retriever:8080/search
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.golden import gate

RATES = (
    "hit_at_k",
    "recall_at_k",
    "precision_at_k",
    "mrr",
    "ndcg_at_k",
    "rank_agreement",
    "max_latency_p95",
    "max_latency",
    "max_score_drift",
    "max_cache_hit_rate",
)


def query_options() -> argspec.Spec:
    """How the golden queries are sent and their answers read."""
    return {
        "url": {"type": "str", "required": True},
        "method": {"type": "str", "default": "POST", "choices": ["GET", "POST", "PUT"]},
        "headers": {"type": "dict", "default": {}},
        "secret_headers": {"type": "dict", "default": {}, "no_log": True},
        "body": {"type": "raw"},
        "ids_path": {"type": "str", "default": "results[].id"},
        "scores_path": {"type": "str", "default": "results[].score"},
        "errors_path": {"type": "str"},
        "cached_path": {"type": "str"},
        "ranking": {
            "type": "str",
            "default": "response",
            "choices": ["response", "score"],
        },
        "query_timeout": {"type": "float", "default": 10.0},
        "deadline": {"type": "float", "default": 300.0},
        "concurrency": {"type": "int", "default": 8},
        "query_validate_certs": {"type": "bool", "default": True},
        "query_ca_path": {"type": "path"},
        "use_proxy": {"type": "bool", "default": True},
    }


def verdict_options() -> argspec.Spec:
    """What the verdict is judged on."""
    thresholds: argspec.Spec = {name: {"type": "float"} for name in RATES}
    thresholds.update(
        must_pass_rate={"type": "float", "no_log": False},
        max_error_rate={"type": "float", "default": 0.0},
        max_empty_rate={"type": "float", "default": 0.0},
    )
    return {
        "thresholds": {"type": "dict", "default": {}, "options": thresholds},
        "query_min_recall": {"type": "float", "default": 1.0},
        "baseline": {"type": "dict"},
        "tolerance": {"type": "float", "default": 0.05},
        "rounds": {"type": "int", "default": 1},
        "max_rounds": {"type": "int"},
        "round_interval": {"type": "float", "default": 5.0},
        "report_only": {"type": "bool", "default": False},
    }


def argument_spec() -> argspec.ArgumentSpec:
    configmap = {
        "name": {"type": "str", "required": True},
        "key": {"type": "str", "default": "golden.yml", "no_log": False},
    }
    reports = {name: {"type": "path"} for name in ("json", "junit", "markdown")}
    options: argspec.Spec = {
        "golden_set": {"type": "path"},
        "golden_configmap": {"type": "dict", "options": configmap},
        "mode": {
            "type": "str",
            "default": "validate",
            "choices": ["validate", "capture"],
        },
        "k": {"type": "int"},
        "qids": {"type": "list", "elements": "str", "default": []},
        "shard": {"type": "str"},
        "reports": {"type": "dict", "default": {}, "options": reports},
        "capture_dest": {"type": "path"},
        "capture_expected_top": {"type": "int", "default": 0},
    }
    return argspec.ArgumentSpec(
        options=dict(options, **query_options(), **verdict_options()),
        groups=("k8s",),
        mutually_exclusive=[["golden_set", "golden_configmap"]],
        required_one_of=[["golden_set", "golden_configmap"]],
        required_if=[["mode", "capture", ["capture_dest"]]],
    )


def configmap_reader(module: base.RecoveryModule) -> gate.ConfigMapReader:
    """Reads one key of a ConfigMap in O(namespace); the Kubernetes client is needed only then."""
    from ansible_collections.ragops.recovery.plugins.module_utils import errors
    from ansible_collections.ragops.recovery.plugins.module_utils.k8s import resources

    def read(name: str, key: str) -> str:
        ref = resources.Ref("ConfigMap", name, module.params["namespace"])
        data = module.k8s_client().get(ref).get("data") or {}
        if key not in data:
            raise errors.RecoveryError(
                "Failed to read the golden set: %s has no key %s" % (ref, key),
                resource=str(ref),
                next_step="Store the golden set under that key, or set golden_configmap.key.",
            )
        return t.cast(str, data[key])

    return read


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.golden import gate

    outcome = gate.run(
        module.params,
        check_mode=module.check_mode,
        diff=module._diff,
        read_configmap=configmap_reader(module),
    )
    for warning in outcome.warnings:
        module.warn(warning)
    return outcome.result


def libraries() -> base.Libraries:
    from ansible_collections.ragops.recovery.plugins.module_utils.golden import query

    return dict(
        argspec.yaml_library(),
        **{query.JMESPATH_REQUIREMENT: query.JMESPATH_IMPORT_ERROR},
    )


def main() -> None:
    base.RecoveryModule(argument_spec(), libraries=libraries).run(run_module)


if __name__ == "__main__":
    main()
