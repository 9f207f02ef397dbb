# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation as data (the module's ``validation`` result) and as reports.

JSON for machines, JUnit XML for CI (one test case per query, plus one per gate check)
and Markdown for the incident channel.  Every renderer takes the same plain dictionary,
so the three reports and the task result never disagree.  Numbers are kept at full
precision, so a consumer can compare them exactly (with trec_eval's, say); only the
text meant for people rounds them.
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse
import xml.etree.ElementTree as ET

from . import verdict as v
from .evaluation import QueryResult
from .files import write_atomically
from .formats import junit_text, table_cell
from .metrics import RELEVANCE_METRICS
from .suite import Outcome

FORMATS = ("json", "junit", "markdown")
# A Markdown table a person reads in a chat stays short; the JSON report has every
# query.
MARKDOWN_QUERY_ROWS = 50
METRIC_ORDER = (
    *RELEVANCE_METRICS,
    "must_pass_rate",
    "pass_rate",
    "error_rate",
    "empty_rate",
    "cache_hit_rate",
    "latency_p50",
    "latency_p95",
    "latency_max",
    "rank_agreement",
    "score_drift",
    "score_spread",
)


def public_url(url: str) -> str:
    """The endpoint without credentials or query string, which may carry an API key."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def validation_dict(outcome: Outcome, started_at: str) -> t.Dict[str, t.Any]:
    """The ``validation`` result: verdict, metrics, findings, failing queries, every
    query, rounds."""
    plan, last = outcome.plan, outcome.last
    findings = outcome.findings
    return {
        "passed": outcome.passed,
        "verdict": "pass" if outcome.passed else "fail",
        "summary": summary_line(outcome),
        "started_at": started_at,
        "duration": outcome.duration,
        "golden_set": {
            "source": plan.golden.source,
            "name": plan.golden.name,
            "queries": len(plan.golden.queries),
            "selected": len(plan.queries),
            "k": plan.k,
            "shard": plan.shard,
        },
        "endpoint": {"url": public_url(plan.api.url), "method": plan.api.method},
        "metrics": {name: last.summary.get(name) for name in METRIC_ORDER},
        "criteria": {
            "thresholds": dict(plan.criteria.minimums),
            "limits": dict(plan.criteria.maximums),
            "query_min_recall": plan.criteria.min_recall,
            "tolerance": plan.criteria.tolerance,
        },
        "baseline": v.baseline_comparison(last.summary, plan.criteria),
        "findings": [finding.to_dict() for finding in findings],
        "failing_queries": [
            _failing(result, plan.criteria.min_recall)
            for result in last.verdict.failing
        ],
        "queries": [
            _query(result, plan.criteria.min_recall) for result in last.results
        ],
        "rounds": [
            {
                "round": r.number,
                "passed": r.verdict.passed,
                "failing_queries": len(r.verdict.failing),
                "duration": r.duration,
            }
            for r in outcome.rounds
        ],
        "rounds_required": plan.rounds,
        "consecutive_passes": outcome.streak,
    }


def summary_line(outcome: Outcome) -> str:
    """One line for the task message: the verdict and its first reasons."""
    last = outcome.last
    total, failing = len(last.results), len(last.verdict.failing)
    must = [r.query.qid for r in last.verdict.failing if r.query.must_pass]
    head = "%d of %d golden queries passed" % (total - failing, total)
    if must:
        head += "; must-pass failed: %s" % _first(must)
    reasons = [
        f.message
        for f in outcome.findings
        if f.level == v.FAIL and f.check not in ("must_pass",)
    ]
    if reasons:
        head += "; " + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    return head


def _first(items: t.Sequence[str], count: int = 10) -> str:
    return ", ".join(items[:count]) + (
        " and %d more" % (len(items) - count) if len(items) > count else ""
    )


def _failing(result: QueryResult, min_recall: float) -> t.Dict[str, t.Any]:
    return {
        "qid": result.query.qid,
        "must_pass": result.query.must_pass,
        "shard": result.query.shard,
        "reasons": v.failure_reasons(result, min_recall),
    }


def _query(result: QueryResult, min_recall: float) -> t.Dict[str, t.Any]:
    """One query's entry; its relevance metrics are null when it has no judgments
    (trec_eval does not rate such a query either)."""
    answer, metrics = result.answer, result.metrics
    rated = result.query.judged
    return {
        "qid": result.query.qid,
        "passed": not v.failure_reasons(result, min_recall),
        "must_pass": result.query.must_pass,
        "shard": result.query.shard,
        "expected_ids": list(result.query.expected_ids),
        "relevance": dict(result.query.relevance),
        "ids": list(result.ranked),
        "scores": list(result.scores) if result.scores is not None else None,
        "hit": metrics.hit if rated else None,
        "recall": metrics.recall if rated else None,
        "precision": metrics.precision if rated else None,
        "reciprocal_rank": metrics.reciprocal_rank if rated else None,
        "ndcg": metrics.ndcg if rated else None,
        "latency": answer.latency,
        "error": answer.error,
        "error_kind": answer.kind,
        "status": answer.status,
        "cached": answer.cached,
        "rank_agreement": result.rank_agreement,
        "score_drift": result.score_drift,
        "score_spread": result.score_spread,
    }


def render_json(validation: t.Mapping[str, t.Any]) -> str:
    return json.dumps(validation, indent=2) + "\n"


def render_junit(validation: t.Mapping[str, t.Any]) -> str:
    """JUnit XML: a suite with one test case per query and a suite with one per gate
    check."""
    name = "golden.%s" % validation["golden_set"]["name"]
    root = ET.Element("testsuites", name="golden_validate")
    queries = _suite(root, name, validation)
    for query in validation["queries"]:
        _query_case(queries, name, query)
    checks = _suite(root, name + ".checks", validation)
    for check, failure in gate_checks(validation):
        case = ET.SubElement(
            checks, "testcase", classname=name + ".checks", name=check, time="0"
        )
        if failure:
            ET.SubElement(case, "failure", type="gate", message=failure).text = failure
    return junit_text(root, validation["duration"])


def _suite(
    root: ET.Element, name: str, validation: t.Mapping[str, t.Any]
) -> ET.Element:
    suite = ET.SubElement(
        root, "testsuite", name=name, timestamp=validation["started_at"].rstrip("Z")
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("endpoint", validation["endpoint"]["url"]),
        ("k", validation["golden_set"]["k"]),
        ("source", validation["golden_set"]["source"]),
        ("verdict", validation["verdict"]),
    ):
        ET.SubElement(properties, "property", name=key, value=str(value))
    return suite


def _query_case(suite: ET.Element, name: str, query: t.Mapping[str, t.Any]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=name,
        name=query["qid"],
        time="%.3f" % (query["latency"] or 0.0),
    )
    if query["error"]:
        message = "%s: %s" % (query["error_kind"], query["error"])
        ET.SubElement(
            case, "error", type=query["error_kind"], message=message
        ).text = message
    elif not query["passed"]:
        relevant = [doc for doc, grade in query["relevance"].items() if grade >= 1]
        message = "expected %s; got %s (recall %s)" % (
            ", ".join(relevant),
            ", ".join(query["ids"]) or "nothing",
            _figure(query["recall"]),
        )
        kind = "must_pass" if query["must_pass"] else "query"
        ET.SubElement(case, "failure", type=kind, message=message).text = message
    ET.SubElement(case, "system-out").text = "ids: %s\nscores: %s" % (
        query["ids"],
        query["scores"],
    )


def gate_checks(
    validation: t.Mapping[str, t.Any],
) -> t.List[t.Tuple[str, t.Optional[str]]]:
    """Every aggregate check the gate made, with its failure message (None when it
    held)."""
    failures = {
        (f.get("check"), f.get("metric")): f["message"]
        for f in validation["findings"]
        if f["level"] == v.FAIL and f["check"] != "must_pass"
    }
    criteria = validation["criteria"]
    checks = [
        ("threshold %s" % metric, failures.get(("threshold", metric)))
        for metric in sorted({**criteria["thresholds"], **criteria["limits"]})
    ]
    checks += [
        ("baseline %s" % metric, failures.get(("regression", metric)))
        for metric in validation["baseline"]
    ]
    if validation["rounds_required"] > 1:
        checks.append(("rounds", failures.get(("rounds", None))))
    return checks


def render_markdown(validation: t.Mapping[str, t.Any]) -> str:
    """A short report for the incident channel: verdict, metrics table, failing
    queries, next step."""
    golden = validation["golden_set"]
    lines = [
        "## Golden-query validation: %s" % validation["verdict"].upper(),
        "",
        "`%s`: %d of %d queries%s, k=%d, against `%s %s`; %d consecutive passing "
        "round(s) of %d required."
        % (
            golden["name"],
            golden["selected"],
            golden["queries"],
            " for shard %s" % golden["shard"] if golden["shard"] else "",
            golden["k"],
            validation["endpoint"]["method"],
            validation["endpoint"]["url"],
            validation["consecutive_passes"],
            validation["rounds_required"],
        ),
        "",
        validation["summary"],
        "",
    ]
    lines += _metrics_table(validation)
    failing = validation["failing_queries"]
    if failing:
        lines += [
            "",
            "### Failing queries (%d)" % len(failing),
            "",
            "| qid | must pass | shard | why |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            "| %s | %s | %s | %s |"
            % (
                table_cell(f["qid"]),
                "yes" if f["must_pass"] else "no",
                table_cell(f["shard"] or ""),
                table_cell("; ".join(f["reasons"])),
            )
            for f in failing
        ]
    lines += _queries_table(validation["queries"])
    warnings = [
        f["message"]
        for f in validation["findings"]
        if f["level"] == v.WARN and f["check"] != "query"
    ]
    if warnings:
        lines += ["", "### Warnings", ""] + [
            "- %s" % table_cell(message) for message in warnings
        ]
    if validation.get("next_step"):
        lines += ["", "**Next step:** %s" % validation["next_step"]]
    return "\n".join(lines) + "\n"


def _metrics_table(validation: t.Mapping[str, t.Any]) -> t.List[str]:
    criteria, baseline = validation["criteria"], validation["baseline"]
    rows = ["| metric | value | gate | baseline |", "| --- | ---: | --- | --- |"]
    for name, value in validation["metrics"].items():
        if (
            value is None
            and name not in criteria["thresholds"]
            and name not in criteria["limits"]
        ):
            continue
        gate = (
            ">= %s" % criteria["thresholds"][name]
            if name in criteria["thresholds"]
            else "<= %s" % criteria["limits"][name]
            if name in criteria["limits"]
            else ""
        )
        before = baseline.get(name)
        compared = (
            "%s (%+.4f)" % (before["baseline"], before["change"])
            if before and before["change"] is not None
            else ""
        )
        rows.append("| %s | %s | %s | %s |" % (name, _figure(value), gate, compared))
    return rows


def _queries_table(queries: t.Sequence[t.Mapping[str, t.Any]]) -> t.List[str]:
    rows = [
        "",
        "### Queries",
        "",
        "| qid | result | recall | RR | nDCG | latency ms | top ids |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for query in queries[:MARKDOWN_QUERY_ROWS]:
        result = "pass" if query["passed"] else ("error" if query["error"] else "FAIL")
        latency = (
            "%.1f" % (query["latency"] * 1000) if query["latency"] is not None else ""
        )
        rows.append(
            "| %s | %s | %s | %s | %s | %s | %s |"
            % (
                table_cell(query["qid"]),
                result,
                _figure(query["recall"]),
                _figure(query["reciprocal_rank"]),
                _figure(query["ndcg"]),
                latency,
                table_cell(", ".join(query["ids"][:5])),
            )
        )
    if len(queries) > MARKDOWN_QUERY_ROWS:
        rows.append("")
        rows.append(
            "%d more queries are in the JSON report."
            % (len(queries) - MARKDOWN_QUERY_ROWS)
        )
    return rows


def _figure(value: t.Optional[float]) -> str:
    """A number for a person: 4 decimals (the JSON report keeps every digit)."""
    return "n/a" if value is None else str(round(value, 4))


def write_reports(
    validation: t.Mapping[str, t.Any], paths: t.Mapping[str, t.Optional[str]]
) -> t.Dict[str, str]:
    """Write each report that has a path; the formats written and where."""
    renderers = {
        "json": render_json,
        "junit": render_junit,
        "markdown": render_markdown,
    }
    written = {}
    for fmt in FORMATS:
        path = paths.get(fmt)
        if path:
            write_atomically(path, renderers[fmt](validation), "%s report" % fmt)
            written[fmt] = path
    return written
