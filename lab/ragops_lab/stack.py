"""The RAG stack under recovery: its manifests applied through the API, its readiness and endpoints."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ragops_lab import corpus
from ragops_lab.agent.api import APPS, BATCH, CORE, Api, object_path
from ragops_lab.agent.proxy import ADDRESS_ANNOTATION, proxied
from ragops_lab.runtime.httpclient import http_json
from ragops_lab.runtime.kubeapi import KubeError, pod_is_ready

LAB_DIR = Path(__file__).resolve().parents[1]
MANIFEST_DIR = LAB_DIR / "manifests"
MIGRATION_TEMPLATE = MANIFEST_DIR / "templates" / "migration-job.yaml"
NAMESPACE = "rag-lab"
REGISTRY = "rag-shard-registry"
ANSWER_CACHE = "rag-answer-cache"
MIGRATION_JOB_CONFIGMAP = "rag-migration-job"
FIELD_MANAGER = "ragops-lab"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
# kind → (API prefix, plural) for what the manifests contain.
KINDS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "Namespace": (CORE, "namespaces"), "ConfigMap": (CORE, "configmaps"), "Secret": (CORE, "secrets"),
    "Service": (CORE, "services"), "Deployment": (APPS, "deployments"), "StatefulSet": (APPS, "statefulsets"),
    "Job": (BATCH, "jobs"), "ServiceAccount": (CORE, "serviceaccounts"),
    "Role": (RBAC, "roles"), "RoleBinding": (RBAC, "rolebindings"),
})
SERVICES = ("retriever", "generator", "controller", "indexer", "provider-primary", "provider-backup")

Obj = dict[str, Any]


def manifests(directory: Path = MANIFEST_DIR) -> list[Obj]:
    """Every object of the stack, in file order (namespace first)."""
    objects: list[Obj] = []
    for path in sorted(directory.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def answer_cache_configmap() -> Obj:
    """The generator's answer cache (fallback mode `cache`) from lab/data, one key per golden qid."""
    cache = json.loads((corpus.DATA_DIR / corpus.ANSWER_CACHE_FILE).read_text())
    return _configmap(ANSWER_CACHE, {qid: json.dumps(answer, sort_keys=True) for qid, answer in cache.items()})


def migration_job_configmap(template: Path = MIGRATION_TEMPLATE) -> Obj:
    """The migration Job template, stored in the cluster where the playbooks can read it."""
    return _configmap(MIGRATION_JOB_CONFIGMAP, {"job.yaml": template.read_text()})


def _configmap(name: str, data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "rag"}}}


def resource_path(obj: Mapping[str, Any]) -> str:
    prefix, plural = KINDS[obj["kind"]]
    meta = obj["metadata"]
    if obj["kind"] == "Namespace":
        return f"{prefix}/{plural}/{meta['name']}"
    return object_path(prefix, plural, meta.get("namespace") or NAMESPACE, meta["name"])


def apply(api: Api, obj: Obj, namespace: str = NAMESPACE) -> None:
    """Server-side apply: create the object or bring it to what the manifest says."""
    query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
    obj = {**obj, "metadata": {"namespace": namespace, **obj["metadata"]}} if obj["kind"] != "Namespace" else obj
    api.call("PATCH", f"{resource_path(obj)}?{query}", obj, "application/apply-patch+yaml")


def apply_stack(api: Api) -> int:
    objects = [*manifests(), answer_cache_configmap(), migration_job_configmap()]
    for obj in objects:
        apply(api, obj)
    return len(objects)


# --- readiness -----------------------------------------------------------------------------------


def workloads(api: Api, namespace: str = NAMESPACE) -> Iterator[Obj]:
    for plural in ("deployments", "statefulsets"):
        yield from api.list(APPS, plural, namespace)[0]


def rolled_out(workload: Mapping[str, Any]) -> bool:
    """The readiness predicate of `kubectl rollout status` for Deployments and StatefulSets."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    desired = int(spec.get("replicas", 1))
    if int(status.get("observedGeneration") or 0) < int(workload["metadata"].get("generation") or 1):
        return False
    if workload["kind"] == "StatefulSet" and status.get("currentRevision") != status.get("updateRevision"):
        return False
    return (int(status.get("updatedReplicas") or 0) == desired == int(status.get("replicas") or 0)
            and int(status.get("readyReplicas") or 0) == desired)


def not_ready(api: Api, namespace: str = NAMESPACE) -> list[str]:
    """Workloads not rolled out, pods not Ready and Services without an address (empty when all is up)."""
    waiting = [f"{w['kind']}/{w['metadata']['name']}" for w in workloads(api, namespace) if not rolled_out(w)]
    # Pods that ran to completion (a migration Job's) are done, not unready.
    pods = [p for p in api.list(CORE, "pods", namespace)[0]
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    services = api.list(CORE, "services", namespace)[0]
    return (waiting + [f"Pod/{p['metadata']['name']}" for p in pods if not pod_is_ready(p)]
            + [f"Service/{s['metadata']['name']}" for s in services if proxied(s) and not service_url(s)])


# --- endpoints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Host-reachable URLs of the stack's Services (stable across pod restarts, see agent/proxy.py)."""

    services: dict[str, str]
    shards: dict[str, str]

    @classmethod
    def resolve(cls, api: Api, namespace: str = NAMESPACE) -> Endpoints:
        urls = {s["metadata"]["name"]: service_url(s) for s in api.list(CORE, "services", namespace)[0]}
        return cls({name: urls.get(name, "") for name in SERVICES},
                   {shard: urls.get(f"vectorstore-{shard.rsplit('-', 1)[1]}", "") for shard in corpus.shard_ids()})


def service_url(service: Mapping[str, Any]) -> str:
    address = (service["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION)
    return f"http://{address}" if address else ""


def ask(generator_url: str, question: str, qid: str = "", timeout: float = 10.0) -> Obj:
    """One question to the generator's RAG API; the answer body, whatever its status."""
    body = {"question": question, **({"qid": qid} if qid else {})}
    result = http_json("POST", f"{generator_url}/v1/answer", body, timeout=timeout)
    answer = result.body if isinstance(result.body, dict) else {"error": result.body}
    return {"status": result.status, **answer}


def search(retriever_url: str, query: str, k: int = 10, timeout: float = 10.0) -> Obj:
    result = http_json("POST", f"{retriever_url}/search", {"query": query, "k": k}, timeout=timeout)
    return result.body if isinstance(result.body, dict) else {"error": result.body}


def registry_entry(api: Api, shard: str, namespace: str = NAMESPACE) -> Obj:
    configmap = api.get(object_path(CORE, "configmaps", namespace, REGISTRY))
    if configmap is None:
        raise KubeError(404, f"ConfigMap {namespace}/{REGISTRY} not found")
    return dict(json.loads((configmap.get("data") or {})[shard]))
