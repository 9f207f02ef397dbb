"""The corpus, its embeddings and search, and the shipped golden set staying in step with them."""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragops_lab import corpus


@pytest.fixture(scope="module")
def docs() -> list[corpus.Document]:
    return corpus.generate()


@pytest.fixture(scope="module")
def full_index(docs: list[corpus.Document]) -> corpus.VectorIndex:
    return corpus.VectorIndex.build(docs)


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    loaded = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_corpus_is_deterministic_and_well_formed(docs: list[corpus.Document]) -> None:
    again = corpus.generate()
    assert again == docs
    assert len(docs) == corpus.DEFAULT_DOCUMENTS
    assert [d.id for d in docs] == [f"doc-{n:05d}" for n in range(len(docs))]
    assert {d.shard for d in docs} == set(corpus.shard_ids())
    assert all(d.shard == corpus.shard_of(d.id) for d in docs)


def test_shard_assignment_does_not_depend_on_corpus_size() -> None:
    small = corpus.generate(corpus.CorpusSpec(documents=50))
    assert all(d.shard == corpus.shard_of(d.id) for d in small)
    assert len(small) == 50


def test_a_small_recent_subset_was_written_after_the_snapshot(docs: list[corpus.Document]) -> None:
    existing = {d.id for d in corpus.documents_as_of(docs, corpus.SNAPSHOT_TIME)}
    recent = [d for d in docs if d.id not in existing]
    assert 0.03 < len(recent) / len(docs) < 0.07
    assert all(d.updated_at > corpus.SNAPSHOT_TIME for d in recent)
    assert {d.shard for d in recent} == set(corpus.shard_ids())


def test_embeddings_are_normalised_and_repeatable() -> None:
    vector = corpus.embed("Valkor ingress timeout runbook")
    assert len(vector) == corpus.DIM
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert corpus.embed("Valkor ingress timeout runbook") == vector
    assert corpus.sparse_embedding("the and of") == {}


def test_search_orders_by_score_then_id(full_index: corpus.VectorIndex) -> None:
    hits = full_index.search("kafka consumer lag backlog", 20)
    assert len(hits) == 20
    keys = [(-score, doc_id) for doc_id, score in hits]
    assert keys == sorted(keys)
    assert full_index.search("kafka consumer lag backlog", 20) == hits


def test_search_finds_a_document_by_its_codename_and_keywords(docs: list[corpus.Document],
                                                             full_index: corpus.VectorIndex) -> None:
    doc = docs[1234]
    hits = full_index.search(f"{doc.codename} {doc.keywords[0]} {doc.keywords[1]}", 3)
    assert hits[0][0] == doc.id


def test_upsert_replaces_a_row_in_place() -> None:
    index = corpus.VectorIndex()
    assert index.upsert("doc-1", corpus.embed("alpha beta"))
    assert not index.upsert("doc-1", corpus.embed("gamma delta"))
    assert len(index) == 1
    doc_id, score = index.search("gamma delta", 1)[0]
    assert doc_id == "doc-1" and abs(score - 1.0) < 1e-6


def scanned(index: corpus.VectorIndex, query: str, k: int) -> list[tuple[str, float]]:
    """Exact cosine over every row, column by column: what the posting lists must reproduce."""
    scores = [0.0] * len(index.ids)
    for bucket, weight in corpus.sparse_embedding(query, index.dim).items():
        column = index.vectors[bucket::index.dim]
        scores = [s + weight * c for s, c in zip(scores, column, strict=True)]
    ranked = ((-round(s, corpus.SCORE_DECIMALS), i) for i, s in zip(index.ids, scores, strict=True))
    return [(identifier, -neg) for neg, identifier in heapq.nsmallest(k, ranked)]


def test_search_by_posting_lists_is_a_scan_of_every_row(docs: list[corpus.Document],
                                                          full_index: corpus.VectorIndex) -> None:
    shard = corpus.VectorIndex.build(d for d in docs if d.shard == docs[0].shard)
    queries = ["kafka consumer lag backlog", "zzz nothing known", docs[5].content[:80]]
    queries += [f"{doc.codename} {doc.keywords[0]}" for doc in docs[:30]]
    for index in (full_index, shard):
        for query in queries:
            for k in (1, 10, 50, len(index) + 5):
                found = [(doc_id, repr(score)) for doc_id, score in index.search(query, k)]
                assert found == [(doc_id, repr(score)) for doc_id, score in scanned(index, query, k)]


def test_a_copy_is_changed_alone(docs: list[corpus.Document]) -> None:
    index = corpus.VectorIndex.build(docs[:50])
    before = index.search(docs[3].content, 5)
    changed = index.copy()
    changed.upsert(docs[3].id, corpus.embed("something else entirely"))
    changed.upsert("doc-new", corpus.embed(docs[3].content))
    assert index.search(docs[3].content, 5) == before
    assert changed.search(docs[3].content, 5) == scanned(changed, docs[3].content, 5)
    assert changed.search(docs[3].content, 1)[0][0] == "doc-new"


@pytest.fixture(scope="module")
def regenerated() -> dict[str, str]:
    return corpus.golden_files()


def test_shipped_golden_files_match_the_corpus(regenerated: dict[str, str]) -> None:
    for name, content in regenerated.items():
        assert (corpus.DATA_DIR / name).read_text() == content, (
            f"lab/data/{name} drifted from the corpus: run `python -m ragops_lab.corpus golden`")
    assert corpus.stale_files(corpus.DATA_DIR, regenerated) == []


def test_stale_or_missing_files_are_reported(regenerated: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / corpus.GOLDEN_FILE).write_text(regenerated[corpus.GOLDEN_FILE].replace("q001", "q000"))
    assert corpus.stale_files(tmp_path, regenerated) == [tmp_path / corpus.GOLDEN_FILE,
                                                         tmp_path / corpus.ANSWER_CACHE_FILE]


def test_golden_set_shape(golden: dict[str, Any], docs: list[corpus.Document]) -> None:
    queries = golden["queries"]
    by_id = {d.id: d for d in docs}
    assert len(queries) == corpus.GOLDEN_SIZE
    assert len({q["qid"] for q in queries}) == len(queries)
    assert sum(q["must_pass"] for q in queries) == (len(queries) + 2) // 3
    assert sum(len(q["expected_ids"]) > 1 for q in queries) >= 5
    assert golden["corpus"]["fingerprint"] == corpus.fingerprint(docs)
    for query in queries:
        assert set(query["relevance"]) == set(query["expected_ids"])
        assert query["relevance"][query["expected_ids"][0]] == 3
        shards = {by_id[i].shard for i in query["expected_ids"]}
        assert query.get("shard") == (shards.pop() if len(shards) == 1 else None)


def test_every_expected_id_ranks_in_the_top_three(golden: dict[str, Any], docs: list[corpus.Document],
                                                  full_index: corpus.VectorIndex) -> None:
    snapshot_index = corpus.VectorIndex.build(corpus.documents_as_of(docs, corpus.SNAPSHOT_TIME))
    for query in golden["queries"]:
        for index in (full_index, snapshot_index):
            top = [doc_id for doc_id, _ in index.search(query["text"], golden["k"])]
            assert set(query["expected_ids"]) <= set(top), query["qid"]


def test_golden_queries_with_a_shard_pass_on_that_shard_alone(golden: dict[str, Any],
                                                              docs: list[corpus.Document]) -> None:
    shard_indexes = {s: corpus.VectorIndex.build(d for d in docs if d.shard == s) for s in corpus.shard_ids()}
    for query in golden["queries"]:
        if "shard" in query:
            top = [doc_id for doc_id, _ in shard_indexes[query["shard"]].search(query["text"], golden["k"])]
            assert set(query["expected_ids"]) <= set(top), query["qid"]


def test_each_shard_has_the_runbooks_ten_queries_of_its_own_and_a_baseline(golden: dict[str, Any]) -> None:
    for shard in corpus.shard_ids():
        own = [q for q in golden["queries"] if q.get("shard") == shard]
        assert len(own) >= corpus.GOLDEN_PER_SHARD >= 10, (shard, len(own))
        assert any(q["must_pass"] for q in own), shard
        baseline = golden["shard_baselines"][shard]
        assert baseline["recall_at_k"] == baseline["mrr"] == baseline["must_pass_rate"] == 1.0, shard
    assert sorted(golden["shard_baselines"]) == corpus.shard_ids()


def test_baseline_metrics_are_what_the_search_achieves(golden: dict[str, Any]) -> None:
    baseline = golden["baseline"]
    assert baseline["recall_at_k"] == 1.0
    assert baseline["mrr"] == 1.0
    assert baseline["must_pass_rate"] == 1.0
    assert 0 < baseline["precision_at_k"] <= 1


def test_answer_cache_covers_every_golden_qid(golden: dict[str, Any]) -> None:
    cache = corpus.answer_cache(golden, corpus.generate())
    assert set(cache) == {q["qid"] for q in golden["queries"]}
    assert all(entry["citations"] for entry in cache.values())
