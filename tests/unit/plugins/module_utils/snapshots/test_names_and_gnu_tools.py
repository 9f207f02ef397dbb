# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What snapshot_create publishes, GNU zstd, tar and sha256sum read as it is and the
collection's restore accepts; what either would refuse is never published."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    create,
    layout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    make_tree,
    restore_into,
    snapshot,
    tree_of,
)

GNU_TOOLS = ("zstd", "tar", "sha256sum")
needs_gnu_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in GNU_TOOLS),
    reason="zstd, tar or sha256sum is not installed",
)
# Names that are fit for a snapshot although tools treat some specially: a leading
# '*' (sha256sum's binary flag), '-', spaces at either end, quotes, '=' (pax records),
# non-ASCII text, and a path longer than a ustar header holds.
ODD_NAMES = [
    "with space",
    "*star",
    "-dash",
    " lead and trail ",
    "quote'\"",
    "a=b",
    "#hash%s",
    "üñïçødé ✓",
    "deep/" + "n" * 120 + "/" + "x" * 150,
]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (b"back\\slash", "backslash"),
        (b"new\nline", "control character '\\n'"),
        (b"carriage\rreturn", "control character '\\r'"),
        (b"tab\there", "control character '\\t'"),
        (b"del\x7f", "control character '\\x7f'"),
        ("c1\x85".encode(), "control character '\\x85'"),
        (b"latin1-\xe9", "not valid UTF-8"),
    ],
)
def test_unfit_names_are_refused_before_anything_is_uploaded(
    tmp_path: Path, fake: FakeS3, s3: S3Store, name: bytes, problem: str
) -> None:
    source = make_tree(tmp_path / "src")
    Path(os.fsdecode(os.path.join(os.fsencode(source / "index"), name))).write_bytes(
        b"x"
    )
    with pytest.raises(RecoveryError) as caught:
        snapshot(s3, source, "s1")
    assert repr(b"index/" + name)[1:] in caught.value.msg
    assert problem in caught.value.msg and caught.value.next_step
    assert fake.objects == {} and fake.uploads == {} and fake.calls[1:] == []


def test_nothing_is_published_when_the_manifest_would_not_verify(
    tmp_path: Path, fake: FakeS3, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_tree(tmp_path / "src")
    (source / "index" / "back\\slash").write_bytes(b"x")
    monkeypatch.setattr(create, "path_problem", lambda path: None)
    with pytest.raises(RecoveryError, match="a restore would refuse its manifest"):
        snapshot(s3, source, "s1")
    assert fake.objects == {} and fake.uploads == {}


def run_tool(script: str, cwd: Path) -> str:
    done = subprocess.run(
        ["sh", "-ec", script], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def odd_tree(root: Path) -> Path:
    make_tree(root, files=3)
    for name in ODD_NAMES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 3)
    (root / "setuid-tool").write_bytes(b"#!/bin/sh\n")
    (root / "setuid-tool").chmod(0o4755)
    (root / "shared").mkdir()
    (root / "shared").chmod(0o3775)
    os.utime(root / "with space", (10**10, 10**10))  # beyond a ustar header's mtime
    os.utime(root / "-dash", (-86400, -86400))  # before 1970
    return root


def modes_and_times(root: Path) -> t.Dict[str, t.Tuple[str, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.name == ".ragops-restore.json":
            continue
        info = path.lstat()
        when = int(info.st_mtime) if path.is_file() else 0
        found[str(path.relative_to(root))] = (oct(stat.S_IMODE(info.st_mode)), when)
    return found


@needs_gnu_tools
def test_odd_names_round_trip_through_gnu_tools_and_the_restore(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    source = odd_tree(tmp_path / "src")
    snapshot(s3, source, "s1")
    objects = tmp_path / "objects"
    objects.mkdir()
    for name in (layout.ARCHIVE, layout.CHECKSUMS, layout.MANIFEST):
        (objects / name).write_bytes(fake.objects[LOCATION.key("s1", name)])
    manifest = json.loads((objects / layout.MANIFEST).read_text())
    archive_line = run_tool("sha256sum data.tar.zst", objects)
    assert archive_line.split()[0] == manifest["archive"]["sha256"]
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    run_tool("zstd -dc ../objects/data.tar.zst | tar --no-same-owner -xpf -", by_hand)
    run_tool("sha256sum --quiet --strict -c ../objects/SHA256SUMS", by_hand)
    run_tool("chmod -R u-s,g-s,o-t .", by_hand)
    restored = tmp_path / "restored"
    outcome = restore_into(s3, restored)
    assert outcome.restored is not None
    assert tree_of(by_hand) == tree_of(restored) == tree_of(source)
    assert modes_and_times(by_hand) == modes_and_times(restored)
    assert modes_and_times(restored)["setuid-tool"] == (
        "0o755",
        int((source / "setuid-tool").stat().st_mtime),
    )
    assert modes_and_times(restored)["shared"][0] == "0o775"
    assert modes_and_times(restored)["with space"][1] == 10**10
    listed = run_tool("zstd -dc data.tar.zst | tar -tf -", objects).splitlines()
    assert sorted(name.rstrip("/") for name in listed) == sorted(
        [entry["path"] for entry in manifest["files"]]
        + [entry["path"] for entry in manifest["directories"]]
    )
