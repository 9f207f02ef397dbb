"""The kubelet's view of one pod: set up its volumes and address, run its containers, report status."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops_lab.clock import rfc3339
from ragops_lab.runtime.log import JsonLog

from .containers import ContainerRun, backoff_delay
from .netns import command_prefix, namespace_for
from .network import PodNetwork
from .podspec import (
    ContainerConfigError,
    DataReader,
    ImagePullError,
    api_service_env,
    container_args,
    container_env,
    container_mounts,
    container_port,
    program_for,
    readonly_mounts,
)
from .probes import HttpProbe, ReadinessTracker
from .process import ContainerProcess, log_paths, process_env, rotate_log
from .volumes import VolumeNotReady, VolumeSources, prepare_volumes

HOST_IP = "127.0.0.1"
CONFIG_RETRY_SECONDS = 1.0
# Marks every process the agent starts, so `lab down` can find orphans of an agent that died.
OWNER_ENV = "RAGOPS_LAB_OWNER"

Obj = dict[str, Any]
# (pod, event type, reason, message)
EventSink = Callable[[Obj, str, str, str], None]


@dataclass(frozen=True)
class Node:
    """What every pod on this node shares."""

    name: str
    state_dir: Path
    log_dir: Path
    kube_url: str
    kube_token: str
    kube_ca_file: str
    network: PodNetwork
    prober: Executor
    volumes: VolumeSources
    event: EventSink
    log: JsonLog
    # The lab setting that places chosen pods in network namespaces (netns.py); None: none is.
    pod_netns: Path | None = None

    @property
    def read_data(self) -> DataReader:
        return self.volumes.read_data


def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    entry: Obj = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        entry.update(reason=reason, message=message)
    return entry


class PodWorker:
    """Drives one pod; `step` is called every agent cycle with the latest pod object."""

    def __init__(self, pod: Obj, node: Node) -> None:
        self.pod = pod
        self.node = node
        spec = pod["spec"]
        self.init = [ContainerRun(c["name"], c["image"], True) for c in spec.get("initContainers") or []]
        first_wait = ("PodInitializing" if self.init else "ContainerCreating", "")
        self.main = [ContainerRun(c["name"], c["image"], False, waiting=first_wait) for c in spec["containers"]]
        self.ip: str | None = None
        self.volume_dirs: dict[str, str] | None = None
        self.volume_error = ""
        self.start_time = rfc3339()
        self.stop_deadline: float | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._address_released = False
        meta = pod["metadata"]
        self.pod_dir = node.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def runs(self) -> Iterator[ContainerRun]:
        yield from self.init
        yield from self.main

    # -- running -----------------------------------------------------------------------------

    def step(self, now: float) -> None:
        if self.stop_deadline is not None or self.phase() in ("Succeeded", "Failed"):
            self._release_address()
            return
        if self.volume_dirs is None and not self._prepare():
            return
        for run in self.init:
            if not run.succeeded:
                self._drive(run, now)
                if not run.succeeded:
                    return
        for run in self.main:
            self._drive(run, now)

    def _prepare(self) -> bool:
        """Volumes and address: what the kubelet and the sandbox provide before containers start."""
        try:
            dirs = prepare_volumes(self.pod, self.pod_dir, self.node.volumes)
        except VolumeNotReady as exc:
            if self.volume_error != str(exc):
                self.node.event(self.pod, "Warning", "FailedMount", str(exc))
            self.volume_error = str(exc)
            return False
        self.volume_error = ""
        ports = [container_port(c) for c in self.pod["spec"]["containers"]]
        self.ip = self.node.network.allocate(ports)
        self.volume_dirs = dirs
        self._reset_logs()
        return True

    def _reset_logs(self) -> None:
        """A new pod starts with empty logs even when an earlier pod had the same name."""
        meta = self.pod["metadata"]
        shutil.rmtree(self.node.log_dir / meta["namespace"] / meta["name"], ignore_errors=True)

    def _drive(self, run: ContainerRun, now: float) -> None:
        if run.observe_exit(self.policy, now) and run.waiting and run.waiting[0] == "CrashLoopBackOff":
            self.node.event(self.pod, "Warning", "BackOff", f"Back-off restarting failed container {run.name}")
        if run.due(now):
            self._start(run, now)
        elif run.readiness is not None and run.readiness.poll() and not run.readiness.ready:
            self.node.event(self.pod, "Warning", "Unhealthy", run.readiness.last_failure)

    def _container_spec(self, run: ContainerRun) -> Obj:
        field = "initContainers" if run.init else "containers"
        return next(c for c in self.pod["spec"].get(field) or [] if c["name"] == run.name)

    def _start(self, run: ContainerRun, now: float) -> None:
        container = self._container_spec(run)
        try:
            module = program_for(container["image"])
            env = container_env(self._downward_view(), container, self.node.read_data, self._contract(container))
            args = container_args(container, env)
            netns = namespace_for(self.node.pod_netns, self.pod) if self.node.pod_netns else ""
        except ImagePullError as exc:
            pulls_failed = run.waiting is not None and run.waiting[0] in ("ErrImagePull", "ImagePullBackOff")
            run.wait("ImagePullBackOff" if pulls_failed else "ErrImagePull", str(exc), now + backoff_delay(2))
            self.node.event(self.pod, "Warning", "Failed", str(exc))
            return
        except ContainerConfigError as exc:
            run.wait(exc.reason, f"Error: {exc}", now + CONFIG_RETRY_SECONDS)
            return
        meta = self.pod["metadata"]
        current, previous = log_paths(self.node.log_dir, meta["namespace"], meta["name"], run.name)
        if run.ever_started:
            rotate_log(current, previous)
        process = ContainerProcess(module, args, process_env(env), current, self.pod_dir / "work",
                                   prefix=command_prefix(netns))
        readiness = None
        if not run.init:
            probe = HttpProbe.from_container(container, self.ip or HOST_IP)
            readiness = ReadinessTracker(probe, self.node.prober) if probe else None
        run.started(process, now, readiness)
        self.node.event(self.pod, "Normal", "Started", f"Started container {run.name}")

    def _downward_view(self) -> Obj:
        """The pod as fieldRefs see it: with the node and address this kubelet gave it (not yet reported)."""
        status = {**(self.pod.get("status") or {}), "podIP": self.ip, "hostIP": HOST_IP}
        return {**self.pod, "spec": {**self.pod["spec"], "nodeName": self.node.name}, "status": status}

    def _contract(self, container: Obj) -> dict[str, str]:
        """The variables the process contract promises every lab program."""
        meta = self.pod["metadata"]
        return {
            **api_service_env(self.node.kube_url),
            "POD_NAME": meta["name"], "POD_NAMESPACE": meta["namespace"], "POD_IP": self.ip or HOST_IP,
            "PORT": str(container_port(container)), "KUBE_API_URL": self.node.kube_url,
            "KUBE_TOKEN": self.node.kube_token, "KUBE_CA_FILE": self.node.kube_ca_file,
            "LAB_MOUNTS": json.dumps(container_mounts(container, self.volume_dirs or {})),
            "LAB_READONLY_MOUNTS": json.dumps(readonly_mounts(self.pod, container)),
            OWNER_ENV: str(self.node.state_dir),
        }

    # -- stopping ----------------------------------------------------------------------------

    def begin_stop(self, now: float, grace_cap: float) -> None:
        """SIGTERM every container; `reap` sends SIGKILL once the grace period is over."""
        if self.stop_deadline is not None:
            return
        grace = min(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)), grace_cap)
        self.stop_deadline = now + grace
        for run in self.runs():
            if run.process is not None:
                self.node.event(self.pod, "Normal", "Killing", f"Stopping container {run.name}")
                run.process.terminate()

    def reap(self, now: float) -> bool:
        """True once every process of the pod is gone and its resources are released."""
        alive = [run.process for run in self.runs() if run.process is not None and run.process.poll() is None]
        if alive:
            if self.stop_deadline is not None and now >= self.stop_deadline:
                for process in alive:
                    process.kill()
            return False
        self._release_address()
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        return True

    def _release_address(self) -> None:
        if self.ip is not None and not self._address_released:
            self.node.network.release(self.ip)
            self._address_released = True

    # -- status ------------------------------------------------------------------------------

    def phase(self) -> str:
        if any(run.terminated is not None and not run.succeeded for run in self.init):
            return "Failed"
        if not all(run.succeeded for run in self.init) or not any(run.ever_started for run in self.main):
            return "Pending"
        if all(run.terminated is not None for run in self.main):
            return "Succeeded" if all(run.succeeded for run in self.main) else "Failed"
        return "Running"

    def _conditions(self) -> list[Obj]:
        waiting_init = [run.name for run in self.init if not run.succeeded]
        unready = [run.name for run in self.main if not run.ready]
        unready_message = f"containers with unready status: [{' '.join(unready)}]"
        entries = [
            condition("PodReadyToStartContainers", self.ip is not None and not self._address_released),
            condition("Initialized", not waiting_init, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(waiting_init)}]"),
            condition("Ready", not unready, "ContainersNotReady", unready_message),
            condition("ContainersReady", not unready, "ContainersNotReady", unready_message),
            condition("PodScheduled", True),
        ]
        return [self._stamp(entry) for entry in entries]

    def _stamp(self, entry: Obj) -> Obj:
        """lastTransitionTime changes only when the condition's status does."""
        previous = self._transitions.get(entry["type"])
        if previous is None or previous[0] != entry["status"]:
            previous = (entry["status"], rfc3339())
            self._transitions[entry["type"]] = previous
        return {**entry, "lastProbeTime": None, "lastTransitionTime": previous[1]}

    def status(self, current: Obj) -> Obj:
        """The pod's status as this node sees it; `current` keeps the fields the API server set."""
        status: Obj = {"phase": self.phase(), "conditions": self._conditions(),
                       "qosClass": current.get("qosClass", "BestEffort")}
        status.update(hostIP=HOST_IP, hostIPs=[{"ip": HOST_IP}], startTime=self.start_time,
                      containerStatuses=[run.status() for run in self.main])
        if self.ip is not None:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if self.init:
            status["initContainerStatuses"] = [run.status() for run in self.init]
        return status
