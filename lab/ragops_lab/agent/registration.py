"""The Node this agent stands for: registered with its capacity, kept alive by a heartbeat Lease.

As the kubelet does, the agent creates its Node (the TaintNodesByCondition admission plugin adds the
not-ready taint, which the node lifecycle controller lifts once the Ready condition is seen), renews
the Lease in kube-node-lease every 10 s, and reports its status only when it changed or at least
every minute.
"""

from __future__ import annotations

import platform
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ragops_lab.clock import micro_time, rfc3339
from ragops_lab.runtime.kubeapi import KubeError

from .api import CORE, Api

LEASE_SECONDS = 40
RENEW_SECONDS = 10.0
STATUS_SECONDS = 60.0
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "250", "ephemeral-storage": "100Gi"}
RUNTIME_VERSION = "ragops-lab://1"
# What a kubelet of this release declares with its default feature gates, and what this one serves:
# the API server then passes exec's WebSocket upgrades through to the node instead of translating
# them to SPDY (kubelet_server.py, execstream.py).
DECLARED_FEATURES = ("ExtendWebSocketsToKubelet",)

Obj = dict[str, Any]


def node_conditions(heartbeat: str, since: str) -> list[Obj]:
    healthy = [("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
               ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
               ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")]
    conditions = [{"type": kind, "status": "False", "reason": reason, "message": message,
                   "lastHeartbeatTime": heartbeat, "lastTransitionTime": since} for kind, reason, message in healthy]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": heartbeat,
                       "lastTransitionTime": since})
    return conditions


@dataclass
class NodeRegistration:
    api: Api
    name: str
    kubelet_port: int
    kubelet_version: str
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    since: str = field(default_factory=rfc3339)
    _renewed: float = -RENEW_SECONDS
    _reported: float = -STATUS_SECONDS
    _node_uid: str = ""
    registered: bool = False

    def status(self) -> Obj:
        now = rfc3339()
        return {
            "capacity": CAPACITY, "allocatable": CAPACITY, "conditions": node_conditions(now, self.since),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "declaredFeatures": list(DECLARED_FEATURES),
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()).hex, "systemUUID": self.boot_id,
                "bootID": self.boot_id, "kernelVersion": platform.release(), "osImage": "ragops lab node agent",
                "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }

    def register(self) -> None:
        """Create the Node, or take over one that an earlier agent of this lab registered."""
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": {
                    "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "ragops-lab"}},
                "spec": {}, "status": self.status()}
        try:
            created = self.api.create(f"{CORE}/nodes", body)
        except KubeError as exc:
            if exc.status != 409:
                raise
            created = self.api.get(f"{CORE}/nodes/{self.name}") or {}
        self._node_uid = str((created.get("metadata") or {}).get("uid", ""))
        self.report()
        self.registered = True

    def report(self) -> None:
        self.api.merge_patch(f"{CORE}/nodes/{self.name}/status", {"status": self.status()})
        self._reported = time.monotonic()

    def heartbeat(self, now: float) -> None:
        if now - self._renewed >= RENEW_SECONDS:
            self._renew_lease()
            self._renewed = now
        if now - self._reported >= STATUS_SECONDS:
            self.report()

    def _renew_lease(self) -> None:
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_time()}
        try:
            self.api.merge_patch(f"{LEASE_PATH}/{self.name}", {"spec": spec})
        except KubeError as exc:
            if exc.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self._node_uid}
            self.api.create(LEASE_PATH, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": spec,
                                         "metadata": {"name": self.name, "namespace": "kube-node-lease",
                                                      "ownerReferences": [owner] if self._node_uid else []}})
