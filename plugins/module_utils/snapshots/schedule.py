# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nightly snapshots as a Kubernetes CronJob: a playbook of the collection run in the
execution-environment image, in the stack's namespace, with the in-cluster
ServiceAccount, so that the cluster keeps snapshotting without a controller.

The CronJob carries the SHA-256 of the spec the collection wrote
(``ragops.io/spec-sha256``): a run with the same settings changes nothing, any other
replaces the spec.  The S3 credentials go in a Secret owned by the CronJob (unless one
is named), so that removing the CronJob removes them too, by garbage collection.
"""

from __future__ import annotations

import base64
import hashlib
import json
import typing as t
from dataclasses import dataclass, field

from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import MANAGED_BY, Ref
from . import jobkit

SPEC_ANNOTATION = "ragops.io/spec-sha256"
COMPONENT_LABEL = {"ragops.io/component": "snapshot-schedule"}
# Extra variables every in-cluster run gets: the Python that runs ansible-playbook in
# the image has the collection's requirements.  Templated by Ansible in the pod.
RUN_VARIABLES = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}


@dataclass(frozen=True)
class ScheduleRequest:
    """The CronJob the module keeps (or removes)."""

    namespace: str
    name: str
    schedule: str
    image: str
    service_account: str
    playbook: str
    state: str = "present"
    time_zone: str | None = None
    suspend: bool = False
    timeout: int = 21600
    s3_secret: str | None = None
    extra_vars: t.Mapping[str, t.Any] = field(default_factory=dict)
    credentials: t.Mapping[str, str] = field(default_factory=dict)
    s3_env: t.Mapping[str, str] = field(default_factory=dict)
    check_mode: bool = False

    @property
    def secret_name(self) -> str:
        return self.s3_secret or self.name + "-s3"


def command(request: ScheduleRequest) -> t.List[str]:
    """``ansible-playbook`` of the playbook against the pod itself."""
    variables = dict(request.extra_vars, **RUN_VARIABLES)
    return [
        "ansible-playbook",
        request.playbook,
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        json.dumps(variables, sort_keys=True),
    ]


def container_env(request: ScheduleRequest) -> t.List[Obj]:
    """In-cluster Kubernetes access in the pod's own namespace, the S3 endpoint and
    the S3 credentials from the Secret."""
    namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    return [
        {"name": "K8S_AUTH_IN_CLUSTER", "value": "true"},
        {"name": "K8S_AUTH_NAMESPACE", "valueFrom": namespace},
        *({"name": k, "value": v} for k, v in sorted(request.s3_env.items()) if v),
        *jobkit.credential_env(request.secret_name),
    ]


def cronjob_spec(request: ScheduleRequest) -> Obj:
    labels = dict(MANAGED_BY, **COMPONENT_LABEL)
    container = {
        "name": "snapshots",
        "image": request.image,
        "args": command(request),
        "env": container_env(request),
    }
    pod = {
        "serviceAccountName": request.service_account,
        "restartPolicy": "Never",
        "containers": [container],
    }
    job = {
        # A failed night is not retried: the RPO check's failure stays visible.
        "backoffLimit": 0,
        "activeDeadlineSeconds": request.timeout,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    spec: Obj = {
        "schedule": request.schedule,
        "suspend": request.suspend,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {"metadata": {"labels": labels}, "spec": job},
    }
    if request.time_zone:
        spec["timeZone"] = request.time_zone
    return spec


def spec_digest(spec: Obj) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def cronjob_body(request: ScheduleRequest) -> Obj:
    spec = cronjob_spec(request)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": request.name,
            "namespace": request.namespace,
            "labels": dict(MANAGED_BY, **COMPONENT_LABEL),
            "annotations": {SPEC_ANNOTATION: spec_digest(spec)},
        },
        "spec": spec,
    }


def summary(cronjob: Obj | None) -> Obj:
    """What a user reads of a CronJob: when and what it runs, and as whom."""
    if not cronjob:
        return {}
    spec = cronjob.get("spec") or {}
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    return {
        "name": cronjob["metadata"]["name"],
        "namespace": cronjob["metadata"].get("namespace"),
        "schedule": spec.get("schedule"),
        "time_zone": spec.get("timeZone"),
        "suspend": bool(spec.get("suspend")),
        "image": container.get("image"),
        "args": container.get("args") or [],
        "service_account": pod.get("serviceAccountName"),
    }


def _decoded(secret: Obj) -> t.Dict[str, str]:
    return {
        key: base64.b64decode(value).decode("utf-8", "replace")
        for key, value in (secret.get("data") or {}).items()
    }


def _put_secret(client: K8sClient, request: ScheduleRequest, owner: Obj) -> bool:
    """The credentials Secret, owned by the CronJob; True when it changed (or would
    in check mode)."""
    ref = Ref("Secret", request.secret_name, request.namespace)
    existing = client.get_or_none(ref)
    wanted = {k: v for k, v in request.credentials.items() if v}
    if existing is not None and _decoded(existing) == wanted:
        return False
    if request.check_mode:
        return True
    body = jobkit.credentials_secret(
        request.secret_name, request.namespace, request.credentials
    )
    meta = owner["metadata"]
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": meta["name"],
            "uid": meta.get("uid", ""),
        }
    ]
    if existing is None:
        client.create(body)
    else:
        client.patch(
            ref,
            {
                "metadata": {"ownerReferences": body["metadata"]["ownerReferences"]},
                "data": None,
                "stringData": body["stringData"],
            },
        )
    return True


def _check_account(client: K8sClient, request: ScheduleRequest) -> None:
    ref = Ref("ServiceAccount", request.service_account, request.namespace)
    if client.get_or_none(ref) is None:
        raise RecoveryError(
            "Failed to schedule the snapshots: ServiceAccount %s/%s does not exist"
            % (request.namespace, request.service_account),
            resource=str(ref),
            reason="service account missing",
            next_step="Apply the collection's RBAC in the namespace (kubectl apply -n "
            "%s -f meta/rbac/snapshots.yaml), or name another account."
            % request.namespace,
        )


@dataclass
class ScheduleOutcome:
    changed: bool
    before: Obj
    after: Obj
    secret: Obj

    def to_result(self, diff: bool) -> Obj:
        result: Obj = {
            "changed": self.changed,
            "cronjob": self.after or None,
            "secret": self.secret,
        }
        if diff:
            result["diff"] = {"before": self.before, "after": self.after}
        return result


def apply(client: K8sClient, request: ScheduleRequest) -> ScheduleOutcome:
    """Create, update or remove the CronJob (and its credentials Secret)."""
    ref = Ref("CronJob", request.name, request.namespace)
    existing = client.get_or_none(ref)
    secret: Obj = {"name": request.secret_name, "managed": not request.s3_secret}
    if request.state == "absent":
        if existing is not None:
            client.delete(
                ref,
                uid=existing["metadata"].get("uid"),
                propagation="Background",
                dry_run=request.check_mode,
            )
        return ScheduleOutcome(existing is not None, summary(existing), {}, secret)
    _check_account(client, request)
    want = cronjob_body(request)
    digest = want["metadata"]["annotations"][SPEC_ANNOTATION]
    current = (existing or {}).get("metadata", {}).get("annotations") or {}
    owner = existing
    if existing is None:
        owner = client.create(want, dry_run=request.check_mode)
    elif current.get(SPEC_ANNOTATION) != digest:

        def mutate(cronjob: Obj) -> Obj:
            cronjob["metadata"].setdefault("annotations", {}).update(
                want["metadata"]["annotations"]
            )
            cronjob["metadata"].setdefault("labels", {}).update(
                want["metadata"]["labels"]
            )
            cronjob["spec"] = want["spec"]
            return cronjob

        owner = client.update(ref, mutate, dry_run=request.check_mode).after
    changed = existing is None or current.get(SPEC_ANNOTATION) != digest
    if not request.s3_secret:
        secret["changed"] = _put_secret(client, request, t.cast(Obj, owner))
        changed = changed or secret["changed"]
    return ScheduleOutcome(changed, summary(existing), summary(want), secret)
