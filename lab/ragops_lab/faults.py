"""Faults the runbook recovers from, injected into a running lab; each waits until its symptom shows.

Every fault is undone by re-creating the lab (down + up).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragops_lab import stack
from ragops_lab.agent.api import APPS, CORE, Api, object_path
from ragops_lab.agent.podspec import container_port
from ragops_lab.lab import Lab
from ragops_lab.runtime.httpclient import http_json
from ragops_lab.runtime.kubeapi import KubeError, pod_is_ready
from ragops_lab.services import LabError, wait_for

SYMPTOM_TIMEOUT_SECONDS = 20.0
SHARD_LABEL = "ragops.io/shard"
PROVIDER_MODES = ("503", "429", "401", "hang", "degraded", "none")
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
NEXT_SCHEMA_VERSION = 2

Obj = dict[str, Any]


# --- finding things through the API ------------------------------------------------------------


def run_by_job(pod: Obj) -> bool:
    """A Job's pod (a snapshot, a restore, a re-index) carries the shard's label but does not serve it."""
    return any(owner.get("kind") == "Job" for owner in pod["metadata"].get("ownerReferences") or [])


def shard_pod(api: Api, shard: str) -> Obj:
    """The pod serving the shard (not a Job's pod that carries its label)."""
    pods = [p for p in api.list(CORE, "pods", stack.NAMESPACE, f"{SHARD_LABEL}={shard}")[0] if not run_by_job(p)]
    if not pods:
        raise LabError(f"no pod carries {SHARD_LABEL}={shard}; shards are shard-0 .. shard-3")
    return pods[0]


def shard_volume(api: Api, shard: str) -> Path:
    """The local directory of the shard's data volume, from its PVC."""
    pod = shard_pod(api, shard)
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                 if "persistentVolumeClaim" in v)
    return claim_directory(api, stack.NAMESPACE, claim)


def claim_directory(api: Api, namespace: str, claim: str) -> Path:
    """The local directory behind a bound claim: its PersistentVolume's hostPath."""
    found = api.get(object_path(CORE, "persistentvolumeclaims", namespace, claim)) or {}
    volume_name = (found.get("spec") or {}).get("volumeName")
    volume = api.get(f"{CORE}/persistentvolumes/{volume_name}") if volume_name else None
    path = (((volume or {}).get("spec") or {}).get("hostPath") or {}).get("path")
    if not path:
        raise LabError(f"PVC {namespace}/{claim} is not bound to a local directory yet")
    return Path(path)


def pod_log(api: Api, pod: str, tail: int = 20, previous: bool = False) -> str:
    query = urllib.parse.urlencode({"tailLines": tail, **({"previous": "true"} if previous else {})})
    text = api.call("GET", f"{object_path(CORE, 'pods', stack.NAMESPACE, pod, 'log')}?{query}")
    return text if isinstance(text, str) else json.dumps(text)


def log_lines(api: Api, pod: str, *events: str, previous: bool = False) -> list[str]:
    """The pod's recent log lines that record one of `events`."""
    text = pod_log(api, pod, 50, previous)
    return [line for line in text.splitlines() if any(f'"event": "{e}"' in line for e in events)]


def _pod_ready(api: Api, name: str) -> bool:
    pod = api.get(object_path(CORE, "pods", stack.NAMESPACE, name))
    return pod is not None and pod_is_ready(pod)


def pods_of(api: Api, component: str) -> list[Obj]:
    return api.list(CORE, "pods", stack.NAMESPACE, f"app.kubernetes.io/name={component}")[0]


# --- shard faults ------------------------------------------------------------------------------


def shard_url_of(pod: Obj) -> str:
    """The pod's own address: a Service forwards nothing to a pod that is not Ready."""
    return f"http://{pod['status']['podIP']}:{container_port(pod['spec']['containers'][0])}"


def damage_index(api: Api, shard: str, damage: Callable[[Path], str]) -> str:
    """Damage the shard's vectors on its volume, make it re-open them and wait until it is not Ready."""
    pod = shard_pod(api, shard)
    vectors = shard_volume(api, shard) / "index" / "vectors.bin"
    what = damage(vectors)
    # The shard's integrity watcher would notice within a second; a re-open makes it immediate.
    http_json("POST", f"{shard_url_of(pod)}/admin/reopen", {}, timeout=5)
    name = pod["metadata"]["name"]
    wait_for(lambda: not _pod_ready(api, name), SYMPTOM_TIMEOUT_SECONDS, f"{name} to lose readiness")
    errors = log_lines(api, name, "index_load_failed", "index_corruption_detected")
    return "\n".join([f"{what}; {name} is not Ready", *(errors[-1:])])


def flip_bytes(path: Path) -> str:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for offset in range(middle, min(middle + 16, len(data))):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return f"flipped 16 bytes at offset {middle} of {path}"


def truncate(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    return f"truncated {path} from {size} to {size // 2} bytes"


def stale_index(lab: Lab, shard: str) -> str:
    """Damage the index until the shard's integrity check unloads it, then put the original bytes back.

    The files on disk verify again, but the server keeps serving nothing until it is asked to re-open
    its index (`POST /admin/reopen`): the case a graceful re-open recovers without a restore.
    """
    api = lab.api()
    pod = shard_pod(api, shard)
    name, url = pod["metadata"]["name"], shard_url_of(pod)
    vectors = shard_volume(api, shard) / "index" / "vectors.bin"
    original = vectors.read_bytes()

    def unloaded() -> bool:
        stats = http_json("GET", f"{url}/stats", timeout=5).body
        return isinstance(stats, dict) and stats.get("ready") is False

    what = flip_bytes(vectors)
    try:
        wait_for(unloaded, SYMPTOM_TIMEOUT_SECONDS, f"{name}'s integrity check to unload its index")
    finally:
        staged = vectors.with_name(vectors.name + ".restore")
        staged.write_bytes(original)
        os.replace(staged, vectors)
    wait_for(lambda: not _pod_ready(api, name), SYMPTOM_TIMEOUT_SECONDS, f"{name} to lose readiness")
    errors = log_lines(api, name, "index_corruption_detected")
    return "\n".join([f"{what}; {name} unloaded its index; the original bytes are back, so the files verify, "
                      f"but {name} is not Ready and serves nothing until POST {url}/admin/reopen", *(errors[-1:])])


def corrupt_shard(lab: Lab, shard: str) -> str:
    return damage_index(lab.api(), shard, flip_bytes)


def truncate_shard(lab: Lab, shard: str) -> str:
    return damage_index(lab.api(), shard, truncate)


def kill_shard(lab: Lab, shard: str) -> str:
    """SIGKILL the shard's server, as an OOM kill would; the kubelet restarts it (exit code 137)."""
    api = lab.api()
    pod = shard_pod(api, shard)
    name = pod["metadata"]["name"]
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "shard")
    pid = int(str(status["containerID"]).removeprefix("lab://"))
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        current = api.get(object_path(CORE, "pods", stack.NAMESPACE, name)) or {}
        statuses = (current.get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0) > int(status.get("restartCount") or 0)

    wait_for(restarted, SYMPTOM_TIMEOUT_SECONDS, f"{name} to be restarted")
    return (f"killed the server of {name} (pid {pid}) with SIGKILL; the kubelet restarted it "
            "(see kubectl logs --previous)")


# --- provider outage ---------------------------------------------------------------------------


def provider_outage(lab: Lab, name: str, mode: str) -> str:
    """Switch a provider's outage; the symptom is what its API and, if it uses it, the generator answer."""
    if mode not in PROVIDER_MODES:
        raise LabError(f"mode must be one of {', '.join(PROVIDER_MODES)}")
    api, endpoints = lab.api(), lab.endpoints()
    url = endpoints.services.get(f"provider-{name}")
    if not url:
        raise LabError(f"no Ready provider named {name}: use primary or backup")
    switched = http_json("POST", f"{url}/admin/outage", {"mode": mode}, timeout=5)
    if switched.status != 200:
        raise LabError(f"provider-{name} refused the outage switch: {switched.body}")
    lines = [f"provider-{name} outage mode is now {mode}"]
    if mode == "hang":
        return lines[0]
    secret = api.get(object_path(CORE, "secrets", stack.NAMESPACE, "rag-provider-keys")) or {}
    key = base64.b64decode((secret.get("data") or {}).get(name, "")).decode()
    models = http_json("GET", f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    lines.append(f"GET {url}/v1/models answers HTTP {models.status}")
    generator = endpoints.services["generator"]
    if http_json("GET", f"{generator}/v1/config", timeout=5).body.get("provider") == name:
        reply = stack.ask(generator, "How do I rotate the ingress certificate?")
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        lines.append(f"the generator (PROVIDER={name}) answers HTTP {reply['status']}"
                     + (f": {error.get('kind')}, {error.get('message')}" if error else ""))
    return "\n".join(lines)


# --- bootstrap faults --------------------------------------------------------------------------


def set_env(api: Api, deployment: str, container: str, env: dict[str, str]) -> None:
    """Change env values of a Deployment's container (a strategic merge by variable name)."""
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": container, "env": [{"name": k, "value": v} for k, v in env.items()]}]}}}}
    api.call("PATCH", object_path(APPS, "deployments", stack.NAMESPACE, deployment), patch, STRATEGIC_MERGE)


def restart_components(api: Api, components: Sequence[str]) -> None:
    """Delete the components' pods, as a node reboot would: every one starts afresh."""
    for component in components:
        for pod in pods_of(api, component):
            api.delete(object_path(CORE, "pods", stack.NAMESPACE, pod["metadata"]["name"]))


def _main_status(pod: Obj) -> Obj:
    return dict(((pod.get("status") or {}).get("containerStatuses") or [{}])[0])


def describe_pod(pod: Obj) -> str:
    """`name: CrashLoopBackOff, not Ready (3 restarts, last exit code 1)`, as kubectl would show it."""
    status = _main_status(pod)
    waiting = ((status.get("state") or {}).get("waiting") or {}).get("reason")
    state = waiting or (pod.get("status") or {}).get("phase", "Pending")
    text = f"{pod['metadata']['name']}: {state}, {'Ready' if pod_is_ready(pod) else 'not Ready'}"
    restarts = int(status.get("restartCount") or 0)
    last = ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode")
    return text + (f" ({restarts} restarts, last exit code {last})" if restarts else "")


def _never_ready(api: Api, components: Sequence[str], seconds: float = 3.0) -> str:
    """Wait until each component has a pod again, then check none became Ready for a while."""
    wait_for(lambda: all(pods_of(api, c) for c in components), SYMPTOM_TIMEOUT_SECONDS, "replacement pods")
    time.sleep(seconds)
    pods = [p for c in components for p in pods_of(api, c)]
    ready = [p["metadata"]["name"] for p in pods if pod_is_ready(p)]
    if ready:
        raise LabError(f"expected no Ready pod, but these are: {', '.join(ready)}")
    return "; ".join(describe_pod(p) for p in pods)


def dependency_cycle(lab: Lab) -> str:
    """The controller waits for the retriever, which already waits for the controller."""
    api = lab.api()
    set_env(api, "controller", "controller", {"WAIT_FOR": "retriever"})
    restart_components(api, ("controller", "retriever"))
    symptom = _never_ready(api, ("controller", "retriever"))
    return f"controller WAIT_FOR=retriever and retriever WAIT_FOR=controller\n{symptom}"


def pending_migration(lab: Lab) -> str:
    """A release that needs schema version 2 rolled out before its migration Job ran."""
    api = lab.api()
    path = object_path(CORE, "configmaps", stack.NAMESPACE, stack.MIGRATION_JOB_CONFIGMAP)
    job = yaml.safe_load(((api.get(path) or {}).get("data") or {})["job.yaml"])
    for variable in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if variable["name"] == "TARGET_SCHEMA_VERSION":
            variable["value"] = str(NEXT_SCHEMA_VERSION)
    api.merge_patch(path, {"data": {"job.yaml": yaml.safe_dump(job, sort_keys=False)}})
    components = ("controller", "retriever", "generator")
    for component in components:
        set_env(api, component, component, {"REQUIRED_SCHEMA_VERSION": str(NEXT_SCHEMA_VERSION)})
    restart_components(api, components)

    def crash_looping() -> bool:
        pods = [p for c in components for p in pods_of(api, c)]
        return len(pods) == len(components) and all(_main_status(p).get("restartCount") for p in pods)

    wait_for(crash_looping, SYMPTOM_TIMEOUT_SECONDS, "the components to crash and restart")
    symptom = _never_ready(api, components, seconds=1.0)
    controller = pods_of(api, "controller")[0]["metadata"]["name"]
    lines = log_lines(api, controller, "schema_version_too_old", previous=True)
    return "\n".join([f"components require schema version {NEXT_SCHEMA_VERSION}; the schema is at 1", symptom,
                      *lines[-1:]])


# --- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    args: tuple[str, ...]
    summary: str
    inject: Callable[..., str]


CATALOGUE: tuple[Fault, ...] = (
    Fault("corrupt-shard", ("SHARD",), "flip bytes in the shard's index and make it re-open it", corrupt_shard),
    Fault("truncate-shard", ("SHARD",), "cut the shard's index file in half", truncate_shard),
    Fault("stale-index", ("SHARD",), "the shard unloads its damaged index, then the files are put right; "
          "a re-open recovers it", stale_index),
    Fault("kill-shard", ("SHARD",), "SIGKILL the shard's server (it is restarted)", kill_shard),
    Fault("provider-outage", ("NAME", "MODE"), f"provider primary|backup answers {'/'.join(PROVIDER_MODES)}",
          provider_outage),
    Fault("dependency-cycle", (), "controller and retriever wait for each other", dependency_cycle),
    Fault("pending-migration", (), "components require a schema version no migration produced", pending_migration),
)


def find(name: str) -> Fault:
    for fault in CATALOGUE:
        if fault.name == name:
            return fault
    raise LabError(f"unknown fault {name!r}; known: {', '.join(f.name for f in CATALOGUE)}")


def inject(lab: Lab, name: str, args: Sequence[str]) -> str:
    fault = find(name)
    if len(args) != len(fault.args):
        raise LabError(f"usage: fault {fault.name} {' '.join(fault.args)}")
    if not lab.is_up():
        raise LabError("the lab is down: start it with `make lab-up`")
    try:
        return fault.inject(lab, *args)
    except KubeError as exc:
        raise LabError(f"fault {name} failed: {exc}") from exc
