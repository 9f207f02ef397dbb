"""A Kubernetes cluster of the lab: the upstream control plane and one node agent, without the RAG
stack. `Lab` runs the stack on one; the tests start bare ones of their own."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ragops_lab.agent.api import CORE, Api, object_path
from ragops_lab.agent.pods import OWNER_ENV
from ragops_lab.kube import build
from ragops_lab.kube.controlplane import NODE_NAME, ControlPlane, Endpoint
from ragops_lab.kube.faults import ApiFaultProxy
from ragops_lab.kube.kubeconfig import write_kubeconfig
from ragops_lab.kube.pki import write_private
from ragops_lab.services import LabError, owned_processes, start_daemon, stop_daemon, stop_pid, wait_for

LAB_DIR = Path(__file__).resolve().parents[1]
# The agent needs time to stop every pod (each within its capped grace period).
AGENT_STOP_SECONDS = 20.0
DAEMON_STOP_SECONDS = 10.0
NODE_READY_SECONDS = 60.0


def python_env() -> dict[str, str]:
    """The environment for the lab's Python daemons: the caller's, with the lab importable."""
    env = {key: value for key, value in os.environ.items() if key != OWNER_ENV}
    return {**env, "PYTHONPATH": str(LAB_DIR), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class ClusterPaths:
    """Where a cluster keeps its files."""

    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def kube(self) -> Path:
        """The control plane's files: PKI, static tokens, etcd's data, each component's kubeconfig."""
        return self.root / "kube"

    @property
    def pki(self) -> Path:
        return self.kube / "pki"

    @property
    def token(self) -> Path:
        return self.run / "token"

    @property
    def api_url(self) -> Path:
        return self.run / "api-url"

    @property
    def ca_bundle(self) -> Path:
        """What a client trusts: the API server's own certificate authority and the lab CA (fault proxy)."""
        return self.kube / "trusted-cas.crt"

    @property
    def control_plane(self) -> ControlPlane:
        return ControlPlane(self.kube, self.logs, self.run, self.root)

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"


class KubeCluster:
    def __init__(self, root: Path) -> None:
        self.paths = ClusterPaths(root.resolve())

    # -- access ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.paths.api_url.read_text().strip()

    @property
    def admin_token(self) -> str:
        return self.paths.token.read_text().strip()

    def api(self, token: str = "") -> Api:
        return Api(self.url, token or self.admin_token, str(self.paths.ca_bundle))

    def write_kubeconfig(self, path: Path, *, token: str = "", url: str = "", namespace: str = "default") -> Path:
        """A kubeconfig for the admin (or `token`), at the API server (or `url`: a fault proxy)."""
        return write_kubeconfig(path, url or self.url, token or self.admin_token, self.paths.ca_bundle.read_bytes(),
                                namespace)

    def fault_proxy(self) -> ApiFaultProxy:
        """A proxy in front of the API server whose rules answer chosen requests with errors."""
        pki = self.paths.pki
        return ApiFaultProxy(self.url, self.paths.ca_bundle, pki / "fault-proxy.crt", pki / "fault-proxy.key")

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token of a ServiceAccount (the TokenRequest API), as a pod or a CI job would hold."""
        path = object_path(CORE, "serviceaccounts", namespace, name, "token")
        answer = self.api().create(path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                          "spec": {"expirationSeconds": seconds}})
        token = str((answer.get("status") or {}).get("token", ""))
        if not token:
            raise LabError(f"the API issued no token for ServiceAccount {namespace}/{name}")
        return token

    # -- start -------------------------------------------------------------------------------

    def start_control_plane(self) -> Endpoint:
        for directory in (self.paths.run, self.paths.logs, self.paths.pod_logs):
            directory.mkdir(parents=True, exist_ok=True)
        endpoint = self.paths.control_plane.start()
        write_private(self.paths.token, (endpoint.admin_token + "\n").encode())
        write_private(self.paths.run / "agent-token", (endpoint.tokens["lab-node-agent"] + "\n").encode())
        self.paths.ca_bundle.write_bytes(endpoint.ca_file.read_bytes() + (self.paths.pki / "ca.crt").read_bytes())
        self.paths.api_url.write_text(endpoint.url + "\n")
        return endpoint

    def start_agent(self, pod_network: str = "") -> None:
        pki = self.paths.pki
        release = build.pinned_release((build.MODULE_DIR / "go.mod").read_text())
        command = [sys.executable, "-m", "ragops_lab.agent", "--api-url", self.url,
                   "--token-file", str(self.paths.run / "agent-token"), "--ca-file", str(self.paths.ca_bundle),
                   "--kubelet-cert", str(pki / "kubelet.crt"), "--kubelet-key", str(pki / "kubelet.key"),
                   "--client-ca", str(pki / "ca.crt"), "--kubelet-version", release.version,
                   "--state-dir", str(self.paths.root), "--log-dir", str(self.paths.pod_logs)]
        command += ["--pod-network", pod_network] if pod_network else []
        start_daemon(command, self.paths.pid_file("agent"), self.paths.logs / "agent.log", python_env(),
                     self.paths.root)
        self._wait_node()

    def _wait_node(self) -> None:
        """The node is Ready and schedulable: the lifecycle controller has lifted its not-ready taint."""
        api = self.api()

        def schedulable() -> bool:
            node = api.get(f"{CORE}/nodes/{NODE_NAME}") or {}
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            return ready and not (node.get("spec") or {}).get("taints")

        wait_for(schedulable, NODE_READY_SECONDS,
                 f"node {NODE_NAME} to be Ready and schedulable (see {self.paths.logs / 'agent.log'})")

    def wait_for_service_account(self, namespace: str, name: str = "default") -> None:
        """The serviceaccount controller makes each namespace's `default` account soon after it exists."""
        api = self.api()
        wait_for(lambda: api.get(object_path(CORE, "serviceaccounts", namespace, name)) is not None, 30,
                 f"ServiceAccount {namespace}/{name}")

    def restart_api_server(self, down_seconds: float = 0.0) -> None:
        """kube-apiserver stopped and started again on the same port and data (a fault: its clients see
        refused connections, then the same objects)."""
        self.paths.control_plane.restart_apiserver(self.url, self.admin_token, down_seconds)

    # -- stop --------------------------------------------------------------------------------

    def stop_agent(self) -> None:
        stop_daemon(self.paths.pid_file("agent"), self.paths.root, AGENT_STOP_SECONDS)

    def stop(self) -> None:
        """Stop the agent (which stops every pod) and the control plane, then anything left of the lab."""
        self.stop_agent()
        self.paths.control_plane.stop()
        self.sweep()

    def sweep(self) -> None:
        root = self.paths.root
        for pid in owned_processes(root):
            stop_pid(pid, root, DAEMON_STOP_SECONDS)
        left = owned_processes(root)
        if left:
            raise LabError(f"processes {left} of the lab in {root} are still running")

    def __enter__(self) -> KubeCluster:
        try:
            self.start_control_plane()
            self.start_agent()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
