# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-indexing what a restore left out: one indexer Job per shard and start time,
tracked from its log."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import typing as t
from dataclasses import dataclass

from ..errors import ApiError, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished, job_succeeded
from ..k8s.resources import INCIDENT_ANNOTATION, MANAGED_BY, Ref
from ..waiter import Waiter

JOB_LABEL = "ragops.io/reindex-job"


@dataclass(frozen=True)
class ReindexRequest:
    """Which shard to re-index from when, and the indexer Job to run it in."""

    namespace: str
    shard: str
    since: str
    image: str | None = None
    template: Obj | None = None
    env: t.Mapping[str, str] | None = None
    incident_id: str = ""
    backoff_limit: int = 2

    @property
    def job_name(self) -> str:
        """One Job per shard, start time and incident: an incident that restores the
        snapshot an earlier one restored re-indexes again instead of finding the
        earlier incident's finished Job."""
        stamp = re.sub(r"[^0-9a-z]", "", self.since.lower())[:20]
        name = "ragops-reindex-%s-%s" % (self.shard.lower(), stamp)
        if not self.incident_id:
            return name[:63].rstrip("-")
        digest = hashlib.sha256(self.incident_id.encode("utf-8")).hexdigest()[:8]
        return "%s-%s" % (name[:54].rstrip("-"), digest)


def _container(request: ReindexRequest, template: Obj) -> Obj:
    containers = template["spec"]["template"]["spec"].setdefault("containers", [])
    if not containers:
        containers.append({"name": "indexer", "image": request.image})
    return t.cast(Obj, containers[0])


def job_manifest(request: ReindexRequest) -> Obj:
    """The Job: from the template when given, else one container of ``image``; SINCE
    and SHARD in its env."""
    if request.template is None and not request.image:
        raise RecoveryError(
            "Re-indexing needs the indexer's image or a Job template",
            reason="no indexer Job",
            next_step="Pass image (the indexer image) or job_template.",
        )
    job = (
        copy.deepcopy(request.template)
        if request.template
        else {"spec": {"template": {"spec": {}}}}
    )
    job.update({"apiVersion": "batch/v1", "kind": "Job"})
    meta = job.setdefault("metadata", {})
    meta.update({"name": request.job_name, "namespace": request.namespace})
    meta["labels"] = dict(
        meta.get("labels") or {}, **MANAGED_BY, **{JOB_LABEL: request.job_name}
    )
    meta["annotations"] = dict(
        meta.get("annotations") or {},
        **{"ragops.io/since": request.since, INCIDENT_ANNOTATION: request.incident_id},
    )
    spec = job.setdefault("spec", {})
    spec.setdefault("backoffLimit", request.backoff_limit)
    pod_meta = spec["template"].setdefault("metadata", {})
    pod_meta["labels"] = dict(
        pod_meta.get("labels") or {}, **{JOB_LABEL: request.job_name}
    )
    spec["template"]["spec"].setdefault("restartPolicy", "Never")
    container = _container(request, job)
    wanted = dict(request.env or {}, SINCE=request.since, SHARD=request.shard)
    kept = [v for v in container.get("env") or [] if v.get("name") not in wanted]
    container["env"] = kept + [
        {"name": k, "value": str(v)} for k, v in sorted(wanted.items())
    ]
    return job


def parse_progress(log: str) -> Obj:
    """The last ``progress``/``completed`` event of an indexer log: ``{"done",
    "total", "completed"}``."""
    progress: Obj = {"done": 0, "total": None, "completed": False}
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") in ("progress", "completed"):
            progress.update(
                done=event.get("done", 0),
                total=event.get("total"),
                completed=event.get("event") == "completed",
            )
    return progress


def job_state(job: Obj | None) -> str:
    if job is None:
        return "absent"
    if job_succeeded(job):
        return "succeeded"
    return "failed" if job_finished(job) else "running"


@dataclass
class Tracker:
    """Reads the Job and its pods' logs; one call per poll of the waiter."""

    client: K8sClient
    request: ReindexRequest

    def job(self) -> Obj | None:
        return self.client.get_or_none(
            Ref("Job", self.request.job_name, self.request.namespace)
        )

    def progress(self) -> Obj:
        pods = self.client.list(
            "Pod",
            self.request.namespace,
            label_selector="%s=%s" % (JOB_LABEL, self.request.job_name),
        )
        best: Obj = parse_progress("")
        for pod in sorted(
            pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or "")
        ):
            try:
                log = self.client.pod_log(
                    self.request.namespace, pod["metadata"]["name"]
                )
            except ApiError:
                continue
            found = parse_progress(log)
            if found["total"] is not None:
                best = dict(found, pod=pod["metadata"]["name"])
        return best

    def snapshot(self) -> Obj:
        job = self.job()
        return dict(self.progress(), state=job_state(job), job=self.request.job_name)


def failed_error(request: ReindexRequest, seen: Obj) -> RecoveryError:
    return RecoveryError(
        "Failed to re-index shard %s since %s: Job %s failed after %s of %s documents"
        % (
            request.shard,
            request.since,
            request.job_name,
            seen.get("done"),
            seen.get("total"),
        ),
        resource="Job/%s" % request.job_name,
        reason="indexer Job failed",
        next_step="Read the Job's pod log (kubectl logs -l %s=%s); the shard serves "
        "without the documents "
        "written since %s until a re-index succeeds. Delete the Job and run again to "
        "retry." % (JOB_LABEL, request.job_name, request.since),
        partial={"changed": True, "reindex": seen},
    )


def reindex(
    client: K8sClient,
    request: ReindexRequest,
    waiter: Waiter | None,
    *,
    check_mode: bool,
) -> Obj:
    """Start the indexer Job unless it exists, and with a ``waiter`` follow it to its
    end.

    The result names the Job and its state; a failed Job raises with its progress.
    """
    tracker = Tracker(client, request)
    created = tracker.job() is None
    if created:
        client.create(job_manifest(request), dry_run=check_mode)
    about = {"shard": request.shard, "since": request.since}
    if check_mode:
        state = "absent" if created else tracker.snapshot()["state"]
        return {
            "changed": created,
            "created": created,
            "duration": 0.0,
            "reindex": dict(about, job=request.job_name, state=state),
        }
    duration = 0.0
    seen = tracker.snapshot()
    if waiter is not None:
        outcome = waiter.until(
            "re-index Job %s" % request.job_name,
            tracker.snapshot,
            lambda view: view["state"] != "running",
            next_step="Check the Job later: it keeps running in the cluster.",
        )
        seen, duration = outcome.value, outcome.duration
    if seen["state"] == "failed":
        raise failed_error(request, dict(seen, **about))
    return {
        "changed": created,
        "created": created,
        "duration": duration,
        "reindex": dict(seen, **about),
    }
