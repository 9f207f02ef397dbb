"""Generator: the RAG API. Retrieves context, asks the configured LLM provider, cites documents.

Its flags are the runbook's levers for a provider outage: which provider answers (or a weighted
split while ramping back), a fallback that never calls a provider (cached answers or a safe
refusal), a throttle and concurrency cap, and a background queue for long requests. Provider
failures are classified and counted rather than retried, so an operator sees what is happening.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragops_lab.clock import utc_now
from ragops_lab.runtime.env import ConfigError, PodEnv, env_bool, env_choice, env_float, env_int, env_str, resolve_path
from ragops_lab.runtime.gates import Gates, dependency_status, enforce_schema_at_start
from ragops_lab.runtime.httpclient import Unreachable, error_text, http_json
from ragops_lab.runtime.kubeapi import KubeClient, KubeError
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.resolve import ResolveError, ServiceResolver, TtlCache
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, main_guard, ok, run_app

FALLBACK_MODES = ("off", "cache", "refuse")
FLAG_KEYS = ("PROVIDER", "FALLBACK_MODE", "THROTTLE_RPS", "MAX_CONCURRENCY", "LONG_REQUEST_QUEUE",
             "LONG_REQUEST_CHARS", "PROVIDER_WEIGHTS")
REFUSAL = "I can't answer that right now: the assistant is in a safe mode. Please try again later."
SYSTEM_PROMPT = "Answer using only the context below. Cite every document you use by its id in brackets."
DOC_ID = re.compile(r"doc-\d{5}")
FLAGS_TTL_SECONDS = 1.0
ANSWER_CACHE_TTL_SECONDS = 5.0


# --- flags and configuration -------------------------------------------------------------------


def parse_weights(raw: str) -> tuple[tuple[str, int], ...]:
    """`primary:25,backup:75` → (("primary", 25), ("backup", 75))."""
    weights = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, weight = part.partition(":")
        if not name.strip() or not weight.strip().isdigit():
            raise ConfigError(f"PROVIDER_WEIGHTS entries look like name:weight, got {part!r}")
        weights.append((name.strip().lower(), int(weight)))
    if weights and sum(w for _, w in weights) == 0:
        raise ConfigError("PROVIDER_WEIGHTS must not all be zero")
    return tuple(weights)


@dataclass(frozen=True)
class Flags:
    """The switches an operator flips during a provider incident."""

    provider: str = "primary"
    fallback_mode: str = "off"
    throttle_rps: float = 0.0
    max_concurrency: int = 0
    long_request_queue: bool = False
    long_request_chars: int = 2000
    provider_weights: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Flags:
        return cls(
            provider=env_str(env, "PROVIDER", "primary").lower(),
            fallback_mode=env_choice(env, "FALLBACK_MODE", FALLBACK_MODES, "off"),
            throttle_rps=env_float(env, "THROTTLE_RPS", 0.0),
            max_concurrency=env_int(env, "MAX_CONCURRENCY", 0),
            long_request_queue=env_bool(env, "LONG_REQUEST_QUEUE"),
            long_request_chars=env_int(env, "LONG_REQUEST_CHARS", 2000),
            provider_weights=parse_weights(env_str(env, "PROVIDER_WEIGHTS")),
        )

    def choose_provider(self, routing_key: str) -> str:
        """The provider for a request: deterministic in the key, so a weighted split is testable."""
        if not self.provider_weights:
            return self.provider
        total = sum(weight for _, weight in self.provider_weights)
        point = int(hashlib.sha256(routing_key.encode()).hexdigest()[:8], 16) % total
        for name, bound in zip((n for n, _ in self.provider_weights),
                               itertools.accumulate(w for _, w in self.provider_weights)):
            if point < bound:
                return name
        raise AssertionError("weights cover the whole range")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    key: str
    model: str


def env_suffix(name: str) -> str:
    return name.upper().replace("-", "_")


def provider_endpoints(env: Mapping[str, str]) -> dict[str, Endpoint]:
    """Every provider with a PROVIDER_URL_<NAME>, by lower-case name."""
    endpoints = {}
    for key, url in env.items():
        if key.startswith("PROVIDER_URL_") and url.strip():
            suffix = key.removeprefix("PROVIDER_URL_")
            name = suffix.lower().replace("_", "-")
            endpoints[name] = Endpoint(name, url.strip(), env.get(f"PROVIDER_KEY_{suffix}", ""),
                                       env_str(env, f"PROVIDER_MODEL_{suffix}", "lab-model"))
    return endpoints


@dataclass(frozen=True)
class GeneratorConfig:
    retriever_url: str
    top_k: int
    endpoints: dict[str, Endpoint]
    provider_timeout: float
    base_flags: dict[str, str]
    flags_configmap: str | None = None
    answer_cache_configmap: str | None = None
    answer_cache_file: Path | None = None
    queue_max: int = 100
    gates: Gates = field(default_factory=lambda: Gates(None, "rag-schema", ()))

    @classmethod
    def from_env(cls, env: Mapping[str, str], pod: PodEnv) -> GeneratorConfig:
        base_flags = {key: env[key] for key in FLAG_KEYS if key in env}
        Flags.from_mapping(base_flags)  # reject bad flag values at start, not on the first request
        cache_file = env_str(env, "ANSWER_CACHE_FILE")
        return cls(
            retriever_url=env_str(env, "RETRIEVER_URL", "http://retriever:8080"),
            top_k=env_int(env, "TOP_K", 3),
            endpoints=provider_endpoints(env),
            provider_timeout=env_float(env, "PROVIDER_TIMEOUT", 5.0),
            base_flags=base_flags,
            flags_configmap=env_str(env, "FLAGS_CONFIGMAP") or None,
            answer_cache_configmap=env_str(env, "ANSWER_CACHE_CONFIGMAP") or None,
            answer_cache_file=resolve_path(cache_file, pod.mounts) if cache_file else None,
            queue_max=env_int(env, "QUEUE_MAX", 100),
            gates=Gates.from_env(env),
        )


@dataclass(frozen=True)
class Question:
    text: str
    qid: str | None = None
    long: bool = False

    @property
    def routing_key(self) -> str:
        return self.qid or self.text

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Question:
        text, qid = body.get("question"), body.get("qid")
        if not isinstance(text, str) or not text.strip():
            raise HttpError(400, "question must be a non-empty string")
        if qid is not None and not isinstance(qid, str):
            raise HttpError(400, "qid must be a string")
        return cls(text, qid, bool(body.get("long", False)))


# --- admission: throttle, concurrency, backlog -------------------------------------------------


class TokenBucket:
    """Requests per second with a burst of one second's worth; the rate may change between calls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._last = 0.0

    def take(self, rate: float) -> float:
        """0 when a request may pass, else the seconds until one may."""
        with self._lock:
            now, capacity = self._clock(), max(1.0, rate)
            tokens = capacity if self._tokens is None else self._tokens + (now - self._last) * rate
            self._tokens, self._last = min(capacity, tokens), now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


@dataclass
class QueueItem:
    id: str
    question: Question
    submitted_at: str
    status: str = "queued"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "submitted_at": self.submitted_at}

    def detail(self) -> dict[str, Any]:
        extra = {"result": self.result} if self.result else {"error": self.error} if self.error else {}
        return {**self.summary(), "qid": self.question.qid, **extra}


class Backlog:
    """The worker-queue backlog for long requests, worked in order by one background worker."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._cond = threading.Condition()
        self._pending: deque[QueueItem] = deque()
        self._items: dict[str, QueueItem] = {}
        self._ids = itertools.count(1)

    def submit(self, question: Question) -> QueueItem | None:
        with self._cond:
            if len(self._pending) >= self._limit:
                return None
            item = QueueItem(f"req-{next(self._ids):06d}", question, utc_now())
            self._items[item.id] = item
            self._pending.append(item)
            self._cond.notify()
            return item

    def take(self, timeout: float) -> QueueItem | None:
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            if not self._pending:
                return None
            item = self._pending.popleft()
            item.status = "running"
            return item

    def get(self, item_id: str) -> QueueItem | None:
        with self._cond:
            return self._items.get(item_id)

    def view(self) -> dict[str, Any]:
        with self._cond:
            items = [item.summary() for item in self._items.values()]
            return {"backlog": len(self._pending), "items": items}


class Metrics:
    """Counters served at GET /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {
            "requests": 0, "responses": {}, "modes": {}, "errors": {}, "provider_calls": {},
            "provider_errors": {}, "cache_hits": 0, "cache_misses": 0, "throttled": 0, "queued": 0,
        }

    def incr(self, key: str, *path: str) -> None:
        with self._lock:
            if not path:
                self._data[key] += 1
                return
            node = self._data[key]
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = node.get(path[-1], 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return deepcopy(self._data)


# --- the service -------------------------------------------------------------------------------


class ProviderFailure(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


def classify_status(status: int) -> str | None:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "server_error"
    return "bad_response" if status >= 300 else None


def parse_cache(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Answer-cache entries by qid: JSON {"answer", "citations"} or plain answer text."""
    cache = {}
    for qid, raw in data.items():
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except ValueError:
                value = {"answer": raw}
        if isinstance(value, str):
            value = {"answer": value}
        if isinstance(value, dict) and isinstance(value.get("answer"), str):
            cache[qid] = {"answer": value["answer"], "citations": list(value.get("citations") or [])}
    return cache


class GeneratorService:
    def __init__(self, config: GeneratorConfig, kube: KubeClient, log: JsonLog) -> None:
        self.config = config
        self.kube = kube
        self.log = log
        self.resolver = ServiceResolver(kube)
        self.metrics = Metrics()
        self.backlog = Backlog(config.queue_max)
        self._bucket = TokenBucket()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._flags = TtlCache(self._read_flags, FLAGS_TTL_SECONDS)
        self._answer_cache = TtlCache(self._read_answer_cache, ANSWER_CACHE_TTL_SECONDS)

    def _read_flags(self) -> Flags:
        overrides: dict[str, str] = {}
        if self.config.flags_configmap:
            try:
                data = self.kube.configmap_data(self.config.flags_configmap) or {}
                overrides = {k: v for k, v in data.items() if k in FLAG_KEYS}
            except KubeError as exc:
                self.log.error("flags_read_failed", configmap=self.config.flags_configmap, error=str(exc))
        try:
            return Flags.from_mapping({**self.config.base_flags, **overrides})
        except ConfigError as exc:
            self.log.error("flags_invalid", configmap=self.config.flags_configmap, error=str(exc))
            return Flags.from_mapping(self.config.base_flags)

    def _read_answer_cache(self) -> dict[str, dict[str, Any]]:
        try:
            if self.config.answer_cache_configmap:
                return parse_cache(self.kube.configmap_data(self.config.answer_cache_configmap) or {})
            if self.config.answer_cache_file:
                return parse_cache(json.loads(self.config.answer_cache_file.read_text()))
        except (KubeError, OSError, ValueError) as exc:
            self.log.error("answer_cache_unavailable", error=str(exc))
        return {}

    def flags(self) -> Flags:
        return self._flags.get()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # answering

    def answer(self, request: Request) -> Response:
        self.metrics.incr("requests")
        try:
            response = self._answer(Question.parse(request.json()), self.flags())
        except HttpError as err:
            self.metrics.incr("responses", str(err.status))
            raise
        self.metrics.incr("responses", str(response.status))
        return response

    def _answer(self, question: Question, flags: Flags) -> Response:
        if flags.fallback_mode != "off":
            return ok(self._fallback(question, flags.fallback_mode))
        if flags.long_request_queue and (question.long or len(question.text) > flags.long_request_chars):
            return self._enqueue(question)
        with self._admitted(flags):
            return ok(self._generate(question, flags))

    def _fallback(self, question: Question, mode: str) -> dict[str, Any]:
        """Cached answer for a known qid, else a safe refusal; never a provider call."""
        entry = None
        if mode == "cache":
            entry = self._answer_cache.get().get(question.qid or "")
            self.metrics.incr("cache_hits" if entry else "cache_misses")
        served = "cache" if entry else "refuse"
        self.metrics.incr("modes", served)
        self.log.info("answer", qid=question.qid, mode=served, provider=None)
        return {"qid": question.qid, "answer": entry["answer"] if entry else REFUSAL,
                "citations": entry["citations"] if entry else [], "provider": None, "mode": served,
                "cached": entry is not None}

    def _enqueue(self, question: Question) -> Response:
        item = self.backlog.submit(question)
        if item is None:
            raise HttpError(503, "long-request backlog is full", {"Retry-After": "5"})
        self.metrics.incr("queued")
        self.log.info("request_queued", id=item.id, qid=question.qid)
        return ok({"id": item.id, "status": item.status, "status_url": f"/v1/queue/{item.id}"}, status=202)

    @contextmanager
    def _admitted(self, flags: Flags) -> Iterator[None]:
        """Apply the throttle and the concurrency cap; 429 with Retry-After for the excess."""
        wait = self._bucket.take(flags.throttle_rps) if flags.throttle_rps > 0 else 0.0
        if wait > 0:
            self.metrics.incr("throttled")
            raise HttpError(429, "throttled", {"Retry-After": str(max(1, round(wait + 0.499)))})
        with self._lock:
            if flags.max_concurrency > 0 and self._in_flight >= flags.max_concurrency:
                self.metrics.incr("throttled")
                raise HttpError(429, "too many requests in flight", {"Retry-After": "1"})
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _generate(self, question: Question, flags: Flags) -> dict[str, Any]:
        docs = self._retrieve(question)
        provider = flags.choose_provider(question.routing_key)
        try:
            content = self._call_provider(provider, question, docs)
        except ProviderFailure as failure:
            self.metrics.incr("errors", failure.kind)
            self.metrics.incr("provider_errors", provider, failure.kind)
            self.log.error("provider_error", provider=provider, kind=failure.kind, status=failure.status,
                           error=failure.message, qid=question.qid)
            raise HttpError(502, {"error": {"kind": failure.kind, "provider": provider, "status": failure.status,
                                            "message": failure.message}}) from failure
        retrieved = [doc["id"] for doc in docs]
        citations = list(dict.fromkeys(i for i in DOC_ID.findall(content) if i in retrieved))
        self.metrics.incr("modes", "normal")
        self.log.info("answer", qid=question.qid, mode="normal", provider=provider, citations=citations)
        return {"qid": question.qid, "answer": content, "citations": citations, "provider": provider,
                "mode": "normal", "cached": False, "retrieved": retrieved}

    def _retrieve(self, question: Question) -> list[dict[str, Any]]:
        try:
            url = self.resolver.resolve(self.config.retriever_url).rstrip("/") + "/search"
            result = http_json("POST", url, {"query": question.text, "k": self.config.top_k}, timeout=10.0)
        except (ResolveError, TimeoutError, Unreachable) as exc:
            result_error = str(exc)
        else:
            if result.status == 200 and isinstance(result.body, dict):
                return list(result.body.get("results") or [])
            result_error = error_text(result)
        self.metrics.incr("errors", "retriever")
        self.log.error("retriever_error", error=result_error, qid=question.qid)
        error = {"kind": "retriever", "provider": None, "status": None, "message": result_error}
        raise HttpError(502, {"error": error})

    def _call_provider(self, name: str, question: Question, docs: list[dict[str, Any]]) -> str:
        endpoint = self.config.endpoints.get(name)
        if endpoint is None:
            raise ProviderFailure("config", f"no PROVIDER_URL_{env_suffix(name)} configured for provider {name!r}")
        self.metrics.incr("provider_calls", name)
        try:
            url = self.resolver.resolve(endpoint.url).rstrip("/") + "/v1/chat/completions"
            result = http_json("POST", url, _chat_request(endpoint.model, question, docs),
                               {"Authorization": f"Bearer {endpoint.key}"}, self.config.provider_timeout)
        except TimeoutError as exc:
            raise ProviderFailure("timeout", f"no answer within {self.config.provider_timeout}s") from exc
        except (ResolveError, Unreachable) as exc:
            raise ProviderFailure("unavailable", str(exc)) from exc
        kind = classify_status(result.status)
        if kind:
            raise ProviderFailure(kind, error_text(result), result.status)
        try:
            return str(result.body["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderFailure("bad_response", f"unexpected completion body: {exc!r}", result.status) from exc

    def work_backlog(self, stopping: threading.Event) -> None:
        """The background worker: long requests are answered one at a time, in order."""
        while not stopping.is_set():
            item = self.backlog.take(timeout=0.2)
            if item is None:
                continue
            try:
                item.result = self._generate(item.question, self.flags())
                item.status = "done"
            except HttpError as err:
                item.error, item.status = err.body, "failed"
            self.log.info("queued_request_finished", id=item.id, status=item.status)

    def config_view(self, _: Request) -> Response:
        return ok({**self.flags().__dict__, "providers": sorted(self.config.endpoints)})

    def queue_item(self, request: Request) -> Response:
        item = self.backlog.get(request.params["id"])
        if item is None:
            raise HttpError(404, f"no queued request {request.params['id']}")
        return ok(item.detail())

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        try:
            self.resolver.resolve(self.config.retriever_url)
        except ResolveError as exc:
            return False, {"reason": f"retriever not resolvable: {exc}"}
        dependencies = dependency_status(self.config.gates.wait_for, self.resolver)
        waiting = {name: state for name, state in dependencies.items() if state != "ready"}
        if waiting:
            return False, {"reason": "waiting for dependencies", "dependencies": waiting}
        return True, {}

    def app(self) -> App:
        router = Router()
        router.add("POST", "/v1/answer", self.answer)
        router.add("GET", "/v1/queue", lambda _: ok(self.backlog.view()))
        router.add("GET", "/v1/queue/{id}", self.queue_item)
        router.add("GET", "/v1/config", self.config_view)
        router.add("GET", "/metrics", lambda _: ok({**self.metrics.snapshot(), "in_flight": self.in_flight}))
        add_health(router, self.readiness)
        return App("generator", router, self.log, background=[self.work_backlog])


def _chat_request(model: str, question: Question, docs: list[dict[str, Any]]) -> dict[str, Any]:
    context = "\n".join(f"[{doc['id']}] {doc.get('title', '')}" for doc in docs) or "(no documents found)"
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question.text}"},
        ],
        "temperature": 0,
    }


def serve(env: Mapping[str, str]) -> int:
    pod = PodEnv.from_env(env)
    config = GeneratorConfig.from_env(env, pod)
    log = JsonLog("generator", pod=pod.name)
    kube = pod.kube()
    if not enforce_schema_at_start(config.gates, kube, log):
        return 1
    return run_app(GeneratorService(config, kube, log).app(), pod)


def main() -> int:
    return main_guard("generator", lambda: serve(os.environ))


if __name__ == "__main__":
    sys.exit(main())
