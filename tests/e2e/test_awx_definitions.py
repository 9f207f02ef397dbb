"""extensions/awx/ as AWX and the awx.awx collection read it: AWX's own rules, the modules' options."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess

import pytest
import yaml
from awx_job import AWX_DIR, definitions
from awx_rules import (
    answer_errors,
    credential_type_errors,
    launch_extra_vars,
    parse_rrule,
    rrule_errors,
    survey_spec_errors,
)
from dateutil import tz
from harness import BIN, ROOT
from jinja2 import sandbox

NAMES = {"ragops_awx_organization": "Default", "ragops_awx_project": "ragops-recovery",
         "ragops_awx_inventory": "RAG stacks", "ragops_awx_execution_environment": "ragops-recovery EE",
         "ragops_awx_kubernetes_credential": "rag-prod kubeconfig", "ragops_awx_s3_credential": "rag snapshots",
         "ragops_awx_notification_url": "https://chat.example.com/hooks/oncall"}
DEFS = definitions(NAMES)


def module_options(module: str) -> dict[str, dict[str, object]]:
    """The options of an awx.awx module, from the DOCUMENTATION of the collection the ansible package ships."""
    done = subprocess.run([str(BIN / "ansible-doc"), "--json", "awx.awx.%s" % module], capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["awx.awx.%s" % module]["doc"]["options"])


def every_survey() -> list[tuple[str, dict[str, object]]]:
    return [(item["name"], item["survey_spec"]) for key in ("controller_templates", "controller_workflows")
            for item in DEFS[key]]


@pytest.mark.parametrize(("name", "spec"), every_survey())
def test_survey_specs_follow_awx_rules(name: str, spec: dict[str, object]) -> None:
    assert survey_spec_errors(spec) == [], name


def test_survey_rules_refuse_what_awx_refuses() -> None:
    """The ported rules fail where AWX does: a boolean question, a default outside the choices, a text min."""
    base = {"question_name": "q", "variable": "v", "required": True}
    assert survey_spec_errors({"name": "", "description": "", "spec": [dict(base, type="boolean")]})
    assert survey_spec_errors({"name": "", "description": "", "spec": [
        dict(base, type="multiplechoice", choices=["a", "b"], default="c")]})
    assert survey_spec_errors({"name": "", "description": "", "spec": [dict(base, type="integer", default="8")]})
    assert answer_errors(dict(base, type="integer"), {"v": "8"}) != []
    assert answer_errors(dict(base, type="text", min=1), {"v": ""}) != []


@pytest.mark.parametrize("template", DEFS["controller_templates"], ids=lambda item: item["name"])
def test_job_template_defaults_launch(template: dict[str, object]) -> None:
    """Every question without an answer has a default AWX accepts; the required ones without are named."""
    spec = template["survey_spec"]
    assert isinstance(spec, dict)
    needed = {item["variable"] for item in spec["spec"] if item["required"] and "default" not in item}
    answers = {name: "INC-1" if name == "incident_id" else "shard-1" for name in needed}
    extra = launch_extra_vars(spec, {}, answers)
    assert set(extra) == {item["variable"] for item in spec["spec"]}


def test_the_provider_keys_credential_is_attached_only_when_named() -> None:
    """The provider templates take the keys' credential when one is named; without one they read the Secret."""
    providers = {"ragops: LLM provider outage", "ragops: LLM provider failback", "ragops: LLM provider precheck"}
    named = definitions(dict(NAMES, ragops_awx_provider_keys_credential="rag LLM keys"))
    for defs, extra in ((DEFS, []), (named, ["rag LLM keys"])):
        for item in defs["controller_templates"]:
            wanted = ["rag-prod kubeconfig"] + (extra if item["name"] in providers else [])
            if item["name"] in providers or item["credentials"] == ["rag-prod kubeconfig"]:
                assert item["credentials"] == wanted, item["name"]
    kinds = [item["name"] for item in DEFS["controller_credential_types"]]
    assert "ragops LLM provider keys" in kinds, kinds


def test_every_scenario_playbook_has_a_job_template() -> None:
    playbooks = sorted("playbooks/%s" % path.name for path in (ROOT / "playbooks").glob("*.yml"))
    assert sorted(item["playbook"] for item in DEFS["controller_templates"]) == playbooks


@pytest.mark.parametrize("credential_type", DEFS["controller_credential_types"], ids=lambda item: item["name"])
def test_credential_types_follow_awx_rules(credential_type: dict[str, object]) -> None:
    assert credential_type_errors(credential_type) == []


def test_credential_type_rules_refuse_what_awx_refuses() -> None:
    bad = {"inputs": {"fields": [{"id": "x", "label": "X", "type": "int"}]},
           "injectors": {"env": {"ANSIBLE_CONFIG": "{{ x }}", "PATH": "/"}, "files": {}}}
    assert len(credential_type_errors(bad)) >= 4


def test_definitions_use_only_options_of_the_awx_modules() -> None:
    for key, module in (("controller_templates", "job_template"), ("controller_credential_types", "credential_type"),
                        ("controller_schedules", "schedule"),
                        ("controller_workflows", "workflow_job_template"),
                        ("controller_notifications", "notification_template")):
        options = module_options(module)
        for item in DEFS[key]:
            assert set(item) <= set(options), (module, set(item) - set(options))
    node_options = module_options("workflow_job_template")["workflow_nodes"]["suboptions"]
    assert isinstance(node_options, dict)
    for workflow in DEFS["controller_workflows"]:
        for node in workflow["workflow_nodes"]:
            assert set(node) <= set(node_options), set(node) - set(node_options)


def test_workflows_chain_existing_templates_through_an_approval() -> None:
    templates = {item["name"] for item in DEFS["controller_templates"]}
    for workflow in DEFS["controller_workflows"]:
        nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
        first, approval, last = workflow["workflow_nodes"]
        assert first["unified_job_template"]["name"] in templates and last["unified_job_template"]["name"] in templates
        assert approval["unified_job_template"]["type"] == "workflow_approval"
        assert approval["unified_job_template"]["timeout"] > 0
        assert first["related"]["success_nodes"] == [{"identifier": approval["identifier"]}]
        assert approval["related"]["success_nodes"] == [{"identifier": last["identifier"]}]
        assert set(nodes) == {first["identifier"], approval["identifier"], last["identifier"]}
        # The workflow's survey answers every required question of its job templates that has no default.
        asked = {item["variable"] for item in workflow["survey_spec"]["spec"]}
        for node in (first, last):
            template = next(item for item in DEFS["controller_templates"]
                            if item["name"] == node["unified_job_template"]["name"])
            needed = {item["variable"] for item in template["survey_spec"]["spec"]
                      if item["required"] and "default" not in item}
            assert needed <= asked, (workflow["name"], needed - asked)


def test_notification_bodies_render_to_json_as_awx_renders_them() -> None:
    """AWX renders custom messages in a Jinja sandbox with the job's fields; a webhook body must be JSON."""
    context = {"job": {"id": 42, "name": "ragops: recover a vectorstore shard", "status": "failed",
                       "artifacts": {"ragops_recovery": {"rag-prod": {"outcome": "failed"}}}},
               "url": "https://awx/#/jobs/playbook/42", "approval_node_name": "approve",
               "workflow_url": "https://awx/#/jobs/workflow/7"}
    render = sandbox.ImmutableSandboxedEnvironment()
    for notification in DEFS["controller_notifications"]:
        messages = notification["messages"]
        bodies = [messages["error"]["body"], messages["success"]["body"],
                  messages["workflow_approval"]["running"]["body"]]
        for body in bodies:
            assert isinstance(json.loads(render.from_string(body).render(**context)), dict)


# What docs/awx.md says each schedule does: its template's playbook, the hour it starts, and when: every day,
# or on the first Tuesday of every month.
DAILY, MONTHLY = "every day", "first Tuesday of the month"
SCHEDULES = {"ragops: nightly snapshots": ("playbooks/snapshot_nightly.yml", 1, DAILY),
             "ragops: daily LLM provider precheck": ("playbooks/provider_precheck.yml", 6, DAILY),
             "ragops: monthly restore drill": ("playbooks/restore_drill.yml", 10, MONTHLY)}


def runs(schedule: dict[str, object], count: int = 4) -> list[datetime.datetime]:
    """The schedule's next runs from a fixed moment, as AWX computes them (dateutil)."""
    start = datetime.datetime(2027, 3, 26, 12, 0, tzinfo=tz.tzutc())
    parsed = parse_rrule(str(schedule["rrule"]))
    found = [parsed.after(start)]
    while len(found) < count:
        found.append(parsed.after(found[-1]))
    return found


def on_their_days(found: list[datetime.datetime], when: str) -> bool:
    """Consecutive runs a day apart, or on the first Tuesday of consecutive months."""
    if when == DAILY:
        return {later - earlier for earlier, later in zip(found, found[1:])} == {datetime.timedelta(days=1)}
    months = [moment.year * 12 + moment.month for moment in found]
    return (all(moment.weekday() == 1 and moment.day <= 7 for moment in found)
            and months == list(range(months[0], months[0] + len(found))))


@pytest.mark.parametrize("schedule", DEFS["controller_schedules"], ids=lambda item: item["name"])
def test_schedules_follow_awx_rules_and_run_as_documented(schedule: dict[str, object]) -> None:
    assert rrule_errors(str(schedule["rrule"])) == [], schedule["rrule"]
    playbook, hour, when = SCHEDULES[str(schedule["name"])]
    template = next(item for item in DEFS["controller_templates"] if item["name"] == schedule["unified_job_template"])
    assert template["playbook"] == playbook
    # Launched by the schedule, the survey's defaults answer every question.
    assert launch_extra_vars(template["survey_spec"], {}, {})
    found = runs(schedule)
    assert all(moment.hour == hour and moment.minute == 0 and moment.utcoffset() == datetime.timedelta(0)
               for moment in found), found
    assert on_their_days(found, when), found


def test_schedules_follow_the_time_zone_given() -> None:
    """In a time zone with summer time the runs stay at the same local hour across the change (2027-03-28)."""
    berlin = definitions(dict(NAMES, ragops_awx_schedule_timezone="Europe/Berlin"))["controller_schedules"]
    for schedule in berlin:
        assert rrule_errors(str(schedule["rrule"])) == []
        found = runs(schedule)
        hour, when = SCHEDULES[str(schedule["name"])][1:]
        assert [moment.astimezone(tz.gettz("Europe/Berlin")).hour for moment in found] == [hour] * 4
        assert on_their_days([moment.astimezone(tz.gettz("Europe/Berlin")) for moment in found], when), found
        if when == DAILY:
            offsets = {moment.utcoffset() for moment in found}
            assert offsets == {datetime.timedelta(hours=1), datetime.timedelta(hours=2)}


def test_rrule_rules_refuse_what_awx_refuses() -> None:
    assert rrule_errors("DTSTART:20260101T020000 RRULE:FREQ=DAILY;INTERVAL=1")  # naive DTSTART
    assert rrule_errors("DTSTART;TZID=UTC:20260101T020000 RRULE:FREQ=DAILY")  # no INTERVAL
    assert rrule_errors("DTSTART;TZID=Not/AZone:20260101T020000 RRULE:FREQ=DAILY;INTERVAL=1")
    assert rrule_errors("DTSTART;TZID=UTC:20260101T020000 RRULE:FREQ=DAILY;INTERVAL=1;COUNT=5000")
    assert rrule_errors("DTSTART;TZID=UTC:20260101T020000") and rrule_errors("RRULE:FREQ=DAILY;INTERVAL=1")
    assert rrule_errors("DTSTART:20260101T020000Z RRULE:FREQ=DAILY;INTERVAL=1") == []


def test_configure_playbook_passes_syntax_check_with_awx_awx() -> None:
    done = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(AWX_DIR / "configure.yml")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = yaml.safe_load(re.sub(r"!unsafe ", "", (AWX_DIR / "configure.yml").read_text()))[0]["tasks"]
    modules = {key for task in tasks for key in task if key.startswith("awx.awx.")}
    assert modules == {"awx.awx.credential_type", "awx.awx.notification_template", "awx.awx.job_template",
                       "awx.awx.schedule", "awx.awx.workflow_job_template"}


def test_configure_playbook_names_what_is_missing() -> None:
    done = subprocess.run([str(BIN / "ansible-playbook"), str(AWX_DIR / "configure.yml")], capture_output=True,
                          text=True, timeout=120, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1",
                                                                        ANSIBLE_LOCALHOST_WARNING="0"))
    assert done.returncode != 0
    assert "Give the names of your organization, project, inventory" in done.stdout, done.stdout
