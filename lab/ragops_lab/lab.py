"""The lab's life cycle: `up` starts the Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, built from upstream), the node agent and SeaweedFS and applies
the stack; `down` stops all of it and leaves no process, port or temporary file behind."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ragops_lab import corpus, rbac, stack
from ragops_lab.agent.api import Api
from ragops_lab.agent.netns import SETTING_FILE, parse_selector
from ragops_lab.agent.proxy import ADDRESS_ANNOTATION
from ragops_lab.cluster import DAEMON_STOP_SECONDS, ClusterPaths, KubeCluster
from ragops_lab.kube import build
from ragops_lab.kube.controlplane import DAEMONS as CONTROL_PLANE
from ragops_lab.kube.kubectl import kubectl
from ragops_lab.kube.pki import write_private
from ragops_lab.s3 import S3Endpoint, SeaweedFS
from ragops_lab.services import LabError, is_running, owned_processes, read_pid, stop_daemon, wait_for
from ragops_lab.timeline import Timeline

DEFAULT_STATE_DIR = stack.LAB_DIR / "state"
READY_TIMEOUT_SECONDS = 60.0
DAEMONS = ("agent", *CONTROL_PLANE, "seaweedfs")


class _IndentedDumper(yaml.SafeDumper):
    """Sequences indented under their key, as the repository's YAML is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False, indent=2)


@dataclass(frozen=True)
class LabPaths(ClusterPaths):
    """The state folder's layout: the cluster's, plus what the stack and S3 add."""

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
    def rbac(self) -> Path:
        """Kubeconfigs of the ServiceAccounts bound to the collection's shipped Roles."""
        return self.root / "rbac"

    def claim_dir(self, claim: str, namespace: str = stack.NAMESPACE) -> Path:
        return self.root / "pvc" / namespace / claim

    @property
    def pod_netns(self) -> Path:
        """The setting that places chosen pods in network namespaces (``agent/netns.py``)."""
        return self.root / SETTING_FILE

    @property
    def seaweed(self) -> SeaweedFS:
        return SeaweedFS(self.root / "s3", self.pid_file("seaweedfs"), self.logs / "seaweedfs.log")


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
        self.cluster = KubeCluster(self.paths.root)

    # -- access --------------------------------------------------------------------------------

    def api(self) -> Api:
        return self.cluster.api()

    def s3(self) -> S3Endpoint:
        return S3Endpoint.from_env_text(self.paths.s3_env.read_text())

    def rbac_kubeconfigs(self) -> rbac.RbacKubeconfigs:
        return rbac.kubeconfigs(self.paths.rbac)

    def endpoints(self) -> stack.Endpoints:
        return stack.Endpoints.resolve(self.api())

    def place_pods(self, netns_by_selector: Mapping[str, str]) -> None:
        """Pods that a label selector picks start their containers inside that network namespace (one made
        by ``ip netns add``) from now on; ``{}`` puts every pod that starts later back on the node's network.
        Pods already running stay where they are."""
        for selector in netns_by_selector:
            parse_selector(selector)  # a bad selector is refused here, not at a pod's start
        if not netns_by_selector:
            self.paths.pod_netns.unlink(missing_ok=True)
            return
        written = self.paths.pod_netns.with_suffix(".tmp")
        written.write_text(json.dumps(dict(netns_by_selector), indent=2) + "\n")
        os.replace(written, self.paths.pod_netns)

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
            self.cluster.start_control_plane()
            version = self.api().call("GET", "/version")
            timeline.note(f"kube-apiserver {version.get('gitVersion')} at {self.cluster.url}")
        with timeline.step("start the node agent"):
            self.cluster.start_agent()
        with timeline.step("apply the stack's manifests and the collection's RBAC"):
            timeline.note(f"{stack.apply_stack(self.api())} objects applied in namespace {stack.NAMESPACE}")
            self.cluster.wait_for_service_account(stack.NAMESPACE)
            rbac.install(self.cluster, stack.NAMESPACE, self.paths.rbac)
            timeline.note(f"Roles {', '.join(rbac.role_name(f) for f in rbac.role_files())} from meta/rbac/, "
                          f"a kubeconfig for each in {self.paths.rbac}")
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
            # The ServiceAccount bound to every Role the collection ships (meta/rbac/), not the admin.
            "ragops_kubeconfig": str(self.rbac_kubeconfigs().union),
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
            # Where the node agent writes each Service's host address: how a restore drill reaches the shards it
            # starts in its scratch namespace from here (a real cluster's controller uses the Services' DNS names).
            "ragops_service_address_annotation": ADDRESS_ANNOTATION,
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
        """Stop the agent (which stops every pod), the control plane and SeaweedFS; then sweep orphans."""
        root = self.paths.root
        # SeaweedFS takes about a second to flush and stop: it does so while the agent stops the pods.
        with ThreadPoolExecutor(max_workers=2) as pool:
            stopping = [pool.submit(self.cluster.stop_agent),
                        pool.submit(stop_daemon, self.paths.pid_file("seaweedfs"), root, DAEMON_STOP_SECONDS)]
            for stop in stopping:
                stop.result()
        self.cluster.stop()
        self.paths.seaweed.cleanup_sockets()
        self.paths.api_url.unlink(missing_ok=True)
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

