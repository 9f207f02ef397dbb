# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every in-cluster Job of the snapshots shares, restore (:mod:`.job`) and create
(:mod:`.createjob`) alike: the execution-environment image, the shard's pods, the S3
credentials Secret and its env, and following a Job through its JSON-lines log.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field

from ..errors import Conflict, NotFound, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished, job_succeeded
from ..k8s.resources import MANAGED_BY, Ref
from ..waiter import Waiter

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The module options every Job gets in its configuration: where the snapshots are and how
# they move (the credentials come from a Secret).
TRANSFER_OPTIONS = (
    "shard",
    "bucket",
    "prefix",
    "endpoint_url",
    "region",
    "s3_validate_certs",
    "part_size",
    "concurrency",
    "s3_read_timeout",
    "s3_attempts",
)
# The module options each credential variable is filled from.
CREDENTIAL_OPTIONS = {
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_SESSION_TOKEN": "session_token",
}


def credentials_of(params: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    """The S3 credentials the module was given, by environment variable name."""
    return {
        env: params[name] for env, name in CREDENTIAL_OPTIONS.items() if params[name]
    }


def run_by_job(pod: Obj) -> bool:
    """A Job's pod (a restore, a snapshot, an indexer) carries the shard's label but
    never serves the shard."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    return (
        "job-name" in labels
        or "batch.kubernetes.io/job-name" in labels
        or any(
            owner.get("kind") == "Job" for owner in meta.get("ownerReferences") or []
        )
    )


def shard_pods(
    client: K8sClient, namespace: str, shard_label: str, shard: str
) -> t.List[Obj]:
    """The pods serving the shard, the one serving now first."""
    pods = [
        p
        for p in client.list(
            "Pod", namespace, label_selector="%s=%s" % (shard_label, shard)
        )
        if not p["metadata"].get("deletionTimestamp") and not run_by_job(p)
    ]
    # The latest fresh pod of an earlier restore, if any, is the one serving now.
    return sorted(
        pods,
        key=lambda p: (
            "ragops.io/restore-of" in (p["metadata"].get("labels") or {}),
            p["metadata"].get("creationTimestamp") or "",
        ),
        reverse=True,
    )


def credentials_secret(
    name: str, namespace: str, credentials: t.Mapping[str, str]
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "stringData": {key: value for key, value in credentials.items() if value},
    }


def credential_env(secret: str) -> t.List[Obj]:
    """The container's S3 credentials, each from a key of ``secret``."""
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret,
                    "key": key,
                    "optional": key == "AWS_SESSION_TOKEN",
                }
            },
        }
        for key in CREDENTIAL_KEYS
    ]


def shard_job(
    name: str,
    namespace: str,
    shard: str,
    annotations: t.Mapping[str, str],
    pod_spec: Obj,
    **spec: t.Any,
) -> Obj:
    """A Job working on ``shard``'s data: one attempt more if its pod is lost, labelled
    with the shard and as managed by the collection."""
    labels = dict(MANAGED_BY, **{"ragops.io/shard": shard})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": dict(annotations),
        },
        "spec": dict(
            {"backoffLimit": 1},
            template={"metadata": {"labels": labels}, "spec": pod_spec},
            **spec,
        ),
    }


def ownership_labels(obj: Obj) -> t.Dict[str, str]:
    """The labels that say which object of the collection this is: managed-by and
    ``ragops.io/...``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {
        key: value
        for key, value in labels.items()
        if key in MANAGED_BY or key.startswith("ragops.io/")
    }


def refuse_foreign(current: Obj, desired: Obj) -> None:
    """Raise unless ``current`` is the object the collection would have made: an
    object of that name that someone else made is never adopted, changed or
    deleted."""
    found = (current.get("metadata") or {}).get("labels") or {}
    wanted = ownership_labels(desired)
    if all(found.get(key) == value for key, value in wanted.items()):
        return
    meta = desired["metadata"]
    resource = "%s %s/%s" % (desired["kind"], meta["namespace"], meta["name"])
    raise RecoveryError(
        "Refusing to use %s: it already exists and was not made by ragops.recovery "
        "(it lacks the labels %s)"
        % (resource, ", ".join("%s=%s" % item for item in sorted(wanted.items()))),
        resource=resource,
        reason="an object of that name exists that the collection does not own",
        next_step="Find out what it is (kubectl get %s %s -n %s -o yaml); rename or "
        "delete it if it is not needed, then run again. It was left untouched."
        % (desired["kind"].lower(), meta["name"], meta["namespace"]),
    )


def existing(client: K8sClient, obj: Obj) -> Obj | None:
    """The object of ``obj``'s name, checked to be ours; None after creating it.

    A create answered 409 was made meanwhile: by this very request, its answer
    lost, or by someone else; the object is read and checked like any found one.
    """
    meta = obj["metadata"]
    ref = Ref(obj["kind"], meta["name"], meta["namespace"])
    current = client.get_or_none(ref)
    if current is None:
        try:
            client.create(obj)
            return None
        except Conflict:
            current = client.get(ref)
    refuse_foreign(current, obj)
    return current


def ensure(client: K8sClient, obj: Obj) -> bool:
    """Create ``obj`` unless our object of that name exists (an earlier, interrupted
    run); True if created. One of that name that is not ours is refused."""
    return existing(client, obj) is None


def put_secret(client: K8sClient, body: Obj) -> None:
    """Create the credentials Secret, or bring an existing one of ours up to date."""
    if existing(client, body) is not None:
        ref = Ref("Secret", body["metadata"]["name"], body["metadata"]["namespace"])
        client.patch(ref, {"stringData": body["stringData"]})


@dataclass
class JobProgress:
    """What a Job's log said last: its latest progress line and its final result or
    error."""

    progress: Obj = field(default_factory=dict)
    result: Obj | None = None

    def read(self, log: str) -> None:
        for line in log.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "progress":
                self.progress = event
            elif isinstance(event, dict) and event.get("event") in ("result", "error"):
                self.result = event


def job_log(client: K8sClient, namespace: str, job: str) -> str:
    """The last lines of the log of the Job's newest pod ("" when there is none)."""
    pods = client.list("Pod", namespace, label_selector="job-name=%s" % job)
    if not pods:
        return ""
    newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    try:
        return client.pod_log(namespace, newest["metadata"]["name"], tail_lines=50)
    except (NotFound, RecoveryError):
        return ""


def follow_job(
    client: K8sClient, namespace: str, name: str, waiter: Waiter
) -> t.Tuple[Obj, JobProgress, float]:
    """Wait until the Job finishes, reading its progress lines on every poll."""
    seen = JobProgress()
    ref = Ref("Job", name, namespace)

    def fetch() -> Obj:
        job = client.get(ref)
        seen.read(job_log(client, namespace, name))
        return job

    outcome = waiter.until(
        str(ref),
        fetch,
        job_finished,
        next_step="kubectl -n %s logs job/%s" % (namespace, name),
    )
    if not seen.result:
        seen.read(job_log(client, namespace, name))
    return outcome.value, seen, outcome.duration


def job_state(client: K8sClient, namespace: str, name: str) -> Obj:
    """Where a started Job stands: ``running``, ``succeeded`` or ``failed``, and its
    last progress line."""
    job = client.get(Ref("Job", name, namespace))
    seen = JobProgress()
    seen.read(job_log(client, namespace, name))
    state = (
        ("failed" if not job_succeeded(job) else "succeeded")
        if job_finished(job)
        else "running"
    )
    return {"name": name, "state": state, "progress": seen.progress}


def failed_condition(job: Obj | None) -> str:
    """The reason and message of the Job's ``Failed`` condition ("" if none)."""
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            parts = (condition.get("reason"), condition.get("message"))
            return ": ".join(str(part) for part in parts if part)
    return ""


def _no_result(job: Obj | None) -> str:
    """Why a Job failed whose pods logged no result: they ended before it (killed,
    evicted, deleted)."""
    status = (job or {}).get("status") or {}
    condition = failed_condition(job) or "no Failed condition"
    return (
        "the Job failed (%s) after %s pod(s) ended without a result (killed, evicted "
        "or deleted before the end)" % (condition, status.get("failed") or 0)
    )


def job_failure(
    namespace: str,
    name: str,
    what: str,
    seen: JobProgress,
    partial: t.Mapping[str, t.Any],
    job: Obj | None = None,
) -> RecoveryError:
    """The failure of a Job that did ``what`` ("restore shard shard-2"), with the Job's
    own error message and next step where its log gave them."""
    error = seen.result or {}
    where = "%s/%s" % (namespace, name)
    logs = "kubectl -n %s logs -l job-name=%s --prefix" % (namespace, name)
    if error:
        why = error.get("msg") or "the Job failed"
        next_step = error.get("next_step") or "Read the Job's log: %s" % logs
    else:
        why = _no_result(job)
        next_step = (
            "Find out what ended its pods (%s; kubectl -n %s get events), then run "
            "again: a failed Job of ours is replaced by a new attempt, its pods kept "
            "for their logs until the restore is done." % (logs, namespace)
        )
    return RecoveryError(
        "Failed to %s in Job %s: %s" % (what, where, why),
        resource="Job " + where,
        reason=error.get("reason") or "%s Job failed" % what.split()[0],
        next_step=next_step,
        partial=dict(partial),
    )


def retry_failed(client: K8sClient, body: Obj, waiter: Waiter) -> bool:
    """Delete our Job of ``body``'s name if it failed, keeping its pods (orphaned,
    for their logs), so that it can be created again: a run after a failure (its
    pods killed, or a cause since fixed) tries again.  True if one was deleted."""
    meta = body["metadata"]
    ref = Ref("Job", meta["name"], meta["namespace"])
    current = client.get_or_none(ref)
    if current is None or not job_finished(current) or job_succeeded(current):
        return False
    refuse_foreign(current, body)
    uid = current["metadata"].get("uid")
    client.delete(ref, uid=uid, propagation="Orphan")
    waiter.until(
        "the failed %s to be deleted" % ref,
        lambda: client.get_or_none(ref),
        lambda found: found is None or found["metadata"].get("uid") != uid,
        next_step="kubectl -n %s get job %s -o yaml (a finalizer may hold it)"
        % (meta["namespace"], meta["name"]),
    )
    return True
