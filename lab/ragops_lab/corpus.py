"""A seeded synthetic document corpus, hashed-feature embeddings and the lab's golden query set.

Everything here is a pure function of a CorpusSpec, so every shard, the indexer and the golden set
agree on the same documents without shipping them: the corpus is regenerated wherever it is needed.

Documents describe fictional services (each has a made-up codename) in one of sixteen ops topics; a
codename has one to three documents of different kinds, which gives queries with more than one
relevant document. About 5 % of the documents were written after SNAPSHOT_TIME: the ones a
re-index must bring back after a shard is restored from a snapshot taken at that time.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import math
import random
import re
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DIM = 256
DEFAULT_DOCUMENTS = 4000
DEFAULT_SHARDS = 4
DEFAULT_SEED = 20250115
SNAPSHOT_TIME = "2025-01-15T00:00:00Z"
RECENT_FRACTION = 0.05
GOLDEN_SIZE = 48
# Each shard's own golden queries (those whose expected documents all live on it): at least the
# runbook's 10, so that a shard's gate after a restore runs 10-50 queries.
GOLDEN_PER_SHARD = 10
GOLDEN_K = 3
SCORE_DECIMALS = 6
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
GOLDEN_FILE = "golden.yml"
ANSWER_CACHE_FILE = "answer-cache.json"

TOPICS: Mapping[str, tuple[str, ...]] = {
    "ingress": ("ingress", "gateway", "tls", "certificate", "timeout", "loadbalancer", "route",
                "hostname", "upstream", "proxy", "handshake", "dns", "header", "redirect"),
    "storage": ("volume", "pvc", "disk", "snapshot", "filesystem", "mount", "capacity", "iops",
                "replication", "backup", "restore", "quota", "storageclass", "resize"),
    "database": ("postgres", "replica", "query", "vacuum", "connection", "pool", "transaction",
                 "lock", "migration", "schema", "failover", "wal", "deadlock", "checkpoint"),
    "identity": ("token", "oauth", "session", "password", "rotation", "credential", "secret",
                 "rbac", "role", "permission", "login", "mfa", "expiry", "audit"),
    "llm": ("prompt", "completion", "model", "provider", "tokens", "temperature", "ratelimit",
            "fallback", "embedding", "context", "hallucination", "guardrail", "streaming", "quota"),
    "search": ("vector", "shard", "retrieval", "ranking", "recall", "precision", "reindex",
               "segment", "cosine", "relevance", "corpus", "index", "reranker", "tokenizer"),
    "observability": ("metrics", "alert", "dashboard", "tracing", "logs", "prometheus", "latency",
                      "slo", "pager", "histogram", "exporter", "scrape", "retention", "anomaly"),
    "billing": ("invoice", "payment", "subscription", "refund", "plan", "currency", "tax",
                "receipt", "charge", "discount", "usage", "trial", "upgrade", "ledger"),
    "networking": ("pod", "service", "cidr", "mtu", "packet", "firewall", "egress", "policy",
                   "overlay", "mesh", "sidecar", "retry", "circuit", "bandwidth"),
    "delivery": ("rollout", "canary", "helm", "image", "registry", "manifest", "rollback",
                 "pipeline", "release", "artifact", "tag", "promotion", "approval", "freeze"),
    "caching": ("redis", "eviction", "ttl", "hit", "miss", "memory", "warmup", "invalidation",
                "key", "cluster", "persistence", "sentinel", "stampede", "serialization"),
    "messaging": ("kafka", "partition", "consumer", "offset", "backlog", "lag", "topic",
                  "producer", "rebalance", "dlq", "throughput", "ordering", "broker", "ack"),
    "security": ("vulnerability", "patch", "cve", "scan", "encryption", "kms", "intrusion",
                 "compliance", "sbom", "signing", "baseline", "hardening", "incident", "waf"),
    "scheduling": ("node", "taint", "toleration", "affinity", "cpu", "autoscaler", "spot",
                   "preemption", "drain", "cordon", "priority", "requests", "limits", "binpacking"),
    "frontend": ("browser", "render", "bundle", "cdn", "asset", "accessibility", "layout", "font",
                 "hydration", "locale", "form", "validation", "cookie", "responsive"),
    "pipelines": ("etl", "batch", "airflow", "dag", "parquet", "warehouse", "backfill", "lineage",
                  "freshness", "ingestion", "transform", "watermark", "dedup", "compaction"),
}
KINDS = ("overview", "runbook", "troubleshooting", "faq", "postmortem", "checklist", "design",
         "howto", "migration", "changelog")
VERBS = ("fails", "degrades", "spikes", "stalls", "drifts", "flaps", "regresses", "saturates")
ACTIONS = ("inspect", "tune", "verify", "rotate", "restart", "pin", "drain", "document")
SYLLABLES = ("ka", "lo", "mi", "ven", "dor", "tis", "ra", "xe", "qu", "bel", "nor", "zan", "fi",
             "gru", "hal", "jo", "pex", "sul", "tor", "wy", "ond", "cal", "mer", "vik")
# English function words plus the filler every document template repeats: hashed into only 256
# dimensions, words shared by all documents would drown the distinctive ones in collisions.
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "before", "by", "do", "does", "during", "for", "from",
    "how", "i", "in", "is", "it", "of", "on", "or", "our", "the", "this", "to", "we", "what", "when",
    "where", "which", "why", "with", "you", "your", "should", "can", "about", "after", "into",
    "covers", "team", "settings", "first", "operators", "usually", "check", "touching", "docs", "say",
    "notes",
))
QUESTION_TEMPLATES = (
    "How do I handle {kw1} {kw2} in the {codename} {kind}?",
    "{codename} {kind}: what about {kw1} and {kw2}?",
    "Where is the {codename} {kind} for {kw1} {kw2}?",
    "{kw1} {kw2} {codename} {kind}",
)
# Asked about a whole codename family: the named document first, its siblings also relevant.
FAMILY_TEMPLATES = (
    "What do the {codename} docs say about {kw1}?",
    "{codename} {kw1} notes",
)
TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class CorpusSpec:
    documents: int = DEFAULT_DOCUMENTS
    shards: int = DEFAULT_SHARDS
    seed: int = DEFAULT_SEED

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> CorpusSpec:
        """Read CORPUS_DOCUMENTS, SHARD_COUNT and CORPUS_SEED (a program's environment)."""
        return cls(
            documents=int(env.get("CORPUS_DOCUMENTS") or DEFAULT_DOCUMENTS),
            shards=int(env.get("SHARD_COUNT") or DEFAULT_SHARDS),
            seed=int(env.get("CORPUS_SEED") or DEFAULT_SEED),
        )


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    topic: str
    codename: str
    kind: str
    keywords: tuple[str, ...]
    shard: str
    updated_at: str

    @property
    def content(self) -> str:
        """What gets embedded: the title counts as part of the document."""
        return f"{self.title}. {self.text}"


def doc_id(number: int) -> str:
    return f"doc-{number:05d}"


def shard_of(document_id: str, shards: int = DEFAULT_SHARDS) -> str:
    """Stable shard assignment: independent of corpus size, seed and process."""
    digest = hashlib.sha256(document_id.encode()).digest()
    return f"shard-{int.from_bytes(digest[:8], 'big') % shards}"


def shard_ids(shards: int = DEFAULT_SHARDS) -> list[str]:
    return [f"shard-{n}" for n in range(shards)]


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _codenames(rng: random.Random) -> Iterator[str]:
    seen: set[str] = set()
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3))))
        if name not in seen and len(name) >= 4:
            seen.add(name)
            yield name


def _timestamp(rng: random.Random) -> str:
    snapshot = from_iso(SNAPSHOT_TIME)
    if rng.random() < RECENT_FRACTION:
        return to_iso(snapshot + timedelta(seconds=rng.randint(60, 3 * 86400)))
    return to_iso(snapshot - timedelta(seconds=rng.randint(3600, 380 * 86400)))


def _text(rng: random.Random, codename: str, kind: str, topic: str, kws: Sequence[str]) -> str:
    verb, action = rng.choice(VERBS), rng.choice(ACTIONS)
    return " ".join((
        f"The {codename.capitalize()} {kind} covers {kws[0]} and {kws[1]} for the {topic} team.",
        f"When {kws[2]} {verb} during {kws[3]}, {action} the {kws[4]} settings first.",
        f"Operators of {codename.capitalize()} usually check {kws[5]} before touching {kws[1]}.",
    ))


def _document(rng: random.Random, number: int, codename: str, kind: str, topic: str, shards: int) -> Document:
    kws = tuple(rng.sample(TOPICS[topic], 6))
    identifier = doc_id(number)
    return Document(
        id=identifier,
        title=f"{codename.capitalize()} {kind}: {kws[0]} {kws[1]}",
        text=_text(rng, codename, kind, topic, kws),
        topic=topic,
        codename=codename,
        kind=kind,
        keywords=kws,
        shard=shard_of(identifier, shards),
        updated_at=_timestamp(rng),
    )


def generate(spec: CorpusSpec = CorpusSpec()) -> list[Document]:
    """The corpus for `spec`: same spec, same documents, in id order."""
    rng = random.Random(spec.seed)
    names = _codenames(rng)
    topics = sorted(TOPICS)
    docs: list[Document] = []
    while len(docs) < spec.documents:
        codename, topic = next(names), rng.choice(topics)
        family = min(rng.choice((1, 1, 2, 2, 3)), spec.documents - len(docs))
        for kind in rng.sample(KINDS, family):
            docs.append(_document(rng, len(docs), codename, kind, topic, spec.shards))
    return docs


def fingerprint(docs: Sequence[Document]) -> str:
    """A short digest of the corpus, so a golden set can tell which corpus it was made from."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(f"{doc.id}\0{doc.updated_at}\0{doc.content}\n".encode())
    return digest.hexdigest()[:16]


# --- embeddings and search ---------------------------------------------------------------------


def features(text: str) -> list[str]:
    """Word unigrams and bigrams of the non-stopword tokens."""
    tokens = [t for t in TOKEN.findall(text.lower()) if t not in STOPWORDS]
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def sparse_embedding(text: str, dim: int = DIM) -> dict[int, float]:
    """Signed feature hashing, L2-normalised; only the non-zero dimensions."""
    raw: dict[int, float] = {}
    for feature in features(text):
        hashed = zlib.crc32(feature.encode())
        bucket = hashed % dim
        raw[bucket] = raw.get(bucket, 0.0) + (1.0 if hashed & 0x10000 else -1.0)
    norm = math.sqrt(sum(v * v for v in raw.values()))
    return {d: v / norm for d, v in sorted(raw.items()) if v} if norm else {}


def embed(text: str, dim: int = DIM) -> list[float]:
    """The dense form of sparse_embedding, as stored in an index."""
    dense = [0.0] * dim
    for bucket, value in sparse_embedding(text, dim).items():
        dense[bucket] = value
    return dense


@dataclass
class VectorIndex:
    """Dense float32 vectors in row order; search is exact cosine over all rows.

    Beside the rows, each dimension keeps the rows where it is not zero (a posting list, as a
    search engine's inverted index does): a query scores only the rows that share one of its few
    dimensions, with the same terms in the same order as a scan of every row, so the ranking and
    the scores are exactly those of the scan at a fraction of its cost.
    """

    dim: int = DIM
    ids: list[str] = field(default_factory=list)
    vectors: array[float] = field(default_factory=lambda: array("f"))
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _postings: list[dict[int, float]] = field(default_factory=list, repr=False)
    _sorted_ids: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._rows = {identifier: row for row, identifier in enumerate(self.ids)}
        self._postings = [{} for _ in range(self.dim)]
        for row in range(len(self.ids)):
            self._post(row)

    def _post(self, row: int) -> None:
        start = row * self.dim
        for bucket, value in enumerate(self.vectors[start:start + self.dim]):
            if value:
                self._postings[bucket][row] = value
            else:
                self._postings[bucket].pop(row, None)

    @classmethod
    def build(cls, docs: Iterable[Document], dim: int = DIM) -> VectorIndex:
        index = cls(dim)
        for doc in docs:
            index.upsert(doc.id, embed(doc.content, dim))
        return index

    def copy(self) -> VectorIndex:
        """An independent copy: a writer changes the copy while searches read this one."""
        return VectorIndex(self.dim, list(self.ids), array("f", self.vectors))

    def __len__(self) -> int:
        return len(self.ids)

    def upsert(self, identifier: str, vector: Sequence[float]) -> bool:
        """Add or replace one row; True when it was added."""
        if len(vector) != self.dim:
            raise ValueError(f"vector has {len(vector)} dimensions, index has {self.dim}")
        row = self._rows.get(identifier)
        added = row is None
        if row is None:
            row = self._rows[identifier] = len(self.ids)
            self.ids.append(identifier)
            self.vectors.extend(vector)
            self._sorted_ids = None
        else:
            self.vectors[row * self.dim:(row + 1) * self.dim] = array("f", vector)
        self._post(row)
        return added

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top k (id, score) by descending cosine score, ties broken by id.

        Scores are rounded so that merging results from several shards orders ties exactly the
        way a single index over all of them would.
        """
        scores: dict[int, float] = {}
        for bucket, weight in sparse_embedding(query, self.dim).items():
            for row, value in self._postings[bucket].items():
                scores[row] = scores.get(row, 0.0) + weight * value
        scored = scores
        if len(scores) > k:
            # Rounding moves a score by half a unit of its last decimal at most: no row below the
            # k-th best score by more than one unit can reach the top k once rounded (two units
            # leave room for the float error of the rounding).
            floor = heapq.nlargest(k, scores.values())[-1] - 2 * 10.0 ** -SCORE_DECIMALS
            scores = {row: s for row, s in scores.items() if s >= floor}
        ranked = [(-round(s, SCORE_DECIMALS), self.ids[row]) for row, s in scores.items()]
        # Every other row scores 0: only the k first of them by id can be among the top k.
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.ids)
        unscored = (i for i in self._sorted_ids if self._rows[i] not in scored)
        ranked += [(-0.0, identifier) for identifier in itertools.islice(unscored, k)]
        return [(identifier, -neg) for neg, identifier in heapq.nsmallest(k, ranked)]


def documents_as_of(docs: Iterable[Document], moment: str) -> list[Document]:
    """The documents that existed at `moment` (what a snapshot taken then holds)."""
    limit = from_iso(moment)
    return [doc for doc in docs if from_iso(doc.updated_at) <= limit]


# --- golden set --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenQuery:
    qid: str
    text: str
    relevance: dict[str, int]
    must_pass: bool
    shard: str | None

    @property
    def expected_ids(self) -> list[str]:
        return sorted(self.relevance, key=lambda i: (-self.relevance[i], i))

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"qid": self.qid, "text": self.text, "expected_ids": self.expected_ids,
                                 "relevance": dict(sorted(self.relevance.items())), "must_pass": self.must_pass}
        if self.shard:
            entry["shard"] = self.shard
        return entry


def _question(rng: random.Random, doc: Document, family_size: int) -> str:
    template = rng.choice(FAMILY_TEMPLATES if family_size > 1 else QUESTION_TEMPLATES)
    return template.format(codename=doc.codename.capitalize(), kind=doc.kind, kw1=doc.keywords[0], kw2=doc.keywords[1])


def _ranks(indexes: Sequence[VectorIndex], text: str) -> list[dict[str, int]]:
    return [{i: rank for rank, (i, _) in enumerate(index.search(text, GOLDEN_K), 1)} for index in indexes]


def _golden_query(rng: random.Random, doc: Document, family: Sequence[Document],
                  indexes: Sequence[VectorIndex]) -> tuple[str, dict[str, int]] | None:
    """A question about `doc` and its graded relevant ids, or None when the search misses it."""
    text = _question(rng, doc, len(family))
    ranks = _ranks(indexes, text)
    if any(r.get(doc.id) != 1 for r in ranks):
        return None
    relevance = {doc.id: 3}
    for sibling in family:
        if sibling.id != doc.id and all(sibling.id in r for r in ranks):
            relevance[sibling.id] = 1
    return text, relevance


def _golden_candidates(rng: random.Random, docs: Sequence[Document]) -> list[Document]:
    """Documents that existed at snapshot time, in a seeded random order."""
    existing = documents_as_of(docs, SNAPSHOT_TIME)
    rng.shuffle(existing)
    return existing


def _shard_of_query(relevance: Mapping[str, int], shard_by_id: Mapping[str, str]) -> str | None:
    shards = {shard_by_id[i] for i in relevance}
    return shards.pop() if len(shards) == 1 else None


def build_golden_queries(docs: Sequence[Document], indexes: Sequence[VectorIndex], count: int = GOLDEN_SIZE,
                         seed: int = DEFAULT_SEED) -> list[GoldenQuery]:
    """Golden queries, at least GOLDEN_PER_SHARD of each shard's own (every expected id on that shard), the
    rest of any shard or spanning shards; every expected id ranks ≤ GOLDEN_K in each of `indexes` (the
    full corpus and the corpus as of SNAPSHOT_TIME), the asked-about document first."""
    rng = random.Random(seed + 1)
    by_codename: dict[str, list[Document]] = {}
    for doc in docs:
        by_codename.setdefault(doc.codename, []).append(doc)
    shard_by_id = {doc.id: doc.shard for doc in docs}
    shards = sorted({doc.shard for doc in docs})
    own: dict[str, int] = {}
    graded_quota = count // 3
    chosen: list[tuple[str, dict[str, int]]] = []
    used: set[str] = set()
    for doc in _golden_candidates(rng, docs):
        if len(chosen) == count:
            break
        if doc.codename in used:
            continue
        found = _golden_query(rng, doc, by_codename[doc.codename], indexes)
        if found is None or (len(found[1]) > 1 and graded_quota == 0):
            continue
        shard = _shard_of_query(found[1], shard_by_id)
        missing = sum(max(0, GOLDEN_PER_SHARD - own.get(s, 0)) for s in shards)
        needed = shard is not None and own.get(shard, 0) < GOLDEN_PER_SHARD
        if not needed and count - len(chosen) <= missing:
            continue  # keep the room the shards still below their minimum need
        graded_quota -= len(found[1]) > 1
        used.add(doc.codename)
        if shard is not None:
            own[shard] = own.get(shard, 0) + 1
        chosen.append(found)
    return [_make_query(n, text, relevance, shard_by_id) for n, (text, relevance) in enumerate(chosen, 1)]


def _make_query(number: int, text: str, relevance: dict[str, int], shard_by_id: Mapping[str, str]) -> GoldenQuery:
    return GoldenQuery(
        qid=f"q{number:03d}",
        text=text,
        relevance=relevance,
        must_pass=number % 3 == 1,
        shard=_shard_of_query(relevance, shard_by_id),
    )


def baseline_metrics(queries: Sequence[GoldenQuery], index: VectorIndex, k: int = GOLDEN_K) -> dict[str, float]:
    """Precision, recall, MRR and nDCG at k, and the must-pass rate, over the golden queries."""
    totals = {"precision_at_k": 0.0, "recall_at_k": 0.0, "mrr": 0.0, "ndcg_at_k": 0.0}
    must = [q for q in queries if q.must_pass]
    must_ok = 0
    for query in queries:
        returned = [i for i, _ in index.search(query.text, k)]
        hits = [i for i in returned if i in query.relevance]
        totals["precision_at_k"] += len(hits) / k
        totals["recall_at_k"] += len(hits) / len(query.relevance)
        totals["mrr"] += next((1 / r for r, i in enumerate(returned, 1) if i in query.relevance), 0.0)
        totals["ndcg_at_k"] += _ndcg(returned, query.relevance, k)
        must_ok += query.must_pass and set(query.relevance) <= set(returned)
    metrics = {name: round(value / len(queries), 4) for name, value in totals.items()}
    metrics["must_pass_rate"] = round(must_ok / len(must), 4) if must else 1.0
    return metrics


def _ndcg(returned: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """nDCG as trec_eval (>= 9.0.4) computes it, and ragops.recovery.golden_validate with it: the gain at rank r
    is divided by log2(r + 1)."""
    dcg = sum(relevance.get(i, 0) / math.log2(r + 1) for r, i in enumerate(returned[:k], 1))
    ideal = sorted(relevance.values(), reverse=True)[:k]
    best = sum(g / math.log2(r + 1) for r, g in enumerate(ideal, 1))
    return dcg / best if best else 0.0


def golden_document(spec: CorpusSpec, docs: Sequence[Document]) -> dict[str, Any]:
    """The whole golden set file content for the corpus `docs` of `spec`."""
    full = VectorIndex.build(docs)
    queries = build_golden_queries(docs, [full, VectorIndex.build(documents_as_of(docs, SNAPSHOT_TIME))],
                                   seed=spec.seed)
    return {
        "version": 1,
        "corpus": {"documents": spec.documents, "shards": spec.shards, "seed": spec.seed,
                   "dim": DIM, "fingerprint": fingerprint(docs), "snapshot_time": SNAPSHOT_TIME},
        "k": GOLDEN_K,
        "baseline": baseline_metrics(queries, full),
        "shard_baselines": shard_baselines(queries, docs),
        "queries": [q.as_dict() for q in queries],
    }


def shard_baselines(queries: Sequence[GoldenQuery], docs: Sequence[Document]) -> dict[str, dict[str, float]]:
    """Each shard's own queries measured against that shard alone, as a shard's gate asks its endpoint."""
    return {shard: baseline_metrics([q for q in queries if q.shard == shard],
                                    VectorIndex.build([d for d in docs if d.shard == shard]))
            for shard in sorted({q.shard for q in queries if q.shard})}


def answer_cache(golden: Mapping[str, Any], docs: Sequence[Document]) -> dict[str, dict[str, Any]]:
    """Cached answers for the golden qids, as the generator's `cache` fallback mode serves them."""
    by_id = {doc.id: doc for doc in docs}
    cache = {}
    for query in golden["queries"]:
        top = by_id[query["expected_ids"][0]]
        cache[query["qid"]] = {
            "answer": f"{top.title}. {top.text.split('. ')[0]}.",
            "citations": list(query["expected_ids"]),
        }
    return cache


def render_golden(golden: Mapping[str, Any]) -> str:
    import yaml  # only regenerating the golden set needs PyYAML; the servers stay standard-library only

    header = "# Generated from the lab corpus by `python -m ragops_lab.corpus golden`; do not edit by hand.\n"
    return header + yaml.safe_dump(dict(golden), sort_keys=False, width=120, allow_unicode=True)


def render_answer_cache(cache: Mapping[str, Any]) -> str:
    return json.dumps(cache, indent=2, sort_keys=True) + "\n"


def golden_files(spec: CorpusSpec = CorpusSpec()) -> dict[str, str]:
    """File name → content of every shipped data file derived from the corpus."""
    docs = generate(spec)
    golden = golden_document(spec, docs)
    return {
        GOLDEN_FILE: render_golden(golden),
        ANSWER_CACHE_FILE: render_answer_cache(answer_cache(golden, docs)),
    }


def stale_files(out: Path, expected: Mapping[str, str]) -> list[Path]:
    """The data files under `out` that are missing or differ from what the corpus generates."""
    paths = [out / name for name in expected]
    return [path for path in paths if not path.is_file() or path.read_text() != expected[path.name]]


def _cmd_golden(args: argparse.Namespace) -> int:
    out, expected = Path(args.out), golden_files()
    if args.check:
        stale = stale_files(out, expected)
        if stale:
            names = ", ".join(map(str, stale))
            print(f"out of date with the corpus: {names}; run `python -m ragops_lab.corpus golden`")
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, content in expected.items():
        (out / name).write_text(content)
        print(f"wrote {out / name}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    docs = {doc.id: doc for doc in generate()}
    for identifier, score in VectorIndex.build(docs.values()).search(args.query, args.k):
        print(f"{score:.6f}  {identifier}  {docs[identifier].shard}  {docs[identifier].title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.corpus", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    golden = commands.add_parser("golden", help="regenerate (or --check) lab/data/golden.yml and answer-cache.json")
    golden.add_argument("--out", default=str(DATA_DIR))
    golden.add_argument("--check", action="store_true", help="exit 1 when the shipped files differ")
    golden.set_defaults(run=_cmd_golden)
    search = commands.add_parser("search", help="search the whole corpus")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=GOLDEN_K)
    search.set_defaults(run=_cmd_search)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
