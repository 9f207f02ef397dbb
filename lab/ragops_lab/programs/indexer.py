"""Indexer: re-indexes a shard's documents written after a time (the gap a snapshot restore leaves).

Runs as a job (`--since ... --shard ...`, progress in the pod log) or as a service that starts jobs
over HTTP and reports their progress.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragops_lab import corpus
from ragops_lab.clock import utc_now
from ragops_lab.runtime.env import ConfigError, PodEnv, env_int, env_str, parse_time
from ragops_lab.runtime.httpclient import Unreachable, error_text, http_json
from ragops_lab.runtime.kubeapi import KubeClient
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.resolve import DEFAULT_SHARD_URL_TEMPLATE, ResolveError, service_url, shard_url
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, main_guard, ok, run_app

Progress = Callable[[int, int], None]


class ReindexFailed(RuntimeError):
    """The shard refused or could not be reached; the message names the batch and the reason."""


@dataclass(frozen=True)
class ReindexJob:
    since: str
    shard: str
    shard_url: str
    batch_size: int = 50
    spec: corpus.CorpusSpec = field(default_factory=corpus.CorpusSpec)

    @classmethod
    def from_values(cls, env: Mapping[str, str], since: str | None, shard: str | None,
                    url: str | None = None) -> ReindexJob:
        chosen_since, chosen_shard = since or env_str(env, "SINCE"), shard or env_str(env, "SHARD")
        if not chosen_since or not chosen_shard:
            raise ConfigError("both a time (--since or SINCE) and a shard (--shard or SHARD) are required")
        parse_time(chosen_since)
        template = env_str(env, "SHARD_URL_TEMPLATE", DEFAULT_SHARD_URL_TEMPLATE)
        batch_size = env_int(env, "BATCH_SIZE", 50)
        if batch_size < 1:
            raise ConfigError("BATCH_SIZE must be at least 1")
        return cls(
            since=chosen_since,
            shard=chosen_shard,
            shard_url=url or env_str(env, "SHARD_URL") or shard_url(template, chosen_shard),
            batch_size=batch_size,
            spec=corpus.CorpusSpec.from_mapping(env),
        )


def documents_since(spec: corpus.CorpusSpec, shard: str, since: str) -> list[corpus.Document]:
    """The shard's documents updated strictly after `since`, oldest first."""
    moment = parse_time(since)
    docs = [d for d in corpus.generate(spec) if d.shard == shard and corpus.from_iso(d.updated_at) > moment]
    return sorted(docs, key=lambda d: (d.updated_at, d.id))


def run_reindex(job: ReindexJob, kube: KubeClient, on_progress: Progress) -> int:
    """Post the documents in batches, reporting progress after each; returns how many were indexed."""
    docs = documents_since(job.spec, job.shard, job.since)
    on_progress(0, len(docs))
    if not docs:
        return 0
    try:
        url = service_url(job.shard_url, kube).rstrip("/") + "/documents"
    except ResolveError as exc:
        raise ReindexFailed(f"cannot reach shard {job.shard}: {exc}") from exc
    done = 0
    for start in range(0, len(docs), job.batch_size):
        batch = docs[start:start + job.batch_size]
        body = {"documents": [{"id": d.id, "title": d.title, "text": d.text, "updated_at": d.updated_at}
                              for d in batch]}
        try:
            result = http_json("POST", url, body, timeout=30.0)
        except (TimeoutError, Unreachable) as exc:
            raise ReindexFailed(f"batch {done}-{done + len(batch)}: {exc}") from exc
        if result.status != 200:
            raise ReindexFailed(f"batch {done}-{done + len(batch)}: shard {job.shard} answered {error_text(result)}")
        done += len(batch)
        on_progress(done, len(docs))
    return done


def run_job_logged(job: ReindexJob, kube: KubeClient, log: JsonLog) -> int:
    """The job as a pod runs it: progress lines in the log, exit code 0 or 1."""
    log.info("reindex_started", since=job.since, shard_url=job.shard_url)
    try:
        done = run_reindex(job, kube, lambda d, t: log.info("progress", done=d, total=t))
    except ReindexFailed as exc:
        log.error("reindex_failed", error=str(exc))
        return 1
    log.info("completed", done=done, total=done)
    return 0


@dataclass
class JobState:
    id: str
    job: ReindexJob
    state: str = "running"
    done: int = 0
    total: int | None = None
    error: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "shard": self.job.shard, "since": self.job.since,
                "done": self.done, "total": self.total, "error": self.error, "started_at": self.started_at,
                "finished_at": self.finished_at}


class IndexerService:
    """POST /jobs starts a re-index in the background; GET /jobs/<id> tracks it."""

    def __init__(self, env: Mapping[str, str], kube: KubeClient, log: JsonLog) -> None:
        self.env = dict(env)
        self.kube = kube
        self.log = log
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self._ids = itertools.count(1)

    def start(self, request: Request) -> Response:
        body = request.json()
        try:
            job = ReindexJob.from_values(self.env, body.get("since"), body.get("shard"), body.get("shard_url"))
        except ConfigError as exc:
            raise HttpError(400, str(exc)) from exc
        with self._lock:
            state = JobState(f"reindex-{next(self._ids):04d}", job)
            self._jobs[state.id] = state
        threading.Thread(target=self._run, args=(state,), name=state.id, daemon=True).start()
        return ok(state.view(), status=202)

    def _run(self, state: JobState) -> None:
        log = self.log.bind(job=state.id, shard=state.job.shard)

        def progress(done: int, total: int) -> None:
            with self._lock:
                state.done, state.total = done, total
            log.info("progress", done=done, total=total)

        try:
            run_reindex(state.job, self.kube, progress)
            outcome, error = "succeeded", None
        except ReindexFailed as exc:
            outcome, error = "failed", str(exc)
            log.error("reindex_failed", error=error)
        with self._lock:
            state.state, state.error, state.finished_at = outcome, error, utc_now()

    def job(self, request: Request) -> Response:
        with self._lock:
            state = self._jobs.get(request.params["id"])
            if state is None:
                raise HttpError(404, f"no job {request.params['id']}")
            return ok(state.view())

    def jobs(self, _: Request) -> Response:
        with self._lock:
            return ok({"jobs": [state.view() for state in self._jobs.values()]})

    def app(self) -> App:
        router = Router()
        router.add("POST", "/jobs", self.start)
        router.add("GET", "/jobs", self.jobs)
        router.add("GET", "/jobs/{id}", self.job)
        add_health(router, lambda: (True, {}))
        return App("indexer", router, self.log)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.programs.indexer", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "serve"), default="run")
    parser.add_argument("--since", help="ISO 8601 time; documents updated after it are re-indexed (env SINCE)")
    parser.add_argument("--shard", help="shard id such as shard-2 (env SHARD)")
    parser.add_argument("--shard-url", help="the shard's base URL (env SHARD_URL; default from SHARD_URL_TEMPLATE)")
    return parser


def run(env: Mapping[str, str], args: argparse.Namespace) -> int:
    pod = PodEnv.from_env(env)
    if args.command == "serve":
        return run_app(IndexerService(env, pod.kube(), JsonLog("indexer", pod=pod.name)).app(), pod)
    job = ReindexJob.from_values(env, args.since, args.shard, args.shard_url)
    return run_job_logged(job, pod.kube(), JsonLog("indexer", pod=pod.name, shard=job.shard))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return main_guard("indexer", lambda: run(os.environ, args))


if __name__ == "__main__":
    sys.exit(main())
