"""The agent's loop: read the cluster, run the controllers, then the kubelet, every 0.2 s."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops_lab.runtime import JsonLog, KubeError

from .api import APPS, BATCH, CORE, Api, object_path, path_of
from .controllers import Cluster, DeploymentController, JobController, StatefulSetController, bind_claims
from .kubelet import Kubelet
from .network import PodNetwork, claim_network
from .pods import Node
from .proxy import ADDRESS_ANNOTATION, ServiceProxies, proxied

PROBE_WORKERS = 8
# Even when nothing seems to have changed, everything is listed again this often.
RESYNC_SECONDS = 5.0

Obj = dict[str, Any]


@dataclass(frozen=True)
class AgentConfig:
    api_url: str
    token: str
    state_dir: Path
    log_dir: Path
    node_name: str = "lab-node"
    pod_network: str = ""  # first two octets of pod IPs ("127.42"); empty: any free one
    interval: float = 0.2


@dataclass(frozen=True)
class Snapshot:
    pods: list[Obj]
    claims: dict[tuple[str, str], Obj]
    deployments: list[Obj]
    statefulsets: list[Obj]
    jobs: list[Obj]
    services: list[Obj]


class NodeAgent:
    def __init__(self, config: AgentConfig, log: JsonLog) -> None:
        self.config = config
        self.log = log
        self.api = Api(config.api_url, config.token)
        self.prober = ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="probe")
        self._claims: dict[tuple[str, str], Obj] = {}
        self._snapshot: Snapshot | None = None
        self._snapshot_version = ""
        self._listed_at = 0.0
        self.network, self._network_claim = claim_network(config.pod_network)
        node = Node(
            name=config.node_name, state_dir=config.state_dir, log_dir=config.log_dir, kube_url=config.api_url,
            kube_token=config.token, network=PodNetwork(self.network), prober=self.prober,
            read_data=self._read_data, read_claim=lambda ns, name: self._claims.get((ns, name)),
            bind=self._bind, event=self._pod_event, log=log,
        )
        self.kubelet = Kubelet(node, self.api)
        cluster = Cluster(self.api, log)
        self.deployments = DeploymentController(cluster)
        self.statefulsets = StatefulSetController(cluster)
        self.jobs = JobController(cluster)
        self.proxies = ServiceProxies(self.network, log)

    def _current(self) -> Snapshot:
        """The cluster as last listed, listed again only when the API has changed since (or to resync).

        Every write, the agent's own included, moves the resourceVersion, so a snapshot is reused
        only while acting on it again would change nothing; an idle lab then costs one small request
        per cycle instead of six lists.
        """
        version = self.api.current_version()
        now = time.monotonic()
        if self._snapshot is None or version != self._snapshot_version or now - self._listed_at > RESYNC_SECONDS:
            self._snapshot, self._snapshot_version, self._listed_at = self._read(), version, now
        return self._snapshot

    def _read(self) -> Snapshot:
        pods, _ = self.api.list(CORE, "pods")
        claims, _ = self.api.list(CORE, "persistentvolumeclaims")
        deployments, _ = self.api.list(APPS, "deployments")
        statefulsets, _ = self.api.list(APPS, "statefulsets")
        jobs, _ = self.api.list(BATCH, "jobs")
        services, _ = self.api.list(CORE, "services")
        by_key = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims}
        return Snapshot(pods, by_key, deployments, statefulsets, jobs, services)

    def _read_data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind == "Secret" else "configmaps"
        found = self.api.get(object_path(CORE, plural, namespace, name))
        if found is None:
            return None
        data = dict(found.get("data") or {})
        if kind == "Secret":
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return data

    def _bind(self, pod: Obj) -> None:
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod["metadata"]["name"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name}}
        self.api.call("POST", path_of(pod, "pods", "binding"), binding)

    def _pod_event(self, pod: Obj, event_type: str, reason: str, message: str) -> None:
        self.api.record_event(pod, "Pod", reason, message, "kubelet", event_type)

    def _guarded(self, sync: Callable[..., None], obj: Obj, *args: Any) -> None:
        """One object's failure (a conflict, a rejected write) must not stop the others."""
        try:
            sync(obj, *args)
        except KubeError as exc:
            self.log.warning("sync_failed", kind=obj.get("kind"), name=obj["metadata"]["name"], error=str(exc))

    def cycle(self) -> None:
        snapshot = self._current()
        self._claims = snapshot.claims
        bind_claims(self.api, list(snapshot.claims.values()), self.config.state_dir)
        claim_keys = set(snapshot.claims)
        for deployment in snapshot.deployments:
            self._guarded(self.deployments.sync, deployment, snapshot.pods)
        for statefulset in snapshot.statefulsets:
            self._guarded(self.statefulsets.sync, statefulset, snapshot.pods, claim_keys)
        for job in snapshot.jobs:
            self._guarded(self.jobs.sync, job, snapshot.pods)
        self.kubelet.sync(snapshot.pods, time.monotonic())
        self.proxies.sync(snapshot.services, snapshot.pods)
        for service in filter(proxied, snapshot.services):
            self._guarded(self._publish_address, service)

    def _publish_address(self, service: Obj) -> None:
        """Record the Service's host-reachable address on it, where the lab and the tests read it."""
        port = service["spec"]["ports"][0]["port"]
        address = f"{self.proxies.address_of(service['metadata']['uid'])}:{port}"
        if (service["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION) != address:
            patch = {"metadata": {"annotations": {ADDRESS_ANNOTATION: address}}}
            self.api.merge_patch(path_of(service, "services"), patch)

    def run(self, stopping: threading.Event) -> None:
        self.log.info("agent_started", api=self.config.api_url, node=self.config.node_name,
                      pod_network=f"{self.network}.0.0/16")
        unreachable = False
        while not stopping.is_set():
            started = time.monotonic()
            try:
                self.cycle()
                unreachable = False
            except KubeError as exc:
                if not unreachable:
                    self.log.warning("api_unavailable", error=str(exc))
                unreachable = True
            stopping.wait(max(0.0, self.config.interval - (time.monotonic() - started)))
        self.shutdown()

    def shutdown(self) -> None:
        self.log.info("agent_stopping", pods=len(self.kubelet.workers))
        self.proxies.close()
        self.kubelet.shutdown()
        self.prober.shutdown(wait=False, cancel_futures=True)
        self._network_claim.close()
        self.log.info("agent_stopped")
