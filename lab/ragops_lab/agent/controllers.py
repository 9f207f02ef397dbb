"""The workload controllers: Deployments, StatefulSets and Jobs turned into pods, PVCs bound."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragops_lab.k8s_emulator.clock import rfc3339
from ragops_lab.runtime import JsonLog, pod_is_ready

from .api import CORE, Api, canonical, object_path, path_of, replacement_patch
from .containers import backoff_delay
from .volumes import LOCAL_PATH_ANNOTATION, claim_dir
from .workloads import (
    merge_conditions,
    owned_pods,
    phase,
    pod_from_template,
    ready_count,
    scaled,
    template_hash,
)

HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
# Lab stand-in for the operator that labels each shard pod: a JSON map of label → value template,
# where {ordinal} is the pod's ordinal, e.g. {"ragops.io/shard": "shard-{ordinal}"}.
ORDINAL_LABELS_ANNOTATION = "lab.ragops.io/ordinal-labels"
FINAL_PHASES = ("Succeeded", "Failed")

Obj = dict[str, Any]


class Cluster:
    """The writes controllers make, each with the event a real controller would record."""

    def __init__(self, api: Api, log: JsonLog) -> None:
        self.api = api
        self.log = log

    def create_pod(self, owner: Obj, pod: Obj) -> None:
        created = self.api.create(object_path(CORE, "pods", owner["metadata"]["namespace"]), pod)
        name = created["metadata"]["name"]
        self.log.info("pod_created", owner=f"{owner['kind']}/{owner['metadata']['name']}", pod=name)
        self.api.record_event(owner, owner["kind"], "SuccessfulCreate", f"create Pod {name} in {owner['kind']} "
                              f"{owner['metadata']['name']} successful", "lab-controller-manager")

    def delete_pod(self, owner: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        if self.api.delete(path_of(pod, "pods")):
            self.log.info("pod_deleted", owner=f"{owner['kind']}/{owner['metadata']['name']}", pod=name)
            self.api.record_event(owner, owner["kind"], "SuccessfulDelete", f"delete Pod {name} in {owner['kind']} "
                                  f"{owner['metadata']['name']} successful", "lab-controller-manager")

    def write_status(self, obj: Obj, plural: str, status: Obj) -> None:
        current = obj.get("status") or {}
        if canonical(current) != canonical(status):
            self.api.merge_patch(path_of(obj, plural, "status"), {"status": replacement_patch(current, status)})


def bind_claims(api: Api, claims: list[Obj], state_dir: Path) -> None:
    """Bind every pending PVC to a directory of its own, with the requested capacity."""
    for claim in claims:
        if (claim.get("status") or {}).get("phase") == "Bound":
            continue
        meta, spec = claim["metadata"], claim.get("spec") or {}
        directory = claim_dir(state_dir, meta["namespace"], meta["name"])
        directory.mkdir(parents=True, exist_ok=True)
        api.merge_patch(path_of(claim, "persistentvolumeclaims"), {
            "metadata": {"annotations": {LOCAL_PATH_ANNOTATION: str(directory),
                                         "pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": f"pvc-{meta['uid']}"},
        })
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        api.merge_patch(path_of(claim, "persistentvolumeclaims", "status"), {"status": {
            "phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": storage}}})


# --- Deployments ---------------------------------------------------------------------------------


class DeploymentController:
    """Rolling updates within maxSurge/maxUnavailable (one pod at a time for small Deployments)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def sync(self, deployment: Obj, pods: list[Obj]) -> None:
        spec = deployment["spec"]
        desired = int(spec.get("replicas", 1))
        revision = template_hash(spec["template"])
        owned = owned_pods(deployment, pods)
        for pod in [p for p in owned if phase(p) in FINAL_PHASES]:
            self.cluster.delete_pod(deployment, pod)
        owned = [p for p in owned if phase(p) not in FINAL_PHASES]
        new = [p for p in owned if p["metadata"].get("labels", {}).get(HASH_LABEL) == revision]
        old = [p for p in owned if p not in new]
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(deployment, desired, revision, new, old)
        else:
            self._roll(deployment, desired, revision, new, old)
        self.cluster.write_status(deployment, "deployments", self._status(deployment, desired, new, owned))

    def _create(self, deployment: Obj, revision: str, count: int) -> None:
        name = deployment["metadata"]["name"]
        for _ in range(count):
            pod = pod_from_template(deployment, deployment["spec"]["template"], {HASH_LABEL: revision},
                                    generate_name=f"{name}-{revision}-")
            self.cluster.create_pod(deployment, pod)

    def _recreate(self, deployment: Obj, desired: int, revision: str, new: list[Obj], old: list[Obj]) -> None:
        for pod in old:
            self.cluster.delete_pod(deployment, pod)
        if not old:
            self._create(deployment, revision, desired - len(new))
            self._scale_down(deployment, new, desired)

    def _roll(self, deployment: Obj, desired: int, revision: str, new: list[Obj], old: list[Obj]) -> None:
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = scaled(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = scaled(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            surge = 1
        self._create(deployment, revision, min(desired - len(new), desired + surge - len(new) - len(old)))
        # Unready old pods serve nobody: they go first; ready ones only as far as availability allows.
        unready_old = [p for p in old if not pod_is_ready(p)]
        ready_old = [p for p in old if pod_is_ready(p)]
        budget = ready_count(new) + len(ready_old) - (desired - unavailable)
        for pod in unready_old + ready_old[:max(budget, 0)]:
            self.cluster.delete_pod(deployment, pod)
        if not old:
            self._scale_down(deployment, new, desired)

    def _scale_down(self, deployment: Obj, pods: list[Obj], desired: int) -> None:
        """Remove the surplus, unready and newest first, as the ReplicaSet controller does."""
        newest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        surplus = sorted(newest_first, key=pod_is_ready)
        for pod in surplus[:max(len(pods) - desired, 0)]:
            self.cluster.delete_pod(deployment, pod)

    @staticmethod
    def _status(deployment: Obj, desired: int, new: list[Obj], owned: list[Obj]) -> Obj:
        ready = ready_count(owned)
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        enough = ready >= desired - scaled(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        complete = len(new) == desired == len(owned) and ready_count(new) == desired
        available = ({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                      "message": "Deployment has minimum availability."} if enough else
                     {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                      "message": "Deployment does not have minimum availability."})
        name = deployment["metadata"]["name"]
        progressing = {"type": "Progressing", "status": "True",
                       "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                       "message": f'Deployment "{name}" has successfully progressed.' if complete
                       else f'Deployment "{name}" is progressing.'}
        previous = (deployment.get("status") or {}).get("conditions") or []
        return {
            "observedGeneration": deployment["metadata"].get("generation", 1), "replicas": len(owned),
            "updatedReplicas": len(new), "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(desired - ready, 0),
            "conditions": merge_conditions(previous, [available, progressing], "lastUpdateTime"),
        }


# --- StatefulSets --------------------------------------------------------------------------------


def ordinal_of(set_name: str, pod: Mapping[str, Any]) -> int | None:
    suffix = pod["metadata"]["name"].removeprefix(f"{set_name}-")
    return int(suffix) if suffix.isdigit() else None


def ordinal_labels(statefulset: Mapping[str, Any], ordinal: int) -> dict[str, str]:
    raw = (statefulset["metadata"].get("annotations") or {}).get(ORDINAL_LABELS_ANNOTATION)
    if not raw:
        return {}
    return {key: str(value).format(ordinal=ordinal) for key, value in json.loads(raw).items()}


class StatefulSetController:
    """Stable names and claims per ordinal; claims are never deleted; updates go highest ordinal first."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def sync(self, statefulset: Obj, pods: list[Obj], claims: set[tuple[str, str]]) -> None:
        name = statefulset["metadata"]["name"]
        spec = statefulset["spec"]
        desired = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec['template'])}"
        by_ordinal = {ordinal_of(name, p): p for p in owned_pods(statefulset, pods)}
        by_ordinal.pop(None, None)
        changed = self._replace_finished(statefulset, by_ordinal)
        changed = self._create_missing(statefulset, desired, revision, by_ordinal, claims) or changed
        changed = self._remove_surplus(statefulset, desired, by_ordinal) or changed
        if not changed:
            self._update_one(statefulset, desired, revision, by_ordinal)
        pods_now = [p for o, p in by_ordinal.items() if o is not None]
        self.cluster.write_status(statefulset, "statefulsets", self._status(statefulset, desired, revision, pods_now))

    def _replace_finished(self, statefulset: Obj, by_ordinal: dict[int | None, Obj]) -> bool:
        finished = [o for o, p in by_ordinal.items() if phase(p) in FINAL_PHASES]
        for ordinal in finished:
            self.cluster.delete_pod(statefulset, by_ordinal.pop(ordinal))
        return bool(finished)

    def _create_missing(self, statefulset: Obj, desired: int, revision: str,
                        by_ordinal: dict[int | None, Obj], claims: set[tuple[str, str]]) -> bool:
        ordered = statefulset["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        created = False
        for ordinal in range(desired):
            pod = by_ordinal.get(ordinal)
            if pod is None:
                self._ensure_claims(statefulset, ordinal, claims)
                self.cluster.create_pod(statefulset, self._pod(statefulset, ordinal, revision))
                created = True
            if ordered and (pod is None or not pod_is_ready(pod)):
                break
        return created

    def _remove_surplus(self, statefulset: Obj, desired: int, by_ordinal: dict[int | None, Obj]) -> bool:
        """Highest ordinal first; one per cycle unless pods are managed in parallel. Claims stay."""
        surplus = sorted((o for o in by_ordinal if o is not None and o >= desired), reverse=True)
        parallel = statefulset["spec"].get("podManagementPolicy") == "Parallel"
        for ordinal in surplus if parallel else surplus[:1]:
            self.cluster.delete_pod(statefulset, by_ordinal.pop(ordinal))
        return bool(surplus)

    def _update_one(self, statefulset: Obj, desired: int, revision: str, by_ordinal: dict[int | None, Obj]) -> None:
        """Replace the highest outdated pod at or above the partition, once all pods are Ready."""
        strategy = statefulset["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate" or len(by_ordinal) < desired:
            return
        if not all(pod_is_ready(p) for p in by_ordinal.values()):
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        for ordinal in sorted((o for o in by_ordinal if o is not None and o >= partition), reverse=True):
            if by_ordinal[ordinal]["metadata"].get("labels", {}).get(REVISION_LABEL) != revision:
                self.cluster.delete_pod(statefulset, by_ordinal[ordinal])
                return

    @staticmethod
    def _claim_name(template: Mapping[str, Any], set_name: str, ordinal: int) -> str:
        return f"{template['metadata']['name']}-{set_name}-{ordinal}"

    def _ensure_claims(self, statefulset: Obj, ordinal: int, claims: set[tuple[str, str]]) -> None:
        meta = statefulset["metadata"]
        labels = ((statefulset["spec"].get("selector") or {}).get("matchLabels")) or {}
        for template in statefulset["spec"].get("volumeClaimTemplates") or []:
            name = self._claim_name(template, meta["name"], ordinal)
            if (meta["namespace"], name) in claims:
                continue
            body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "spec": template.get("spec") or {},
                    "metadata": {"name": name, "namespace": meta["namespace"], "labels": dict(labels)}}
            self.cluster.api.create(object_path(CORE, "persistentvolumeclaims", meta["namespace"]), body)
            claims.add((meta["namespace"], name))

    def _pod(self, statefulset: Obj, ordinal: int, revision: str) -> Obj:
        name = statefulset["metadata"]["name"]
        pod_name = f"{name}-{ordinal}"
        labels = {"statefulset.kubernetes.io/pod-name": pod_name, "apps.kubernetes.io/pod-index": str(ordinal),
                  REVISION_LABEL: revision, **ordinal_labels(statefulset, ordinal)}
        pod = pod_from_template(statefulset, statefulset["spec"]["template"], labels, name=pod_name)
        spec = pod["spec"]
        spec["hostname"] = pod_name
        if statefulset["spec"].get("serviceName"):
            spec["subdomain"] = statefulset["spec"]["serviceName"]
        claim_volumes = {t["metadata"]["name"]: self._claim_name(t, name, ordinal)
                         for t in statefulset["spec"].get("volumeClaimTemplates") or []}
        volumes = [v for v in spec.get("volumes") or [] if v["name"] not in claim_volumes]
        volumes += [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in claim_volumes.items()]
        spec["volumes"] = volumes
        return pod

    @staticmethod
    def _status(statefulset: Obj, desired: int, revision: str, pods: list[Obj]) -> Obj:
        previous = statefulset.get("status") or {}
        updated = [p for p in pods if p["metadata"].get("labels", {}).get(REVISION_LABEL) == revision]
        ready = ready_count(pods)
        current = previous.get("currentRevision") or revision
        if len(updated) == desired == len(pods) and ready == desired:
            current = revision
        return {
            "observedGeneration": statefulset["metadata"].get("generation", 1), "replicas": len(pods),
            "readyReplicas": ready, "availableReplicas": ready,
            "currentReplicas": sum(1 for p in pods if p["metadata"].get("labels", {}).get(REVISION_LABEL) == current),
            "updatedReplicas": len(updated), "currentRevision": current, "updateRevision": revision,
            "collisionCount": 0,
        }


# --- Jobs ----------------------------------------------------------------------------------------


def _finished(job: Obj) -> str | None:
    for entry in (job.get("status") or {}).get("conditions") or []:
        if entry.get("type") in ("Complete", "Failed") and entry.get("status") == "True":
            return str(entry["type"])
    return None


class JobController:
    """One pod at a time until `completions` succeed or failures exceed `backoffLimit`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._retry_after: dict[str, tuple[int, float]] = {}

    def sync(self, job: Obj, pods: list[Obj]) -> None:
        owned = owned_pods(job, pods)
        active = [p for p in owned if phase(p) not in FINAL_PHASES]
        outcome = _finished(job)
        if outcome == "Failed":
            for pod in active:
                self.cluster.delete_pod(job, pod)
        if outcome:
            return
        spec = job["spec"]
        succeeded = sum(1 for p in owned if phase(p) == "Succeeded")
        failures = self._failures(spec, owned)
        if succeeded >= int(spec.get("completions") or 1):
            outcome = "Complete"
        elif failures > int(spec.get("backoffLimit", 6)):
            outcome = "Failed"
            for pod in active:
                self.cluster.delete_pod(job, pod)
            active = []
        elif not active and self._may_start(job, failures):
            name = job["metadata"]["name"]
            self.cluster.create_pod(job, pod_from_template(job, spec["template"], {}, generate_name=f"{name}-"))
        self.cluster.write_status(job, "jobs", self._status(job, active, succeeded, failures, outcome))
        if outcome:
            reason = "Completed" if outcome == "Complete" else "BackoffLimitExceeded"
            self.cluster.api.record_event(job, "Job", reason, self._message(outcome), "lab-job-controller",
                                          "Normal" if outcome == "Complete" else "Warning")
            self.cluster.log.info("job_finished", job=job["metadata"]["name"], outcome=outcome)

    @staticmethod
    def _failures(spec: Obj, owned: list[Obj]) -> int:
        """Failed pods, plus container restarts when the pod restarts in place (OnFailure)."""
        failed = sum(1 for p in owned if phase(p) == "Failed")
        if spec["template"]["spec"].get("restartPolicy") != "OnFailure":
            return failed
        statuses = [s for p in owned for s in (p.get("status") or {}).get("containerStatuses") or []]
        return failed + sum(int(s.get("restartCount") or 0) for s in statuses)

    def _may_start(self, job: Obj, failures: int) -> bool:
        """Retries wait a back-off that doubles with each failure."""
        uid = job["metadata"]["uid"]
        seen, not_before = self._retry_after.get(uid, (0, 0.0))
        now = time.monotonic()
        if failures > seen:
            seen, not_before = failures, now + backoff_delay(failures)
            self._retry_after[uid] = (seen, not_before)
        return now >= not_before

    @staticmethod
    def _message(outcome: str) -> str:
        return "Job completed" if outcome == "Complete" else "Job has reached the specified backoff limit"

    def _status(self, job: Obj, active: list[Obj], succeeded: int, failures: int, outcome: str | None) -> Obj:
        previous = job.get("status") or {}
        status: Obj = {"startTime": previous.get("startTime") or rfc3339(), "active": len(active),
                       "ready": ready_count(active), "succeeded": succeeded, "failed": failures, "terminating": 0,
                       "uncountedTerminatedPods": {}}
        wanted = []
        if outcome == "Complete":
            status["completionTime"] = rfc3339()
            wanted = [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                       "message": "Reached expected number of succeeded pods"},
                      {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                       "message": "Reached expected number of succeeded pods"}]
        elif outcome == "Failed":
            wanted = [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                       "message": self._message(outcome)},
                      {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                       "message": self._message(outcome)}]
        if wanted:
            status["conditions"] = merge_conditions(previous.get("conditions") or [], wanted, "lastProbeTime")
        return status
