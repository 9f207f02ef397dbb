# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the files a validation produces: whole or not at all."""

from __future__ import annotations

import os
import tempfile

from ..errors import RecoveryError


def write_atomically(path: str, text: str, what: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then
    rename it.

    A reader (a CI job collecting a JUnit file, a person opening the report) never sees
    half a file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=".%s-" % os.path.basename(path), dir=directory
        )
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise RecoveryError(
            "Failed to write the %s to %s: %s" % (what, path, error.strerror or error),
            resource=path,
            next_step="Check that the path is writable.",
        ) from error


def read_or_empty(path: str) -> str:
    """The file's text, or an empty string when it does not exist yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as error:
        raise RecoveryError(
            "Failed to read %s: %s" % (path, error), resource=path
        ) from error
