# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot Job's entry point: quiesce, snapshot, resume (whatever happened), JSON lines out."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.shards.admin import Answer
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import createrun
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    make_tree,
)

SECRET = "job-secret-key-value"


class Shard:
    """The shard's admin endpoint: records the calls, answers ``status`` to a quiesce."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: t.List[t.Tuple[str, str, t.Any]] = []

    def __call__(self, method: str, url: str, body: t.Any, timeout: float) -> Answer:
        self.calls.append((method, url, body))
        if url.endswith("/admin/quiesce"):
            return Answer(self.status, {"quiesced": self.status == 200})
        return Answer(200, {"quiesced": False})


def params(path: Path, **changes: t.Any) -> t.Dict[str, t.Any]:
    config = {
        "shard": "shard-1",
        "bucket": "snaps",
        "endpoint_url": "http://127.0.0.1:1",
        "snapshot_id": "s-9",
        "path": str(path),
        "source": {"method": "live", "claim": "data-vectorstore-1"},
        "quiesce": {"url": "http://10.0.0.5:8080", "seconds": 120},
    }
    config.update(changes)
    environ = {
        "RAGOPS_SNAPSHOT": json.dumps(config),
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    return createrun.params_from(environ, createrun.CONFIG_VARIABLE, createrun.DEFAULTS)


def test_the_shard_is_quiesced_for_the_copy_and_resumed(
    tmp_path: Path, s3_api: FakeS3
) -> None:
    shard = Shard()
    result = createrun.take(params(make_tree(tmp_path / "data")), shard)
    assert [call[:2] for call in shard.calls] == [
        ("POST", "http://10.0.0.5:8080/admin/quiesce"),
        ("POST", "http://10.0.0.5:8080/admin/resume"),
    ]
    assert shard.calls[0][2] == {"seconds": 120}
    assert (
        result["quiesce"]["resumed"] is True and result["quiesce"]["max_seconds"] == 120
    )
    assert (
        result["snapshot"]["snapshot_id"] == "s-9" and result["snapshot"]["files"] == 8
    )
    manifest = json.loads(s3_api.objects["snapshots/shard-1/s-9/manifest.json"])
    assert manifest["source"] == {"method": "live", "claim": "data-vectorstore-1"}


def test_a_refused_quiesce_uploads_nothing(tmp_path: Path, s3_api: FakeS3) -> None:
    shard = Shard(status=404)
    with pytest.raises(RecoveryError) as raised:
        createrun.take(params(make_tree(tmp_path / "data")), shard)
    assert raised.value.msg == (
        "Failed to quiesce the shard at http://10.0.0.5:8080/admin/quiesce: HTTP 404"
    )
    assert "docs/contract.md" in str(raised.value.next_step)
    assert len(shard.calls) == 1 and s3_api.objects == {}


def test_the_shard_is_resumed_when_the_snapshot_fails(
    tmp_path: Path, s3_api: FakeS3
) -> None:
    shard = Shard()
    with pytest.raises(RecoveryError) as raised:
        createrun.take(params(tmp_path / "missing"), shard)
    assert "it is not a directory" in raised.value.msg
    assert shard.calls[-1][1].endswith("/admin/resume")


def test_a_published_snapshot_is_reported_not_taken_again(
    tmp_path: Path, s3_api: FakeS3
) -> None:
    data = make_tree(tmp_path / "data")
    createrun.take(params(data, quiesce=None), Shard())
    shard = Shard()
    again = createrun.take(params(data), shard)
    assert again["changed"] is False and again["snapshot"]["status"] == "verified"
    assert shard.calls == []


def test_main_logs_progress_and_one_result_line(
    tmp_path: Path,
    s3_api: FakeS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = {
        "shard": "shard-1",
        "bucket": "snaps",
        "endpoint_url": "http://127.0.0.1:1",
        "snapshot_id": "s-1",
        "path": str(make_tree(tmp_path / "data")),
    }
    monkeypatch.setenv("RAGOPS_SNAPSHOT", json.dumps(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert createrun.main() == 0
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "result" and events[-1]["quiesce"] is None
    assert events[-1]["snapshot"]["url"] == "s3://snaps/snapshots/shard-1/s-1/"
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["bytes_done"] == progress[-1]["bytes_total"]
    assert SECRET not in out
    monkeypatch.setenv(
        "RAGOPS_SNAPSHOT", json.dumps(dict(config, path="/nowhere", snapshot_id="s-2"))
    )
    assert createrun.main() == 1
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert error["event"] == "error" and "not a directory" in error["msg"]
