# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Putting a fully staged and verified restore in place of the target directory.

The staging directory sits next to the target (same filesystem), so the swap is a
rename: an atomic exchange (``renameat2(RENAME_EXCHANGE)``) where the kernel has it,
else two renames.  A target that is a mount point (a fresh volume) cannot be renamed:
the staging directory then sits inside it, and the staged entries are moved into the
empty target, the completion marker last.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import typing as t

from ..errors import RecoveryError

AT_FDCWD = -100
RENAME_EXCHANGE = 2
STAGING_TAG = ".ragops-staging-"
PREVIOUS_TAG = ".ragops-previous-"
IGNORED_IN_EMPTY = ("lost+found",)


def _libc() -> t.Any:
    return ctypes.CDLL(None, use_errno=True)


def exchange(first: str, second: str) -> bool:
    """Atomically swap two paths; False when this kernel or filesystem cannot."""
    rename = getattr(_libc(), "renameat2", None)
    if rename is None:
        return False
    if (
        rename(
            AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE
        )
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), second)


def sync_filesystem(path: str) -> None:
    """Flush the filesystem holding ``path`` to disk (``syncfs``; ``sync`` where it
    is missing)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs = getattr(_libc(), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def is_mount(path: str) -> bool:
    """Whether ``path`` is a mount point, bind mounts included (which
    ``os.path.ismount`` misses)."""
    path = os.path.realpath(path)
    if os.path.ismount(path):
        return True
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            return any(
                _unescape(line.split()[4]) == path
                for line in handle
                if len(line.split()) > 4
            )
    except OSError:
        return False


def staging_path(dest: str, manifest_sha256: str) -> str:
    """Where a restore of the manifest stages its files: beside ``dest``, or inside
    it when it is a mount."""
    dest = os.path.abspath(dest)
    tag = STAGING_TAG + manifest_sha256[:16]
    if is_mount(dest):
        return os.path.join(dest, tag)
    return os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + tag)


def stale_staging(dest: str) -> t.List[str]:
    """Staging directories of earlier, unfinished restores into ``dest``."""
    dest = os.path.abspath(dest)
    if is_mount(dest):
        parent, prefix = dest, STAGING_TAG
    else:
        parent, prefix = (
            os.path.dirname(dest),
            "." + os.path.basename(dest) + STAGING_TAG,
        )
    if not os.path.isdir(parent):
        return []
    return sorted(
        os.path.join(parent, name)
        for name in os.listdir(parent)
        if name.startswith(prefix)
    )


def remove_tree(path: str) -> None:
    """Remove a staging directory of ours (never the target, never a previous copy)."""
    if STAGING_TAG not in os.path.basename(path):
        raise ValueError("refusing to remove %s: not a staging directory" % path)
    shutil.rmtree(path, ignore_errors=True)


def _payload(dest: str, staging: str, marker: str) -> t.List[str]:
    return [
        name
        for name in os.listdir(dest)
        if name not in IGNORED_IN_EMPTY
        and name != marker
        and os.path.join(dest, name) != staging
    ]


def _move_into_mount(staging: str, dest: str, marker: str) -> None:
    if _payload(dest, staging, marker):
        raise RecoveryError(
            "Refusing to restore into %s: it is a mount point that already holds data"
            % dest,
            resource=dest,
            reason="a volume root cannot be swapped atomically and it is not empty",
            next_step="Restore into a new, empty volume (mode=job), or into a "
            "subdirectory of this one.",
        )
    names = sorted(os.listdir(staging), key=lambda name: name == marker)
    for name in names:
        os.replace(os.path.join(staging, name), os.path.join(dest, name))
    os.rmdir(staging)


def swap_in(
    staging: str, dest: str, marker: str, previous_name: str, keep_previous: bool
) -> str | None:
    """Put ``staging`` in place of ``dest``; returns where the old data was kept, if
    anywhere."""
    dest = os.path.abspath(dest)
    if os.path.dirname(staging) == dest:
        _move_into_mount(staging, dest, marker)
        return None
    if not os.path.lexists(dest):
        os.rename(staging, dest)
        return None
    previous = os.path.join(
        os.path.dirname(dest),
        "." + os.path.basename(dest) + PREVIOUS_TAG + previous_name,
    )
    if exchange(staging, dest):
        os.rename(staging, previous)
    else:
        os.rename(dest, previous)
        os.rename(staging, dest)
    if not os.listdir(previous):
        os.rmdir(previous)
        return None
    if not keep_previous:
        shutil.rmtree(previous)
        return None
    return previous
