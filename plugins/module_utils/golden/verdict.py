# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict: findings from a round's results and metrics, and pass or fail from the
findings.

Pure and deterministic.  A round passes only when no finding has level ``fail``: every
must-pass query passed, every aggregate threshold is met and no baseline metric dropped
by more than the tolerance.  A failing query that is not must-pass is a ``warn``
finding: it counts through the aggregate metrics, not on its own.
"""

from __future__ import annotations

import types
import typing as t
from dataclasses import asdict, dataclass, field

from ..errors import RecoveryError
from . import metrics as m
from . import query as q
from .evaluation import QueryResult

FAIL = "fail"
WARN = "warn"
# Upper limits: option name -> aggregate metric it limits.
MAXIMUMS = types.MappingProxyType(
    {
        "max_error_rate": "error_rate",
        "max_empty_rate": "empty_rate",
        "max_latency_p95": "latency_p95",
        "max_latency": "latency_max",
        "max_score_drift": "score_drift",
        "max_cache_hit_rate": "cache_hit_rate",
    }
)
RATE_LIMITS = ("max_error_rate", "max_empty_rate", "max_cache_hit_rate")


@dataclass(frozen=True)
class Finding:
    """One observation about a round; ``fail`` findings decide the verdict."""

    level: str
    check: str
    message: str
    qid: t.Optional[str] = None
    metric: t.Optional[str] = None
    value: t.Optional[float] = None
    limit: t.Optional[float] = None

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Criteria:
    """What a round must meet: thresholds, the per-query recall and the baseline with
    its tolerance."""

    minimums: t.Mapping[str, float] = field(default_factory=dict)
    maximums: t.Mapping[str, float] = field(default_factory=dict)
    min_recall: float = 1.0
    tolerance: float = 0.05
    baseline: t.Mapping[str, float] = field(default_factory=dict)
    baseline_note: t.Optional[str] = None


@dataclass(frozen=True)
class RoundVerdict:
    passed: bool
    findings: t.Tuple[Finding, ...]
    failing: t.Tuple[QueryResult, ...]


def criteria_from_options(
    thresholds: t.Mapping[str, t.Optional[float]],
    *,
    min_recall: float,
    tolerance: float,
    baseline: t.Mapping[str, float],
    baseline_note: t.Optional[str] = None,
) -> Criteria:
    """:class:`Criteria` from the module's options; a value out of its range fails
    before any query."""
    for name, value in thresholds.items():
        if value is None:
            continue
        unit = name in m.BASELINE_METRICS or name in RATE_LIMITS
        if unit and not 0 <= value <= 1:
            raise _out_of_range("thresholds.%s" % name, value, "between 0 and 1")
        if not unit and value < 0:
            raise _out_of_range("thresholds.%s" % name, value, "0 or more")
    if not 0 <= min_recall <= 1:
        raise _out_of_range("query_min_recall", min_recall, "between 0 and 1")
    if not 0 <= tolerance <= 1:
        raise _out_of_range("tolerance", tolerance, "between 0 and 1")
    minimums = {
        name: value
        for name, value in thresholds.items()
        if value is not None and name not in MAXIMUMS
    }
    maximums = {
        MAXIMUMS[name]: value
        for name, value in thresholds.items()
        if value is not None and name in MAXIMUMS
    }
    return Criteria(
        minimums, maximums, min_recall, tolerance, dict(baseline), baseline_note
    )


def _out_of_range(option: str, value: float, allowed: str) -> RecoveryError:
    return RecoveryError(
        "Invalid %s=%s: it must be %s" % (option, value, allowed),
        resource=option,
        next_step="Give %s a value %s." % (option, allowed),
    )


def judge(
    results: t.Sequence[QueryResult],
    summary: t.Mapping[str, t.Optional[float]],
    criteria: Criteria,
) -> RoundVerdict:
    """The round's findings, must-pass failures first, and whether it passed."""
    findings = query_findings(results, criteria.min_recall)
    findings += threshold_findings(summary, criteria)
    findings += regression_findings(summary, criteria)
    failing = tuple(r for r in results if failure_reasons(r, criteria.min_recall))
    failing = tuple(sorted(failing, key=lambda r: not r.query.must_pass))
    ordered = tuple(sorted(findings, key=lambda f: f.level != FAIL))
    return RoundVerdict(not any(f.level == FAIL for f in findings), ordered, failing)


def failure_reasons(result: QueryResult, min_recall: float) -> t.List[str]:
    """Why a query failed, in words for the incident channel; empty when it passed."""
    if result.errored:
        return ["%s: %s" % (result.answer.kind, result.answer.error)]
    recall = result.metrics.recall
    if not result.query.relevant_ids or m.at_least(recall, min_recall):
        return []
    if result.empty:
        return ["no results (expected %s)" % ", ".join(result.query.relevant_ids)]
    missing = ", ".join(result.missing)
    return [
        "%s not in the top %d (recall %s < %s)"
        % (missing, result.k, _number(recall), _number(min_recall))
    ]


def query_findings(
    results: t.Sequence[QueryResult], min_recall: float
) -> t.List[Finding]:
    findings = []
    for result in results:
        qid = result.query.qid
        reasons = failure_reasons(result, min_recall)
        if reasons:
            must = result.query.must_pass
            findings.append(
                Finding(
                    FAIL if must else WARN,
                    "must_pass" if must else "query",
                    "%s%s failed: %s"
                    % (qid, " (must pass)" if must else "", "; ".join(reasons)),
                    qid=qid,
                )
            )
        if result.duplicates:
            findings.append(
                Finding(
                    WARN,
                    "duplicates",
                    "%s: the answer lists %d id(s) more than once; each "
                    "document counts once, at its best rank" % (qid, result.duplicates),
                    qid=qid,
                )
            )
        unrated = _unrated(result)
        if unrated:
            findings.append(Finding(WARN, unrated[0], unrated[1] % qid, qid=qid))
    return findings


def _unrated(result: QueryResult) -> t.Optional[t.Tuple[str, str]]:
    """The check and message for a query that the relevance metrics cannot rate."""
    if not result.query.judged:
        return (
            "no_expected_ids",
            "%s has no expected ids: it is left out of the relevance metrics (as "
            "trec_eval leaves out a query without judgments) and passes when answered",
        )
    if not result.query.relevant_ids:
        return (
            "no_relevant_ids",
            "%s has no relevant expected id (every grade is 0): it scores 0 on every "
            "relevance metric and passes when answered",
        )
    return None


# Each side of the thresholds: how a value passes, how a breach reads, and the metrics
# that are judged elsewhere when they were not measured (no must-pass query; no query at
# all).
BOUNDS = (
    ("minimums", m.at_least, "is below the threshold", ("must_pass_rate",)),
    ("maximums", m.at_most, "is above the limit", ("error_rate", "empty_rate")),
)


def threshold_findings(
    summary: t.Mapping[str, t.Optional[float]], criteria: Criteria
) -> t.List[Finding]:
    findings = []
    for side, passes, breach, judged_elsewhere in BOUNDS:
        limits: t.Mapping[str, float] = getattr(criteria, side)
        for metric, limit in sorted(limits.items()):
            value = summary.get(metric)
            if value is None:
                if metric not in judged_elsewhere:
                    findings.append(_unmeasured(metric, limit))
            elif not passes(value, limit):
                message = "%s %s %s %s" % (
                    metric,
                    _number(value),
                    breach,
                    _number(limit),
                )
                findings.append(
                    Finding(
                        FAIL,
                        "threshold",
                        message,
                        metric=metric,
                        value=value,
                        limit=limit,
                    )
                )
    return findings


def _unmeasured(metric: str, limit: float) -> Finding:
    return Finding(
        FAIL,
        "threshold",
        "%s could not be measured (no query gave what it needs), so its threshold %s "
        "is not met" % (metric, _number(limit)),
        metric=metric,
        limit=limit,
    )


def regression_findings(
    summary: t.Mapping[str, t.Optional[float]], criteria: Criteria
) -> t.List[Finding]:
    if criteria.baseline_note:
        return (
            [Finding(WARN, "baseline", criteria.baseline_note)]
            if criteria.baseline
            else []
        )
    findings = []
    for metric, before in sorted(criteria.baseline.items()):
        now = summary.get(metric)
        if now is None:
            continue
        if before - now > criteria.tolerance + m.EPSILON:
            findings.append(
                Finding(
                    FAIL,
                    "regression",
                    "%s %s dropped %s below the baseline %s (tolerance %s)"
                    % (
                        metric,
                        _number(now),
                        _number(before - now),
                        _number(before),
                        _number(criteria.tolerance),
                    ),
                    metric=metric,
                    value=now,
                    limit=before,
                )
            )
    return findings


def baseline_comparison(
    summary: t.Mapping[str, t.Optional[float]], criteria: Criteria
) -> t.Dict[str, t.Dict[str, t.Optional[float]]]:
    """For each baseline metric: the baseline, the current value and the change."""
    table = {}
    for metric, before in sorted(criteria.baseline.items()):
        now = summary.get(metric)
        table[metric] = {
            "baseline": before,
            "current": now,
            "change": now - before if now is not None else None,
        }
    return table


def next_step(verdict: RoundVerdict, shard: t.Optional[str]) -> str:
    """The next manual step for a failed verdict, chosen from what failed."""
    hold = (
        "Keep shard %s out of service (do not mark it serving). " % shard
        if shard
        else "Do not send traffic back to this system yet. "
    )
    kinds = {r.answer.kind for r in verdict.failing if r.errored}
    if kinds & {q.HTTP_ERROR, q.UNREACHABLE, q.TIMEOUT, q.DEADLINE, q.PARTIAL}:
        statuses = {
            r.answer.status for r in verdict.failing if r.answer.status in (401, 403)
        }
        if statuses:
            return (
                hold
                + "The endpoint rejected the request (HTTP %s): check the credentials "
                "in secret_headers." % "/".join(str(s) for s in sorted(statuses))
            )
        return hold + (
            "The endpoint is failing (%s): check its health and its logs for index "
            "errors, re-open the "
            "index or restore the latest verified snapshot, then run the validation "
            "again." % ", ".join(sorted(k for k in kinds if k))
        )
    if q.EXCEPTION in kinds:
        return hold + (
            "Sending the queries or reading their answers failed in the module (each "
            "error, with its type, is in the failing queries): check the request "
            "options (url, headers, body) against it, then run the validation again."
        )
    if kinds == {q.BAD_RESPONSE}:
        return hold + (
            "The answers could not be read: check ids_path and scores_path against an "
            "answer "
            "(shown in the failing queries) and the request body the endpoint expects."
        )
    if verdict.failing:
        return hold + (
            "Answers miss expected documents: the index is damaged or stale. Restore "
            "the latest verified "
            "snapshot (and re-index what was written since), then run the validation "
            "again."
        )
    return hold + (
        "Quality is below the thresholds or the baseline: compare the metrics in the "
        "report with the "
        "baseline and keep the known-good path serving until they recover."
    )


def _number(value: float) -> str:
    return (
        ("%.4f" % value).rstrip("0").rstrip(".")
        if value != int(value)
        else str(int(value))
    )
