#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drill_report
short_description: Judge a restore drill per shard and write its JUnit XML, Markdown and JSON reports
version_added: 0.1.0
description:
  - Takes each shard's restore (RV(ragops.recovery.drill_restore#module:shard)) and golden validation
    (RV(ragops.recovery.golden_validate#module:validation), matched by its C(golden_set.shard)) and judges
    every shard - its newest verified snapshot restored, its golden queries passed, its recovery time
    (RTO, the restore, the start and the validation) within O(rto_objective) and its recovery point (RPO,
    the snapshot's age) within O(rpo_objective).
  - Writes the reports O(reports) names - JUnit XML with one test case per shard and check (C(restore),
    C(golden queries), C(RTO), C(RPO)) for CI, a Markdown table and the JSON of RV(drill).
  - Fails naming every failing shard and why, unless O(report_only=true); the reports are written first.
  - The Kubernetes connection options are not used; they are accepted so that the credentials in a
    play's C(module_defaults) for C(group/ragops.recovery.rag) apply.
author:
  - ragops.recovery maintainers (@ragops)
options:
  drill_id:
    description: The drill's id.
    type: str
    required: true
  scratch_namespace:
    description: The drill's scratch namespace, named in the reports.
    type: str
    required: true
  started_at:
    description: When the drill started (UTC, RFC 3339); now by default.
    type: str
  restores:
    description: Each shard's RV(ragops.recovery.drill_restore#module:shard).
    type: list
    elements: dict
    required: true
  validations:
    description:
      - The RV(ragops.recovery.golden_validate#module:validation) of each restored shard, run with its
        O(ragops.recovery.golden_validate#module:shard). A shard without one fails its C(golden queries)
        check.
    type: list
    elements: dict
    default: []
  rto_objective:
    description: Seconds a shard may take from the start of its restore to the end of its validation.
    type: float
  rpo_objective:
    description: Seconds old a shard's newest verified snapshot may be.
    type: float
  reports:
    description: Where to write the reports; each is written only when given.
    type: dict
    default: {}
    suboptions:
      json:
        description: Path of the JSON report (RV(drill)).
        type: path
      junit:
        description: Path of the JUnit XML report.
        type: path
      markdown:
        description: Path of the Markdown report.
        type: path
  report_only:
    description: Do not fail the task when the drill failed; RV(drill.passed) says so.
    type: bool
    default: false
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Judges the drill and returns what it would write; writes no report.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The same input writes the same reports.
  action_group:
    support: full
seealso:
  - module: ragops.recovery.drill_restore
  - module: ragops.recovery.golden_validate
"""

EXAMPLES = r"""
- name: Judge the drill and write its reports
  ragops.recovery.drill_report:
    drill_id: 20261207t1500z
    scratch_namespace: rag-prod-drill-20261207t1500z
    restores: "{{ restored.results | map(attribute='shard') }}"
    validations: "{{ golden.results | selectattr('validation', 'defined') | map(attribute='validation') }}"
    rto_objective: 1800
    rpo_objective: 93600
    reports:
      junit: reports/restore-drill.xml
      markdown: reports/restore-drill.md
      json: reports/restore-drill.json
"""

RETURN = r"""
drill:
  description: The drill's verdict and figures; also the content of the JSON report.
  returned: always, also in the result of a failed drill
  type: dict
  contains:
    passed:
      description: Whether every shard passed.
      type: bool
      sample: true
    summary:
      description: One line naming the failing shards and why.
      type: str
      sample: "restore drill 20261207t1500z: 1 of 4 shards failed: shard-2 (restore: Failed to restore ...)"
    shards:
      description:
        - Per shard C(passed), C(snapshot_id), C(snapshot_created), C(rpo_seconds), C(rto_seconds),
          C(restore_seconds), C(start_seconds), C(validation_seconds), C(golden) (C(verdict), C(summary)),
          C(failures) and C(quarantined).
      type: list
      elements: dict
    table:
      description: The per-shard RTO/RPO table (Markdown lines).
      type: list
      elements: str
    objectives:
      description: The objectives applied, in seconds (C(rto_seconds), C(rpo_seconds)).
      type: dict
reports:
  description: The reports written (in check mode, that would be), by format.
  returned: always
  type: dict
  sample: {"junit": "reports/restore-drill.xml", "markdown": "reports/restore-drill.md"}
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    path = {"type": "path"}
    return argspec.ArgumentSpec(
        options={
            "drill_id": {"type": "str", "required": True},
            "scratch_namespace": {"type": "str", "required": True},
            "started_at": {"type": "str"},
            "restores": {"type": "list", "elements": "dict", "required": True},
            "validations": {"type": "list", "elements": "dict", "default": []},
            "rto_objective": {"type": "float"},
            "rpo_objective": {"type": "float"},
            "reports": {
                "type": "dict",
                "default": {},
                "options": {"json": path, "junit": path, "markdown": path},
            },
            "report_only": {"type": "bool", "default": False},
        },
        groups=("k8s",),
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.drill import report

    params = module.params
    objectives = report.Objectives(params["rto_objective"], params["rpo_objective"])
    drill = report.Drill(
        params["drill_id"],
        params["scratch_namespace"],
        params["namespace"],
        params["started_at"] or audit.timestamp(),
        objectives,
        report.verdicts(params["restores"], params["validations"], objectives),
    )
    written, changed = report.write_reports(drill, params["reports"], module.check_mode)
    if not drill.passed and not params["report_only"]:
        raise report.failure(drill, written)
    return {"changed": changed, "drill": drill.to_dict(), "reports": written}


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
