# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Holding a shard's writes while its live volume is copied: the quiesce and resume
calls of the shard's admin endpoint (the stack contract, docs/contract.md).

A quiesce names how long it may last (``seconds``): the shard lifts it by itself
then, so a snapshot that dies half-way never leaves the shard refusing writes.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError
from .admin import Answer, HttpCall, join

Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class QuiesceApi:
    """Where the shard's quiesce and resume calls live, and how long a hold may
    last."""

    url: str
    path: str = "/admin/quiesce"
    resume_path: str = "/admin/resume"
    seconds: int = 3600
    timeout: float = 30.0


@dataclass
class Hold:
    """A quiesce held: when it started, and how its release went."""

    api: QuiesceApi
    answer: Answer
    started: float
    resumed: Answer | None = None

    def to_dict(self) -> Obj:
        held = round(time.monotonic() - self.started, 3)
        view: Obj = {
            "url": join(self.api.url, self.api.path),
            "held_seconds": held,
            "max_seconds": self.api.seconds,
            "resumed": bool(self.resumed and self.resumed.ok),
        }
        if self.resumed is not None and not self.resumed.ok:
            view["resume_answer"] = self.resumed.to_dict()
        return view


def quiesce(call: HttpCall, api: QuiesceApi) -> Hold:
    """Ask the shard to finish its writes and refuse new ones for at most
    ``api.seconds``."""
    url = join(api.url, api.path)
    answer = call("POST", url, {"seconds": api.seconds}, api.timeout)
    if not answer.ok:
        raise RecoveryError(
            "Failed to quiesce the shard at %s: %s"
            % (url, "unreachable" if answer.status == 0 else "HTTP %d" % answer.status),
            resource=url,
            reason=str(answer.body)[:500],
            next_step="The shard must answer POST %s (docs/contract.md) for a "
            "snapshot of its live volume; or take the snapshot from a VolumeSnapshot "
            "(source: volume_snapshot) or of a replica." % api.path,
            partial={"quiesce": answer.to_dict()},
        )
    return Hold(api, answer, time.monotonic())


def resume(call: HttpCall, hold: Hold) -> Hold:
    """Lift the hold; a failure is recorded, not raised: the shard lifts it by itself
    after ``seconds`` anyway."""
    hold.resumed = call(
        "POST", join(hold.api.url, hold.api.resume_path), {}, hold.api.timeout
    )
    return hold
