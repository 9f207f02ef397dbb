# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The golden_validate module's one call: options in, a result or a domain exception
out."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..audit import timestamp
from ..errors import GoldenSetInvalid, RecoveryError, ValidationFailed
from ..waiter import Clock
from . import capture as cap
from . import query as q
from . import verdict as v
from .evaluation import aggregate, evaluate_answer
from .goldenset import (
    GoldenQuery,
    GoldenSet,
    Problems,
    load_golden_file,
    load_golden_text,
    parse_baseline_metrics,
    select_queries,
)
from .metrics import BASELINE_METRICS
from .reports import METRIC_ORDER, public_url, validation_dict, write_reports
from .suite import Outcome, Plan, run_validation

DEFAULT_K = 10
NOT_BASELINE = frozenset(name for name in METRIC_ORDER if name not in BASELINE_METRICS)
Params = t.Mapping[str, t.Any]
ConfigMapReader = t.Callable[[str, str], str]


@dataclass
class GateResult:
    """What the module returns, and the warnings it shows."""

    result: t.Dict[str, t.Any]
    warnings: t.List[str] = field(default_factory=list)


def load(params: Params, read_configmap: ConfigMapReader) -> GoldenSet:
    """The golden set from O(golden_set) or O(golden_configmap)."""
    require_expected = params["mode"] != "capture"
    source = params.get("golden_configmap")
    if source:
        text = read_configmap(source["name"], source["key"])
        return load_golden_text(
            text,
            "configmap %s key %s" % (source["name"], source["key"]),
            require_expected=require_expected,
        )
    return load_golden_file(params["golden_set"], require_expected=require_expected)


def request_body(params: Params) -> t.Any:
    """The body template: the option, else the body the lab's retriever and shard
    take (the defaults of ids_path and scores_path read their answers) for POST and
    PUT, else none."""
    if params.get("body") is not None:
        return params["body"]
    return {"query": "${query}", "k": "${k}"} if params["method"] != "GET" else None


def query_api(params: Params) -> q.QueryApi:
    """The query API from the options; bad expressions and placeholders fail here,
    before any request."""
    api = q.QueryApi(
        url=params["url"],
        method=params["method"],
        headers={
            **(params.get("headers") or {}),
            **(params.get("secret_headers") or {}),
        },
        body=request_body(params),
        ids=q.compile_path(params["ids_path"], "ids_path"),
        scores=q.compile_path(params["scores_path"], "scores_path")
        if params.get("scores_path")
        else None,
        errors=q.compile_path(params["errors_path"], "errors_path")
        if params.get("errors_path")
        else None,
        cached=q.compile_path(params["cached_path"], "cached_path")
        if params.get("cached_path")
        else None,
        ranking=params["ranking"],
        timeout=params["query_timeout"],
        transport=q.make_transport(
            params["url"],
            params["query_validate_certs"],
            params.get("query_ca_path"),
            params["use_proxy"],
        ),
    )
    q.check_templates(api)
    return api


def recorded_baseline(
    params: Params, golden: GoldenSet, k: int, subset: bool
) -> t.Tuple[t.Mapping[str, float], str | None]:
    """The golden set's baseline that fits this run, or a note saying why none
    does.

    A run of one shard's queries (O(shard) without O(qids)) is compared with that
    shard's own baseline (``shard_baselines``); any other subset has different
    means than the whole set's baseline.
    """
    shard = params.get("shard")
    # With a note the baseline is shown, not compared.
    if golden.k is not None and golden.k != k:
        return golden.baseline, (
            "the golden set's baseline was recorded at k=%d, this run uses k=%d: not "
            "compared" % (golden.k, k)
        )
    if shard and not params.get("qids"):
        if shard in golden.shard_baselines:
            return golden.shard_baselines[shard], None
        return golden.baseline, (
            "the golden set has no baseline for shard %s (shard_baselines), and its "
            "baseline covers all its queries: not compared" % shard
        )
    if subset:
        return golden.baseline, (
            "the golden set's baseline covers all its queries, this run a subset: "
            "not compared"
        )
    return golden.baseline, None


def criteria(params: Params, golden: GoldenSet, k: int, subset: bool) -> v.Criteria:
    """Thresholds and the baseline to compare with; a baseline that does not fit is
    noted, not used."""
    baseline: t.Mapping[str, float]
    if params.get("baseline") is not None:
        problems = Problems()
        # A registered validation.metrics works as it is: the metrics that are no
        # baseline are left out.
        given = {
            name: value
            for name, value in params["baseline"].items()
            if value is not None and name not in NOT_BASELINE
        }
        baseline, note = parse_baseline_metrics(given, "baseline", problems), None
        if problems.items:
            raise GoldenSetInvalid(
                "Invalid baseline option: %s" % "; ".join(problems.items),
                resource="baseline",
            )
    else:
        baseline, note = recorded_baseline(params, golden, k, subset)
    return v.criteria_from_options(
        params.get("thresholds") or {},
        min_recall=params["query_min_recall"],
        tolerance=params["tolerance"],
        baseline=baseline,
        baseline_note=note,
    )


def check_numbers(params: Params) -> None:
    """Counts and durations that must be positive, checked before any request."""
    for name in (
        "query_timeout",
        "deadline",
        "concurrency",
        "rounds",
        "max_rounds",
        "k",
    ):
        value = params.get(name)
        if value is not None and value <= 0:
            raise RecoveryError(
                "Invalid %s=%s: it must be greater than 0" % (name, value),
                resource=name,
            )
    for name in ("round_interval", "capture_expected_top"):
        if params[name] < 0:
            raise RecoveryError(
                "Invalid %s=%s: it must be 0 or more" % (name, params[name]),
                resource=name,
            )
    if params.get("max_rounds") is not None and params["max_rounds"] < params["rounds"]:
        raise RecoveryError(
            "Invalid max_rounds=%s: it must be at least rounds=%s"
            % (params["max_rounds"], params["rounds"]),
            resource="max_rounds",
        )


def run(
    params: Params,
    *,
    check_mode: bool,
    diff: bool,
    read_configmap: ConfigMapReader,
    clock: t.Optional[Clock] = None,
) -> GateResult:
    """Validate (or capture) as the options say; a failed verdict raises
    :class:`ValidationFailed`."""
    check_numbers(params)
    golden = load(params, read_configmap)
    queries = select_queries(golden, params.get("qids"), params.get("shard"))
    k = params.get("k") or golden.k or DEFAULT_K
    api = query_api(params)
    clock = clock or Clock()
    if params["mode"] == "capture":
        return capture(
            params, golden, queries, k, api, clock, check_mode=check_mode, diff=diff
        )
    plan = Plan(
        golden=golden,
        queries=queries,
        k=k,
        api=api,
        criteria=criteria(params, golden, k, subset=len(queries) < len(golden.queries)),
        concurrency=params["concurrency"],
        deadline=params["deadline"],
        rounds=params["rounds"],
        max_rounds=params.get("max_rounds") or params["rounds"],
        round_interval=params["round_interval"],
        shard=params.get("shard"),
    )
    return judge(params, run_validation(plan, clock), timestamp())


def judge(params: Params, outcome: Outcome, started_at: str) -> GateResult:
    """The module result for a finished validation; a failed verdict raises unless
    report_only."""
    validation = validation_dict(outcome, started_at)
    if not outcome.passed:
        validation["next_step"] = v.next_step(outcome.last.verdict, params.get("shard"))
    result = {
        "changed": False,
        "validation": validation,
        "reports": write_reports(validation, params.get("reports") or {}),
    }
    if outcome.passed:
        return GateResult(result)
    if params["report_only"]:
        return GateResult(
            result,
            [
                "Golden-query validation failed (report_only): %s"
                % validation["summary"]
            ],
        )
    raise ValidationFailed(
        "Golden-query validation failed: %s" % validation["summary"],
        resource=public_url(params["url"]),
        reason=validation["summary"],
        next_step=validation["next_step"],
        partial=result,
    )


def captured_metrics(document: t.Mapping[str, t.Any], shard: str | None) -> t.Any:
    """The metrics a capture recorded: one shard's, or the set's."""
    if shard:
        return document["shard_baselines"][shard]
    return document.get("baseline", {})


def capture(
    params: Params,
    golden: GoldenSet,
    queries: t.Sequence[GoldenQuery],
    k: int,
    api: q.QueryApi,
    clock: Clock,
    *,
    check_mode: bool,
    diff: bool,
) -> GateResult:
    """Ask every selected query once and record the answers as the baseline in
    O(capture_dest)."""
    answers = q.run_queries(
        api,
        queries,
        k,
        concurrency=params["concurrency"],
        deadline_at=clock.now() + params["deadline"],
        clock=clock,
    )
    results = [
        evaluate_answer(query, answer, k) for query, answer in zip(queries, answers)
    ]
    cap.refuse_unhealthy(results)
    # One shard's queries (no qids) are recorded as that shard's baseline.
    shard = None if params.get("qids") else params.get("shard")
    document = cap.captured_document(
        golden,
        results,
        k,
        params["capture_expected_top"],
        params["query_min_recall"],
        shard=shard,
    )
    text = cap.render(document)
    changed, before = cap.write_if_changed(params["capture_dest"], text, check_mode)
    summary = aggregate(results, params["query_min_recall"])
    result: t.Dict[str, t.Any] = {
        "changed": changed,
        "capture": {
            "dest": params["capture_dest"],
            "queries": len(results),
            "k": k,
            "baseline": captured_metrics(document, shard),
            "latency_max": summary["latency_max"],
            "endpoint": public_url(api.url),
        },
    }
    if diff:
        result["diff"] = {
            "before": before,
            "after": text,
            "before_header": params["capture_dest"],
            "after_header": params["capture_dest"],
        }
    return GateResult(result)
