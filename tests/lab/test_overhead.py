"""The drill benchmark's arithmetic (lab/ragops_lab/overhead.py): interval unions, the wall-time split, the
wrapper's logs and the timeline's steps; and the wrapper itself around a real module process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragops_lab import overhead
from ragops_lab.overhead import ModuleRun, Step

ROOT = Path(__file__).resolve().parents[2]
# The timeline callback's own JSON writer, from the collection as `make venv` links it.
COLLECTIONS = ROOT / "build" / "collections"


def test_union_merges_overlapping_and_touching_intervals_and_drops_empty_ones() -> None:
    assert overhead.union([(5, 6), (1, 3), (2, 4), (4, 4.5), (7, 7), (8, 7)]) == [(1, 4.5), (5, 6)]
    assert overhead.union([]) == []


def test_covered_counts_overlaps_once_and_only_inside_the_window() -> None:
    intervals = [(0, 10), (5, 15), (20, 30)]
    assert overhead.covered(intervals) == 25
    assert overhead.covered(intervals, (8, 25)) == pytest.approx(12)
    assert overhead.covered(intervals, (16, 19)) == 0


def test_split_of_a_run() -> None:
    runs = [
        # start-up 1 s (interpreter 0.2 s) then 3 s of work
        ModuleRun("shard_info", 10, 14, 0, site=10.2, ready=11),
        # failed on its arguments: never ready, all of it start-up
        ModuleRun("shard_mark", 20, 21.5, 1),
        # overlaps the first one (another fork): counted once
        ModuleRun("ping", 13, 15, 0, site=13.1, ready=13.5),
    ]
    split = overhead.split((0, 30), runs)
    assert split.wall == 30
    assert split.module == pytest.approx(5 + 1.5)
    assert split.startup == pytest.approx(1 + 1.5 + 0.5)
    assert split.interpreter == pytest.approx(0.2 + 0.1)
    assert split.work == pytest.approx(3.5)
    assert split.controller == pytest.approx(30 - 6.5)
    assert split.processes == 3
    assert split.controller_share == pytest.approx(23.5 / 30)
    assert split.overhead_share == pytest.approx((23.5 + 3) / 30)
    assert split.as_dict()["work"] == pytest.approx(3.5)


def test_split_of_a_window_clips_the_processes_at_its_edges() -> None:
    runs = [ModuleRun("a", 0, 4, 0, site=0.5, ready=2), ModuleRun("b", 8, 12, 0, site=8.5, ready=9)]
    split = overhead.split((1, 10), runs)
    assert split.wall == 9
    assert split.module == pytest.approx(3 + 2)
    assert split.startup == pytest.approx(1 + 1)
    assert split.interpreter == pytest.approx(0.5)
    assert split.controller == pytest.approx(4)
    assert overhead.split((5, 5), runs).controller_share == 0


def test_module_runs_are_joined_with_their_marks() -> None:
    log = ("101 1000,250000 1003.000000 0 /root/.ansible/tmp/ansible-tmp-1/AnsiballZ_shard_info.py\n"
           "102 1004.0 1005.0 1 /root/.ansible/tmp/ansible-tmp-2/AnsiballZ_shard_mark.py\n"
           "103 999.0 999.5 0 -c\n"
           "broken\n")
    # pid 102 was reused later: its mark falls outside the process and is not taken
    marks = "101 1000.300000 1001.000000\n102 1010.0 1011.0\n"
    runs = overhead.parse_module_runs(log, marks)
    assert [(r.module, r.code) for r in runs] == [("-", 0), ("shard_info", 0), ("shard_mark", 1)]
    assert runs[1].start == pytest.approx(1000.25)
    assert (runs[1].site, runs[1].ready) == (1000.3, 1001.0)
    assert runs[2].ready is None
    assert overhead.startup_interval(runs[2]) == (1004.0, 1005.0)


def test_controller_phases_before_the_first_task_and_after_the_last() -> None:
    steps = [Step("b", "x", "ok", 12, 20), Step("a", "x", "ok", 3, 5)]
    assert overhead.controller_phases((0, 21), steps) == {"before_first_task": 3, "after_last_task": 1}
    assert overhead.controller_phases((0, 21), []) == {"before_first_task": 0, "after_last_task": 0}


def test_slowest_tasks_from_the_timeline_callback() -> None:
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    timeline = pytest.importorskip("ansible_collections.ragops.recovery.plugins.plugin_utils.timeline")
    records = [timeline.Step("Set a fact", "ansible.builtin.set_fact", "rag-lab", 100.0, 100.5, "ok", "ok"),
               timeline.Step("Restore", "ragops.recovery.snapshot_restore", "rag-lab", 101.0, 111.0, "changed", ""),
               timeline.Step("Mark", "ragops.recovery.shard_mark", "rag-lab", 112.0, 115.0, "changed", "")]
    steps = overhead.parse_timeline(timeline.to_json(timeline.Run("drill"), records))
    assert [s.task for s in steps] == ["Set a fact", "Restore", "Mark"]
    assert steps[1].start == pytest.approx(101.0, abs=0.01)
    assert steps[1].duration == pytest.approx(10.0, abs=0.001)
    runs = [ModuleRun("snapshot_restore", 101.2, 110.8, 0, site=101.3, ready=102.2),
            ModuleRun("shard_mark", 112.1, 114.9, 0, site=112.2, ready=114.0)]
    slowest = overhead.slowest_tasks(steps, runs, wall=20.0, count=2)
    assert [f.task for f in slowest] == ["Restore", "Mark"]
    assert slowest[0].share == pytest.approx(0.5, abs=0.001)
    assert slowest[0].module == pytest.approx(9.6)
    assert slowest[0].startup == pytest.approx(1.0)
    assert slowest[1].module == pytest.approx(2.8)


def test_the_wrapper_times_a_real_module_process(tmp_path: Path) -> None:
    """ansible.builtin.ping run through the wrapper: one process logged, with its AnsibleModule mark."""
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    if not ansible_playbook.exists():
        pytest.skip("ansible-playbook is not installed beside this Python")
    wrapper, log, marks = overhead.write_interpreter(tmp_path / "interpreter", sys.executable, "RAGOPS_TEST", "t")
    playbook = tmp_path / "ping.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "tasks": [{"ansible.builtin.ping": {}}]}]))
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    result = subprocess.run([str(ansible_playbook), "-i", "localhost,", "-c", "local",
                             "-e", f"ansible_python_interpreter={wrapper}", str(playbook)],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = overhead.parse_module_runs(log.read_text(), marks.read_text())
    assert [(r.module, r.code) for r in runs] == [("ping", 0)]
    assert runs[0].site is not None and runs[0].ready is not None
    assert runs[0].start < runs[0].site < runs[0].ready < runs[0].end
