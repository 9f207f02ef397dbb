"""Retriever: fans a query out over the serving shards named by the shard registry ConfigMap.

The registry is re-read at least once a second, so marking a shard quarantined (or routing it to
a replica) takes effect on the next queries; every query logs which shards it called. A failing
shard costs its share of the results and an entry in `errors`, never the whole answer.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragops_lab.runtime.env import ConfigError, PodEnv, env_float, env_list, env_str
from ragops_lab.runtime.gates import Gates, dependency_status, enforce_schema_at_start
from ragops_lab.runtime.httpclient import Exchange, KeepAliveClient, Unreachable, error_text
from ragops_lab.runtime.kubeapi import KubeClient, KubeError
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.resolve import DEFAULT_SHARD_URL_TEMPLATE, ResolveError, ServiceResolver, TtlCache, shard_url
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, main_guard, ok, run_app

STATES = ("serving", "quarantined", "restoring", "validating")
DEFAULT_SHARDS = "shard-0,shard-1,shard-2,shard-3"
MAX_REGISTRY_CACHE_SECONDS = 1.0
DEFAULT_ROUTE_URL_TEMPLATE = "http://{name}:8080"
MAX_EMBED_LATENCY_MS = 10_000.0


@dataclass(frozen=True)
class RegistryEntry:
    shard: str
    state: str
    route_to: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Target:
    shard: str
    url: str
    routed_to: str | None


@dataclass(frozen=True)
class Registry:
    entries: tuple[RegistryEntry, ...]
    source: str
    error: str | None = None


@dataclass(frozen=True)
class RetrieverConfig:
    registry_configmap: str
    cache_seconds: float
    url_template: str
    route_template: str
    shard_timeout: float
    default_shards: tuple[str, ...]
    gates: Gates
    # The query-embedding model's inference time, spent waiting: the model runs elsewhere (a GPU server, an
    # embeddings API). The lab's shards embed the text themselves in microseconds; 0 models no such model.
    embed_latency: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrieverConfig:
        cache_seconds = env_float(env, "REGISTRY_CACHE_SECONDS", 0.5)
        if not 0 <= cache_seconds <= MAX_REGISTRY_CACHE_SECONDS:
            raise ConfigError("REGISTRY_CACHE_SECONDS must be between 0 and 1")
        embed_ms = env_float(env, "EMBED_LATENCY_MS", 0.0)
        if not 0 <= embed_ms <= MAX_EMBED_LATENCY_MS:
            raise ConfigError(f"EMBED_LATENCY_MS must be between 0 and {MAX_EMBED_LATENCY_MS:g} (milliseconds)")
        return cls(
            registry_configmap=env_str(env, "REGISTRY_CONFIGMAP", "rag-shard-registry"),
            cache_seconds=cache_seconds,
            url_template=env_str(env, "SHARD_URL_TEMPLATE", DEFAULT_SHARD_URL_TEMPLATE),
            route_template=env_str(env, "ROUTE_URL_TEMPLATE", DEFAULT_ROUTE_URL_TEMPLATE),
            shard_timeout=env_float(env, "SHARD_TIMEOUT", 2.0),
            default_shards=tuple(env_list(env, "SHARDS", DEFAULT_SHARDS)),
            gates=Gates.from_env(env),
            embed_latency=embed_ms / 1000.0,
        )


def parse_registry(data: Mapping[str, str]) -> tuple[list[RegistryEntry], dict[str, str]]:
    """Registry entries by shard id, and the keys that could not be understood (with why)."""
    entries, invalid = [], {}
    for shard, raw in sorted(data.items()):
        try:
            value = json.loads(raw)
            state = value["state"]
        except (ValueError, KeyError, TypeError) as exc:
            invalid[shard] = f"unreadable registry entry: {exc}"
            continue
        if state not in STATES:
            invalid[shard] = f"unknown state {state!r}"
            continue
        entries.append(RegistryEntry(shard, state, value.get("route_to") or None, value.get("url") or None))
    return entries, invalid


def plan_targets(entries: Sequence[RegistryEntry], template: str,
                 route_template: str = DEFAULT_ROUTE_URL_TEMPLATE) -> tuple[list[Target], dict[str, str]]:
    """Where each shard's share of a query goes, and which shards are skipped and why.

    A `route_to` replica (a URL, or a name put into `route_template`) takes the shard's traffic
    whatever the shard's own state; without one, only a shard in `serving` is queried.
    """
    targets, skipped = [], {}
    for entry in entries:
        if entry.route_to:
            url = entry.route_to if "://" in entry.route_to else route_template.format(name=entry.route_to)
            targets.append(Target(entry.shard, url, entry.route_to))
        elif entry.state == "serving":
            targets.append(Target(entry.shard, entry.url or shard_url(template, entry.shard), None))
        else:
            skipped[entry.shard] = entry.state
    return targets, skipped


def merge_results(per_shard: Mapping[str, Sequence[Mapping[str, Any]]], k: int) -> list[dict[str, Any]]:
    """The global top k: descending score, ties by id, exactly as one index over all shards."""
    merged = [{**hit, "shard": shard} for shard, hits in per_shard.items() for hit in hits]
    merged.sort(key=lambda hit: (-float(hit["score"]), str(hit["id"])))
    return merged[:k]


class RetrieverService:
    def __init__(self, config: RetrieverConfig, kube: KubeClient, log: JsonLog) -> None:
        self.config = config
        self.kube = kube
        self.log = log
        self.resolver = ServiceResolver(kube)
        self._last_good: Registry | None = None
        self._lock = threading.Lock()
        self._registry = TtlCache(self._read_registry, config.cache_seconds)
        # Connections to the shards stay open between queries, as a service's client pool keeps them.
        self._shards = KeepAliveClient()

    def _read_registry(self) -> Registry:
        """The registry from the API; on an API failure the last one read, marked stale."""
        try:
            data = self.kube.configmap_data(self.config.registry_configmap)
        except KubeError as exc:
            self.log.error("registry_read_failed", configmap=self.config.registry_configmap, error=str(exc))
            with self._lock:
                last = self._last_good
            return Registry(last.entries if last else self._default_entries(), "stale", str(exc))
        if data is None:
            registry = Registry(self._default_entries(), "default")
        else:
            parsed, invalid = parse_registry(data)
            for shard, why in invalid.items():
                self.log.warning("registry_entry_ignored", shard=shard, reason=why)
            registry = Registry(tuple(parsed), "configmap")
        with self._lock:
            self._last_good = registry
        return registry

    def _default_entries(self) -> tuple[RegistryEntry, ...]:
        return tuple(RegistryEntry(shard, "serving") for shard in self.config.default_shards)

    def _send_to_shard(self, target: Target, query: str, k: int) -> tuple[str, Exchange | str]:
        """(resolved url, the search sent) or (url, error text) for one shard."""
        try:
            url = self.resolver.resolve(target.url)
        except ResolveError as exc:
            return target.url, str(exc)
        return url, self._shards.send("POST", url.rstrip("/") + "/search", {"query": query, "k": k},
                                      timeout=self.config.shard_timeout)

    def _shard_answer(self, sent: Exchange | str) -> list[dict[str, Any]] | str:
        """A shard's hits, or the error text for its share of the answer."""
        if isinstance(sent, str):
            return sent
        try:
            result = sent.result()
        except TimeoutError:
            return f"timed out after {self.config.shard_timeout}s"
        except Unreachable as exc:
            return str(exc)
        if result.status != 200 or not isinstance(result.body, dict):
            return error_text(result)
        return list(result.body.get("results") or [])

    def _fan_out(self, targets: Sequence[Target], query: str, k: int) -> dict[str, tuple[str, Any]]:
        """Every shard's (url, hits or error text): all the searches are sent before any answer is
        read, so the shards search side by side while this thread waits, as an event-loop service
        fans out (no thread per shard request)."""
        sent = [(target.shard, self._send_to_shard(target, query, k)) for target in targets]
        return {shard: (url, self._shard_answer(exchange)) for shard, (url, exchange) in sent}

    def search(self, request: Request) -> Response:
        body = request.json()
        query, k = body.get("query"), body.get("k", 10)
        if not isinstance(query, str) or not query.strip():
            raise HttpError(400, "query must be a non-empty string")
        if not isinstance(k, int) or k < 1:
            raise HttpError(400, "k must be a positive integer")
        if self.config.embed_latency:
            time.sleep(self.config.embed_latency)
        registry = self._registry.get()
        targets, skipped = plan_targets(registry.entries, self.config.url_template, self.config.route_template)
        answers = self._fan_out(targets, query, k)
        hits = {shard: found for shard, (_, found) in answers.items() if isinstance(found, list)}
        errors = {shard: found for shard, (_, found) in answers.items() if isinstance(found, str)}
        routed = {t.shard: t.routed_to for t in targets if t.routed_to}
        results = merge_results(hits, k)
        self.log.info("query", query=query[:200], shards=[t.shard for t in targets],
                      targets={shard: url for shard, (url, _) in answers.items()}, skipped=skipped,
                      routed=routed, errors=errors, results=len(results), registry=registry.source)
        return ok({"results": results, "shards_queried": [t.shard for t in targets], "shards_skipped": skipped,
                   "routed": routed, "errors": errors, "registry": registry.source})

    def registry_view(self, _: Request) -> Response:
        registry = self._registry.get()
        targets, skipped = plan_targets(registry.entries, self.config.url_template, self.config.route_template)
        return ok({"source": registry.source, "error": registry.error,
                   "entries": [e.__dict__ for e in registry.entries],
                   "targets": {t.shard: t.url for t in targets}, "skipped": skipped})

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        registry = self._registry.get()
        if registry.error:
            return False, {"reason": f"shard registry unreadable: {registry.error}"}
        dependencies = dependency_status(self.config.gates.wait_for, self.resolver)
        waiting = {name: state for name, state in dependencies.items() if state != "ready"}
        if waiting:
            return False, {"reason": "waiting for dependencies", "dependencies": waiting}
        return True, {"registry": registry.source}

    def app(self) -> App:
        router = Router()
        router.add("POST", "/search", self.search)
        router.add("GET", "/registry", self.registry_view)
        add_health(router, self.readiness)
        return App("retriever", router, self.log)


def serve(env: Mapping[str, str]) -> int:
    pod = PodEnv.from_env(env)
    config = RetrieverConfig.from_env(env)
    log = JsonLog("retriever", pod=pod.name)
    kube = pod.kube()
    if not enforce_schema_at_start(config.gates, kube, log):
        return 1
    return run_app(RetrieverService(config, kube, log).app(), pod)


def main() -> int:
    return main_guard("retriever", lambda: serve(os.environ))


if __name__ == "__main__":
    sys.exit(main())
