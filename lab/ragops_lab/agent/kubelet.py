"""The kubelet: a PodWorker per pod of the API, started, stopped and reported on every cycle."""

from __future__ import annotations

import time
from typing import Any

from ragops_lab.runtime.kubeapi import KubeError

from .api import Api, canonical, path_of, replacement_patch
from .pods import Node, PodWorker
from .process import ContainerProcess

# Grace periods are capped so that stopping a pod (or the whole lab) never takes long.
GRACE_CAP_SECONDS = 5.0
FINAL_PHASES = ("Succeeded", "Failed")

Obj = dict[str, Any]


class Kubelet:
    def __init__(self, node: Node, api: Api) -> None:
        self.node = node
        self.api = api
        self.workers: dict[str, PodWorker] = {}
        self.stopping: dict[str, PodWorker] = {}
        self._reported: dict[str, str] = {}
        self._finalized: set[str] = set()

    def sync(self, pods: list[Obj], now: float, hold: set[str] | frozenset[str] = frozenset()) -> None:
        """`pods` are the pods bound to this node, those being deleted included; pods whose uid is in
        `hold` are not started yet (they have just been changed and are read again next cycle)."""
        live = {p["metadata"]["uid"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}
        deleting = {p["metadata"]["uid"]: p for p in pods if p["metadata"].get("deletionTimestamp")}
        for uid in [uid for uid in self.workers if uid not in live]:
            self._stop(uid, now)
        for uid, pod in live.items():
            worker = self.workers.get(uid)
            if worker is None:
                if uid in hold or (pod.get("status") or {}).get("phase") in FINAL_PHASES:
                    continue
                worker = self.workers[uid] = PodWorker(pod, self.node)
            worker.pod = pod
            try:
                worker.step(now)
                self._report(worker)
            except KubeError as exc:
                self.node.log.warning("pod_sync_failed", pod=worker.key, error=str(exc))
        for uid in [uid for uid, worker in self.stopping.items() if worker.reap(now)]:
            self.node.log.info("pod_stopped", pod=self.stopping.pop(uid).key)
            self._reported.pop(uid, None)
        for uid, pod in deleting.items():
            if uid not in self.workers and uid not in self.stopping:
                self._finalize(pod)
        self._finalized &= set(deleting)

    def _finalize(self, pod: Obj) -> None:
        """Once its containers are gone, remove the pod for good, as the kubelet does (grace period 0)."""
        uid = pod["metadata"]["uid"]
        if uid in self._finalized:
            return
        try:
            self.api.delete_now(path_of(pod, "pods"), uid)
        except KubeError as exc:
            self.node.log.warning("pod_delete_failed", pod=pod["metadata"]["name"], error=str(exc))
            return
        self._finalized.add(uid)

    def _worker(self, namespace: str, pod: str) -> PodWorker | None:
        for worker in list(self.workers.values()):
            meta = worker.pod["metadata"]
            if (meta["namespace"], meta["name"]) == (namespace, pod):
                return worker
        return None

    def has_pod(self, namespace: str, pod: str) -> bool:
        return self._worker(namespace, pod) is not None

    def container_process(self, namespace: str, pod: str, container: str) -> ContainerProcess | None:
        """The live process of that container of a pod on this node (`kubectl logs -f`, `kubectl exec`)."""
        worker = self._worker(namespace, pod)
        runs = worker.runs() if worker is not None else iter(())
        return next((run.process for run in runs if run.name == container and run.process is not None), None)

    def _stop(self, uid: str, now: float) -> None:
        worker = self.workers.pop(uid)
        self.node.log.info("pod_stopping", pod=worker.key)
        worker.begin_stop(now, GRACE_CAP_SECONDS)
        self.stopping[uid] = worker

    def _report(self, worker: PodWorker) -> None:
        """Write the pod's status when it differs from what this node last wrote."""
        current = worker.pod.get("status") or {}
        status = worker.status(current)
        text = canonical(status)
        uid = worker.pod["metadata"]["uid"]
        if self._reported.get(uid) == text:
            return
        try:
            self.api.merge_patch(path_of(worker.pod, "pods", "status"), {"status": replacement_patch(current, status)})
        except KubeError as exc:
            if exc.status != 404:
                raise
        self._reported[uid] = text

    def shutdown(self) -> None:
        """Stop every pod and wait until all their processes are gone."""
        now = time.monotonic()
        for uid in list(self.workers):
            self._stop(uid, now)
        while self.stopping:
            now = time.monotonic()
            for uid in [uid for uid, worker in self.stopping.items() if worker.reap(now)]:
                del self.stopping[uid]
            time.sleep(0.05)
