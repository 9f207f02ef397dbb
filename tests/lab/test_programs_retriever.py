"""The retriever: registry-driven fan-out, quarantine, replica routing, merging and partial results."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
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
)

from ragops_lab import corpus
from ragops_lab.programs import retriever, shard
from ragops_lab.runtime import httpclient
from ragops_lab.runtime.env import ConfigError
from ragops_lab.runtime.kubeapi import KubeClient
from ragops_lab.runtime.server import App, Request, Response, Router, RunningApp, ok

QUERY = "kafka consumer lag during rebalance"


@pytest.fixture(scope="module")
def docs() -> list[corpus.Document]:
    return corpus.generate()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, docs: list[corpus.Document]) -> Iterator[dict[str, RunningApp]]:
    with shard_servers(tmp_path_factory.mktemp("shards"), docs) as running:
        yield running


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.close()


def start_retriever(kube: KubeClient, **env: str) -> tuple[retriever.RetrieverService, LogCapture]:
    log, stream = capture_log("retriever")
    config = retriever.RetrieverConfig.from_env({"REGISTRY_CACHE_SECONDS": "0", **env})
    return retriever.RetrieverService(config, kube, log), stream


def direct_registry(kube: FakeKube, shards: dict[str, RunningApp], **overrides: str) -> None:
    """A registry whose entries carry the shard servers' URLs; `overrides` replace whole entries."""
    data = {s: registry_entry(url=app.url) for s, app in shards.items()}
    kube.configmap("rag-shard-registry", {**data, **overrides})


def search(app: RunningApp, k: int = 10) -> dict[str, Any]:
    result = post(f"{app.url}/search", {"query": QUERY, "k": k})
    assert result.status == 200, result.body
    assert isinstance(result.body, dict)
    return result.body


def global_top(docs: list[corpus.Document], k: int, without: frozenset[str] = frozenset()) -> list[tuple[str, float]]:
    return corpus.VectorIndex.build(d for d in docs if d.shard not in without).search(QUERY, k)


def test_fans_out_over_every_serving_shard_through_services(kube: FakeKube, shards: dict[str, RunningApp],
                                                            docs: list[corpus.Document]) -> None:
    for shard_id, app in shards.items():
        kube.expose(f"vectorstore-{shard_id.removeprefix('shard-')}", app.url)
    kube.configmap("rag-shard-registry", {s: registry_entry() for s in shards})
    service, stream = start_retriever(kube.client())
    with serving(service.app()) as app:
        body = search(app)
    assert body["shards_queried"] == corpus.shard_ids()
    assert (body["shards_skipped"], body["errors"], body["routed"]) == ({}, {}, {})
    assert [(r["id"], r["score"]) for r in body["results"]] == global_top(docs, 10)
    line = stream.events("query")[0]
    assert line["shards"] == corpus.shard_ids()
    assert line["targets"] == {s: app.url for s, app in shards.items()}


def test_a_quarantined_shard_is_no_longer_called(kube: FakeKube, shards: dict[str, RunningApp],
                                                 docs: list[corpus.Document]) -> None:
    direct_registry(kube, shards)
    service, stream = start_retriever(kube.client())
    with serving(service.app()) as app:
        before = search(app)
        direct_registry(kube, shards, **{"shard-1": registry_entry("quarantined", reason="checksum mismatch")})
        after = search(app)
    assert "shard-1" in before["shards_queried"]
    assert after["shards_skipped"] == {"shard-1": "quarantined"}
    assert after["shards_queried"] == ["shard-0", "shard-2", "shard-3"]
    assert all(r["shard"] != "shard-1" for r in after["results"])
    assert [(r["id"], r["score"]) for r in after["results"]] == global_top(docs, 10, frozenset({"shard-1"}))
    first, second = stream.events("query")
    assert "shard-1" in first["shards"] and "shard-1" not in second["shards"]
    assert second["skipped"] == {"shard-1": "quarantined"}


@pytest.mark.parametrize("state", ["restoring", "validating"])
def test_shards_being_restored_or_validated_are_skipped(kube: FakeKube, shards: dict[str, RunningApp],
                                                        state: str) -> None:
    direct_registry(kube, shards, **{"shard-3": registry_entry(state)})
    service, _ = start_retriever(kube.client())
    with serving(service.app()) as app:
        assert search(app)["shards_skipped"] == {"shard-3": state}


def test_route_to_sends_the_shard_traffic_to_its_replica(kube: FakeKube, shards: dict[str, RunningApp],
                                                         tmp_path: Path, docs: list[corpus.Document]) -> None:
    replica_volume = tmp_path / "replica"
    shard.build_shard_index(corpus.CorpusSpec(), "shard-2", replica_volume, documents=docs)
    replica = shard.ShardService(shard.ShardConfig("shard-2", replica_volume, integrity_check_seconds=0),
                                 capture_log("shard")[0])
    replica.open_index()
    with serving(replica.app()) as replica_app:
        kube.expose("shard-2-replica", replica_app.url)
        direct_registry(kube, shards, **{"shard-2": registry_entry("quarantined", route_to="shard-2-replica")})
        service, stream = start_retriever(kube.client())
        with serving(service.app()) as app:
            body = search(app)
    assert body["routed"] == {"shard-2": "shard-2-replica"}
    assert body["shards_queried"] == corpus.shard_ids() and body["shards_skipped"] == {}
    assert [(r["id"], r["score"]) for r in body["results"]] == global_top(docs, 10)
    line = stream.events("query")[0]
    assert line["targets"]["shard-2"] == replica_app.url
    assert line["routed"] == {"shard-2": "shard-2-replica"}


def test_a_failing_shard_gives_partial_results_not_a_500(kube: FakeKube, shards: dict[str, RunningApp],
                                                         tmp_path: Path, docs: list[corpus.Document]) -> None:
    broken_config = shard.ShardConfig("shard-0", tmp_path, integrity_check_seconds=0)
    broken = shard.ShardService(broken_config, capture_log("shard")[0])
    broken.open_index()
    with serving(broken.app()) as broken_app:
        direct_registry(kube, shards, **{
            "shard-0": registry_entry(url=broken_app.url),
            "shard-3": registry_entry(url=f"http://127.0.0.1:{free_port()}"),
        })
        service, stream = start_retriever(kube.client(), SHARD_TIMEOUT="1")
        with serving(service.app()) as app:
            body = search(app)
    assert set(body["errors"]) == {"shard-0", "shard-3"}
    assert body["errors"]["shard-0"].startswith("HTTP 503: index unavailable: index not found")
    assert [(r["id"], r["score"]) for r in body["results"]] == global_top(docs, 10, frozenset({"shard-0", "shard-3"}))
    assert stream.events("query")[0]["errors"] == body["errors"]


def test_a_missing_registry_means_the_default_shards(kube: FakeKube, shards: dict[str, RunningApp]) -> None:
    for shard_id, app in shards.items():
        kube.expose(f"vectorstore-{shard_id.removeprefix('shard-')}", app.url)
    service, _ = start_retriever(kube.client(), SHARDS="shard-0,shard-2")
    with serving(service.app()) as app:
        body = search(app)
        assert body["registry"] == "default" and body["shards_queried"] == ["shard-0", "shard-2"]
        assert get(f"{app.url}/readyz").status == 200


def test_unreadable_registry_entries_are_ignored_with_a_warning(kube: FakeKube, shards: dict[str, RunningApp]) -> None:
    direct_registry(kube, shards, **{"shard-1": "{not json", "shard-2": registry_entry("broken")})
    service, stream = start_retriever(kube.client())
    with serving(service.app()) as app:
        assert search(app)["shards_queried"] == ["shard-0", "shard-3"]
        view = get(f"{app.url}/registry").body
    assert {e["shard"] for e in view["entries"]} == {"shard-0", "shard-3"}
    assert {e["shard"] for e in stream.events("registry_entry_ignored")} == {"shard-1", "shard-2"}


def test_not_ready_when_the_registry_cannot_be_read(shards: dict[str, RunningApp]) -> None:
    dead_api = KubeClient(f"http://127.0.0.1:{free_port()}", "", "rag", timeout=0.5)
    service, stream = start_retriever(dead_api)
    with serving(service.app()) as app:
        ready = get(f"{app.url}/readyz")
    assert ready.status == 503 and "shard registry unreadable" in ready.body["reason"]
    assert stream.events("registry_read_failed")


def test_refuses_to_start_on_an_old_schema(kube: FakeKube) -> None:
    kube.configmap("rag-schema", {"version": "1"})
    env = {**kube.env(), "REQUIRED_SCHEMA_VERSION": "2", "PORT": str(free_port())}
    assert retriever.serve(env) == 1


def test_plan_and_merge_are_pure() -> None:
    entries = [retriever.RegistryEntry("shard-0", "serving"),
               retriever.RegistryEntry("shard-1", "quarantined"),
               retriever.RegistryEntry("shard-2", "quarantined", route_to="http://10.0.0.9:8080"),
               retriever.RegistryEntry("shard-3", "serving", url="http://127.0.0.1:9")]
    targets, skipped = retriever.plan_targets(entries, "http://vectorstore-{ordinal}:8080")
    assert [(t.shard, t.url) for t in targets] == [("shard-0", "http://vectorstore-0:8080"),
                                                   ("shard-2", "http://10.0.0.9:8080"),
                                                   ("shard-3", "http://127.0.0.1:9")]
    assert skipped == {"shard-1": "quarantined"}
    merged = retriever.merge_results({"shard-0": [{"id": "doc-2", "score": 0.5}, {"id": "doc-9", "score": 0.1}],
                                      "shard-1": [{"id": "doc-1", "score": 0.5}, {"id": "doc-3", "score": 0.7}]}, 3)
    assert [(m["id"], m["shard"]) for m in merged] == [("doc-3", "shard-1"), ("doc-1", "shard-1"), ("doc-2", "shard-0")]


def test_registry_cache_is_at_most_a_second() -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        retriever.RetrieverConfig.from_env({"REGISTRY_CACHE_SECONDS": "5"})


def test_search_validates_its_input(kube: FakeKube, shards: dict[str, RunningApp]) -> None:
    direct_registry(kube, shards)
    service, _ = start_retriever(kube.client())
    with serving(service.app()) as app:
        assert post(f"{app.url}/search", {"query": " "}).status == 400
        assert post(f"{app.url}/search", {"query": "x", "k": "3"}).status == 400


def test_embedding_latency_is_a_bounded_parameter_spent_once_per_query(kube: FakeKube,
                                                                       shards: dict[str, RunningApp]) -> None:
    assert retriever.RetrieverConfig.from_env({}).embed_latency == 0.0
    with pytest.raises(ConfigError, match="EMBED_LATENCY_MS must be between 0 and 10000"):
        retriever.RetrieverConfig.from_env({"EMBED_LATENCY_MS": "-1"})
    direct_registry(kube, shards)
    service, _ = start_retriever(kube.client(), EMBED_LATENCY_MS="300")
    with serving(service.app()) as app:
        started = time.monotonic()
        body = search(app)
        elapsed = time.monotonic() - started
    assert body["shards_queried"] == corpus.shard_ids() and body["errors"] == {}
    assert 0.3 <= elapsed < 1.0


def test_shard_connections_stay_open_between_queries(kube: FakeKube, tmp_path: Path,
                                                     docs: list[corpus.Document]) -> None:
    opened: list[tuple[str, int]] = []
    connect = httpclient.PooledConnection.connect

    def counting(self: http.client.HTTPConnection) -> None:
        opened.append((self.host, self.port))
        connect(self)

    with shard_servers(tmp_path, docs) as shards:
        direct_registry(kube, shards)
        service, _ = start_retriever(kube.client())
        with serving(service.app()) as app, mock.patch.object(httpclient.PooledConnection, "connect", counting):
            for _ in range(3):
                assert search(app)["errors"] == {}
            shards["shard-1"].stop()  # its connections end with it: the next call reconnects, and is refused
            assert set(search(app)["errors"]) == {"shard-1"}
    # One connection per shard, kept for the next query: not one per call (the registry's reads keep
    # a connection of their own to the API server).
    addresses = {(app.host, app.port) for app in shards.values()}
    to_shards = [address for address in opened if address in addresses]
    assert sorted(to_shards[:4]) == sorted(addresses)
    assert to_shards[4:] == [(shards["shard-1"].host, shards["shard-1"].port)]


def test_hanging_shards_cost_one_shard_timeout_together(kube: FakeKube, shards: dict[str, RunningApp]) -> None:
    def hang(_: Request) -> Response:
        time.sleep(3)
        return ok({"results": []})

    log, _ = capture_log("hanging-shard")
    hanging = [App(f"hang-{n}", Router().add("POST", "/search", hang), log) for n in range(2)]
    with serving(hanging[0]) as first, serving(hanging[1]) as second:
        direct_registry(kube, shards, **{"shard-1": registry_entry(url=first.url),
                                         "shard-3": registry_entry(url=second.url)})
        service, _ = start_retriever(kube.client(), SHARD_TIMEOUT="0.5")
        with serving(service.app()) as app:
            started = time.monotonic()
            body = search(app)
            elapsed = time.monotonic() - started
    # Every shard was asked at once and the answers share the shard timeout: the two hanging shards
    # cost 0.5 s together, not one after the other, and the other shards' hits still count.
    assert elapsed < 0.9
    assert body["errors"] == {"shard-1": "timed out after 0.5s", "shard-3": "timed out after 0.5s"}
    assert body["results"] and {hit["shard"] for hit in body["results"]} <= {"shard-0", "shard-2"}
