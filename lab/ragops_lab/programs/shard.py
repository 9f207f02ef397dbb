"""Vectorstore shard: serves cosine search over an index persisted on the shard's volume.

The index files carry a SHA-256 manifest that is checked at load, on re-open and periodically
while serving, so a corrupt or truncated index is detected the way a real store notices a bad
segment: an error in the pod log, readiness lost, searches refused (or silently empty), and writes
refused so the damaged files stay as evidence.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from ragops_lab import corpus
from ragops_lab.clock import now, utc_now
from ragops_lab.runtime.env import ConfigError, PodEnv, env_bool, env_choice, env_float, env_str, resolve_path
from ragops_lab.runtime.httpclient import Unreachable, http_json
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, main_guard, ok, run_app

INDEX_DIR = "index"
MANIFEST = "checksums.json"
INDEX_FILES = ("vectors.bin", "ids.json", "docs.json", "meta.json")
INDEX_FORMAT = 1
MAX_K = 100
# A quiesce holds writes for at most this long (and for 600 s when the caller names no time).
MAX_QUIESCE_SECONDS = 86400
DEFAULT_QUIESCE_SECONDS = 600


class IndexUnusable(RuntimeError):
    """The on-disk index is missing, corrupt, truncated or belongs to another shard."""


@dataclass
class LoadedIndex:
    index: corpus.VectorIndex
    docs: dict[str, dict[str, str]]
    meta: dict[str, Any]
    checksum: str
    loaded_at: str


# --- on-disk format ----------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_checksum(files: Mapping[str, Any]) -> str:
    return _sha256(json.dumps(files, sort_keys=True).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _vector_bytes(vectors: array[float]) -> bytes:
    if sys.byteorder == "little":
        return vectors.tobytes()
    swapped = array("f", vectors)
    swapped.byteswap()
    return swapped.tobytes()


def write_index(data_dir: Path, shard: str, loaded: LoadedIndex) -> str:
    """Persist the index; the manifest goes last so a crash mid-write never looks complete."""
    index_dir = data_dir / INDEX_DIR
    index_dir.mkdir(parents=True, exist_ok=True)
    meta = {**loaded.meta, "format": INDEX_FORMAT, "shard": shard, "dim": loaded.index.dim,
            "count": len(loaded.index),
            "max_updated_at": max((d["updated_at"] for d in loaded.docs.values()), default=None)}
    contents = {
        "vectors.bin": _vector_bytes(loaded.index.vectors),
        "ids.json": json.dumps(loaded.index.ids).encode(),
        "docs.json": json.dumps(loaded.docs, sort_keys=True).encode(),
        "meta.json": json.dumps(meta, sort_keys=True, indent=1).encode(),
    }
    files = {name: {"sha256": _sha256(data), "size": len(data)} for name, data in contents.items()}
    for name, data in contents.items():
        _atomic_write(index_dir / name, data)
    _atomic_write(index_dir / MANIFEST, json.dumps({"algorithm": "sha256", "files": files}, indent=1).encode())
    loaded.meta = meta
    loaded.checksum = _manifest_checksum(files)
    return loaded.checksum


def verify_files(index_dir: Path) -> tuple[dict[str, bytes], str]:
    """Every index file's bytes, after checking sizes and SHA-256 against the manifest."""
    manifest_path = index_dir / MANIFEST
    if not manifest_path.is_file():
        raise IndexUnusable(f"index not found: {manifest_path} is missing")
    try:
        files = json.loads(manifest_path.read_bytes())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexUnusable(f"unreadable index manifest {MANIFEST}: {exc}") from exc
    contents = {}
    for name in INDEX_FILES:
        if name not in files:
            raise IndexUnusable(f"{MANIFEST} does not list {name}")
        contents[name] = _verified_bytes(index_dir / name, files[name])
    return contents, _manifest_checksum(files)


def _verified_bytes(path: Path, expected: Mapping[str, Any]) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IndexUnusable(f"missing index file {path.name}") from exc
    except OSError as exc:
        raise IndexUnusable(f"I/O error reading {path.name}: {exc}") from exc
    size = int(expected["size"])
    if len(data) != size:
        problem = "truncated index file" if len(data) < size else "size mismatch in"
        raise IndexUnusable(f"{problem} {path.name}: expected {size} bytes, found {len(data)}")
    actual = _sha256(data)
    if actual != expected["sha256"]:
        raise IndexUnusable(
            f"checksum mismatch in {path.name}: expected {expected['sha256'][:12]}…, found {actual[:12]}…")
    return data


def load_index(data_dir: Path, shard: str | None) -> LoadedIndex:
    """Load and fully verify the index of `shard` (None: any shard) from a volume root."""
    contents, checksum = verify_files(data_dir / INDEX_DIR)
    try:
        ids = json.loads(contents["ids.json"])
        docs = json.loads(contents["docs.json"])
        meta = json.loads(contents["meta.json"])
    except ValueError as exc:
        raise IndexUnusable(f"unreadable index metadata: {exc}") from exc
    if meta.get("format") != INDEX_FORMAT:
        raise IndexUnusable(f"unsupported index format {meta.get('format')!r}")
    if shard is not None and meta.get("shard") != shard:
        raise IndexUnusable(f"index belongs to {meta.get('shard')}, not {shard}")
    dim = int(meta["dim"])
    vectors = array("f")
    vectors.frombytes(contents["vectors.bin"])
    if sys.byteorder != "little":
        vectors.byteswap()
    if len(vectors) != len(ids) * dim or set(docs) != set(ids):
        raise IndexUnusable(f"vectors.bin holds {len(vectors) // dim} vectors but ids.json lists {len(ids)} ids")
    return LoadedIndex(corpus.VectorIndex(dim, ids, vectors), docs, meta, checksum, utc_now())


def build_shard_index(spec: corpus.CorpusSpec, shard: str, data_dir: Path, as_of: str | None = None,
                      documents: Sequence[corpus.Document] | None = None) -> LoadedIndex:
    """Build the shard's index from the corpus (optionally as of a time) and persist it.

    `documents` saves regenerating the corpus when several shards are built in one process.
    """
    docs = [doc for doc in (documents or corpus.generate(spec)) if doc.shard == shard]
    if as_of:
        docs = corpus.documents_as_of(docs, as_of)
    loaded = LoadedIndex(
        index=corpus.VectorIndex.build(docs),
        docs={doc.id: {"title": doc.title, "updated_at": doc.updated_at} for doc in docs},
        meta={"built_at": utc_now(), "as_of": as_of},
        checksum="",
        loaded_at=utc_now(),
    )
    write_index(data_dir, shard, loaded)
    return loaded


# --- the server --------------------------------------------------------------------------------


def shard_id_from(env: Mapping[str, str], pod_name: str) -> str:
    """SHARD_ID, else the first ordinal in the pod name: vectorstore-2(-anything) → shard-2."""
    explicit = env_str(env, "SHARD_ID")
    if explicit:
        return explicit
    match = re.search(r"-(\d+)(?=-|$)", pod_name)
    if not match:
        raise ConfigError(f"set SHARD_ID: pod name {pod_name!r} carries no shard ordinal")
    return f"shard-{int(match.group(1))}"


@dataclass(frozen=True)
class ShardConfig:
    shard_id: str
    data_dir: Path
    corrupt_behaviour: str = "error"
    integrity_check_seconds: float = 1.0
    bootstrap: bool = False
    corpus_spec: corpus.CorpusSpec = field(default_factory=corpus.CorpusSpec)
    as_of: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], pod: PodEnv) -> ShardConfig:
        return cls(
            shard_id=shard_id_from(env, pod.name),
            data_dir=resolve_path(env_str(env, "DATA_DIR", "/data"), pod.mounts),
            corrupt_behaviour=env_choice(env, "CORRUPT_BEHAVIOUR", ("error", "empty"), "error"),
            integrity_check_seconds=env_float(env, "INTEGRITY_CHECK_SECONDS", 1.0),
            bootstrap=env_bool(env, "BOOTSTRAP_FROM_CORPUS"),
            corpus_spec=corpus.CorpusSpec.from_mapping(env),
            as_of=env_str(env, "CORPUS_AS_OF") or None,
        )


class ShardService:
    """The shard's state (a verified index, or the reason there is none) and its endpoints."""

    def __init__(self, config: ShardConfig, log: JsonLog) -> None:
        self.config = config
        self.log = log
        self._lock = threading.RLock()
        self._loaded: LoadedIndex | None = None
        self._error: str | None = "index not loaded yet"
        self._error_at: str | None = None
        # While quiesced (a snapshot copies the volume), writes are refused until this monotonic time.
        self._quiesced_until: float | None = None
        self._quiesced_until_utc: str | None = None

    def bootstrap_if_empty(self) -> None:
        """Build from the corpus only when the volume has no index at all, never over a damaged one."""
        if self.config.bootstrap and not (self.config.data_dir / INDEX_DIR).exists():
            config = self.config
            loaded = build_shard_index(config.corpus_spec, config.shard_id, config.data_dir, config.as_of)
            self.log.info("index_bootstrapped", doc_count=len(loaded.index), data_dir=str(self.config.data_dir))

    def open_index(self) -> bool:
        """(Re-)load the index from disk; on failure the shard serves nothing until the next success."""
        with self._lock:
            try:
                self._loaded = load_index(self.config.data_dir, self.config.shard_id)
            except IndexUnusable as exc:
                self._fail("index_load_failed", str(exc))
                return False
            self._error = self._error_at = None
            self.log.info("index_loaded", doc_count=len(self._loaded.index), index_checksum=self._loaded.checksum)
            return True

    def check_integrity(self) -> None:
        """Re-verify the files under a loaded index, as a store notices a bad segment when it reads it.

        The files are read and hashed outside the lock, beside the searches; a write or re-open that
        replaced the index meanwhile (and may have been caught half-written) makes the finding moot.
        """
        with self._lock:
            checked = self._loaded
        if checked is None:
            return
        try:
            verify_files(self.config.data_dir / INDEX_DIR)
        except IndexUnusable as exc:
            with self._lock:
                if self._loaded is checked:
                    self._fail("index_corruption_detected", str(exc))

    def _fail(self, event: str, error: str) -> None:
        self._loaded = None
        self._error, self._error_at = error, utc_now()
        self.log.error(event, error=error, data_dir=str(self.config.data_dir))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            loaded = self._loaded
            return {
                "shard": self.config.shard_id,
                "ready": loaded is not None,
                "doc_count": len(loaded.index) if loaded else 0,
                "dim": loaded.index.dim if loaded else None,
                "index_checksum": loaded.checksum if loaded else None,
                "max_updated_at": loaded.meta.get("max_updated_at") if loaded else None,
                "loaded_at": loaded.loaded_at if loaded else None,
                "last_error": self._error,
                "last_error_at": self._error_at,
                "data_dir": str(self.config.data_dir),
                "corrupt_behaviour": self.config.corrupt_behaviour,
                "quiesced_until": self._quiesced_until_utc if self._quiesced() else None,
            }

    def _quiesced(self) -> bool:
        """Whether writes are held now; a hold whose time ran out is lifted (and logged) here."""
        if self._quiesced_until is None:
            return False
        if time.monotonic() < self._quiesced_until:
            return True
        self.log.info("quiesce_expired", until=self._quiesced_until_utc)
        self._quiesced_until = self._quiesced_until_utc = None
        return False

    def quiesce(self, request: Request) -> Response:
        """Finish the writes in flight (they hold the lock), then refuse new ones for `seconds` at most."""
        seconds = (request.json() or {}).get("seconds", DEFAULT_QUIESCE_SECONDS)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_QUIESCE_SECONDS:
            raise HttpError(400, f"seconds must be a number above 0 and at most {MAX_QUIESCE_SECONDS}")
        with self._lock:
            self._quiesced_until = time.monotonic() + seconds
            self._quiesced_until_utc = (now() + timedelta(seconds=seconds)).isoformat(timespec="seconds").replace(
                "+00:00", "Z")
            until = self._quiesced_until_utc
        self.log.info("quiesced", seconds=seconds, until=until)
        return ok({"quiesced": True, "until": until, "seconds": seconds, "shard": self.config.shard_id})

    def resume(self, _: Request) -> Response:
        with self._lock:
            held = self._quiesced()
            self._quiesced_until = self._quiesced_until_utc = None
        self.log.info("resumed", was_quiesced=held)
        return ok({"quiesced": False, "was_quiesced": held, "shard": self.config.shard_id})

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self._loaded is None:
                return False, {"reason": self._error, "shard": self.config.shard_id}
            return True, {"shard": self.config.shard_id, "doc_count": len(self._loaded.index)}

    def search(self, request: Request) -> Response:
        body = request.json()
        query, k = body.get("query"), body.get("k", 10)
        if not isinstance(query, str) or not query.strip():
            raise HttpError(400, "query must be a non-empty string")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise HttpError(400, f"k must be an integer between 1 and {MAX_K}")
        with self._lock:
            loaded, error = self._loaded, self._error
        # Searched outside the lock, as a real vector store serves reads side by side: writers and
        # re-opens replace the loaded index, they never change one that a search may be reading.
        if loaded is not None:
            hits = loaded.index.search(query, k)
            results = [{"id": i, "score": s, "title": loaded.docs[i]["title"]} for i, s in hits]
            return ok({"shard": self.config.shard_id, "results": results})
        self.log.error("search_failed", error=error)
        if self.config.corrupt_behaviour == "empty":
            return ok({"shard": self.config.shard_id, "results": []})
        raise HttpError(503, {"error": f"index unavailable: {error}", "shard": self.config.shard_id})

    def add_documents(self, request: Request) -> Response:
        documents = _parse_documents(request.json())
        with self._lock:
            if self._quiesced():
                raise HttpError(503, {"error": f"writes held for a snapshot until {self._quiesced_until_utc}",
                                      "shard": self.config.shard_id, "quiesced_until": self._quiesced_until_utc},
                                {"Retry-After": "5"})
            current = self._loaded
            if current is None:
                raise HttpError(503, {"error": f"index unavailable: {self._error}", "shard": self.config.shard_id})
            # Written into a copy that replaces the index once stored: searches in flight keep reading
            # the one they started with.
            loaded = replace(current, index=current.index.copy(), docs=dict(current.docs))
            added = 0
            for doc in documents:
                vector = corpus.embed(f"{doc['title']}. {doc['text']}", loaded.index.dim)
                added += loaded.index.upsert(doc["id"], vector)
                loaded.docs[doc["id"]] = {"title": doc["title"], "updated_at": doc["updated_at"]}
            try:
                write_index(self.config.data_dir, self.config.shard_id, loaded)
            except OSError as exc:
                self._fail("index_write_failed", f"I/O error writing the index: {exc}")
                raise HttpError(500, {"error": self._error, "shard": self.config.shard_id}) from exc
            self._loaded = loaded
            count = len(loaded.index)
        self.log.info("documents_indexed", added=added, updated=len(documents) - added, doc_count=count)
        return ok({"added": added, "updated": len(documents) - added, "count": count})

    def reopen(self, _: Request) -> Response:
        self.log.info("reopen_requested")
        if self.open_index():
            return ok(self.stats())
        return ok({"error": self._error, "stats": self.stats()}, status=500)

    def watch(self, stopping: threading.Event) -> None:
        while not stopping.wait(self.config.integrity_check_seconds):
            self.check_integrity()

    def app(self) -> App:
        router = Router()
        router.add("POST", "/search", self.search)
        router.add("POST", "/documents", self.add_documents)
        router.add("GET", "/stats", lambda _: ok(self.stats()))
        router.add("POST", "/admin/reopen", self.reopen)
        router.add("POST", "/admin/quiesce", self.quiesce)
        router.add("POST", "/admin/resume", self.resume)
        add_health(router, self.readiness)
        background = [self.watch] if self.config.integrity_check_seconds > 0 else []
        return App("shard", router, self.log, background=background)


def _parse_documents(body: Mapping[str, Any]) -> list[dict[str, str]]:
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise HttpError(400, "documents must be a non-empty list")
    parsed = []
    for doc in documents:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not isinstance(doc.get("text"), str):
            raise HttpError(400, "each document needs a string id and text")
        parsed.append({"id": doc["id"], "text": doc["text"], "title": str(doc.get("title", "")),
                       "updated_at": str(doc.get("updated_at") or utc_now())})
    return parsed


# --- entry points ------------------------------------------------------------------------------


def serve(env: Mapping[str, str]) -> int:
    pod = PodEnv.from_env(env)
    config = ShardConfig.from_env(env, pod)
    service = ShardService(config, JsonLog("shard", shard=config.shard_id, pod=pod.name))
    service.bootstrap_if_empty()
    service.open_index()
    return run_app(service.app(), pod)


def _cmd_build(args: argparse.Namespace) -> int:
    # Paths go through LAB_MOUNTS so that an init container can name its volume by mount path (/data).
    out = resolve_path(args.out)
    if args.if_missing and (out / INDEX_DIR).exists():
        print(json.dumps({"shard": args.shard, "skipped": "an index already exists", "path": str(out / INDEX_DIR)}))
        return 0
    spec = corpus.CorpusSpec(documents=args.documents, shards=args.shards, seed=args.seed)
    loaded = build_shard_index(spec, args.shard, out, args.as_of)
    print(json.dumps({"shard": args.shard, "doc_count": len(loaded.index), "index_checksum": loaded.checksum,
                      "path": str(out / INDEX_DIR)}))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        loaded = load_index(resolve_path(args.data_dir), args.shard)
    except IndexUnusable as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "shard": loaded.meta["shard"], "doc_count": len(loaded.index),
                      "index_checksum": loaded.checksum}))
    return 0


def _cmd_reopen(args: argparse.Namespace) -> int:
    """Ask the shard serving in this pod to re-load its index: the re-open as a command run in the pod.

    Prints the shard's answer (its stats, or the load error); exit 0 once re-opened, 1 when the index
    still cannot be loaded or the shard does not answer, 2 when the pod's environment is unusable.
    """
    try:
        pod = PodEnv.from_env(os.environ)
    except ConfigError as exc:
        print(json.dumps({"ok": False, "error": f"invalid configuration: {exc}"}))
        return 2
    url = args.url or f"http://{pod.ip}:{pod.port}"
    try:
        answer = http_json("POST", url.rstrip("/") + "/admin/reopen", {}, timeout=args.timeout)
    except (TimeoutError, Unreachable) as exc:
        print(json.dumps({"ok": False, "error": f"the shard did not answer: {exc}"}))
        return 1
    reopened = answer.status == 200
    print(json.dumps({"ok": reopened, "status": answer.status, "answer": answer.body}))
    if not reopened:
        error = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
        print(f"re-open failed: HTTP {answer.status}: {error}", file=sys.stderr)
    return 0 if reopened else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.programs.shard", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the shard (the default)")
    build = commands.add_parser("build", help="build a shard's index from the corpus")
    build.add_argument("--shard", required=True)
    build.add_argument("--shards", type=int, default=corpus.DEFAULT_SHARDS)
    build.add_argument("--out", required=True, help="the volume root; files go to OUT/index/")
    build.add_argument("--as-of", help="only documents updated at or before this ISO 8601 time")
    build.add_argument("--documents", type=int, default=corpus.DEFAULT_DOCUMENTS)
    build.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED)
    build.add_argument("--if-missing", action="store_true",
                       help="do nothing when OUT/index exists (even a damaged one: it is evidence)")
    verify = commands.add_parser("verify", help="verify an index on disk (exit 1 when damaged)")
    verify.add_argument("--data-dir", required=True)
    verify.add_argument("--shard")
    reopen = commands.add_parser("reopen", help="re-open the index of the shard serving in this pod "
                                                "(exit 1 when it cannot be loaded)")
    reopen.add_argument("--url", help="the shard's base URL (default: the pod's own, POD_IP and PORT)")
    reopen.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the shard's answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        return _cmd_build(args)
    if args.command == "verify":
        return _cmd_verify(args)
    if args.command == "reopen":
        return _cmd_reopen(args)
    return main_guard("shard", lambda: serve(os.environ))


if __name__ == "__main__":
    sys.exit(main())
