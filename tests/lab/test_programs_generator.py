"""The generator: the RAG answer path and every flag the provider-outage runbook flips."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import yaml
from programs_fakes import (
    FakeKube,
    LogCapture,
    capture_log,
    free_port,
    get,
    post,
    registry_entry,
    serving,
    shard_servers,
    wait_until,
)

from ragops_lab import corpus
from ragops_lab.programs import generator, provider, retriever
from ragops_lab.runtime.env import ConfigError, PodEnv
from ragops_lab.runtime.httpclient import HttpResult
from ragops_lab.runtime.server import RunningApp


@dataclass
class Stack:
    kube: FakeKube
    retriever: RunningApp
    providers: dict[str, RunningApp]
    golden: list[dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Four shards, a retriever over them, and primary and backup providers."""
    docs = corpus.generate()
    kube = FakeKube()
    golden = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())["queries"]
    with shard_servers(tmp_path_factory.mktemp("shards"), docs) as shards:
        kube.configmap("rag-shard-registry", {s: registry_entry(url=app.url) for s, app in shards.items()})
        config = retriever.RetrieverConfig.from_env({})
        retriever_app = RunningApp(retriever.RetrieverService(config, kube.client(), capture_log("r")[0]).app(),
                                   "127.0.0.1", 0)
        providers = {
            name: RunningApp(provider.ProviderService(
                provider.ProviderConfig(name=name, api_key=f"key-{name}", outage="none", hang_seconds=30),
                capture_log("provider")[0]).app(), "127.0.0.1", 0)
            for name in ("primary", "backup")
        }
        yield Stack(kube, retriever_app, providers, golden)
        for app in (retriever_app, *providers.values()):
            app.stop()
    kube.close()


@pytest.fixture(autouse=True)
def providers_healthy(stack: Stack) -> Iterator[None]:
    yield
    for app in stack.providers.values():
        post(f"{app.url}/admin/outage", {"mode": "none"})


def make_generator(stack: Stack, **env: str) -> tuple[generator.GeneratorService, LogCapture]:
    base = {
        "RETRIEVER_URL": stack.retriever.url,
        "PROVIDER_URL_PRIMARY": stack.providers["primary"].url, "PROVIDER_KEY_PRIMARY": "key-primary",
        "PROVIDER_URL_BACKUP": stack.providers["backup"].url, "PROVIDER_KEY_BACKUP": "key-backup",
        "PROVIDER_TIMEOUT": "2",
    }
    merged = {**base, **env}
    log, stream = capture_log("generator")
    config = generator.GeneratorConfig.from_env(merged, PodEnv.from_env(merged))
    return generator.GeneratorService(config, stack.kube.client(), log), stream


def ask(app: RunningApp, question: str, qid: str | None = None, **extra: Any) -> HttpResult:
    return post(f"{app.url}/v1/answer", {"question": question, "qid": qid, **extra}, timeout=10)


def queue_item_done(app: RunningApp, item_id: str) -> bool:
    return bool(get(f"{app.url}/v1/queue/{item_id}").body["status"] == "done")


def outage(stack: Stack, name: str, mode: str) -> None:
    assert post(f"{stack.providers[name].url}/admin/outage", {"mode": mode}).status == 200


def test_answers_cite_the_retrieved_golden_documents(stack: Stack) -> None:
    service, stream = make_generator(stack)
    with serving(service.app()) as app:
        for query in stack.golden[:5]:
            answered = ask(app, query["text"], query["qid"])
            assert answered.status == 200, answered.body
            body = answered.body
            assert (body["mode"], body["provider"], body["cached"]) == ("normal", "primary", False)
            assert set(query["expected_ids"]) <= set(body["citations"]) <= set(body["retrieved"])
            assert body["citations"][0] == query["expected_ids"][0]
        metrics = get(f"{app.url}/metrics").body
    assert metrics["provider_calls"] == {"primary": 5} and metrics["responses"] == {"200": 5}
    assert stream.events("answer")[0]["citations"][0] == stack.golden[0]["expected_ids"][0]


def test_cache_fallback_serves_known_qids_and_refuses_the_rest(stack: Stack) -> None:
    service, _ = make_generator(stack, FALLBACK_MODE="cache",
                                ANSWER_CACHE_FILE=str(corpus.DATA_DIR / corpus.ANSWER_CACHE_FILE))
    query = stack.golden[0]
    with serving(service.app()) as app:
        cached = ask(app, query["text"], query["qid"]).body
        unknown = ask(app, "What is the meaning of life?", "q999").body
        anonymous = ask(app, query["text"]).body
        metrics = get(f"{app.url}/metrics").body
    assert (cached["mode"], cached["cached"], cached["provider"]) == ("cache", True, None)
    assert cached["citations"] == query["expected_ids"]
    assert (unknown["mode"], unknown["cached"], unknown["answer"]) == ("refuse", False, generator.REFUSAL)
    assert anonymous["mode"] == "refuse"
    assert (metrics["cache_hits"], metrics["cache_misses"], metrics["provider_calls"]) == (1, 2, {})


def test_the_answer_cache_can_come_from_a_configmap(stack: Stack) -> None:
    stack.kube.configmap("rag-answer-cache", {"q001": json.dumps({"answer": "From the map.", "citations": ["doc-1"]}),
                                              "q002": "Plain text answer."})
    service, _ = make_generator(stack, FALLBACK_MODE="cache", ANSWER_CACHE_CONFIGMAP="rag-answer-cache")
    with serving(service.app()) as app:
        assert ask(app, "x", "q001").body["answer"] == "From the map."
        assert ask(app, "x", "q002").body["answer"] == "Plain text answer."


def test_refuse_fallback_never_calls_a_provider(stack: Stack) -> None:
    service, _ = make_generator(stack, FALLBACK_MODE="refuse",
                                ANSWER_CACHE_FILE=str(corpus.DATA_DIR / corpus.ANSWER_CACHE_FILE))
    with serving(service.app()) as app:
        body = ask(app, stack.golden[0]["text"], stack.golden[0]["qid"]).body
        assert (body["mode"], body["answer"], body["citations"]) == ("refuse", generator.REFUSAL, [])
        assert get(f"{app.url}/metrics").body["provider_calls"] == {}


def test_throttle_answers_429_with_retry_after(stack: Stack) -> None:
    service, _ = make_generator(stack, THROTTLE_RPS="1")
    with serving(service.app()) as app:
        assert ask(app, "kafka lag").status == 200
        throttled = ask(app, "kafka lag")
        assert throttled.status == 429 and throttled.headers["retry-after"] == "1"
        assert get(f"{app.url}/metrics").body["throttled"] == 1


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    bucket = generator.TokenBucket(clock=lambda: now[0])
    assert [bucket.take(2.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5
    assert bucket.take(2.0) == 0.0


def test_concurrency_cap_rejects_the_excess(stack: Stack) -> None:
    outage(stack, "primary", "hang")
    service, _ = make_generator(stack, MAX_CONCURRENCY="1", PROVIDER_TIMEOUT="5")
    with serving(service.app()) as app:
        first: list[HttpResult] = []
        slow = threading.Thread(target=lambda: first.append(ask(app, "kafka lag")))
        slow.start()
        wait_until(lambda: service.in_flight == 1)
        rejected = ask(app, "kafka lag")
        assert rejected.status == 429 and rejected.headers["retry-after"] == "1"
        outage(stack, "primary", "none")
        slow.join(5)
    assert first[0].status == 200


def test_long_requests_go_to_the_backlog(stack: Stack) -> None:
    service, stream = make_generator(stack, LONG_REQUEST_QUEUE="on", LONG_REQUEST_CHARS="40")
    with serving(service.app()) as app:
        long_question = "Please explain in detail how the kafka consumer lag during rebalance is handled"
        queued = ask(app, long_question, "q-long")
        assert queued.status == 202 and queued.body["status"] == "queued"
        flagged = ask(app, "short one", long=True)
        assert flagged.status == 202
        assert ask(app, "short one").status == 200
        for item_id in (queued.body["id"], flagged.body["id"]):
            wait_until(partial(queue_item_done, app, item_id))
        done = get(f"{app.url}/v1/queue/{queued.body['id']}").body
        backlog = get(f"{app.url}/v1/queue").body
        assert get(f"{app.url}/v1/queue/req-nope").status == 404
    assert done["result"]["mode"] == "normal" and done["qid"] == "q-long"
    assert backlog["backlog"] == 0 and [i["status"] for i in backlog["items"]] == ["done", "done"]
    assert len(stream.events("request_queued")) == 2


def test_weighted_routing_is_deterministic(stack: Stack) -> None:
    service, _ = make_generator(stack, PROVIDER_WEIGHTS="primary:25,backup:75")
    flags = service.flags()
    with serving(service.app()) as app:
        chosen = {f"q{n}": ask(app, "kafka lag", f"q{n}").body["provider"] for n in range(24)}
        again = ask(app, "kafka lag", "q3").body["provider"]
    assert chosen == {qid: flags.choose_provider(qid) for qid in chosen}
    assert again == chosen["q3"]
    assert set(chosen.values()) == {"primary", "backup"}
    assert sum(p == "backup" for p in chosen.values()) > sum(p == "primary" for p in chosen.values())


def test_weights_route_everything_to_one_side_at_the_ends() -> None:
    all_backup = generator.Flags(provider_weights=generator.parse_weights("primary:0,backup:100"))
    assert {all_backup.choose_provider(f"q{n}") for n in range(50)} == {"backup"}
    with pytest.raises(ConfigError):
        generator.parse_weights("primary:0,backup:0")
    with pytest.raises(ConfigError):
        generator.parse_weights("primary=50")


@pytest.mark.parametrize(("mode", "kind", "status"), [
    ("503", "server_error", 503),
    ("429", "rate_limited", 429),
    ("401", "auth", 401),
])
def test_provider_errors_are_classified_and_counted(stack: Stack, mode: str, kind: str, status: int) -> None:
    outage(stack, "primary", mode)
    service, stream = make_generator(stack)
    with serving(service.app()) as app:
        failed = ask(app, "kafka lag")
        metrics = get(f"{app.url}/metrics").body
    assert failed.status == 502
    assert failed.body["error"]["kind"] == kind and failed.body["error"]["status"] == status
    assert failed.body["error"]["provider"] == "primary"
    assert metrics["errors"] == {kind: 1} and metrics["provider_errors"] == {"primary": {kind: 1}}
    assert stream.events("provider_error")[0]["kind"] == kind


@pytest.mark.parametrize(("env", "kind"), [
    ({"PROVIDER_KEY_PRIMARY": "stolen"}, "auth"),
    ({"PROVIDER": "nobody"}, "config"),
    ({"PROVIDER_URL_PRIMARY": "http://127.0.0.1:1"}, "unavailable"),
])
def test_misconfigured_providers_are_classified(stack: Stack, env: dict[str, str], kind: str) -> None:
    service, _ = make_generator(stack, **env)
    with serving(service.app()) as app:
        failed = ask(app, "kafka lag")
    assert failed.status == 502 and failed.body["error"]["kind"] == kind


def test_a_hanging_provider_is_a_timeout(stack: Stack) -> None:
    outage(stack, "primary", "hang")
    service, _ = make_generator(stack, PROVIDER_TIMEOUT="0.3")
    with serving(service.app()) as app:
        failed = ask(app, "kafka lag")
    assert failed.status == 502 and failed.body["error"]["kind"] == "timeout"


def test_switching_to_the_backup_avoids_the_outage(stack: Stack) -> None:
    outage(stack, "primary", "503")
    service, _ = make_generator(stack, PROVIDER="backup")
    with serving(service.app()) as app:
        answered = ask(app, stack.golden[1]["text"])
    assert answered.status == 200 and answered.body["provider"] == "backup"


def test_flags_configmap_overrides_the_env(stack: Stack) -> None:
    stack.kube.configmap("rag-generator-flags", {"PROVIDER": "backup", "UNRELATED": "x"})
    service, _ = make_generator(stack, FLAGS_CONFIGMAP="rag-generator-flags")
    with serving(service.app()) as app:
        assert ask(app, "kafka lag").body["provider"] == "backup"
        assert get(f"{app.url}/v1/config").body["provider"] == "backup"
    stack.kube.configmap("rag-generator-flags", {"FALLBACK_MODE": "sometimes"})
    service, stream = make_generator(stack, FLAGS_CONFIGMAP="rag-generator-flags")
    assert service.flags().fallback_mode == "off"
    assert stream.events("flags_invalid")


def test_a_retriever_failure_is_a_502(stack: Stack) -> None:
    service, _ = make_generator(stack, RETRIEVER_URL=f"http://127.0.0.1:{free_port()}")
    with serving(service.app()) as app:
        failed = ask(app, "kafka lag")
    assert failed.status == 502 and failed.body["error"]["kind"] == "retriever"


def test_ready_only_when_the_retriever_resolves(stack: Stack) -> None:
    service, _ = make_generator(stack, RETRIEVER_URL="http://retriever:8080")
    with serving(service.app()) as app:
        assert get(f"{app.url}/readyz").status == 503
        stack.kube.expose("retriever", stack.retriever.url)
        assert get(f"{app.url}/readyz").status == 200
        assert ask(app, "kafka lag").status == 200
        outage(stack, "primary", "503")
        assert get(f"{app.url}/readyz").status == 200, "provider health is not readiness"


def test_bad_flags_are_rejected_at_start(stack: Stack) -> None:
    with pytest.raises(ConfigError):
        make_generator(stack, FALLBACK_MODE="maybe")
    with pytest.raises(ConfigError):
        make_generator(stack, THROTTLE_RPS="fast")


def test_refuses_to_start_on_an_old_schema(stack: Stack) -> None:
    stack.kube.configmap("rag-schema", {"version": "1"})
    env = {**stack.kube.env(), "REQUIRED_SCHEMA_VERSION": "3", "PORT": str(free_port())}
    assert generator.serve(env) == 1


def test_questions_are_validated(stack: Stack) -> None:
    service, _ = make_generator(stack)
    with serving(service.app()) as app:
        assert post(f"{app.url}/v1/answer", {"question": ""}).status == 400
        assert post(f"{app.url}/v1/answer", {"question": "x", "qid": 7}).status == 400
        assert get(f"{app.url}/metrics").body["responses"] == {"400": 2}
