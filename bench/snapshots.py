"""Snapshot benchmarks: the collection's create and restore against the best off-the-shelf pipelines.

Generates realistic shard data (many files of various sizes, partly compressible like index segments),
starts SeaweedFS on loopback, and measures in the same run:

  create:  the collection's streaming create (tar -> zstd -> multipart upload + per-file SHA-256 manifest)
           vs  tar -c | zstd -T0 | s5cmd pipe   plus   sha256sum of every file
  restore: the collection's local restore (ranged parallel download, per-part and per-file SHA-256,
           zstd -d, strict extraction into staging, syncfs, atomic swap)
           vs  s5cmd cat | zstd -d | tar -x   followed by   sha256sum -c

and the machine's limits: raw S3 read (s5cmd cat > /dev/null), zstd decompression alone, disk write alone.
Each timing is the best of --repeat runs; peak memory is the largest resident set of any process involved.

It deletes what it wrote when it ends (the generated data too, unless --keep-data: a second run then
reuses it).  With --json the figures go to stdout as JSON and the text to stderr.

    python bench/snapshots.py [--size-gib 1.0] [--workdir /var/tmp/ragops-bench] [--repeat 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import typing as t
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "build" / "collections"))

from ragops_lab.s3 import S3Endpoint, SeaweedFS  # noqa: E402
from ragops_lab.services import stop_daemon  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
POOL = 64 * MIB


def say(*text: object) -> None:
    """Progress and the figures as text: on stdout, or on stderr when stdout carries the JSON."""
    print(*text, file=sys.stderr if JSON_ONLY else sys.stdout)


JSON_ONLY: list[bool] = []


def pools(seed: int) -> tuple[bytes, bytes]:
    """An incompressible pool (like quantised vectors) and a compressible one (like postings and text)."""
    rng = random.Random(seed)
    noise = os.urandom(POOL)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 12))) for _ in range(4096)]
    text = bytearray()
    while len(text) < POOL:
        text += b" ".join(rng.choice(words) for _ in range(512)) + b"\n"
        text += (rng.getrandbits(32).to_bytes(4, "little") * 4)
    return noise, bytes(text[:POOL])


def file_sizes(total: int, rng: random.Random) -> list[int]:
    """Segment sizes from 1 KiB to 64 MiB, log-uniform, adding up to about ``total``."""
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(2 ** rng.uniform(10, 26)))
    return sizes


def generate(root: Path, total: int, seed: int = 7) -> dict[str, int]:
    """Write the shard data once; a second call with the same size reuses it."""
    stamp = root / ".generated"
    if stamp.exists() and json.loads(stamp.read_text()).get("total") == total:
        return t_cast(json.loads(stamp.read_text()))
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    noise, text = pools(seed)
    sizes = file_sizes(total, rng)
    for number, size in enumerate(sizes):
        directory = root / "index" / ("segments-%02d" % (number % 16))
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ("seg-%05d.bin" % number), "wb") as handle:
            remaining = size
            while remaining:
                piece = min(remaining, rng.choice([64 * 1024, 256 * 1024, MIB]))
                pool = noise if rng.random() < 0.5 else text
                start = rng.randrange(0, POOL - piece)
                handle.write(pool[start:start + piece])
                remaining -= piece
    (root / "index" / "meta.json").write_text(json.dumps({"segments": len(sizes)}))
    info = {"total": total, "files": len(sizes) + 1, "bytes": sum(sizes)}
    stamp.write_text(json.dumps(info))
    return info


def t_cast(value: object) -> dict[str, int]:
    return value  # type: ignore[return-value]


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident memory (KiB) of ``root`` and all its descendants, summed: a pipeline counts as a whole."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    members, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current and pid not in members]
        members.update(children)
        frontier.extend(children)
    total = 0
    for pid in members:
        try:
            with open("/proc/%d/statm" % pid) as handle:
                total += int(handle.read().split()[1]) * PAGE // 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


Measure = tuple[float, int, float]


def run(command: Sequence[str] | str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Measure:
    """Seconds, peak resident memory (KiB, the whole process tree, sampled every 50 ms) and CPU seconds
    (user + system of the command and everything it waited for) of one command.  On a shared machine
    the CPU seconds compare the work done when wall times are noisy."""
    started = time.monotonic()
    process = subprocess.Popen(command, shell=isinstance(command, str), env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError("failed: %s: %s" % (command, process.stderr.read().decode() if process.stderr else ""))
    return elapsed, peak, usage.ru_utime + usage.ru_stime


def summary(results: Sequence[Measure]) -> Measure:
    """Best wall time, highest memory, least CPU."""
    return min(r[0] for r in results), max(r[1] for r in results), min(r[2] for r in results)


def best(repeat: int, measure: Callable[[], Measure], prepare: Callable[[], None] = lambda: None) -> Measure:
    results = []
    for _ in range(repeat):
        prepare()
        results.append(measure())
    return summary(results)


def duel(repeat: int, ours: Callable[[], Measure], theirs: Callable[[], Measure],
         prepare_ours: Callable[[], None] = lambda: None, prepare_theirs: Callable[[], None] = lambda: None
         ) -> tuple[Measure, Measure]:
    """Both measured alternately (theirs, ours, theirs, ours...) so that load from elsewhere hits both alike."""
    mine, other = [], []
    for _ in range(repeat):
        prepare_theirs()
        other.append(theirs())
        prepare_ours()
        mine.append(ours())
    return summary(mine), summary(other)


ENGINE = r"""
import json, sys, time
from ansible_collections.ragops.recovery.plugins.module_utils.audit import timestamp
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import create, restore
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import params as snapshot_params
args = json.loads(sys.argv[1])
params = dict(args["s3"], bucket=args["bucket"], prefix=args["prefix"], shard="shard-0", part_size=16,
              concurrency=args["concurrency"], s3_read_timeout=60.0, s3_attempts=5)
s3 = snapshot_params.open_store(params)
where = snapshot_params.location(params)
if args["action"] == "create":
    request = create.CreateRequest(where, args["path"], args["snapshot_id"], timestamp(), source={"host": "bench"},
                                   threads=args["compression_threads"])
    create.create_snapshot(s3, request)
else:
    order, _ = restore.load_candidates(s3, where, args["snapshot_id"], False, 300)
    request = restore.RestoreRequest(where, args["path"], timestamp())
    restore.restore_snapshot(s3, request, order[0])
"""


class Bench:
    def __init__(self, args: argparse.Namespace, s3: S3Endpoint) -> None:
        self.args, self.s3 = args, s3
        self.work = Path(args.workdir)
        self.data = self.work / "data"
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
                        AWS_REGION="us-east-1", PYTHONPATH=str(ROOT / "build" / "collections"))
        self.s5cmd = shutil.which("s5cmd", path=str(Path(sys.executable).parent)) or "s5cmd"
        self.runs = 0

    def url(self, key: str) -> str:
        return "s3://%s/%s" % (self.s3.bucket, key)

    def s5(self, rest: str) -> str:
        return "%s --endpoint-url %s %s" % (self.s5cmd, self.s3.url, rest)

    def engine(self, action: str, path: Path, snapshot_id: str) -> Measure:
        payload = {"action": action, "path": str(path), "snapshot_id": snapshot_id, "bucket": self.s3.bucket,
                   "prefix": "bench", "concurrency": self.args.concurrency,
                   "compression_threads": self.args.compression_threads,
                   "s3": {"endpoint_url": self.s3.url, "access_key": self.s3.access_key,
                          "secret_key": self.s3.secret_key}}
        return run([sys.executable, "-c", ENGINE, json.dumps(payload)], env=self.env)

    def next_id(self) -> str:
        self.runs += 1
        return "bench-%d-%d" % (os.getpid(), self.runs)

    def create_ours(self) -> Measure:
        return self.engine("create", self.data, self.next_id())

    def create_baseline(self) -> Measure:
        key = "baseline/%s/data.tar.zst" % self.next_id()
        pipeline = "tar -cf - -C %s . | zstd -q -T0 -3 | %s" % (self.data, self.s5("pipe " + self.url(key)))
        sums = "cd %s && find . -type f -print0 | sort -z | xargs -0 sha256sum > %s" % (
            self.data, self.work / "SHA256SUMS")
        return run("(%s) & (%s) & wait" % (pipeline, sums), env=self.env)

    def restore_ours(self, snapshot_id: str) -> Measure:
        return self.engine("restore", self.work / "out-ours" / "shard-0", snapshot_id)

    def restore_baseline(self, key: str, durable: bool = False) -> Measure:
        out = self.work / "out-base"
        script = "%s | zstd -q -d | tar -xf - -C %s && cd %s && sha256sum --quiet -c %s" % (
            self.s5("cat " + self.url(key)), out, out, self.work / "SHA256SUMS")
        return run(script + (" && sync -f ." if durable else ""), env=self.env)

    def fresh(self, path: Path) -> Callable[[], None]:
        def prepare() -> None:
            subprocess.run(["rm", "-rf", str(path)], check=True)
            path.mkdir(parents=True)
            os.sync()
        return prepare


def limits(bench: Bench, key: str, archive: Path, size: int) -> dict[str, float]:
    mb = size / 1e6
    repeat = bench.args.repeat
    read = best(repeat, lambda: run(bench.s5("cat %s > /dev/null" % bench.url(key)), env=bench.env))[0]
    decompress = best(repeat, lambda: run("zstd -q -d -c %s > /dev/null" % archive))[0]
    target = bench.work / "ddtest"
    dd = "dd if=/dev/zero of=%s bs=1M count=%d status=none" % (target, max(1, size // MIB))
    write = best(repeat, lambda: run("%s && rm %s" % (dd, target)))[0]
    synced = best(repeat, lambda: run("%s conv=fsync && rm %s" % (dd, target)))[0]
    hashing = best(repeat, lambda: run("cd %s && find . -type f -print0 | xargs -0 sha256sum > /dev/null"
                                       % bench.data))[0]
    return {"s3_read_mb_s": archive.stat().st_size / 1e6 / read, "zstd_decompress_mb_s": mb / decompress,
            "disk_write_mb_s": mb / write, "disk_write_fsync_mb_s": mb / synced, "sha256_mb_s": mb / hashing}


def report(label: str, ours: Measure, base: Measure, size: int) -> dict[str, float]:
    mb = size / 1e6
    line = {"ours_s": round(ours[0], 2), "ours_mb_s": round(mb / ours[0], 1), "ours_peak_rss_mib": ours[1] // 1024,
            "ours_cpu_s": round(ours[2], 2), "baseline_s": round(base[0], 2), "baseline_mb_s": round(mb / base[0], 1),
            "baseline_peak_rss_mib": base[1] // 1024, "baseline_cpu_s": round(base[2], 2),
            "ratio": round(base[0] / ours[0], 2), "cpu_ratio": round(base[2] / ours[2], 2)}
    say("%-8s ours %6.2fs %7.1f MB/s cpu %6.2fs peak %4d MiB | baseline %6.2fs %7.1f MB/s cpu %6.2fs peak %4d MiB"
          " | ratio %.2f, cpu ratio %.2f" % (label, ours[0], mb / ours[0], ours[2], ours[1] // 1024, base[0],
                                             mb / base[0], base[2], base[1] // 1024, base[0] / ours[0],
                                             base[2] / ours[2]))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--workdir", default="/var/tmp/ragops-bench")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--compression-threads", type=int, default=0,
                        help="snapshot_create's compression_threads (0: its default, one fewer than the CPUs)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout, the text on stderr")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated data for the next run")
    args = parser.parse_args()
    if args.json:
        JSON_ONLY.append(True)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        info = generate(work / "data", int(args.size_gib * GIB))
        size = info["bytes"]
        say("data: %d files, %.2f GiB; machine: %d CPUs, %s" % (
            info["files"], size / GIB, os.cpu_count() or 0, datetime.now(timezone.utc).strftime("%Y-%m-%d")))
        state = work / "seaweedfs"
        shutil.rmtree(state, ignore_errors=True)
        weed = SeaweedFS(state, state / "weed.pid", state / "weed.log")
        try:
            endpoint = weed.wait_until_ready(weed.start(owner=state), state)
            results = measure(Bench(args, endpoint), size)
        finally:
            stop_daemon(weed.pid_file, state, 20)
            weed.cleanup_sockets()
    finally:
        # The gigabytes written (archives, restored copies, the store's volumes) go with the run.
        for name in ("out-ours", "out-base", "data.tar.zst", "SHA256SUMS", "ddtest", "seaweedfs"):
            subprocess.run(["rm", "-rf", str(work / name)], check=False)
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average"] = {"start": load_before, "end": os.getloadavg()}
    say("load average %s at the start, %s at the end" % (
        " ".join("%.2f" % v for v in load_before), " ".join("%.2f" % v for v in os.getloadavg())))
    print(json.dumps(results, indent=1))


def measure(bench: Bench, size: int) -> dict[str, t.Any]:
    repeat = bench.args.repeat
    create_ours, create_base = duel(repeat, bench.create_ours, bench.create_baseline)
    snapshot_id = "bench-%d-%d" % (os.getpid(), bench.runs)
    key = "bench/shard-0/%s/data.tar.zst" % snapshot_id
    archive = bench.work / "data.tar.zst"
    run(bench.s5("cp %s %s" % (bench.url(key), archive)), env=bench.env)
    machine = limits(bench, key, archive, size)
    restore_ours, restore_base = duel(repeat, lambda: bench.restore_ours(snapshot_id),
                                      lambda: bench.restore_baseline(key), bench.fresh(bench.work / "out-ours"),
                                      bench.fresh(bench.work / "out-base"))
    durable_base = best(repeat, lambda: bench.restore_baseline(key, durable=True), bench.fresh(bench.work / "out-base"))
    compressed = archive.stat().st_size
    say("archive: %.1f MiB (%.0f%% of the data)" % (compressed / MIB, 100 * compressed / size))
    say("limits: S3 read %(s3_read_mb_s).0f MB/s (archive bytes), zstd -d %(zstd_decompress_mb_s).0f MB/s, "
          "disk write %(disk_write_mb_s).0f MB/s, with fsync %(disk_write_fsync_mb_s).0f MB/s, "
          "sha256 %(sha256_mb_s).0f MB/s (data bytes)" % machine)
    results = {"bytes": size, "archive_bytes": archive.stat().st_size, "limits": machine,
               "create": report("create", create_ours, create_base, size),
               "restore": report("restore", restore_ours, restore_base, size),
               "restore_vs_durable_baseline": report("restore*", restore_ours, durable_base, size)}
    say("restore* compares with the baseline followed by sync -f (both then have the data on disk)")
    slowest = min(machine["s3_read_mb_s"] * size / compressed, machine["zstd_decompress_mb_s"],
                  machine["disk_write_fsync_mb_s"], machine["sha256_mb_s"])
    ours_rate = size / 1e6 / restore_ours[0]
    say("restore reaches %.0f%% of the slowest single stage (%.0f MB/s of data)" % (100 * ours_rate / slowest,
                                                                                      slowest))
    results["restore_vs_limit"] = round(ours_rate / slowest, 2)
    say("max RSS of this driver: %d MiB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
    return results


if __name__ == "__main__":
    main()
