"""The lab's life cycle: `up` starts the Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, built from upstream), the node agent and SeaweedFS and applies
the stack; `down` stops all of it and leaves no process, port or temporary file behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ragops_lab import corpus, stack
from ragops_lab.agent.api import Api
from ragops_lab.kube import build
from ragops_lab.kube.controlplane import DAEMONS as CONTROL_PLANE, NODE_NAME, ControlPlane, Endpoint
from ragops_lab.kube.pki import write_private
from ragops_lab.s3 import S3Endpoint, SeaweedFS
from ragops_lab.services import (
    LabError,
    is_running,
    owned_processes,
    read_pid,
    start_daemon,
    stop_daemon,
    stop_pid,
    venv_tool,
    wait_for,
)
from ragops_lab.timeline import Timeline

DEFAULT_STATE_DIR = stack.LAB_DIR / "state"
READY_TIMEOUT_SECONDS = 60.0
# The agent needs time to stop every pod (each within its capped grace period).
AGENT_STOP_SECONDS = 20.0
DAEMON_STOP_SECONDS = 10.0
DAEMONS = ("agent", *CONTROL_PLANE, "seaweedfs")


class _IndentedDumper(yaml.SafeDumper):
    """Sequences indented under their key, as the repository's YAML is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False, indent=2)


@dataclass(frozen=True)
class LabPaths:
    """The state folder's layout."""

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
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def s3_env(self) -> Path:
        return self.root / "s3.env"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def kube(self) -> Path:
        """The control plane's files: PKI, static tokens, etcd's data, each component's kubeconfig."""
        return self.root / "kube"

    @property
    def token(self) -> Path:
        return self.run / "token"

    @property
    def api_url(self) -> Path:
        return self.run / "api-url"

    @property
    def ca_bundle(self) -> Path:
        return self.kube / "apiserver" / "apiserver.crt"

    @property
    def control_plane(self) -> ControlPlane:
        return ControlPlane(self.kube, self.logs, self.run, self.root)

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    def claim_dir(self, claim: str, namespace: str = stack.NAMESPACE) -> Path:
        return self.root / "pvc" / namespace / claim

    @property
    def seaweed(self) -> SeaweedFS:
        return SeaweedFS(self.root / "s3", self.pid_file("seaweedfs"), self.logs / "seaweedfs.log")


def python_env() -> dict[str, str]:
    """The environment for the lab's Python daemons: the caller's, with the lab importable."""
    return {**os.environ, "PYTHONPATH": str(stack.LAB_DIR), "PYTHONUNBUFFERED": "1"}


def components() -> list[dict[str, Any]]:
    """The stack's components and what each needs first (runbook Scenario C's start order)."""
    return [
        {"name": "controller", "kind": "Deployment", "depends_on": []},
        {"name": "vectorstore", "kind": "StatefulSet", "depends_on": [], "replicas": 4},
        {"name": "provider-primary", "kind": "Deployment", "depends_on": []},
        {"name": "provider-backup", "kind": "Deployment", "depends_on": []},
        {"name": "retriever", "kind": "Deployment", "depends_on": ["controller", "vectorstore"]},
        {"name": "generator", "kind": "Deployment", "depends_on": ["retriever", "provider-primary"]},
        {"name": "indexer", "kind": "Deployment", "depends_on": ["vectorstore"]},
    ]


class Lab:
    def __init__(self, root: Path = DEFAULT_STATE_DIR) -> None:
        self.paths = LabPaths(root.resolve())

    # -- access --------------------------------------------------------------------------------

    def api(self) -> Api:
        return Api(self.paths.api_url.read_text().strip(), self.paths.token.read_text().strip(),
                   str(self.paths.ca_bundle))

    def s3(self) -> S3Endpoint:
        return S3Endpoint.from_env_text(self.paths.s3_env.read_text())

    def endpoints(self) -> stack.Endpoints:
        return stack.Endpoints.resolve(self.api())

    def is_up(self) -> bool:
        return all((pid := read_pid(self.paths.pid_file(d))) is not None and is_running(pid) for d in DAEMONS)

    def running_processes(self) -> list[int]:
        return owned_processes(self.paths.root)

    # -- up ------------------------------------------------------------------------------------

    def up(self, out: TextIO = sys.stdout) -> Timeline:
        """Start everything and wait until the stack answers; on any failure, stop it all again."""
        timeline = Timeline(out)
        try:
            self._up(timeline)
        except BaseException:
            print(f"lab up failed; logs are under {self.paths.logs} and {self.paths.pod_logs}", file=out)
            self.down(out=None)
            raise
        return timeline

    def _up(self, timeline: Timeline) -> None:
        with timeline.step("clear earlier state"):
            self.down(out=None)
            self._fresh_state()
        with timeline.step("find or build the control plane binary"):
            timeline.note(str(build.ensure_binary()))
        with timeline.step("start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and SeaweedFS"):
            s3 = self.paths.seaweed.start(self.paths.root)
            endpoint = self.paths.control_plane.start()
            self._write_api_access(endpoint)
        with timeline.step("start the node agent"):
            self._start_agent(endpoint)
            self._wait_node()
        with timeline.step("apply the stack's manifests"):
            timeline.note(f"{stack.apply_stack(self.api())} objects applied in namespace {stack.NAMESPACE}")
        with timeline.step("wait for S3"):
            s3 = self.paths.seaweed.wait_until_ready(s3, self.paths.root)
        with timeline.step("wait until every pod is Ready"):
            self._wait_ready()
        with timeline.step("ask the generator a question"):
            endpoints = self.endpoints()
            timeline.note(self._first_answer(endpoints))
        with timeline.step("write kubeconfig, s3.env and inventory.yml"):
            self._write_access_files(s3, endpoints)

    def _fresh_state(self) -> None:
        """A lab starts from nothing: volumes, logs and S3 data of an earlier run are dropped."""
        root = self.paths.root
        if root.exists() and any(root.iterdir()) and not self.paths.run.is_dir():
            raise LabError(f"refusing to empty {root}: it holds files but is not a lab's state folder")
        if root.exists():
            shutil.rmtree(root)
        for directory in (self.paths.run, self.paths.logs, self.paths.pod_logs):
            directory.mkdir(parents=True)

    def _write_api_access(self, endpoint: Endpoint) -> None:
        write_private(self.paths.token, (endpoint.admin_token + "\n").encode())
        write_private(self.paths.run / "agent-token", (endpoint.tokens["lab-node-agent"] + "\n").encode())
        self.paths.api_url.write_text(endpoint.url + "\n")

    def _start_agent(self, endpoint: Endpoint) -> None:
        pki = self.paths.kube / "pki"
        start_daemon([sys.executable, "-m", "ragops_lab.agent", "--api-url", endpoint.url,
                      "--token-file", str(self.paths.run / "agent-token"), "--ca-file", str(endpoint.ca_file),
                      "--kubelet-cert", str(pki / "kubelet.crt"), "--kubelet-key", str(pki / "kubelet.key"),
                      "--client-ca", str(pki / "ca.crt"), "--kubelet-version", build.pinned_release(
                          (build.MODULE_DIR / "go.mod").read_text()).version,
                      "--state-dir", str(self.paths.root), "--log-dir", str(self.paths.pod_logs)],
                     self.paths.pid_file("agent"), self.paths.logs / "agent.log", python_env(), self.paths.root)

    def _wait_node(self) -> None:
        """The node is Ready and schedulable: the lifecycle controller has lifted its not-ready taint."""
        api = self.api()

        def schedulable() -> bool:
            node = api.get(f"/api/v1/nodes/{NODE_NAME}") or {}
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            return ready and not (node.get("spec") or {}).get("taints")

        wait_for(schedulable, 60, f"node {NODE_NAME} to be Ready and schedulable (see {self.paths.logs / 'agent.log'})")

    def _wait_ready(self) -> None:
        api = self.api()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        waiting = stack.not_ready(api)
        while waiting:
            if time.monotonic() > deadline:
                raise LabError(f"Timed out after {READY_TIMEOUT_SECONDS:g}s waiting for the stack; not ready: "
                               f"{', '.join(waiting)}. See `python -m ragops_lab status` and {self.paths.pod_logs}")
            time.sleep(0.1)
            waiting = stack.not_ready(api)

    @staticmethod
    def _first_answer(endpoints: stack.Endpoints) -> str:
        """The first question, retried briefly: the Service address follows pod readiness a cycle later."""
        golden = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())["queries"][0]
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            try:
                answers.append(stack.ask(endpoints.services["generator"], golden["text"], golden["qid"]))
            except (ConnectionError, TimeoutError) as exc:
                answers.append({"status": 0, "error": str(exc)})
            return bool(answers[-1]["status"] == 200)

        try:
            wait_for(answered, 10, "an answer from the generator")
        except LabError as exc:
            raise LabError(f"{exc}; last reply: {answers[-1] if answers else None}") from exc
        answer = answers[-1]
        return f"{golden['qid']}: provider={answer['provider']} citations={answer['citations']}"

    # -- access files --------------------------------------------------------------------------

    def _write_access_files(self, s3: S3Endpoint, endpoints: stack.Endpoints) -> None:
        config = yaml.safe_load((self.paths.kube / "admin.kubeconfig").read_text())
        for context in config["contexts"]:
            context["context"]["namespace"] = stack.NAMESPACE
        write_private(self.paths.kubeconfig, dump_yaml(config).encode())
        write_private(self.paths.s3_env, s3.env_text().encode())
        write_private(self.paths.inventory, dump_yaml(self.inventory(s3, endpoints)).encode())

    def inventory(self, s3: S3Endpoint, endpoints: stack.Endpoints) -> dict[str, Any]:
        """One host per RAG stack, with everything the playbooks need to reach this one."""
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ragops_kubeconfig": str(self.paths.kubeconfig),
            "ragops_context": "lab",
            "ragops_namespace": stack.NAMESPACE,
            "ragops_registry": stack.REGISTRY,
            "ragops_s3_endpoint": s3.url,
            "ragops_s3_bucket": s3.bucket,
            "ragops_s3_access_key": s3.access_key,
            "ragops_s3_secret_key": s3.secret_key,
            "ragops_s3_region": s3.region,
            "ragops_retriever_url": endpoints.services["retriever"],
            "ragops_generator_url": endpoints.services["generator"],
            "ragops_controller_url": endpoints.services["controller"],
            "ragops_indexer_url": endpoints.services["indexer"],
            # The image of the re-index Job that Scenario A starts; the node agent runs it as the lab's indexer.
            "ragops_indexer_image": "ragops-lab/indexer",
            "ragops_provider_urls": {n: endpoints.services[f"provider-{n}"] for n in ("primary", "backup")},
            "ragops_shard_urls": endpoints.shards,
            "ragops_golden_set": str(corpus.DATA_DIR / corpus.GOLDEN_FILE),
            "ragops_migration_job_configmap": stack.MIGRATION_JOB_CONFIGMAP,
            "ragops_components": components(),
            # The lab's programs name the Services they wait for at start-up in this env variable.
            "ragops_dependency_env": "WAIT_FOR",
            "ragops_lab_state_dir": str(self.paths.root),
            "ragops_lab_pvc_dir": str(self.paths.root / "pvc" / stack.NAMESPACE),
        }
        return {"all": {"children": {"rag_stacks": {"hosts": {"rag-lab": host}}}}}

    # -- down ----------------------------------------------------------------------------------

    def down(self, out: TextIO | None = sys.stdout) -> None:
        """Stop the agent (which stops every pod), the emulator and SeaweedFS; then sweep orphans."""
        root = self.paths.root
        # SeaweedFS takes about a second to flush and stop: it does so while the agent stops the pods.
        with ThreadPoolExecutor(max_workers=2) as pool:
            stopping = [pool.submit(stop_daemon, self.paths.pid_file("agent"), root, AGENT_STOP_SECONDS),
                        pool.submit(stop_daemon, self.paths.pid_file("seaweedfs"), root, DAEMON_STOP_SECONDS)]
            for stop in stopping:
                stop.result()
        self.paths.control_plane.stop()
        for pid in owned_processes(root):
            stop_pid(pid, root, DAEMON_STOP_SECONDS)
        self.paths.seaweed.cleanup_sockets()
        self.paths.api_url.unlink(missing_ok=True)
        left = owned_processes(root)
        if left:
            raise LabError(f"processes {left} of the lab in {root} are still running")
        if out is not None:
            print(f"lab down: no process left; state kept in {root} until the next up", file=out)

    # -- status --------------------------------------------------------------------------------

    def status(self, out: TextIO = sys.stdout) -> bool:
        if not self.is_up():
            print("lab is down (start it with: make lab-up)", file=out)
            return False
        pods = kubectl(self.paths.kubeconfig, "get", "pods", "-o", "wide")
        print(pods.stdout or pods.stderr, file=out, end="")
        endpoints = self.endpoints()
        print("\nendpoints:", file=out)
        for name, url in {**endpoints.services, **endpoints.shards}.items():
            print(f"  {name:<17} {url or '(no Ready pod)'}", file=out)
        print(f"  {'s3':<17} {self.s3().url} (bucket {self.s3().bucket})", file=out)
        print(f"\nkubeconfig: {self.paths.kubeconfig}\ninventory:  {self.paths.inventory}", file=out)
        return True


def kubectl_binary() -> Path:
    """kubectl as built with the control plane, at the same release."""
    return build.ensure_binary().parent / "kubectl"


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([str(kubectl_binary()), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
