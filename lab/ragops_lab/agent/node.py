"""The agent's loop: read the cluster, then act as the node's kubelet, the storage provisioner, the
shard-labelling operator and the kube-proxy, every 0.2 s. Deployments, ReplicaSets, StatefulSets,
Jobs, binding of volumes and scheduling are upstream's: kube-controller-manager and kube-scheduler."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops_lab.runtime.kubeapi import KubeError
from ragops_lab.runtime.log import JsonLog

from .api import APPS, CORE, Api, object_path, path_of
from .kubelet import Kubelet
from .kubelet_server import KubeletServer
from .netns import SETTING_FILE
from .network import PodNetwork, claim_network
from .operator import label_ordinals
from .pods import Node
from .provisioner import Provisioner
from .proxy import ADDRESS_ANNOTATION, ServiceProxies, proxied
from .registration import NodeRegistration
from .volumes import VolumeSources, claim_path

PROBE_WORKERS = 8
# Even when nothing seems to have changed, everything is listed again this often.
RESYNC_SECONDS = 5.0
STORAGE = "/apis/storage.k8s.io/v1"

Obj = dict[str, Any]


@dataclass(frozen=True)
class AgentConfig:
    api_url: str
    token: str
    ca_file: Path
    state_dir: Path
    log_dir: Path
    kubelet_cert: Path
    kubelet_key: Path
    client_ca: Path
    kubelet_version: str
    node_name: str = "lab-node"
    pod_network: str = ""  # first two octets of pod IPs ("127.42"); empty: any free one
    interval: float = 0.2
    kubelet_port: int = 0


@dataclass(frozen=True)
class Snapshot:
    pods: list[Obj]
    all_pods: list[Obj]
    claims: dict[tuple[str, str], Obj]
    volumes: dict[str, Obj]
    classes: dict[str, Obj]
    statefulsets: list[Obj]
    services: list[Obj]


class NodeAgent:
    def __init__(self, config: AgentConfig, log: JsonLog) -> None:
        self.config = config
        self.log = log
        self.api = Api(config.api_url, config.token, str(config.ca_file))
        self.prober = ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="probe")
        self._snapshot: Snapshot | None = None
        self._snapshot_version = ""
        self._listed_at = 0.0
        self.network, self._network_claim = claim_network(config.pod_network)
        sources = VolumeSources(self._claim_path, self._read_data, self._request_token)
        node = Node(
            name=config.node_name, state_dir=config.state_dir, log_dir=config.log_dir, kube_url=config.api_url,
            kube_token=config.token, kube_ca_file=str(config.ca_file), network=PodNetwork(self.network),
            prober=self.prober, volumes=sources, event=self._pod_event, log=log,
            pod_netns=config.state_dir / SETTING_FILE,
        )
        self.kubelet = Kubelet(node, self.api)
        self.server = KubeletServer(config.kubelet_port, config.kubelet_cert, config.kubelet_key, config.client_ca,
                                    config.log_dir, self.kubelet)
        self.registration = NodeRegistration(self.api, config.node_name, self.server.port, config.kubelet_version)
        self.provisioner = Provisioner(self.api, config.state_dir, log)
        self.proxies = ServiceProxies(self.network, log)

    # -- reading -----------------------------------------------------------------------------

    def _current(self) -> Snapshot:
        """The cluster as last listed, listed again only when the API has changed since (or to resync).

        Every write, the agent's own included, moves the resourceVersion, so a snapshot is reused
        only while acting on it again would change nothing; an idle lab then costs one small request
        per cycle instead of seven lists.
        """
        version = self.api.current_version()
        now = time.monotonic()
        if self._snapshot is None or version != self._snapshot_version or now - self._listed_at > RESYNC_SECONDS:
            self._snapshot, self._snapshot_version, self._listed_at = self._read(), version, now
        return self._snapshot

    def _read(self) -> Snapshot:
        pods, _ = self.api.list(CORE, "pods")
        claims, _ = self.api.list(CORE, "persistentvolumeclaims")
        volumes = self.api.list_path(f"{CORE}/persistentvolumes")
        classes = self.api.list_path(f"{STORAGE}/storageclasses")
        statefulsets, _ = self.api.list(APPS, "statefulsets")
        services, _ = self.api.list(CORE, "services")
        mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == self.config.node_name]
        return Snapshot(
            pods=mine, all_pods=pods,
            claims={(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims},
            volumes={v["metadata"]["name"]: v for v in volumes},
            classes={c["metadata"]["name"]: c for c in classes},
            statefulsets=statefulsets, services=services,
        )

    def _claim_path(self, namespace: str, name: str) -> str:
        snapshot = self._snapshot
        claim = snapshot.claims.get((namespace, name)) if snapshot else None
        volume_name = str(((claim or {}).get("spec") or {}).get("volumeName") or "")
        volume = snapshot.volumes.get(volume_name) if snapshot else None
        return claim_path(claim, volume, name)

    def _read_data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind == "Secret" else "configmaps"
        found = self.api.get(object_path(CORE, plural, namespace, name))
        if found is None:
            return None
        data = dict(found.get("data") or {})
        if kind == "Secret":
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return data

    def _request_token(self, pod: Obj, account: str, audience: str, seconds: int) -> str:
        """A token of the pod's service account, bound to the pod (the TokenRequest API)."""
        meta = pod["metadata"]
        spec: Obj = {"expirationSeconds": max(seconds, 600),
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        path = object_path(CORE, "serviceaccounts", meta["namespace"], account, "token")
        answer = self.api.create(path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": spec})
        return str((answer.get("status") or {}).get("token", ""))

    def _pod_event(self, pod: Obj, event_type: str, reason: str, message: str) -> None:
        self.api.record_event(pod, "Pod", reason, message, "kubelet", event_type)

    def _guarded(self, what: str, sync: Callable[[], None]) -> None:
        """One part's failure (a conflict, a rejected write) must not stop the others."""
        try:
            sync()
        except KubeError as exc:
            self.log.warning("sync_failed", part=what, error=str(exc))

    # -- the loop ----------------------------------------------------------------------------

    def cycle(self) -> None:
        self.registration.heartbeat(time.monotonic())
        snapshot = self._current()
        self._guarded("provisioner", lambda: self.provisioner.sync(
            list(snapshot.claims.values()), list(snapshot.volumes.values()), snapshot.classes))
        labelled: set[str] = set()
        self._guarded("operator", lambda: labelled.update(
            label_ordinals(self.api, snapshot.statefulsets, snapshot.pods)))
        self.kubelet.sync(snapshot.pods, time.monotonic(), hold=labelled)
        self.proxies.sync(snapshot.services, snapshot.all_pods)
        for service in filter(proxied, snapshot.services):
            self._guarded("proxy", lambda s=service: self._publish_address(s))

    def _publish_address(self, service: Obj) -> None:
        """Record the Service's host-reachable address on it, where the lab and the tests read it."""
        port = service["spec"]["ports"][0]["port"]
        address = f"{self.proxies.address_of(service['metadata']['uid'])}:{port}"
        if (service["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION) != address:
            patch = {"metadata": {"annotations": {ADDRESS_ANNOTATION: address}}}
            self.api.merge_patch(path_of(service, "services"), patch)

    def start(self) -> None:
        self.registration.register()
        self.provisioner.install()

    def run(self, stopping: threading.Event) -> None:
        self.log.info("agent_started", api=self.config.api_url, node=self.config.node_name,
                      pod_network=f"{self.network}.0.0/16", kubelet_port=self.server.port)
        unreachable = False
        while not stopping.is_set():
            started = time.monotonic()
            try:
                if not self.registration.registered:
                    self.start()
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
        self.server.close()
        self.prober.shutdown(wait=False, cancel_futures=True)
        self._network_claim.close()
        self.log.info("agent_stopped")
