# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's verdict per shard and its reports.

A shard passes when its newest verified snapshot restored, its golden queries passed,
and its recovery time (RTO: restore, start and validation) and recovery point (RPO:
the snapshot's age when the drill started) are within the objectives.  The drill
passes when every shard does.  The same figures go to JUnit XML (one test case per
shard and check, for CI), Markdown (a table for people) and JSON (for tools).
"""

from __future__ import annotations

import json
import typing as t
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ..errors import RecoveryError, ValidationFailed
from ..golden.files import read_or_empty, write_atomically
from ..golden.formats import junit_text, table_cell

Obj = t.Dict[str, t.Any]
FORMATS = ("json", "junit", "markdown")
CHECKS = ("restore", "golden queries", "RTO", "RPO")


@dataclass(frozen=True)
class Objectives:
    """The recovery time and recovery point a shard must meet, in seconds (None: not
    checked)."""

    rto_seconds: float | None = None
    rpo_seconds: float | None = None


def _sum(*figures: float | None) -> float | None:
    return (
        None
        if any(f is None for f in figures)
        else sum(t.cast(float, f) for f in figures)
    )


def _restore_failure(restore: t.Mapping[str, t.Any]) -> str | None:
    if restore.get("restored"):
        return None
    error = restore.get("error") or {}
    return error.get("msg") or "not restored (%s)" % restore.get("state", "unknown")


def _golden_failure(validation: t.Mapping[str, t.Any] | None) -> str | None:
    if validation is None:
        return "not run: the shard was not restored"
    if validation.get("passed"):
        return None
    return "golden queries failed: %s" % validation.get("summary", "")


def _objective_failure(
    what: str, figure: float | None, limit: float | None
) -> str | None:
    if limit is None:
        return None
    if figure is None:
        return "%s not measured (objective %ds)" % (what, limit)
    if figure > limit:
        return "%s %ds exceeds the objective %ds" % (what, figure, limit)
    return None


@dataclass
class ShardVerdict:
    """One shard's figures and the checks it failed."""

    shard: str
    restore: Obj
    validation: Obj | None
    objectives: Objectives
    checks: t.Dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checks = {
            "restore": _restore_failure(self.restore),
            "golden queries": _golden_failure(self.validation),
            "RTO": _objective_failure(
                "RTO", self.rto_seconds, self.objectives.rto_seconds
            ),
            "RPO": _objective_failure(
                "RPO", self.restore.get("rpo_seconds"), self.objectives.rpo_seconds
            ),
        }

    @property
    def validation_seconds(self) -> float | None:
        return (self.validation or {}).get("duration")

    @property
    def rto_seconds(self) -> float | None:
        """Restore (the Job) plus start (the pod) plus validation (the golden
        queries); None when a part was not measured."""
        return _sum(
            self.restore.get("restore_seconds"),
            self.restore.get("start_seconds"),
            self.validation_seconds,
        )

    @property
    def passed(self) -> bool:
        return not any(self.checks.values())

    def failures(self) -> t.List[str]:
        return ["%s: %s" % (check, why) for check, why in self.checks.items() if why]

    def to_dict(self) -> Obj:
        validation = self.validation or {}
        return {
            "shard": self.shard,
            "passed": self.passed,
            "snapshot_id": self.restore.get("snapshot_id"),
            "snapshot_created": self.restore.get("snapshot_created"),
            "rpo_seconds": self.restore.get("rpo_seconds"),
            "rto_seconds": self.rto_seconds,
            "restore_seconds": self.restore.get("restore_seconds"),
            "start_seconds": self.restore.get("start_seconds"),
            "validation_seconds": self.validation_seconds,
            "golden": {
                "verdict": validation.get("verdict", "not run"),
                "summary": validation.get("summary", ""),
            },
            "failures": self.failures(),
            "quarantined": list(self.restore.get("quarantined") or []),
        }


def _by_shard(validations: t.Sequence[t.Mapping[str, t.Any]]) -> t.Dict[str, Obj]:
    found: t.Dict[str, Obj] = {}
    for validation in validations:
        shard = (validation.get("golden_set") or {}).get("shard")
        if not shard:
            raise RecoveryError(
                "A golden validation given to the drill's report names no shard",
                reason="validation without shard",
                next_step="Run golden_validate with shard set for each restored shard.",
            )
        found[str(shard)] = dict(validation)
    return found


def verdicts(
    restores: t.Sequence[t.Mapping[str, t.Any]],
    validations: t.Sequence[t.Mapping[str, t.Any]],
    objectives: Objectives,
) -> t.List[ShardVerdict]:
    """Each restored shard with its validation (matched by shard) and verdict."""
    checked = _by_shard(validations)
    return [
        ShardVerdict(str(r["shard"]), dict(r), checked.get(str(r["shard"])), objectives)
        for r in restores
    ]


@dataclass
class Drill:
    """The drill as the reports show it."""

    drill_id: str
    namespace: str
    production: str
    started_at: str
    objectives: Objectives
    shards: t.List[ShardVerdict]

    @property
    def passed(self) -> bool:
        return bool(self.shards) and all(s.passed for s in self.shards)

    def failing(self) -> t.List[ShardVerdict]:
        return [s for s in self.shards if not s.passed]

    def summary(self) -> str:
        failing = self.failing()
        if not self.shards:
            return "restore drill %s: no shard was drilled" % self.drill_id
        if not failing:
            return "restore drill %s: all %d shards passed" % (
                self.drill_id,
                len(self.shards),
            )
        return "restore drill %s: %d of %d shards failed: %s" % (
            self.drill_id,
            len(failing),
            len(self.shards),
            "; ".join("%s (%s)" % (s.shard, ", ".join(s.failures())) for s in failing),
        )

    def to_dict(self) -> Obj:
        return {
            "drill_id": self.drill_id,
            "namespace": self.namespace,
            "production": self.production,
            "started_at": self.started_at,
            "passed": self.passed,
            "summary": self.summary(),
            "objectives": {
                "rto_seconds": self.objectives.rto_seconds,
                "rpo_seconds": self.objectives.rpo_seconds,
            },
            "shards": [s.to_dict() for s in self.shards],
            "table": table_lines(self),
        }


def _seconds(figure: float | None) -> str:
    return "n/a" if figure is None else "%.0fs" % figure


TABLE_HEADER = (
    "| shard | snapshot | RPO | RTO | restore | start | golden | result |",
    "|---|---|---|---|---|---|---|---|",
)


def table_lines(drill: Drill) -> t.List[str]:
    """The per-shard RTO/RPO table (Markdown), one row per shard."""
    rows = [
        "| %s | %s | %s | %s | %s | %s | %s | %s |"
        % (
            table_cell(s.shard),
            table_cell(s.restore.get("snapshot_id") or "none"),
            _seconds(s.restore.get("rpo_seconds")),
            _seconds(s.rto_seconds),
            _seconds(s.restore.get("restore_seconds")),
            _seconds(s.restore.get("start_seconds")),
            (s.validation or {}).get("verdict", "not run"),
            "pass" if s.passed else "FAIL",
        )
        for s in drill.shards
    ]
    return [*TABLE_HEADER, *rows]


def render_markdown(drill: Drill) -> str:
    objectives = drill.objectives
    lines = [
        "## Restore drill %s: %s"
        % (drill.drill_id, "PASS" if drill.passed else "FAIL"),
        "",
        "Shards of `%s` restored into the scratch namespace `%s` at %s. Objectives: "
        "RTO %s, RPO %s."
        % (
            drill.production,
            drill.namespace,
            drill.started_at,
            _seconds(objectives.rto_seconds),
            _seconds(objectives.rpo_seconds),
        ),
        "",
        *table_lines(drill),
    ]
    failing = drill.failing()
    if failing:
        lines += ["", "### Failures", ""]
        lines += [
            "- %s: %s" % (s.shard, table_cell(why))
            for s in failing
            for why in s.failures()
        ]
    return "\n".join(lines) + "\n"


def render_json(drill: Drill) -> str:
    return json.dumps(drill.to_dict(), indent=2) + "\n"


def s_or_zero(figure: float | None) -> float:
    return float(figure or 0.0)


def _case(suite: ET.Element, shard: ShardVerdict, check: str) -> None:
    figures = {
        "restore": s_or_zero(shard.restore.get("restore_seconds"))
        + s_or_zero(shard.restore.get("start_seconds")),
        "golden queries": s_or_zero(shard.validation_seconds),
    }
    case = ET.SubElement(
        suite,
        "testcase",
        classname="restore_drill.%s" % shard.shard,
        name=check,
        time="%.3f" % figures.get(check, 0.0),
    )
    failure = shard.checks[check]
    if failure:
        ET.SubElement(case, "failure", type=check, message=failure).text = failure
    ET.SubElement(case, "system-out").text = "snapshot: %s\nRPO: %s\nRTO: %s" % (
        shard.restore.get("snapshot_id") or "none",
        _seconds(shard.restore.get("rpo_seconds")),
        _seconds(shard.rto_seconds),
    )


def render_junit(drill: Drill) -> str:
    """JUnit XML: one suite, one test case per shard and check (restore, golden
    queries, RTO, RPO)."""
    root = ET.Element("testsuites", name="restore_drill")
    suite = ET.SubElement(
        root,
        "testsuite",
        name="restore_drill.%s" % drill.drill_id,
        timestamp=drill.started_at.rstrip("Z"),
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("namespace", drill.namespace),
        ("production", drill.production),
        ("rto_objective_seconds", drill.objectives.rto_seconds),
        ("rpo_objective_seconds", drill.objectives.rpo_seconds),
    ):
        ET.SubElement(properties, "property", name=key, value=str(value))
    for shard in drill.shards:
        for check in CHECKS:
            _case(suite, shard, check)
    return junit_text(root, sum(s_or_zero(s.rto_seconds) for s in drill.shards))


def write_reports(
    drill: Drill, paths: t.Mapping[str, str | None], check_mode: bool = False
) -> t.Tuple[t.Dict[str, str], bool]:
    """Write each report that has a path (not in check mode); the reports by format,
    and whether any file changed (or would)."""
    renderers = {
        "json": render_json,
        "junit": render_junit,
        "markdown": render_markdown,
    }
    reports, changed = {}, False
    for fmt in FORMATS:
        path = paths.get(fmt)
        if not path:
            continue
        text = renderers[fmt](drill)
        reports[fmt] = path
        if read_or_empty(path) == text:
            continue
        changed = True
        if not check_mode:
            write_atomically(path, text, "%s report" % fmt)
    return reports, changed


def failure(drill: Drill, reports: t.Mapping[str, str]) -> ValidationFailed:
    """The drill's failure, naming every failing shard and why."""
    return ValidationFailed(
        "Restore drill %s failed: %s" % (drill.drill_id, drill.summary()),
        resource="Namespace %s" % drill.namespace,
        reason="restore drill failed",
        next_step="Read the report%s; a shard whose snapshot does not restore needs a "
        "fresh snapshot (ragops.recovery.snapshot_nightly) and its cause found before "
        "an incident needs it."
        % (" " + ", ".join(sorted(reports.values())) if reports else ""),
        partial={"drill": drill.to_dict(), "reports": dict(reports)},
    )
