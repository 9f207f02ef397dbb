"""Golden-query validation benchmark: a 50-query validation against the lab retriever.

Starts the lab's real programs as processes (four vectorstore shards over indexes built from the lab
corpus, the retriever reading its shard registry from the lab's Kubernetes API server), makes 50 golden
queries from the corpus with the lab's own generator, and times the engine the golden_validate
module runs (its one call, ``gate.run``, in check mode, without Ansible's process start-up):

  one by one:  every query on its own, one after the other (concurrency 1): the slowest single
               query and the total;
  validation:  the whole validation (queries, metrics, verdict) at the module's default concurrency
               (8) and with every query in flight at once.

It prints the validation's wall time relative to the slowest single query and to the one-by-one
total.  The lab's services are pure-Python and CPU-bound on this machine's cores, so the same is
also measured against a latency-bound stand-in (an endpoint that answers each query after a fixed
wait, as a remote vector store over a network does): there the ratio shows the module's own cost.
Each figure is the median of --repeat runs.

    python bench/golden_validate.py [--queries 50] [--repeat 5] [--stand-in-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


def run_once(golden: Path, url: str, concurrency: int) -> tuple[float, float, int]:
    """Wall time of one validation, its slowest query and how many queries failed."""
    params = dict(module_params(golden, url, concurrency), report_only=True)
    start = time.perf_counter()
    result = gate.run(params, check_mode=True, diff=False, read_configmap=lambda name, key: "")
    wall = time.perf_counter() - start
    validation = result.result["validation"]
    return wall, max(q["latency"] for q in validation["queries"]), len(validation["failing_queries"])


def measure(golden: Path, url: str, concurrencies: t.Sequence[int], repeat: int) -> dict[int, tuple[float, ...]]:
    """Per concurrency: median wall, median slowest query and the most queries failed in any run."""
    samples: dict[int, list[tuple[float, float, int]]] = {c: [] for c in concurrencies}
    for _ in range(repeat):
        for concurrency in concurrencies:
            samples[concurrency].append(run_once(golden, url, concurrency))
    return {c: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                max(r[2] for r in runs)) for c, runs in samples.items()}


def as_json(figures: dict[int, tuple[float, ...]]) -> dict[str, t.Any]:
    slowest_alone = figures[1][1]
    return {"slowest_single_query_s": slowest_alone, "one_by_one_s": figures[1][0],
            "validation": {str(c): {"wall_s": wall, "ratio_to_slowest_single": wall / slowest_alone,
                                    "slowest_query_s": slowest, "most_failed": failed}
                           for c, (wall, slowest, failed) in figures.items() if c != 1}}


def report(target: str, figures: dict[int, tuple[float, ...]], count: int) -> None:
    alone_total, slowest_alone, _failed = figures[1]
    print("\n%s, %d queries" % (target, count))
    print("  one by one:             total %6.3f s; slowest single query %5.1f ms" % (alone_total,
                                                                                   slowest_alone * 1000))
    for concurrency in (c for c in figures if c != 1):
        wall, slowest_here, failed = figures[concurrency]
        verdict = "pass" if not failed else "FAIL in some run: up to %d queries lost documents" % failed
        print("  validation, %2d in flight: wall %6.3f s = %5.2fx the slowest single query (%5.2fx the slowest "
              "query of this run); %4.1fx faster than one by one; verdict %s"
              % (concurrency, wall, wall / slowest_alone, wall / slowest_here, alone_total / wall, verdict))


@contextmanager
def stand_in(answers: t.Mapping[str, bytes], wait: float) -> Iterator[str]:
    """An endpoint that answers like the lab retriever after ``wait`` seconds, doing almost no work."""
    class Handler(BaseHTTPRequestHandler):
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
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def lab_retriever(workdir: Path) -> Iterator[str]:
    """Four shard processes and the retriever, its registry in the lab's Kubernetes API server."""
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
        retriever, url = start("retriever", POD_NAME="retriever-0", POD_NAMESPACE=NAMESPACE,
                               KUBE_API_URL=cluster.url, KUBE_TOKEN=cluster.admin_token,
                               KUBE_CA_FILE=str(cluster.paths.ca_bundle))
        processes.append(retriever)
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stand-in-ms", type=float, default=50.0)
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout, the text on stderr")
    args = parser.parse_args()
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
        with lab_retriever(workdir) as url:
            figures = measure(golden, url, concurrencies, args.repeat)
            report("lab retriever (4 shard processes behind it)", figures, args.queries)
            found["lab"] = as_json(figures)
        answers = {q["text"]: json.dumps({"results": [{"id": i, "score": sc} for i, sc in
                                                       index.search(q["text"], corpus.GOLDEN_K)]}).encode()
                   for q in yaml_queries(golden)}
        with stand_in(answers, args.stand_in_ms / 1000.0) as url:
            figures = measure(golden, url, concurrencies, args.repeat)
            report("latency-bound stand-in (answers after %g ms)" % args.stand_in_ms, figures, args.queries)
            found["stand_in"] = dict(as_json(figures), wait_ms=args.stand_in_ms)
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
