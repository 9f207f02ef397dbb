# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema migrations run once, in a controlled Job built from the stack's template
(runbook Scenario C).

A migration is *pending* when the version the stack records (the schema
ConfigMap) is below the version the template brings it to.  A version already
reached is never run again; a Job that is already running for the stack is
never joined by a second one; a failed Job is kept as evidence and the next
attempt gets a new name.
"""

from __future__ import annotations

import copy
import json
import re
import typing as t
from dataclasses import dataclass, field

from .. import yaml_text
from ..errors import MigrationFailed, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished, job_succeeded
from ..k8s.resources import INCIDENT_ANNOTATION, MANAGED_BY, VERSION_KEY, Ref

MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class MigrationSource:
    """Where the stack describes its migration: the Job template and the record of
    the applied version."""

    namespace: str
    configmap: t.Optional[str]
    key: str
    template: t.Optional[Obj]
    version: t.Optional[str]
    version_env: str
    selector: t.Optional[str]
    schema_configmap: str
    schema_key: str

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> t.Optional[MigrationSource]:
        """The source named by the ``migration`` option group; ``None`` when the
        stack has no migration."""
        if not params.get("migration_configmap") and not params.get(
            "migration_template"
        ):
            return None
        return cls(
            namespace=params["namespace"],
            configmap=params.get("migration_configmap"),
            key=params["migration_key"],
            template=params.get("migration_template"),
            version=params.get("migration_version"),
            version_env=params["migration_version_env"],
            selector=params.get("migration_selector"),
            schema_configmap=params["schema_configmap"] or "",
            schema_key=params["schema_key"],
        )

    def describe(self) -> str:
        if self.configmap:
            return "ConfigMap %s/%s key %s" % (self.namespace, self.configmap, self.key)
        return "the migration_template option"


def parse_template(text: str, where: str) -> Obj:
    """A Job manifest from YAML (or JSON, which is YAML) text."""
    next_step = "Fix the template: it must be a batch/v1 Job manifest."
    try:
        template = yaml_text.load(text)
    except yaml_text.YamlSyntaxError as error:
        raise RecoveryError(
            "Failed to parse the migration Job template in %s: %s" % (where, error),
            resource=where,
            reason="invalid template",
            next_step=next_step,
        ) from None
    if not isinstance(template, dict) or template.get("kind") != "Job":
        raise RecoveryError(
            "The migration Job template in %s is not a Job manifest" % where,
            resource=where,
            reason="invalid template",
            next_step=next_step,
        )
    return template


def load_template(client: K8sClient, source: MigrationSource) -> Obj:
    if source.template is not None:
        return parse_template(json.dumps(source.template), source.describe())
    ref = Ref("ConfigMap", source.configmap or "", source.namespace)
    configmap = client.get_or_none(ref)
    if configmap is None:
        raise RecoveryError(
            "Failed to read the migration Job template: %s not found" % ref,
            resource=str(ref),
            reason="missing template",
            next_step="Create it, or point migration_configmap at it.",
        )
    data = configmap.get("data") or {}
    if source.key not in data:
        raise RecoveryError(
            "Failed to read the migration Job template: %s has no key %s (keys: %s)"
            % (ref, source.key, ", ".join(sorted(data)) or "none"),
            resource=str(ref),
            reason="missing template key",
            next_step="Set migration_key to the key holding the Job.",
        )
    return parse_template(data[source.key], source.describe())


def target_version(template: Obj, source: MigrationSource) -> str:
    """The version the migration brings the stack to: the option, the template's
    annotation, or its env."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    containers = ((template.get("spec") or {}).get("template") or {}).get(
        "spec", {}
    ).get("containers") or [{}]
    env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
    version = (
        source.version or annotations.get(VERSION_KEY) or env.get(source.version_env)
    )
    if not version:
        raise RecoveryError(
            "Cannot tell which version the migration in %s brings the stack to"
            % source.describe(),
            reason="no target version",
            next_step="Set migration_version, the template annotation %s or its %s env."
            % (VERSION_KEY, source.version_env),
        )
    return str(version)


def version_reached(current: t.Optional[str], target: str) -> bool:
    """Numbers compare as numbers (the stack may be ahead); other versions must match
    exactly."""
    if current is None:
        return False
    try:
        return int(current) >= int(target)
    except ValueError:
        return current == target


def applied_version(client: K8sClient, source: MigrationSource) -> t.Optional[str]:
    """The version the stack records, or ``None`` when it records none (yet)."""
    if not source.schema_configmap:
        return None
    configmap = client.get_or_none(
        Ref("ConfigMap", source.schema_configmap, source.namespace)
    )
    value = ((configmap or {}).get("data") or {}).get(source.schema_key)
    return str(value) if value not in (None, "") else None


def job_selector(template: Obj, source: MigrationSource) -> str:
    """The stack's migration Jobs: the option, else the template's labels, else every
    Job the collection ran."""
    if source.selector:
        return source.selector
    labels = (template.get("metadata") or {}).get("labels") or {}
    return ",".join("%s=%s" % item for item in sorted(labels.items())) or VERSION_KEY


def job_status(job: Obj) -> str:
    if not job_finished(job):
        return "active"
    return "succeeded" if job_succeeded(job) else "failed"


def job_report(job: Obj) -> Obj:
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    failed = [
        c
        for c in status.get("conditions") or []
        if c.get("type") == "Failed" and c.get("status") == "True"
    ]
    return {
        "name": meta.get("name"),
        "version": (meta.get("labels") or {}).get(VERSION_KEY),
        "status": job_status(job),
        "reason": failed[0].get("reason") if failed else None,
        "started": status.get("startTime"),
        "completed": status.get("completionTime"),
        "managed": (meta.get("labels") or {}).get("app.kubernetes.io/managed-by")
        == "ragops.recovery",
    }


@dataclass
class MigrationState:
    """The migration as the cluster shows it now."""

    source: MigrationSource
    template: Obj
    target: str
    # The version the stack records; None when it records none (yet).
    current: t.Optional[str] = None
    jobs: t.List[Obj] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        if self.source.schema_configmap:
            return version_reached(self.current, self.target)
        # Without a version record, a completed Job of ours for this version is the
        # record.
        return any(
            job_report(job)["version"] == self.target and job_status(job) == "succeeded"
            for job in self.jobs
        )

    def active(self) -> t.List[Obj]:
        return [job for job in self.jobs if not job_finished(job)]

    def report(self) -> Obj:
        reports = [job_report(job) for job in self.jobs]
        return {
            "configured": True,
            "template": self.source.describe(),
            "pending": not self.applied,
            "current_version": self.current,
            "target_version": self.target,
            "jobs": reports,
            "active": [job["name"] for job in reports if job["status"] == "active"],
            "failed": [
                job["name"]
                for job in reports
                if job["status"] == "failed" and job["version"] == self.target
            ],
        }


def read_migration(client: K8sClient, source: MigrationSource) -> MigrationState:
    template = load_template(client, source)
    jobs = client.list(
        "Job", source.namespace, label_selector=job_selector(template, source)
    )
    jobs.sort(
        key=lambda job: (job.get("metadata") or {}).get("creationTimestamp") or ""
    )
    return MigrationState(
        source,
        template,
        target_version(template, source),
        applied_version(client, source),
        jobs,
    )


def job_name(template: Obj, target: str, base: t.Optional[str] = None) -> str:
    """``<base>-v<version>``, a valid Job name; ``base`` defaults to the template's
    name."""
    meta = template.get("metadata") or {}
    stem = (
        base
        or meta.get("name")
        or str(meta.get("generateName") or "").rstrip("-")
        or "migration"
    )
    name = re.sub(r"[^a-z0-9-]+", "-", ("%s-v%s" % (stem, target)).lower()).strip("-")
    # Room for "-attempt-NN" and the pod suffix Kubernetes adds, within the 63
    # characters of a label value.
    return name[:40].rstrip("-")


@dataclass(frozen=True)
class JobOverrides:
    """What the caller changes in the template's first container and pod."""

    image: t.Optional[str] = None
    command: t.Optional[t.List[str]] = None
    args: t.Optional[t.List[str]] = None
    env: t.Optional[t.Mapping[str, str]] = None
    service_account: t.Optional[str] = None


def _with_env(current: t.List[Obj], overrides: t.Mapping[str, str]) -> t.List[Obj]:
    """The env list with ``overrides`` replacing same-named entries (in place) or
    appended."""
    merged = [
        dict(entry, value=str(overrides[entry["name"]]))
        if entry.get("name") in overrides
        else entry
        for entry in current
    ]
    known = {entry.get("name") for entry in current}
    return merged + [
        {"name": name, "value": str(value)}
        for name, value in overrides.items()
        if name not in known
    ]


def build_job(
    state: MigrationState, name: str, overrides: JobOverrides, incident_id: str = ""
) -> Obj:
    """The Job to create: the template with the overrides, our name, and labels
    saying which version it applies."""
    job = copy.deepcopy(state.template)
    meta = job.setdefault("metadata", {})
    for key in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
        meta.pop(key, None)
    meta.update(name=name, namespace=state.source.namespace)
    meta["labels"] = dict(
        meta.get("labels") or {}, **MANAGED_BY, **{VERSION_KEY: state.target}
    )
    if incident_id:
        meta["annotations"] = dict(
            meta.get("annotations") or {}, **{INCIDENT_ANNOTATION: incident_id}
        )
    job.pop("status", None)
    pod = job.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    container = (pod.get("containers") or [{}])[0]
    for field_name, value in (
        ("image", overrides.image),
        ("command", overrides.command),
        ("args", overrides.args),
    ):
        if value is not None:
            container[field_name] = value
    if overrides.env:
        container["env"] = _with_env(list(container.get("env") or []), overrides.env)
    if overrides.service_account:
        pod["serviceAccountName"] = overrides.service_account
    return job


@dataclass(frozen=True)
class RunPlan:
    """``skip`` (version reached), ``adopt`` (our Job already runs: wait for it) or
    ``create``."""

    action: str
    name: str
    earlier_attempts: t.Tuple[str, ...] = ()


def plan_run(
    client: K8sClient, state: MigrationState, base: t.Optional[str]
) -> RunPlan:
    """Decide what to do; raises when another migration is running or a finished Job
    did not help."""
    first = job_name(state.template, state.target, base)
    if state.applied:
        return RunPlan("skip", first)
    ours = [first] + [
        "%s-attempt-%d" % (first, number) for number in range(2, MAX_ATTEMPTS + 1)
    ]
    active = state.active()
    for job in active:
        if job["metadata"]["name"] in ours:
            return RunPlan("adopt", job["metadata"]["name"])
    if active:
        _refuse_busy(active, state)
    earlier: t.List[str] = []
    for name in ours:
        existing = client.get_or_none(Ref("Job", name, state.source.namespace))
        if existing is None:
            return RunPlan("create", name, tuple(earlier))
        if job_status(existing) == "succeeded":
            raise _not_recorded(state, name)
        earlier.append(name)
    raise MigrationFailed(
        "Refusing to start attempt %d of the migration to version %s: %d attempts "
        "failed already "
        "(%s)" % (MAX_ATTEMPTS + 1, state.target, MAX_ATTEMPTS, ", ".join(earlier)),
        reason="too many attempts",
        next_step="Read the failed Jobs' logs and fix the migration.",
    )


def _refuse_busy(active: t.Sequence[Obj], state: MigrationState) -> t.NoReturn:
    names = ", ".join(job["metadata"]["name"] for job in active)
    raise RecoveryError(
        "Refusing to start a migration while another migration Job of the stack is "
        "running: %s" % names,
        resource="Job %s/%s" % (state.source.namespace, active[0]["metadata"]["name"]),
        reason="migration already running",
        next_step="Wait for it to finish (kubectl -n %s wait --for=condition=complete "
        "job/%s), then re-run: the "
        "migration is skipped if it brought the stack to version %s."
        % (state.source.namespace, active[0]["metadata"]["name"], state.target),
    )


def _not_recorded(state: MigrationState, name: str) -> MigrationFailed:
    where = "ConfigMap %s/%s" % (state.source.namespace, state.source.schema_configmap)
    return MigrationFailed(
        "Migration Job %s completed, but %s records version %s, not %s"
        % (name, where, state.current, state.target),
        resource="Job %s/%s" % (state.source.namespace, name),
        reason="version not recorded",
        next_step="Read the Job's logs: the migration did not record its version. Fix "
        "the migration or the record "
        "(%s key %s); a completed Job is not run again."
        % (where, state.source.schema_key),
    )
