"""ragops.recovery.local_record through real ansible-playbook runs: the action plugin writes on the
controller, creates folders, changes nothing on a re-run, writes nothing in check mode, shows a diff,
and refuses bad input clearly."""

from __future__ import annotations

import json
import stat
import typing as t
from pathlib import Path

import pytest
from harness import Cluster, Runner, task


@pytest.fixture
def local(tmp_path: Path) -> Runner:
    """A runner for tasks that need no cluster (the kubeconfig is never read)."""
    return Runner(Cluster(None, tmp_path / "no-kubeconfig", ""), tmp_path)


def test_writes_text_and_documents_once_and_a_rerun_changes_nothing(local: Runner, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "INC-7" / "outage.md"
    evidence = tmp_path / "reports" / "INC-7" / "evidence.json"
    document = {"primary": {"state": "outage", "healthy": False}, "backup": {"state": "healthy"}, "note": "é"}
    tasks = [task("Write the report", "local_record", path=str(report), content="# INC-7\n"),
             task("Save the evidence", "local_record", path=str(evidence), document=document)]
    first = local.play(tasks)
    assert first.failed == 0 and first.changed == 2, first.stdout
    assert report.read_text() == "# INC-7\n"
    # As the filter to_nice_json writes it: four spaces, keys sorted, text as it is.
    assert evidence.read_text(encoding="utf-8") == json.dumps(
        document, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    assert stat.S_IMODE(report.parent.stat().st_mode) == 0o750
    written = first.results["Save the evidence"]
    assert written["path"] == str(evidence) and written["size"] == evidence.stat().st_size
    # Nothing beside the files: each was written whole under a temporary name, then renamed.
    assert sorted(path.name for path in report.parent.iterdir()) == ["evidence.json", "outage.md"]

    again = local.play(tasks)
    assert again.failed == 0 and again.changed == 0, again.stdout
    # force=false keeps what a file holds; force (the default) replaces it.
    kept = local.play([task("Write the report", "local_record", path=str(report), content="# other\n", force=False)])
    assert kept.changed == 0 and report.read_text() == "# INC-7\n", kept.stdout
    replaced = local.play([task("Write the report", "local_record", path=str(report), content="# other\n")])
    assert replaced.changed == 1 and report.read_text() == "# other\n", replaced.stdout


def test_check_mode_writes_nothing_and_diff_shows_the_change(local: Runner, tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.md"
    planned = local.play([task("Write", "local_record", path=str(path), content="new\n")], check=True, diff=True)
    assert planned.failed == 0 and planned.changed == 1, planned.stdout
    assert not path.parent.exists()
    assert "+new" in planned.stdout

    path.parent.mkdir()
    path.write_text("old\n")
    changed = local.play([task("Write", "local_record", path=str(path), content="new\n", mode="0600")], diff=True)
    assert changed.changed == 1 and "-old" in changed.stdout and "+new" in changed.stdout, changed.stdout
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    # Only the mode differs: changed, content kept.
    mode_only = local.play([task("Write", "local_record", path=str(path), content="new\n", mode="0640")])
    assert mode_only.changed == 1 and stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("args, message", [
    ({"content": "x", "document": {"a": 1}}, "parameters are mutually exclusive: content|document"),
    ({}, "one of the following is required: content, document"),
    ({"content": "x", "mode": "rw-r"}, "mode 'rw-r' is not an octal file mode"),
    ({"content": "x", "mode": "07777777"}, "is not an octal file mode"),
    ({"content": "x", "unknown": 1}, "unknown"),
])
def test_bad_arguments_are_refused_and_nothing_is_written(
        local: Runner, tmp_path: Path, args: dict[str, t.Any], message: str) -> None:
    path = tmp_path / "out" / "x.md"
    done = local.play([task("Write", "local_record", path=str(path), **args)])
    assert done.results["Write"]["failed"] is True and message in done.results["Write"]["msg"], done.results["Write"]
    assert not path.exists()


def test_a_path_that_cannot_be_written_is_refused_with_the_next_step(local: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "kept").write_text("kept\n")
    done = local.play([task("Write", "local_record", path=str(folder), content="x")])
    result = done.results["Write"]
    assert result["failed"] is True, result
    assert result["msg"] == "Cannot write the record %s: it is a directory" % folder, result
    assert "RAGOPS_REPORT_DIR" in result["next_step"]
    assert (folder / "kept").read_text() == "kept\n"
