# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command run in a pod (the ``pods/exec`` subresource): its output, exit code and
the time it may take.

The API server streams the command's stdout, stderr and, when it ends, a ``Status`` on
the error stream (``Success``, or ``NonZeroExitCode`` with the exit code as a cause).
:func:`collect` reads such a stream until it closes or the time is up; it works on
any object with the few methods of the ``kubernetes`` client's ``WSClient``.
"""

from __future__ import annotations

import json
import time
import typing as t
from dataclasses import dataclass

from ..redaction import scrub

Obj = t.Dict[str, t.Any]

STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3
# The end of each output kept in a result: enough for a command's report and its error.
MAX_OUTPUT = 64 * 1024
# How often a wait for output looks at the clock.
POLL_SECONDS = 1.0


class Channels(t.Protocol):
    """The streams of one exec, as ``kubernetes.stream.ws_client.WSClient`` offers them."""

    def is_open(self) -> bool: ...

    def update(self, timeout: float = 0) -> None: ...

    def read_channel(self, channel: int, timeout: float = 0) -> t.Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExecResult:
    """How a command run in a pod ended.

    ``exit_code`` is ``None`` when it is not known: the time ran out, or the command
    could not start (``error`` says why).
    """

    command: t.Tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """One line on how it ended, for a summary or a failure message."""
        if self.timed_out:
            return "timed out after %gs" % round(self.duration, 1)
        if self.exit_code is None:
            return self.error or "ended without an exit code"
        return "exit code %d" % self.exit_code

    def to_dict(self) -> Obj:
        view: Obj = {
            "command": list(self.command),
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "timed_out": self.timed_out,
            "duration": round(self.duration, 3),
        }
        if self.error:
            view["error"] = self.error
        return view


def exit_code_of(status: Obj | None) -> t.Tuple[int | None, str]:
    """(exit code, error) from the Status the error stream carried; ``None`` for a
    status that names no exit code (the command did not run)."""
    if status is None:
        return None, "the stream ended without the command's status"
    if status.get("status") == "Success":
        return 0, ""
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message")), ""
                except (TypeError, ValueError):
                    break
    return None, scrub(str(status.get("message") or status))[:500]


def parse_status(raw: t.Any) -> Obj | None:
    """The Status of the error stream; text that is not one is kept as its message."""
    text = _text(raw).strip()
    if not text:
        return None
    try:
        status = json.loads(text)
    except ValueError:
        return {"status": "Failure", "message": text}
    return status if isinstance(status, dict) else {"message": text}


class _Tail:
    """The last :data:`MAX_OUTPUT` characters of one output stream."""

    def __init__(self) -> None:
        self.text = ""

    def add(self, raw: t.Any) -> None:
        self.text = (self.text + _text(raw))[-MAX_OUTPUT:]


def _text(raw: t.Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return str(raw or "")


def collect(
    channels: Channels,
    command: t.Sequence[str],
    timeout: float,
    clock: t.Callable[[], float] = time.monotonic,
    started: float | None = None,
) -> ExecResult:
    """Read the command's streams until they close or ``timeout`` seconds have passed
    since ``started`` (by default now: the connection may have taken some of them);
    the connection is closed either way (a command still running is left to the
    node)."""
    started = clock() if started is None else started
    stdout, stderr, error_stream = _Tail(), _Tail(), []
    timed_out = False
    try:
        while channels.is_open():
            remaining = started + timeout - clock()
            if remaining <= 0:
                timed_out = True
                break
            channels.update(timeout=min(remaining, POLL_SECONDS))
            stdout.add(channels.read_channel(STDOUT_CHANNEL))
            stderr.add(channels.read_channel(STDERR_CHANNEL))
            error_stream.append(_text(channels.read_channel(ERROR_CHANNEL)))
        stdout.add(channels.read_channel(STDOUT_CHANNEL))
        stderr.add(channels.read_channel(STDERR_CHANNEL))
        error_stream.append(_text(channels.read_channel(ERROR_CHANNEL)))
    finally:
        channels.close()
    duration = clock() - started
    if timed_out:
        return ExecResult(
            tuple(command), None, stdout.text, stderr.text, duration, timed_out=True
        )
    exit_code, error = exit_code_of(parse_status("".join(error_stream)))
    return ExecResult(
        tuple(command), exit_code, stdout.text, stderr.text, duration, error=error
    )
