"""AWX's own rules for what extensions/awx/ defines, ported from AWX's source (github.com/ansible/awx):

- survey specs: ``JobTemplateSurveySpec._validate_spec_data`` (awx/api/views/__init__.py) when a survey is
  saved, ``SurveyJobTemplateMixin._survey_element_validation`` (awx/main/models/mixins.py) when answers arrive,
  ``SURVEY_TYPE_MAPPING`` (awx/main/constants.py);
- credential types: ``CredentialTypeInputField`` and ``CredentialTypeInjectorField`` (awx/main/fields.py),
  ``ENV_BLOCKLIST`` (awx/main/constants.py);
- extra variables as AWX writes them for ansible-runner: ``safe_dump`` (awx/main/utils/safe_yaml.py);
- schedules' rrules: ``SchedulePreviewSerializer.validate_rrule`` (awx/api/serializers.py) and
  ``Schedule.rrulestr`` (awx/main/models/schedules.py), which parses them with dateutil's ``rrulestr``.
"""

from __future__ import annotations

import re
import typing as t

import jsonschema
import yaml
from dateutil import rrule as dateutil_rrule
from dateutil import tz

SURVEY_TYPE_MAPPING: dict[str, t.Any] = {"text": str, "textarea": str, "password": str, "multiplechoice": str,
                                         "multiselect": str, "integer": int, "float": (float, int)}
ENV_BLOCKLIST = frozenset(("VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
                           "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN",
                           "MAX_EVENT_RES", "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG",
                           "INVENTORY_HOSTVARS", "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH"))
CREDENTIAL_INPUTS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "label"],
            "properties": {
                "type": {"enum": ["string", "boolean"]}, "format": {"enum": ["ssh_private_key", "url"]},
                "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"}, "label": {"type": "string"},
                "help_text": {"type": "string"}, "multiline": {"type": "boolean"}, "secret": {"type": "boolean"},
                "ask_at_runtime": {"type": "boolean"}, "default": {}}}}}}
CREDENTIAL_INJECTORS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "additionalProperties": False,
                 "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}}},
        "env": {"type": "object", "additionalProperties": False,
                "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string", "pattern": "^[\x00-\x7F]*$"}}},
        "extra_vars": {"type": "object", "additionalProperties": False,
                       "patternProperties": {r"^[a-zA-Z_\{\}]+[a-zA-Z0-9_\{\}]*$": {
                           "anyOf": [{"type": "string"}, {"type": "array"}, {"$ref": "#/properties/extra_vars"}]}}}}}


def survey_spec_errors(spec: dict[str, t.Any]) -> list[str]:
    """What AWX answers with 400 when the survey is saved; [] when it accepts it."""
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            return ["Field '%s' is missing or not a %s." % (field, kind.__name__)]
    if not spec["spec"]:
        return ["'spec' doesn't contain any items."]
    errors: list[str] = []
    variables: set[str] = set()
    for index, item in enumerate(spec["spec"]):
        errors += [f"question {index}: {error}" for error in _question_errors(item, variables)]
    return errors


def _question_errors(item: dict[str, t.Any], variables: set[str]) -> list[str]:
    for field in ("type", "question_name", "variable", "required"):
        if field not in item:
            return ["'%s' missing" % field]
        if not isinstance(item[field], bool if field == "required" else str):
            return ["'%s' has the wrong type" % field]
    if item["variable"] in variables:
        return ["'variable' '%s' duplicated" % item["variable"]]
    variables.add(item["variable"])
    kind = item["type"]
    if kind not in SURVEY_TYPE_MAPPING:
        return ["'%s' is not one of AWX's question types %s" % (kind, sorted(SURVEY_TYPE_MAPPING))]
    if "default" in item and item["default"] != "" and not isinstance(item["default"], SURVEY_TYPE_MAPPING[kind]):
        return ["default %r is not a %s" % (item["default"], kind)]
    for key in ("min", "max"):
        if item.get(key) is not None and not isinstance(item[key], int):
            return ["the %s limit must be an integer" % key]
    if kind in ("multiselect", "multiplechoice"):
        if "choices" not in item:
            return ["type %s must specify choices" % kind]
        if "default" in item:
            defaults = item["default"].splitlines() if isinstance(item["default"], str) else item["default"]
            if kind == "multiplechoice" and len(defaults) > 1:
                return ["a multiple choice question can only have one default"]
            if any(value not in _choices(item) for value in defaults):
                return ["default choice must be answered from the choices listed"]
    if isinstance(item.get("default"), str) and item["default"].startswith("$encrypted$"):
        return ["$encrypted$ is reserved"]
    return []


def _choices(item: dict[str, t.Any]) -> list[str]:
    choices = item["choices"]
    return [c for c in choices.splitlines() if c.strip()] if isinstance(choices, str) else list(choices)


def answer_errors(item: dict[str, t.Any], answers: dict[str, t.Any]) -> list[str]:
    """AWX's check of one answer at launch (_survey_element_validation)."""
    name, kind = item["variable"], item["type"]
    if name not in answers:
        return ["'%s' value missing" % name] if item["required"] else []
    value = answers[name]
    low = item.get("min") if item.get("min") not in ("", None) else None
    high = item.get("max") if item.get("max") not in ("", None) else None
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["Value %s for '%s' expected to be a string." % (value, name)]
        measured: float = len(value)
    elif kind == "integer":
        if type(value) is not int:
            return ["Value %s for '%s' expected to be an integer." % (value, name)]
        measured = value
    elif kind == "float":
        if type(value) not in (float, int):
            return ["Value %s for '%s' expected to be a numeric type." % (value, name)]
        measured = value
    elif kind == "multiselect":
        if not isinstance(value, list):
            return ["'%s' value is expected to be a list." % name]
        return ["Value %s for '%s' expected to be one of %s." % (v, name, _choices(item))
                for v in value if v not in _choices(item)]
    else:
        return [] if value in _choices(item) else ["Value %s for '%s' not a choice" % (value, name)]
    too_small = low is not None and measured < low
    too_large = high is not None and measured > high
    return ["'%s' value %s is out of [%s, %s]" % (name, value, low, high)] if too_small or too_large else []


def launch_extra_vars(spec: dict[str, t.Any], template_vars: dict[str, t.Any],
                      answers: dict[str, t.Any]) -> dict[str, t.Any]:
    """The job's extra variables: the template's, then the survey's valid defaults, then the answers
    (SurveyJobTemplateMixin._update_unified_job_kwargs). Fails on an answer AWX would refuse."""
    extra = dict(template_vars)
    for item in spec["spec"]:
        if item.get("default") is not None and not answer_errors(item, {item["variable"]: item["default"]}):
            extra[item["variable"]] = item["default"]
    errors = [error for item in spec["spec"] for error in answer_errors(item, {**extra, **answers})]
    assert not errors, errors
    extra.update(answers)
    return extra


def credential_type_errors(credential_type: dict[str, t.Any]) -> list[str]:
    errors = [error.message for schema, value in ((CREDENTIAL_INPUTS_SCHEMA, credential_type["inputs"]),
                                                  (CREDENTIAL_INJECTORS_SCHEMA, credential_type["injectors"]))
              for error in jsonschema.Draft4Validator(schema).iter_errors(value)]
    for name in credential_type["injectors"].get("env", {}):
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            errors.append("environment variable %s is not allowed in credentials" % name)
    fields = {field["id"] for field in credential_type["inputs"].get("fields", [])}
    errors += ["required input %s is not a field" % name for name in credential_type["inputs"].get("required", [])
               if name not in fields]
    return errors


class _UnsafeDumper(yaml.SafeDumper):
    def represent_data(self, data: t.Any) -> t.Any:
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


def safe_dump(values: dict[str, t.Any], safe: dict[str, t.Any] | None = None) -> str:
    """Extra variables as AWX writes them: every string !unsafe unless the template itself set it."""
    safe = safe or {}
    return "".join(yaml.dump({key: value}, Dumper=yaml.SafeDumper if key in safe and safe[key] == value
                             else _UnsafeDumper, default_flow_style=False) for key, value in values.items())


# Schedule.rrulestr's tzinfos (awx/main/models/schedules.py: UTC_TIMEZONES).
UTC_TIMEZONES = {name: tz.tzutc() for name in ("UTC", "GMT", "Z")}


def rrule_errors(value: str) -> list[str]:
    """What AWX answers with 400 when a schedule's rrule is saved (validate_rrule); [] when it accepts it."""
    dtstarts = re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", value)
    errors = []
    if not dtstarts:
        errors.append("Valid DTSTART required in rrule. Value should start with: DTSTART:YYYYMMDDTHHMMSSZ")
    if re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", value):
        errors.append("DTSTART cannot be a naive datetime.  Specify ;TZINFO= or YYYYMMDDTHHMMSSZZ.")
    if len(dtstarts) > 1:
        errors.append("Multiple DTSTART is not supported.")
    if "rrule:" not in value.lower():
        errors.append("One or more rule required in rrule.")
    if "exdate:" in value.lower() or "rdate:" in value.lower():
        errors.append("EXDATE and RDATE are not allowed in rrule.")
    for rule in re.findall(r".*?(RULE\:[^\s]*)", value):
        if "interval" not in rule.lower():
            errors.append("INTERVAL required in rrule: %s" % rule)
        elif "secondly" in rule.lower():
            errors.append("SECONDLY is not supported: %s" % rule)
        if re.match(r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}", rule):
            errors.append("BYDAY with numeric prefix not supported: %s" % rule)
        if "COUNT" in rule and "UNTIL" in rule:
            errors.append("RRULE may not contain both COUNT and UNTIL: %s" % rule)
        count = re.match(r".*?COUNT\=([0-9]+)", rule)
        if count and int(count.group(1)) > 999:
            errors.append("COUNT > 999 is unsupported: %s" % rule)
    try:
        parse_rrule(value)
    except (ValueError, TypeError) as error:
        errors.append("rrule parsing failed validation: %s" % error)
    return errors


def parse_rrule(value: str) -> dateutil_rrule.rruleset:
    """Schedule.rrulestr: dateutil's rrulestr as a set, every rule's DTSTART with a time zone."""
    parsed = dateutil_rrule.rrulestr(value, tzinfos=UTC_TIMEZONES, forceset=True)
    for rule in parsed._rrule:
        if rule._dtstart and rule._dtstart.tzinfo is None:
            raise ValueError("A valid TZID must be provided (e.g., America/New_York)")
    return t.cast(dateutil_rrule.rruleset, parsed)
