"""Service names turned into the address of a Ready pod, the way kube-proxy and cluster DNS would."""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from ragops_lab.runtime.env import PodEnv
from ragops_lab.runtime.kubeapi import KubeClient, KubeError, pod_is_ready

RESOLVE_TTL_SECONDS = 1.0


DEFAULT_SHARD_URL_TEMPLATE = "http://vectorstore-{ordinal}:8080"


T = TypeVar("T")


class ResolveError(RuntimeError):
    """A Service name could not be turned into the address of a Ready pod."""


def is_ip_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_service_host(host: str, default_namespace: str) -> tuple[str, str]:
    """`svc`, `svc.ns`, `svc.ns.svc` and `svc.ns.svc.cluster.local` → (service, namespace)."""
    labels = host.split(".")
    if len(labels) == 1:
        return labels[0], default_namespace
    return labels[0], labels[1]


def _target_port(service: Mapping[str, Any], url_port: int | None, pod: Mapping[str, Any]) -> int:
    ports = service.get("spec", {}).get("ports") or []
    if not ports:
        raise ResolveError(f"Service {service['metadata']['name']} has no ports")
    matching = [p for p in ports if url_port is None or p.get("port") == url_port]
    if not matching:
        raise ResolveError(f"Service {service['metadata']['name']} has no port {url_port}")
    target = matching[0].get("targetPort", matching[0].get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    raise ResolveError(f"named targetPort {target!r} not found in pod {pod['metadata']['name']}")


def service_url(name_or_url: str, kube: KubeClient | None = None) -> str:
    """Turn a URL whose host is a Service name into the URL of one of its Ready pods.

    An IP host (or localhost) is returned unchanged. Raises ResolveError when the Service is
    missing or has no Ready pod, which is what makes a dependency "not ready".
    """
    url = name_or_url if "://" in name_or_url else f"http://{name_or_url}"
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if is_ip_host(host):
        return url
    client = kube or PodEnv.from_env(os.environ).kube()
    name, namespace = split_service_host(host, client.namespace)
    try:
        service = client.get_optional("services", name, namespace)
        if service is None:
            raise ResolveError(f"Service {namespace}/{name} not found")
        selector = service.get("spec", {}).get("selector") or {}
        if not selector:
            raise ResolveError(f"Service {namespace}/{name} has no selector")
        query = urllib.parse.urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())})
        pods = client.get(client.path("pods", namespace=namespace) + "?" + query).get("items") or []
    except KubeError as exc:
        raise ResolveError(f"cannot resolve Service {namespace}/{name}: {exc}") from exc
    ready = sorted((p for p in pods if pod_is_ready(p)), key=lambda p: p["metadata"]["name"])
    if not ready:
        raise ResolveError(f"Service {namespace}/{name} has no Ready pod")
    pod = ready[0]
    port = _target_port(service, parts.port, pod)
    netloc = f"{pod['status']['podIP']}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def shard_url(template: str, shard: str) -> str:
    """The URL of a shard from a template with `{shard}` and `{ordinal}` (shard-2 → 2)."""
    match = re.search(r"(\d+)$", shard)
    return template.format(shard=shard, ordinal=match.group(1) if match else shard)


class TtlCache(Generic[T]):
    """A value fetched at most once per `ttl` seconds; a failed fetch is retried on next use."""

    def __init__(self, fetch: Callable[[], T], ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None

    def get(self) -> T:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._value[0] >= self._ttl:
                self._value = (now, self._fetch())
            return self._value[1]


class ServiceResolver:
    """service_url with a short per-URL cache, so hot paths do not hit the API on every call."""

    def __init__(self, kube: KubeClient, ttl: float = RESOLVE_TTL_SECONDS) -> None:
        self._kube = kube
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, TtlCache[str]] = {}

    def resolve(self, url: str) -> str:
        with self._lock:
            entry = self._cache.get(url)
            if entry is None:
                entry = TtlCache(lambda: service_url(url, self._kube), self._ttl)
                self._cache[url] = entry
        return entry.get()
