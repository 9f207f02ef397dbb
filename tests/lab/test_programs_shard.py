"""The vectorstore shard: index build and load, search, corruption detection and re-open."""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from programs_fakes import (
    LogCapture,
    capture_log,
    free_port,
    get,
    json_lines,
    post,
    program_env,
    run_program,
    serving,
    start_program,
    wait_http,
    wait_until,
)

from ragops_lab import corpus
from ragops_lab.programs import shard
from ragops_lab.runtime.env import ConfigError, PodEnv
from ragops_lab.runtime.server import RunningApp

SHARD = "shard-2"


@pytest.fixture(scope="module")
def docs() -> list[corpus.Document]:
    return corpus.generate()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, docs: list[corpus.Document]) -> Path:
    """A built shard-2 volume that tests copy and never touch."""
    root: Path = tmp_path_factory.mktemp("pristine")
    shard.build_shard_index(corpus.CorpusSpec(), SHARD, root, documents=docs)
    return root


@pytest.fixture
def volume(tmp_path: Path, pristine: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def make_service(volume: Path, **overrides: Any) -> tuple[shard.ShardService, LogCapture]:
    log, stream = capture_log("shard")
    config = replace(shard.ShardConfig(shard_id=SHARD, data_dir=volume, integrity_check_seconds=0), **overrides)
    service = shard.ShardService(config, log)
    service.open_index()
    return service, stream


@pytest.fixture
def running(volume: Path) -> Iterator[tuple[RunningApp, shard.ShardService, LogCapture]]:
    service, stream = make_service(volume)
    with serving(service.app()) as app:
        yield app, service, stream


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_build_writes_a_verified_index(pristine: Path, docs: list[corpus.Document]) -> None:
    index_dir = pristine / "index"
    assert sorted(p.name for p in index_dir.iterdir()) == ["checksums.json", "docs.json", "ids.json", "meta.json",
                                                           "vectors.bin"]
    loaded = shard.load_index(pristine, SHARD)
    expected = [d.id for d in docs if d.shard == SHARD]
    assert loaded.index.ids == expected
    assert loaded.meta["count"] == len(expected)
    assert loaded.meta["max_updated_at"] == max(d.updated_at for d in docs if d.shard == SHARD)
    assert (index_dir / "vectors.bin").stat().st_size == len(expected) * corpus.DIM * 4


def test_search_is_the_corpus_search_restricted_to_the_shard(running: tuple[RunningApp, shard.ShardService, LogCapture],
                                                           docs: list[corpus.Document]) -> None:
    app, _, _ = running
    query = "kafka consumer lag during rebalance"
    first = post(f"{app.url}/search", {"query": query, "k": 5})
    second = post(f"{app.url}/search", {"query": query, "k": 5})
    assert first.status == 200 and first.body == second.body
    expected = corpus.VectorIndex.build(d for d in docs if d.shard == SHARD).search(query, 5)
    assert [(r["id"], r["score"]) for r in first.body["results"]] == expected
    assert first.body["shard"] == SHARD
    assert all(r["title"] for r in first.body["results"])


def test_search_validates_its_input(running: tuple[RunningApp, shard.ShardService, LogCapture]) -> None:
    app, _, _ = running
    assert post(f"{app.url}/search", {"query": ""}).status == 400
    assert post(f"{app.url}/search", {"query": "x", "k": 0}).status == 400
    assert post(f"{app.url}/search", {"query": "x", "k": 101}).status == 400


def test_stats_and_readiness(running: tuple[RunningApp, shard.ShardService, LogCapture], pristine: Path) -> None:
    app, _, _ = running
    stats = get(f"{app.url}/stats").body
    assert stats["ready"] is True and stats["last_error"] is None
    assert stats["index_checksum"] == shard.load_index(pristine, SHARD).checksum
    assert get(f"{app.url}/readyz").status == 200
    assert get(f"{app.url}/healthz").status == 200


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: flip_byte(p / "vectors.bin"), "checksum mismatch in vectors.bin"),
    (lambda p: truncate(p / "vectors.bin"), "truncated index file vectors.bin"),
    (lambda p: flip_byte(p / "ids.json", 5), "checksum mismatch in ids.json"),
    (lambda p: (p / "meta.json").unlink(), "missing index file meta.json"),
    (lambda p: (p / "checksums.json").unlink(), "index not found"),
])
def test_damaged_index_is_detected_on_reopen_and_recovered_after_restore(
        running: tuple[RunningApp, shard.ShardService, LogCapture], volume: Path, pristine: Path,
        damage: Callable[[Path], None], message: str) -> None:
    app, _, stream = running
    damage(volume / "index")
    reopen = post(f"{app.url}/admin/reopen")
    assert reopen.status == 500 and message in reopen.body["error"]
    ready = get(f"{app.url}/readyz")
    assert ready.status == 503 and message in ready.body["reason"]
    search = post(f"{app.url}/search", {"query": "kafka", "k": 3})
    assert search.status == 503 and message in search.body["error"]
    failure = stream.events("index_load_failed")[-1]
    assert failure["level"] == "error" and message in failure["error"]
    assert get(f"{app.url}/healthz").status == 200, "a corrupt index must not kill the process"
    assert message in get(f"{app.url}/stats").body["last_error"]

    shutil.rmtree(volume / "index")
    shutil.copytree(pristine / "index", volume / "index")
    recovered = post(f"{app.url}/admin/reopen")
    assert recovered.status == 200 and recovered.body["ready"] is True
    assert get(f"{app.url}/readyz").status == 200
    assert len(post(f"{app.url}/search", {"query": "kafka", "k": 3}).body["results"]) == 3


def test_corruption_under_a_loaded_index_is_noticed_by_the_integrity_check(
        running: tuple[RunningApp, shard.ShardService, LogCapture], volume: Path) -> None:
    app, service, stream = running
    assert get(f"{app.url}/readyz").status == 200
    flip_byte(volume / "index" / "vectors.bin")
    service.check_integrity()
    assert get(f"{app.url}/readyz").status == 503
    assert "checksum mismatch in vectors.bin" in stream.events("index_corruption_detected")[0]["error"]


def test_searches_are_served_while_the_integrity_check_reads_the_files(
        running: tuple[RunningApp, shard.ShardService, LogCapture], monkeypatch: pytest.MonkeyPatch) -> None:
    app, service, _ = running
    reading, release = threading.Event(), threading.Event()
    verify = shard.verify_files

    def slow_verify(index_dir: Path) -> tuple[dict[str, bytes], str]:
        reading.set()
        release.wait(10)
        return verify(index_dir)

    monkeypatch.setattr(shard, "verify_files", slow_verify)
    check = threading.Thread(target=service.check_integrity)
    check.start()
    try:
        assert reading.wait(5)
        answer = post(f"{app.url}/search", {"query": "kafka", "k": 3}, timeout=2)
        assert answer.status == 200 and len(answer.body["results"]) == 3
    finally:
        release.set()
        check.join(10)


def test_a_finding_about_an_index_replaced_during_the_check_is_dropped(
        running: tuple[RunningApp, shard.ShardService, LogCapture], monkeypatch: pytest.MonkeyPatch) -> None:
    app, service, stream = running

    verify = shard.verify_files

    def reopened_meanwhile(index_dir: Path) -> tuple[dict[str, bytes], str]:
        monkeypatch.setattr(shard, "verify_files", verify)
        service.open_index()  # a re-open (or a write) replaced the index the check started on
        raise shard.IndexUnusable("checksum mismatch in vectors.bin: read half-written")

    monkeypatch.setattr(shard, "verify_files", reopened_meanwhile)
    service.check_integrity()
    assert get(f"{app.url}/readyz").status == 200
    assert not stream.events("index_corruption_detected")


def test_the_watcher_runs_the_integrity_check_in_the_background(volume: Path) -> None:
    service, stream = make_service(volume, integrity_check_seconds=0.02)
    with serving(service.app()) as app:
        truncate(volume / "index" / "vectors.bin")
        wait_until(lambda: get(f"{app.url}/readyz").status == 503)
    assert "truncated index file vectors.bin" in stream.events("index_corruption_detected")[0]["error"]


def test_empty_behaviour_hides_the_failure_from_searchers(volume: Path) -> None:
    flip_byte(volume / "index" / "vectors.bin")
    service, stream = make_service(volume, corrupt_behaviour="empty")
    with serving(service.app()) as app:
        search = post(f"{app.url}/search", {"query": "kafka", "k": 3})
        assert (search.status, search.body) == (200, {"shard": SHARD, "results": []})
        assert get(f"{app.url}/readyz").status == 503
    assert stream.events("search_failed")


def test_an_index_of_another_shard_is_refused(volume: Path) -> None:
    log, stream = capture_log("shard")
    service = shard.ShardService(shard.ShardConfig(shard_id="shard-1", data_dir=volume, integrity_check_seconds=0), log)
    assert not service.open_index()
    assert stream.events("index_load_failed")[0]["error"] == "index belongs to shard-2, not shard-1"


def test_documents_are_added_persisted_and_searchable(running: tuple[RunningApp, shard.ShardService, LogCapture],
                                                      volume: Path) -> None:
    app, _, _ = running
    before = get(f"{app.url}/stats").body
    new = {"id": "doc-99999", "title": "Zyxquor runbook", "text": "zyxquor quasar flux",
           "updated_at": "2025-02-01T00:00:00Z"}
    added = post(f"{app.url}/documents", {"documents": [new]})
    assert added.body == {"added": 1, "updated": 0, "count": before["doc_count"] + 1}
    again = post(f"{app.url}/documents", {"documents": [new]})
    assert again.body == {"added": 0, "updated": 1, "count": before["doc_count"] + 1}
    assert post(f"{app.url}/search", {"query": "zyxquor quasar", "k": 1}).body["results"][0]["id"] == "doc-99999"
    reloaded = shard.load_index(volume, SHARD)
    assert "doc-99999" in reloaded.index.ids
    assert reloaded.meta["max_updated_at"] == "2025-02-01T00:00:00Z"
    assert get(f"{app.url}/stats").body["index_checksum"] == reloaded.checksum
    assert post(f"{app.url}/documents", {"documents": [{"id": 1}]}).status == 400


def test_writes_are_refused_on_a_damaged_index(running: tuple[RunningApp, shard.ShardService, LogCapture],
                                               volume: Path) -> None:
    app, service, _ = running
    flip_byte(volume / "index" / "vectors.bin")
    damaged = (volume / "index" / "vectors.bin").read_bytes()
    service.check_integrity()
    refused = post(f"{app.url}/documents", {"documents": [{"id": "doc-99998", "text": "x"}]})
    assert refused.status == 503
    assert (volume / "index" / "vectors.bin").read_bytes() == damaged, "the damaged files are evidence"


def test_shard_id_comes_from_the_pod_name() -> None:
    assert shard.shard_id_from({}, "vectorstore-2") == "shard-2"
    assert shard.shard_id_from({}, "vectorstore-3-restored-x7k2") == "shard-3"
    assert shard.shard_id_from({"SHARD_ID": "shard-9"}, "vectorstore-2") == "shard-9"
    with pytest.raises(ConfigError):
        shard.shard_id_from({}, "vectorstore")


def test_config_maps_the_data_dir_through_the_mounts(tmp_path: Path) -> None:
    pod = PodEnv.from_env({"POD_NAME": "vectorstore-1", "LAB_MOUNTS": json.dumps({"/data": str(tmp_path)})})
    config = shard.ShardConfig.from_env({"DATA_DIR": "/data", "CORRUPT_BEHAVIOUR": "empty"}, pod)
    assert (config.shard_id, config.data_dir, config.corrupt_behaviour) == ("shard-1", tmp_path, "empty")
    with pytest.raises(ConfigError):
        shard.ShardConfig.from_env({"CORRUPT_BEHAVIOUR": "explode"}, pod)


def test_bootstrap_builds_only_on_an_empty_volume(tmp_path: Path) -> None:
    log, stream = capture_log("shard")
    spec = corpus.CorpusSpec(documents=200)
    config = shard.ShardConfig(shard_id="shard-0", data_dir=tmp_path, bootstrap=True, corpus_spec=spec,
                               integrity_check_seconds=0)
    service = shard.ShardService(config, log)
    service.bootstrap_if_empty()
    assert service.open_index()
    assert stream.events("index_bootstrapped")[0]["doc_count"] == len(
        [d for d in corpus.generate(spec) if d.shard == "shard-0"])
    flip_byte(tmp_path / "index" / "vectors.bin")
    service.bootstrap_if_empty()
    assert not service.open_index(), "a damaged index is never rebuilt over"


def test_cli_build_and_verify(tmp_path: Path) -> None:
    env = program_env()
    built = run_program("shard", env, "build", "--shard", "shard-1", "--out", str(tmp_path), "--documents", "300",
                        "--as-of", corpus.SNAPSHOT_TIME)
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["shard"] == "shard-1" and summary["doc_count"] > 0
    assert run_program("shard", env, "verify", "--data-dir", str(tmp_path), "--shard", "shard-1").returncode == 0
    flip_byte(tmp_path / "index" / "vectors.bin", 10)
    verify = run_program("shard", env, "verify", "--data-dir", str(tmp_path))
    assert verify.returncode == 1 and "checksum mismatch in vectors.bin" in json.loads(verify.stdout)["error"]


def test_cli_reopen_asks_the_shard_of_its_pod_and_says_how_it_went(
        running: tuple[RunningApp, shard.ShardService, LogCapture], volume: Path, pristine: Path) -> None:
    """The re-open as a command run in the shard's pod: POD_IP and PORT name the shard to ask."""
    app, _, stream = running
    host, port = app.url.removeprefix("http://").split(":")
    env = program_env(POD_IP=host, PORT=port)
    flip_byte(volume / "index" / "vectors.bin")
    failed = run_program("shard", env, "reopen")
    assert failed.returncode == 1, failed
    assert json.loads(failed.stdout)["status"] == 500
    assert "re-open failed: HTTP 500: checksum mismatch in vectors.bin" in failed.stderr
    shutil.copy(pristine / "index" / "vectors.bin", volume / "index" / "vectors.bin")
    reopened = run_program("shard", env, "reopen")
    assert reopened.returncode == 0, reopened
    answer = json.loads(reopened.stdout)
    assert answer["ok"] is True and answer["answer"]["ready"] is True and answer["answer"]["doc_count"] > 0
    assert len(stream.events("reopen_requested")) == 2
    unreachable = run_program("shard", program_env(POD_IP="127.0.0.1", PORT=str(free_port())), "reopen")
    assert unreachable.returncode == 1 and "did not answer" in json.loads(unreachable.stdout)["error"]
    invalid = run_program("shard", program_env(PORT="eighty"), "reopen")
    assert invalid.returncode == 2 and "invalid configuration" in json.loads(invalid.stdout)["error"]


def test_the_process_contract(volume: Path) -> None:
    """Env-only configuration, LAB_MOUNTS, POD_IP:PORT, JSON logs on stdout and a clean SIGTERM."""
    port = free_port()
    env = program_env(POD_NAME="vectorstore-2", POD_NAMESPACE="rag", POD_IP="127.0.0.1", PORT=str(port),
                      LAB_MOUNTS=json.dumps({"/data": str(volume)}), DATA_DIR="/data")
    process = start_program("shard", env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert get(f"http://127.0.0.1:{port}/readyz").body["shard"] == SHARD
        assert post(f"http://127.0.0.1:{port}/search", {"query": "kafka", "k": 2}).status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    events = [line["event"] for line in json_lines(out)]
    assert events[:2] == ["index_loaded", "listening"] and events[-1] == "stopped"
    assert all(line["shard"] == SHARD for line in json_lines(out))


def test_a_quiesce_holds_writes_until_resumed_while_searches_go_on(
        running: tuple[RunningApp, shard.ShardService, LogCapture], volume: Path) -> None:
    app, _, stream = running
    new = {"documents": [{"id": "doc-99998", "title": "Held", "text": "held while quiesced"}]}
    before = (volume / "index" / "checksums.json").read_bytes()
    held = post(f"{app.url}/admin/quiesce", {"seconds": 600})
    assert held.status == 200 and held.body["quiesced"] is True and held.body["until"].endswith("Z")
    refused = post(f"{app.url}/documents", new)
    assert refused.status == 503 and "held for a snapshot" in refused.body["error"]
    assert refused.body["quiesced_until"] == held.body["until"]
    assert (volume / "index" / "checksums.json").read_bytes() == before, "nothing written while quiesced"
    assert post(f"{app.url}/search", {"query": "kafka", "k": 3}).status == 200
    assert get(f"{app.url}/readyz").status == 200
    assert get(f"{app.url}/stats").body["quiesced_until"] == held.body["until"]

    resumed = post(f"{app.url}/admin/resume")
    assert resumed.body == {"quiesced": False, "was_quiesced": True, "shard": SHARD}
    assert post(f"{app.url}/documents", new).status == 200
    assert get(f"{app.url}/stats").body["quiesced_until"] is None
    assert [e["event"] for e in stream.events() if e["event"] in ("quiesced", "resumed")] == ["quiesced", "resumed"]


def test_a_quiesce_lapses_by_itself_and_refuses_a_bad_duration(
        running: tuple[RunningApp, shard.ShardService, LogCapture]) -> None:
    app, _, stream = running
    new = {"documents": [{"id": "doc-99997", "title": "Later", "text": "after the hold lapsed"}]}
    for bad in (0, -1, "10", True, 86401):
        assert post(f"{app.url}/admin/quiesce", {"seconds": bad}).status == 400
    assert post(f"{app.url}/admin/quiesce", {"seconds": 0.3}).status == 200
    assert post(f"{app.url}/documents", new).status == 503
    wait_until(lambda: post(f"{app.url}/documents", new).status == 200)
    assert stream.events("quiesce_expired")
    assert post(f"{app.url}/admin/resume").body["was_quiesced"] is False
