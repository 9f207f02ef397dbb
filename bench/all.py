"""Every benchmark, one after the other, and one table of their figures against the performance goals.

Runs bench/module_startup.py, bench/snapshots.py, bench/golden_validate.py, bench/eda.py and bench/drill.py
(scenarios A and B, last: they are the slowest), each with --json, and prints one row per goal: what is
compared, the goal, the figure measured (a ratio, or seconds where the goal is a time), whether it is met,
and the load average (1, 5, 15 minutes) when that benchmark started and ended.  On a shared machine
absolute times are noisy; each ratio compares two things measured in the same run.

The benchmarks that start a lab, a control plane or SeaweedFS run under ``flock LOCK`` when --lock is
given, so that they never run beside another heavy job on the machine.  All the figures are also written
as JSON (--out, build/bench/results.json by default).

    python bench/all.py [--lock /tmp/ragops-heavy.lock] [--only startup,snapshots,golden,eda,drill-a,drill-b]
    make bench [BENCH_LOCK=/tmp/ragops-heavy.lock]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = sys.stderr
Figures = t.Dict[str, t.Any]


@dataclass(frozen=True)
class Bench:
    name: str
    command: t.Sequence[str]
    heavy: bool  # starts a lab, a control plane or SeaweedFS


@dataclass(frozen=True)
class Row:
    goal: str
    target: str
    measured: float | None
    met: bool | None
    load: str
    note: str = ""


BENCHES = (
    Bench("startup", ("bench/module_startup.py", "--json"), heavy=False),
    Bench("snapshots", ("bench/snapshots.py", "--json"), heavy=True),
    Bench("golden", ("bench/golden_validate.py", "--json"), heavy=True),
    Bench("eda", ("bench/eda.py", "--json"), heavy=True),
    Bench("drill-a", ("bench/drill.py", "--scenario", "a", "--json"), heavy=True),
    Bench("drill-b", ("bench/drill.py", "--scenario", "b", "--json"), heavy=True),
)


def run(bench: Bench, lock: str | None) -> Figures:
    """The benchmark's JSON, with the load average around it; an ``error`` when it failed."""
    command = [sys.executable, *bench.command]
    if lock and bench.heavy:
        command = ["flock", lock, *command]
    print("== %s: %s" % (bench.name, " ".join(command)), file=PROGRESS)
    before = os.getloadavg()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    load = {"start": before, "end": os.getloadavg()}
    try:
        figures = t.cast(Figures, json.loads(done.stdout))
    except ValueError:
        figures = {"error": "exit %d, no JSON: %s" % (done.returncode, done.stdout[-500:])}
    if done.returncode:
        figures.setdefault("error", "exit %d" % done.returncode)
    return dict(figures, bench_load_average=load)


def load_text(figures: Figures) -> str:
    """The load average the benchmark read at its start and end (the wrapper's, around any wait for
    the lock, when it read none)."""
    own = figures.get("load_average")
    load = own if isinstance(own, dict) and "start" in own and "end" in own else figures["bench_load_average"]
    return "%s -> %s" % tuple(" ".join("%.2f" % v for v in load[when]) for when in ("start", "end"))


def at_most(goal: float, measured: float | None) -> bool | None:
    return None if measured is None else measured <= goal


def at_least(goal: float, measured: float | None) -> bool | None:
    return None if measured is None else measured >= goal


def startup_rows(figures: Figures) -> t.List[Row]:
    modules = [m for m in figures.get("modules", []) if m["module"] != figures.get("baseline")]
    if not modules:
        return [Row("module start-up <= 1.2 x stat", "slowest module", None, None, load_text(figures),
                    figures.get("error", ""))]
    slowest = max(modules, key=lambda m: m["wall_ratio"])
    met = sum(m["wall_ratio"] <= 1.2 for m in modules)
    return [Row("module start-up <= 1.2 x stat", "slowest: %s" % slowest["module"].rsplit(".", 1)[-1],
                slowest["wall_ratio"], at_most(1.2, slowest["wall_ratio"]), load_text(figures),
                "%d of %d modules met it" % (met, len(modules)))]


def snapshot_rows(figures: Figures) -> t.List[Row]:
    load = load_text(figures)
    if "create" not in figures:
        return [Row("snapshot create/restore >= 1.25 x", "-", None, None, load, figures.get("error", ""))]
    create, restore = figures["create"], figures["restore_vs_durable_baseline"]
    peak = max(create["ours_peak_rss_mib"], figures["restore"]["ours_peak_rss_mib"])
    return [
        Row("snapshot create >= 1.25 x", "tar | zstd -T0 | s5cmd pipe + sha256sum", create["ratio"],
            at_least(1.25, create["ratio"]), load, "cpu ratio %.2f" % create["cpu_ratio"]),
        Row("snapshot restore >= 1.25 x", "s5cmd cat | zstd -d | tar -x + sha256sum -c + sync",
            restore["ratio"], at_least(1.25, restore["ratio"]), load, "cpu ratio %.2f" % restore["cpu_ratio"]),
        Row("snapshot peak memory < 256 MiB", "largest process tree (MiB)", float(peak), peak < 256, load),
    ]


def golden_rows(figures: Figures) -> t.List[Row]:
    rows = []
    count = figures.get("queries", 50)
    embed_ms = figures.get("lab", {}).get("embed_ms")
    lab = "lab retriever" + (", embedding %g ms" % embed_ms if embed_ms is not None else "")
    bare = _all_in_flight(figures, "lab_no_embedding_time", count)
    for key, label in (("lab", lab), ("stand_in", "50 ms stand-in")):
        # Every query in flight at once: the validation then takes as long as its slowest query.
        found = _all_in_flight(figures, key, count)
        ratio = found["ratio_to_slowest_single"] if found else None
        notes = [figures.get("error", "")] if not found else [
            "queries failed in a run: %d" % found["most_failed"] if found["most_failed"] else "",
            "cpu/query %.2f ms engine, %.2f ms services" % (
                found["client_cpu_ms_per_query"], found["services_cpu_ms_per_query"]),
            "no embedding time: %.2f" % bare["ratio_to_slowest_single"] if key == "lab" and bare else ""]
        rows.append(Row("golden gate <= 1.5 x slowest query", "%d queries, %s" % (count, label),
                        ratio, at_most(1.5, ratio), load_text(figures), "; ".join(filter(None, notes))))
    return rows


def _all_in_flight(figures: Figures, key: str, count: int) -> t.Optional[Figures]:
    return t.cast(t.Optional[Figures], figures.get(key, {}).get("validation", {}).get(str(count)))


def drill_rows(scenario: str) -> t.Callable[[Figures], t.List[Row]]:
    def rows(figures: Figures) -> t.List[Row]:
        runs = figures.get("runs") or []
        ratio = note = None
        if runs:
            split = runs[-1]["playbook_split"]
            ratio = split["wall"] / split["work"] if split["work"] else None
            note = "wall %.1f s, at work %.1f s, module start-up %.1f s, controller %.1f s" % (
                split["wall"], split["work"], split["startup"], split["controller"])
        safe = runs[-1].get("time_to_safe_mode", {}).get("wall") if runs else None
        seen = runs[-1].get("safe_mode_seen", "") if runs else ""
        return [Row("drill <= 1.3 x the system's time", "scenario %s playbook" % scenario.upper(), ratio,
                    at_most(1.3, ratio), load_text(figures), note or figures.get("error", "")),
                Row("time to safe mode <= 5 s", "scenario %s: playbook start -> safe mode (s)" % scenario.upper(),
                    safe, at_most(5.0, safe), load_text(figures), seen or figures.get("error", ""))]
    return rows


def eda_rows(figures: Figures) -> t.List[Row]:
    rows = []
    for key, label in (("shard_alert", "shard alert -> shard out of service"),
                       ("provider_alert", "provider alert -> generator answers")):
        found = figures.get(key, {})
        seconds = found.get("to_safe_mode")
        rows.append(Row("time to safe mode <= 5 s", "EDA: %s (s)" % label, seconds, at_most(5.0, seconds),
                        load_text(figures), found.get("safe_mode_seen", figures.get("error", ""))))
    return rows


ROWS: t.Dict[str, t.Callable[[Figures], t.List[Row]]] = {
    "startup": startup_rows, "snapshots": snapshot_rows, "golden": golden_rows, "eda": eda_rows,
    "drill-a": drill_rows("a"), "drill-b": drill_rows("b"),
}


def print_table(rows: t.Sequence[Row]) -> None:
    print(f"{'goal':<36} {'compared with':<52} {'figure':>6}  {'verdict':<8} {'load average (start -> end)':<31} note")
    for row in rows:
        measured = "-" if row.measured is None else "%.2f" % row.measured
        verdict = "-" if row.met is None else ("met" if row.met else "NOT MET")
        print(f"{row.goal:<36} {row.target:<52} {measured:>6}  {verdict:<8} {row.load:<31} {row.note}")
    print("machine: %d CPUs" % (os.cpu_count() or 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", help="run the benchmarks that start a lab or SeaweedFS under flock LOCK")
    parser.add_argument("--only", default=",".join(b.name for b in BENCHES),
                        help="comma-separated benchmarks to run, of: %(default)s")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench" / "results.json"))
    parser.add_argument("--from-json", help="print the table of a results file written before; run nothing")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        chosen = set(args.only.split(","))
        unknown = chosen - {b.name for b in BENCHES}
        if unknown:
            parser.error("unknown benchmarks: %s" % ", ".join(sorted(unknown)))
        results = {bench.name: run(bench, args.lock) for bench in BENCHES if bench.name in chosen}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        print("figures written to %s" % out, file=PROGRESS)
    print_table([row for name, figures in results.items() for row in ROWS[name](figures)])
    return 0 if all("error" not in figures for figures in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
