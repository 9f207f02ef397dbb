# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's records on the controller: its reports and documents written as files.

A file is replaced whole (written beside it, then renamed over it), so a reader never
sees half of one, and only when its content or mode changes, so a re-run that records
the same thing changes nothing.  The action plugin ``local_record`` uses it on the
controller, in the process that runs the task: no module process is started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError

# A diff shows texts up to this size; a larger one is said to have changed.
MAX_DIFF = 256 * 1024


@dataclass(frozen=True)
class Recorded:
    """What writing a record did (or, in check mode, would do)."""

    path: str
    changed: bool
    size: int
    sha256: str
    before: bytes | None

    def to_result(self) -> t.Dict[str, t.Any]:
        return {
            "changed": self.changed,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
        }

    def diff(self, after: bytes) -> t.Dict[str, str]:
        """Before and after as text, for ``--diff``."""

        def text(data: bytes | None) -> str:
            if data is None:
                return ""
            if len(data) > MAX_DIFF:
                return "(%d bytes, not shown)\n" % len(data)
            return data.decode("utf-8", "replace")

        return {
            "before_header": self.path,
            "after_header": self.path,
            "before": text(self.before),
            "after": text(after),
        }


def parse_mode(name: str, value: t.Any) -> int:
    """A permission given as octal text (``"0640"``)."""
    text = str(value)
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise RecoveryError(
            "%s %r is not an octal file mode" % (name, value),
            reason="bad mode",
            next_step='Give %s as quoted octal text, for example "0640".' % name,
        )
    return mode


def document_bytes(document: t.Any) -> bytes:
    """A document as indented JSON with sorted keys, as ``to_nice_json`` writes it."""
    try:
        text = json.dumps(
            document,
            indent=4,
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ": "),
        )
    except (TypeError, ValueError) as error:
        raise RecoveryError(
            "The document cannot be written as JSON: %s" % error,
            reason="not JSON",
            next_step="Give a document of mappings, lists, text, numbers, booleans and nulls.",
        ) from None
    return (text + "\n").encode("utf-8")


def _current(path: str) -> t.Tuple[bytes | None, int | None]:
    """The file's content and permission bits, or (None, None) when there is none."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        raise _unwritable(path, "it is a directory") from None
    except OSError as error:
        raise _unwritable(path, error.strerror or str(error)) from None


def _unwritable(path: str, why: str) -> RecoveryError:
    return RecoveryError(
        "Cannot write the record %s: %s" % (path, why),
        resource=path,
        reason="not writable",
        next_step="Point the run's report folder (RAGOPS_REPORT_DIR or the role's artifacts "
        "directory) at a folder the controller can write, then run again.",
    )


def write(
    path: str,
    data: bytes,
    *,
    mode: int,
    dir_mode: int,
    check_mode: bool,
    force: bool = True,
) -> Recorded:
    """Make ``path`` hold ``data`` with ``mode``, creating its folders with
    ``dir_mode``; nothing is written in check mode or when it already does, nor, unless
    ``force``, when the file exists at all."""
    path = os.path.abspath(path)
    before, before_mode = _current(path)
    changed = (before != data or before_mode != mode) and (force or before is None)
    recorded = Recorded(
        path, changed, len(data), hashlib.sha256(data).hexdigest(), before
    )
    if check_mode or not changed:
        return recorded
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=dir_mode, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
    except OSError as error:
        raise _unwritable(path, error.strerror or str(error)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise _unwritable(path, error.strerror or str(error)) from None
    return recorded
