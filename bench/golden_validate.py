"""Golden-query validation benchmark: a 50-query validation against the lab retriever.

Starts the lab's real programs as processes (four vectorstore shards over indexes built from the lab
corpus, the retriever reading its shard registry from the lab's Kubernetes API server), makes 50 golden
queries from the corpus with the lab's own generator, and times the engine the golden_validate
module runs (its one call, ``gate.run``, in check mode, without Ansible's process start-up):

  one by one:  every query on its own, one after the other (concurrency 1): the slowest single
               query and the total;
  validation:  the whole validation (queries, metrics, verdict) at the module's default concurrency
               (8), at 16, and with every query in flight at once.

It prints the validation's wall time relative to the slowest single query and to the one-by-one
total, and the CPU time per query in the module's engine (this process) and in the services.

The lab retriever is measured twice.  First with its query embedding taking --embed-ms (default
50 ms; the retriever's EMBED_LATENCY_MS, lab/README.md): a real retriever waits that long for the
embedding model it calls (a GPU server, an embeddings API), while the lab's shards embed the text
themselves in microseconds.  Then with none, where every millisecond is the lab's own Python on
this machine's cores.  The latency-bound stand-in (an endpoint in a process of its own that answers
each query after a fixed wait, as a remote search API does) shows the module's own cost.  Each
figure is the median of --repeat runs.

    python bench/golden_validate.py [--queries 50] [--repeat 5] [--stand-in-ms 50] [--embed-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "build" / "collections"))

from ansible_collections.ragops.recovery.plugins.module_utils.golden import gate  # noqa: E402
from ansible_collections.ragops.recovery.plugins.module_utils.golden.goldenset import dump_yaml  # noqa: E402
from ansible_collections.ragops.recovery.plugins.modules.golden_validate import argument_spec  # noqa: E402
from ragops_lab import corpus  # noqa: E402
from ragops_lab.cluster import KubeCluster  # noqa: E402

SHARDS = 4
NAMESPACE = "bench"
# The lab retriever's query-embedding time in the benchmark: an embedding model served elsewhere (a GPU
# server or a hosted embeddings API) answers in tens to hundreds of milliseconds; the lab's own default
# is 0 (lab/README.md).
EMBED_MS = 50.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(module: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """A lab program on 127.0.0.1, once it answers."""
    port = free_port()
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    process = subprocess.Popen([sys.executable, "-m", "ragops_lab.programs." + module],
                               env={**base, "PYTHONPATH": str(ROOT / "lab"), "POD_IP": "127.0.0.1",
                                    "PORT": str(port), **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("%s exited with %s" % (module, process.returncode))
        try:
            urllib.request.urlopen(url + "/healthz", timeout=0.5).close()
            return process, url
        except OSError:
            time.sleep(0.05)
    raise SystemExit("%s did not start" % module)


def golden_set(workdir: Path, count: int, index: corpus.VectorIndex, docs: list[corpus.Document]) -> Path:
    """``count`` golden queries made by the lab's generator over its corpus."""
    queries = corpus.build_golden_queries(docs, [index], count=count)
    path = workdir / "golden-bench.yml"
    path.write_text(dump_yaml({"k": corpus.GOLDEN_K, "queries": [q.as_dict() for q in queries]}))
    return path


def yaml_queries(golden: Path) -> list[dict[str, t.Any]]:
    return [{"text": q.text} for q in gate.load({"mode": "validate", "golden_set": str(golden)},
                                                lambda name, key: "").queries]


def module_params(golden: Path, url: str, concurrency: int) -> dict[str, t.Any]:
    """The parameters main() would pass: every default, plus the golden set, the URL and the concurrency."""
    spec = argument_spec().expanded().options
    params = {name: option.get("default") for name, option in spec.items()}
    params["thresholds"] = {name: option.get("default") for name, option in spec["thresholds"]["options"].items()}
    params.update(golden_set=str(golden), url=url + "/search", concurrency=concurrency)
    return params


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One validation: wall time, its slowest query, queries failed, and the CPU seconds it took in this
    process (the module's engine) and in the services' processes."""

    wall: float
    slowest: float
    failed: int
    client_cpu: float
    services_cpu: float


def services_cpu(pids: t.Sequence[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(golden: Path, url: str, concurrency: int, pids: t.Sequence[int]) -> Sample:
    """One validation, timed, with the CPU it took on both sides."""
    params = dict(module_params(golden, url, concurrency), report_only=True)
    cpu_before, services_before = own_cpu(), services_cpu(pids)
    start = time.perf_counter()
    result = gate.run(params, check_mode=True, diff=False, read_configmap=lambda name, key: "")
    wall = time.perf_counter() - start
    client, services = own_cpu() - cpu_before, services_cpu(pids) - services_before
    validation = result.result["validation"]
    return Sample(wall, max(q["latency"] for q in validation["queries"]), len(validation["failing_queries"]),
                  client, services)


def measure(golden: Path, url: str, pids: t.Sequence[int], concurrencies: t.Sequence[int],
            repeat: int) -> dict[int, Sample]:
    """Per concurrency: the median of every figure, except the most queries failed in any run."""
    samples: dict[int, list[Sample]] = {c: [] for c in concurrencies}
    for _ in range(repeat):
        for concurrency in concurrencies:
            samples[concurrency].append(run_once(golden, url, concurrency, pids))
    return {c: Sample(statistics.median(r.wall for r in runs), statistics.median(r.slowest for r in runs),
                      max(r.failed for r in runs), statistics.median(r.client_cpu for r in runs),
                      statistics.median(r.services_cpu for r in runs)) for c, runs in samples.items()}


def as_json(figures: dict[int, Sample], count: int) -> dict[str, t.Any]:
    alone = figures[1]
    return {"slowest_single_query_s": alone.slowest, "one_by_one_s": alone.wall,
            "validation": {str(c): {"wall_s": f.wall, "ratio_to_slowest_single": f.wall / alone.slowest,
                                    "slowest_query_s": f.slowest, "most_failed": f.failed,
                                    "client_cpu_ms_per_query": 1000 * f.client_cpu / count,
                                    "services_cpu_ms_per_query": 1000 * f.services_cpu / count}
                           for c, f in figures.items() if c != 1}}


def report(target: str, figures: dict[int, Sample], count: int) -> None:
    alone = figures[1]
    print("\n%s, %d queries" % (target, count))
    print("  one by one:             total %6.3f s; slowest single query %5.1f ms" % (alone.wall,
                                                                                   alone.slowest * 1000))
    for concurrency in (c for c in figures if c != 1):
        found = figures[concurrency]
        verdict = ("pass" if not found.failed
                   else "FAIL in some run: up to %d queries lost documents" % found.failed)
        print("  validation, %2d in flight: wall %6.3f s = %5.2fx the slowest single query (%5.2fx the slowest "
              "query of this run); %4.1fx faster than one by one; verdict %s"
              % (concurrency, found.wall, found.wall / alone.slowest, found.wall / found.slowest,
                 alone.wall / found.wall, verdict))
        print("  %27s CPU per query: %.2f ms in the module's engine, %.2f ms in the services"
              % ("", 1000 * found.client_cpu / count, 1000 * found.services_cpu / count))


def serve_stand_in(answers_file: str, wait: float) -> None:
    """The stand-in's server: prints its port, then answers until killed."""
    answers = {text: payload.encode() for text, payload in json.loads(Path(answers_file).read_text()).items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections open, as a real search API does
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(wait)
            payload = answers[body["query"]]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: t.Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default 5 makes a burst of connections wait for SYN retransmits

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextmanager
def stand_in(answers: t.Mapping[str, bytes], wait: float, workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """An endpoint that answers like the lab retriever after ``wait`` seconds, doing almost no work, in a
    process of its own: a remote search API takes none of the caller's CPU (nor its GIL)."""
    answers_file = workdir / "stand-in-answers.json"
    answers_file.write_text(json.dumps({text: payload.decode() for text, payload in answers.items()}))
    process = subprocess.Popen([sys.executable, __file__, "--serve-stand-in", str(answers_file),
                                "--stand-in-ms", str(wait * 1000.0)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise SystemExit("the stand-in did not start (exit %s)" % process.poll())
        yield "http://127.0.0.1:%s" % port, [process.pid]
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def lab_shards(workdir: Path) -> Iterator[tuple[KubeCluster, list[int]]]:
    """The lab's Kubernetes API server with the shard registry, and four shard processes (their ids)."""
    processes: list[subprocess.Popen[bytes]] = []
    cluster = KubeCluster(workdir / "cluster")
    try:
        cluster.start_control_plane()
        urls = {}
        for ordinal in range(SHARDS):
            shard = "shard-%d" % ordinal
            subprocess.run([sys.executable, "-m", "ragops_lab.programs.shard", "build", "--shard", shard,
                            "--shards", str(SHARDS), "--out", str(workdir / shard)], check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT / "lab")}, stdout=subprocess.DEVNULL)
            process, urls[shard] = start("shard", POD_NAME="vectorstore-%d" % ordinal, SHARD_ID=shard,
                                         DATA_DIR=str(workdir / shard))
            processes.append(process)
        api = cluster.api()
        api.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        api.create("/api/v1/namespaces/%s/configmaps" % NAMESPACE, {
            "metadata": {"name": "rag-shard-registry"},
            "data": {shard: json.dumps({"state": "serving", "url": url}) for shard, url in urls.items()}})
        yield cluster, [process.pid for process in processes]
    finally:
        stop(processes)
        cluster.stop()


@contextmanager
def lab_retriever(cluster: KubeCluster, embed_ms: float) -> Iterator[tuple[str, list[int]]]:
    """The retriever over the shards, its query embedding taking ``embed_ms``: its URL and process id."""
    retriever, url = start("retriever", POD_NAME="retriever-0", POD_NAMESPACE=NAMESPACE,
                           KUBE_API_URL=cluster.url, KUBE_TOKEN=cluster.admin_token,
                           KUBE_CA_FILE=str(cluster.paths.ca_bundle), EMBED_LATENCY_MS=str(embed_ms))
    try:
        yield url, [retriever.pid]
    finally:
        stop([retriever])


def stop(processes: t.Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stand-in-ms", type=float, default=50.0)
    parser.add_argument("--embed-ms", type=float, default=EMBED_MS,
                        help="the lab retriever's modelled query-embedding time (EMBED_LATENCY_MS), "
                             "besides a run with none; default %(default)s")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout, the text on stderr")
    parser.add_argument("--serve-stand-in", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stand_in:
        serve_stand_in(args.serve_stand_in, args.stand_in_ms / 1000.0)
        return 0
    if args.json:
        sys.stdout = sys.stderr  # the text; the JSON goes to the real stdout at the end
    found: dict[str, t.Any] = {"queries": args.queries, "repeat": args.repeat, "cpus": os.cpu_count(),
                               "load_average": {"start": os.getloadavg()}}
    workdir = Path(tempfile.mkdtemp(prefix="ragops-bench-golden-"))
    try:
        docs = corpus.generate()
        index = corpus.VectorIndex.build(docs)
        golden = golden_set(workdir, args.queries, index, docs)
        print("machine: %d CPUs, Python %s; medians of %d runs" % (os.cpu_count() or 0, sys.version.split()[0],
                                                                  args.repeat))
        concurrencies = (1, 8, 16, args.queries)
        with lab_shards(workdir) as (cluster, shard_pids):
            for key, embed_ms in (("lab", args.embed_ms), ("lab_no_embedding_time", 0.0)):
                with lab_retriever(cluster, embed_ms) as (url, retriever_pids):
                    figures = measure(golden, url, shard_pids + retriever_pids, concurrencies, args.repeat)
                    report("lab retriever (4 shard processes behind it), query embedding %g ms (EMBED_LATENCY_MS)"
                           % embed_ms, figures, args.queries)
                    found[key] = dict(as_json(figures, args.queries), embed_ms=embed_ms)
        answers = {q["text"]: json.dumps({"results": [{"id": i, "score": sc} for i, sc in
                                                       index.search(q["text"], corpus.GOLDEN_K)]}).encode()
                   for q in yaml_queries(golden)}
        with stand_in(answers, args.stand_in_ms / 1000.0, workdir) as (url, pids):
            figures = measure(golden, url, pids, concurrencies, args.repeat)
            report("latency-bound stand-in (answers after %g ms, in a process of its own)" % args.stand_in_ms,
                   figures, args.queries)
            found["stand_in"] = dict(as_json(figures, args.queries), wait_ms=args.stand_in_ms)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found["load_average"]["end"] = os.getloadavg()
    print("load average %s at the start, %s at the end" % tuple(
        " ".join("%.2f" % v for v in found["load_average"][when]) for when in ("start", "end")))
    if args.json:
        print(json.dumps(found, indent=1), file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
