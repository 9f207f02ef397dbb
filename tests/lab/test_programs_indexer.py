"""The indexer: re-indexing what a snapshot restore misses, with progress a caller can track."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from programs_fakes import FakeKube, capture_log, get, json_lines, post, program_env, run_program, serving, wait_until

from ragops_lab import corpus
from ragops_lab.programs import indexer, shard
from ragops_lab.runtime.env import ConfigError
from ragops_lab.runtime.server import RunningApp

SHARD = "shard-2"


@pytest.fixture(scope="module")
def docs() -> list[corpus.Document]:
    return corpus.generate()


@pytest.fixture
def restored(tmp_path: Path, docs: list[corpus.Document]) -> Iterator[tuple[RunningApp, Path]]:
    """Shard-2 as restored from a snapshot taken at SNAPSHOT_TIME, serving."""
    shard.build_shard_index(corpus.CorpusSpec(), SHARD, tmp_path, as_of=corpus.SNAPSHOT_TIME, documents=docs)
    service = shard.ShardService(shard.ShardConfig(SHARD, tmp_path, integrity_check_seconds=0), capture_log("shard")[0])
    service.open_index()
    with serving(service.app()) as app:
        yield app, tmp_path


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.close()


def recent(docs: list[corpus.Document]) -> list[corpus.Document]:
    return [d for d in docs if d.shard == SHARD and d.updated_at > corpus.SNAPSHOT_TIME]


def test_documents_since_are_the_shards_recent_documents_oldest_first(docs: list[corpus.Document]) -> None:
    found = indexer.documents_since(corpus.CorpusSpec(), SHARD, corpus.SNAPSHOT_TIME)
    assert {d.id for d in found} == {d.id for d in recent(docs)}
    assert [d.updated_at for d in found] == sorted(d.updated_at for d in found)
    assert indexer.documents_since(corpus.CorpusSpec(), SHARD, "2030-01-01T00:00:00Z") == []


def test_the_job_brings_the_restored_shard_up_to_date(restored: tuple[RunningApp, Path], docs: list[corpus.Document],
                                                      kube: FakeKube) -> None:
    app, volume = restored
    before = get(f"{app.url}/stats").body["doc_count"]
    env = program_env(**kube.env(), POD_NAME="reindex-shard-2", BATCH_SIZE="10")
    job = run_program("indexer", env, "--since", corpus.SNAPSHOT_TIME, "--shard", SHARD, "--shard-url", app.url)
    assert job.returncode == 0, job.stderr
    lines = json_lines(job.stdout)
    progress = [(line["done"], line["total"]) for line in lines if line["event"] == "progress"]
    total = len(recent(docs))
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert lines[-1]["event"] == "completed" and lines[-1]["shard"] == SHARD
    stats = get(f"{app.url}/stats").body
    assert stats["doc_count"] == before + total == len([d for d in docs if d.shard == SHARD])
    assert shard.load_index(volume, SHARD).meta["max_updated_at"] == max(d.updated_at for d in recent(docs))
    newest = max(recent(docs), key=lambda d: d.updated_at)
    hits = post(f"{app.url}/search", {"query": f"{newest.codename} {newest.keywords[0]} {newest.keywords[1]}",
                                      "k": 3}).body["results"]
    assert newest.id in [h["id"] for h in hits]


def test_the_job_finds_the_shard_through_its_service(restored: tuple[RunningApp, Path], kube: FakeKube) -> None:
    app, _ = restored
    kube.expose("vectorstore-2", app.url)
    env = program_env(**kube.env(), SINCE=corpus.SNAPSHOT_TIME, SHARD=SHARD)
    assert run_program("indexer", env).returncode == 0


def test_the_job_fails_clearly_when_the_shard_refuses(tmp_path: Path, kube: FakeKube) -> None:
    broken = shard.ShardService(shard.ShardConfig(SHARD, tmp_path, integrity_check_seconds=0), capture_log("shard")[0])
    broken.open_index()
    with serving(broken.app()) as app:
        env = program_env(**kube.env())
        job = run_program("indexer", env, "--since", corpus.SNAPSHOT_TIME, "--shard", SHARD, "--shard-url", app.url)
    assert job.returncode == 1
    failure = json_lines(job.stdout)[-1]
    assert failure["event"] == "reindex_failed" and "HTTP 503" in failure["error"]


def test_the_job_needs_a_time_and_a_shard() -> None:
    with pytest.raises(ConfigError):
        indexer.ReindexJob.from_values({}, None, SHARD)
    with pytest.raises(ConfigError):
        indexer.ReindexJob.from_values({}, "yesterday", SHARD)
    job = indexer.ReindexJob.from_values({"SINCE": corpus.SNAPSHOT_TIME, "SHARD": "shard-3"}, None, None)
    assert job.shard_url == "http://vectorstore-3:8080"


def test_the_service_runs_jobs_and_reports_progress(restored: tuple[RunningApp, Path], docs: list[corpus.Document],
                                                    kube: FakeKube) -> None:
    shard_app, _ = restored
    service = indexer.IndexerService({}, kube.client(), capture_log("indexer")[0])
    with serving(service.app()) as app:
        started = post(f"{app.url}/jobs", {"since": corpus.SNAPSHOT_TIME, "shard": SHARD, "shard_url": shard_app.url})
        assert started.status == 202 and started.body["state"] == "running"
        job_url = f"{app.url}/jobs/{started.body['id']}"
        wait_until(lambda: get(job_url).body["state"] != "running")
        finished = get(job_url).body
        assert post(f"{app.url}/jobs", {"shard": SHARD}).status == 400
        assert get(f"{app.url}/jobs/reindex-9999").status == 404
        listed = get(f"{app.url}/jobs").body["jobs"]
    assert finished["state"] == "succeeded" and finished["error"] is None
    assert finished["done"] == finished["total"] == len(recent(docs))
    assert [j["id"] for j in listed] == [started.body["id"]]
