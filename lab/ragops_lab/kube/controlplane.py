"""Run the upstream control plane the way a cluster runs it: etcd, kube-apiserver (TLS with its own
self-generated serving certificate, static bearer tokens, Node and RBAC authorization, service-account
tokens signed by a lab key, the default admission plugins plus NodeRestriction), kube-controller-manager
(one service account per controller) and kube-scheduler.

Two things differ from a production cluster, both because every pod of the lab is a local process
with an address in 127.0.0.0/8: the API rejects loopback addresses in Endpoints and EndpointSlices
("may not be in the loopback range"), so the endpoint controllers are off and the node agent's
kube-proxy stand-in selects a Service's Ready pods itself; and the `kubernetes` Service gets no
endpoints (the reconciler would write 127.0.0.1) — clients use the kubeconfig's address.
"""

from __future__ import annotations

import secrets
import ssl
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ragops_lab.services import LabError, free_ports, is_running, read_pid, start_daemon, stop_daemon

from . import build
from .kubeconfig import write_kubeconfig
from .pki import Issued, LabCA, ca_certificates, service_account_keys, write_private

SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_NAME = "lab-node"
# The order of start-up; `stop` goes the other way.
DAEMONS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
READY_SECONDS = 90.0
STOP_SECONDS = 10.0
# Controllers whose objects would carry the pods' loopback addresses, which the API refuses.
DISABLED_CONTROLLERS = ("endpoint", "endpointslice", "endpointslicemirroring")


@dataclass(frozen=True)
class User:
    """A static-token identity of the lab; `kubeconfig` is written for it under the kube folder."""

    name: str
    groups: tuple[str, ...]
    kubeconfig: str


USERS = (
    User("lab-admin", ("system:masters",), "admin.kubeconfig"),
    User("system:kube-controller-manager", (), "controller-manager.kubeconfig"),
    User("system:kube-scheduler", (), "scheduler.kubeconfig"),
    # The agent also provisions volumes and runs the kube-proxy stand-in, which no node identity may do.
    User("lab-node-agent", ("system:masters",), "agent.kubeconfig"),
)


@dataclass(frozen=True)
class Endpoint:
    """How to reach the API server: URL, CA bundle, and the token of each user."""

    url: str
    ca_file: Path
    tokens: Mapping[str, str]

    @property
    def admin_token(self) -> str:
        return self.tokens["lab-admin"]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


class ControlPlane:
    """The control plane of one lab; its files live in `root`, logs in `logs`, pid files in `run`."""

    def __init__(self, root: Path, logs: Path, run: Path, owner: Path) -> None:
        self.root = root
        self.logs = logs
        self.run = run
        self.owner = owner

    @property
    def ca_bundle(self) -> Path:
        """The API server's self-generated certificate (its CA inside), which clients trust."""
        return self.root / "apiserver" / "apiserver.crt"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    def binary(self, component: str) -> Path:
        return build.ensure_binary().parent / component

    # -- start -------------------------------------------------------------------------------

    def start(self) -> Endpoint:
        """Start every daemon in order; returns once the API server is ready."""
        ca = LabCA(self.root / "pki")
        sa = service_account_keys(self.root / "pki")
        tokens = {user.name: secrets.token_urlsafe(24) for user in USERS}
        write_private(self.root / "tokens.csv", "".join(
            f'{tokens[u.name]},{u.name},{u.name},"{",".join(u.groups)}"\n' for u in USERS).encode())
        etcd_port, etcd_peer, api_port = free_ports(3)
        self._start("etcd", self._etcd_args(etcd_port, etcd_peer))
        self._wait_etcd(etcd_port)
        kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                  organization="system:masters", client=True)
        # The node agent's kubelet endpoint, which the API server calls at the Node's InternalIP.
        ca.issue("kubelet", NODE_NAME, hosts=("127.0.0.1", NODE_NAME, "localhost"))
        ca.issue("fault-proxy", "ragops-lab-fault-proxy", hosts=("127.0.0.1", "localhost"))
        self._start("kube-apiserver", self._apiserver_args(etcd_port, api_port, ca.cert, kubelet_client, sa))
        endpoint = Endpoint(f"https://127.0.0.1:{api_port}", self.ca_bundle, tokens)
        self._wait_apiserver(endpoint)
        ca_pem = self.ca_bundle.read_bytes()
        for user in USERS:
            write_kubeconfig(self.root / user.kubeconfig, endpoint.url, tokens[user.name], ca_pem)
        self._start("kube-controller-manager", self._controller_manager_args(sa))
        self._start("kube-scheduler", [f"--kubeconfig={self.root / 'scheduler.kubeconfig'}",
                                       "--leader-elect=false", "--secure-port=0"])
        return endpoint

    def _start(self, daemon: str, args: list[str]) -> None:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root)}
        start_daemon([str(self.binary(daemon)), *args], self.pid_file(daemon), self.logs / f"{daemon}.log", env,
                     self.owner, cwd=self.root)

    def _etcd_args(self, port: int, peer_port: int) -> list[str]:
        client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
        return [f"--data-dir={self.root / 'etcd'}", "--name=lab", f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=lab={peer}",
                # A lab's etcd is thrown away with the lab: no fsync keeps the control plane fast on a
                # busy machine, which is the only thing it could protect against here.
                "--unsafe-no-fsync", "--log-level=warn"]

    def _apiserver_args(self, etcd_port: int, port: int, ca_cert: Path, kubelet_client: Issued,
                        sa: Issued) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={self.root / 'apiserver'}",
            f"--token-auth-file={self.root / 'tokens.csv'}", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={ISSUER}", f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            f"--kubelet-certificate-authority={ca_cert}", f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}", "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false",
            f"--audit-policy-file={self._audit_policy()}", f"--audit-log-path={self.logs / 'audit.log'}",
            "--audit-log-format=json",
        ]

    def _audit_policy(self) -> Path:
        """Every request's metadata (who, verb, resource, answer), as a cluster's audit log has it: what
        the collection did to the cluster can be read back, and its RBAC checked against it."""
        policy = self.root / "audit-policy.yaml"
        policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
                          "rules:\n  - level: Metadata\n")
        return policy

    def _controller_manager_args(self, sa: Issued) -> list[str]:
        controllers = ",".join(["*", *(f"-{name}" for name in DISABLED_CONTROLLERS)])
        return [
            f"--kubeconfig={self.root / 'controller-manager.kubeconfig'}", "--leader-elect=false",
            "--secure-port=0", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa.key}", f"--root-ca-file={self._serving_ca()}",
            f"--controllers={controllers}", "--cluster-name=ragops-lab",
            # The node lifecycle controller lifts a new node's not-ready taint on its next pass: every
            # second instead of every 5 s, so that a lab schedules its first pods sooner.
            "--node-monitor-period=1s",
        ]

    def _serving_ca(self) -> Path:
        """The CA certificate inside the API server's self-generated bundle (what pods are told to trust)."""
        target = self.root / "pki" / "apiserver-ca.crt"
        target.write_bytes(b"".join(ca_certificates(self.ca_bundle.read_bytes())))
        return target

    def _wait_etcd(self, port: int) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            self._check_alive("etcd")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if b'"true"' in answer.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"Timed out after {READY_SECONDS:g}s waiting for etcd; see {self.logs / 'etcd.log'}")
            time.sleep(0.1)

    def _wait_apiserver(self, endpoint: Endpoint) -> None:
        request = urllib.request.Request(f"{endpoint.url}/readyz",
                                         headers={"Authorization": f"Bearer {endpoint.admin_token}"})
        deadline = time.monotonic() + READY_SECONDS
        last = ""
        while True:
            self._check_alive("kube-apiserver")
            if self.ca_bundle.exists():
                try:
                    with urllib.request.urlopen(request, timeout=5, context=endpoint.ssl_context()) as answer:
                        if answer.status == 200:
                            return
                except OSError as exc:
                    last = str(exc)
            if time.monotonic() > deadline:
                raise LabError(f"Timed out after {READY_SECONDS:g}s waiting for kube-apiserver to be ready "
                               f"(last: {last}); see {self.logs / 'kube-apiserver.log'}")
            time.sleep(0.2)

    def _check_alive(self, daemon: str) -> None:
        pid = read_pid(self.pid_file(daemon))
        if pid is None or not is_running(pid):
            raise LabError(f"{daemon} exited at start; see {self.logs / f'{daemon}.log'}")

    def restart_apiserver(self, url: str, admin_token: str, down_seconds: float = 0.0) -> None:
        """Stop kube-apiserver, wait `down_seconds`, start it again with the same arguments and wait until
        it is ready: what a rolling upgrade or a crash of the API server does to its clients."""
        pid = read_pid(self.pid_file("kube-apiserver"))
        if pid is None or not is_running(pid):
            raise LabError("kube-apiserver is not running")
        args = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")[1:]
        stop_daemon(self.pid_file("kube-apiserver"), self.owner, STOP_SECONDS)
        time.sleep(down_seconds)
        self._start("kube-apiserver", args)
        self._wait_apiserver(Endpoint(url, self.ca_bundle, {"lab-admin": admin_token}))

    # -- stop --------------------------------------------------------------------------------

    def running(self) -> bool:
        return all((pid := read_pid(self.pid_file(d))) is not None and is_running(pid) for d in DAEMONS)

    def stop(self) -> None:
        for daemon in reversed(DAEMONS):
            stop_daemon(self.pid_file(daemon), self.owner, STOP_SECONDS)
