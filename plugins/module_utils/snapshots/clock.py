# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether this host's clock can be trusted to judge snapshots' ages (pure).

Retention and the recovery-point check compare times; a controller whose clock is far
off would prune or raise alarms on a false reading.  The S3 store has a clock of its
own, which it states in every answer's ``Date`` header and in the ``LastModified`` of
every object.  The rule:

- with the store's ``Date`` of the listing: this host's time may differ from it by at
  most ``tolerance`` seconds (the snapshot options' ``future_tolerance``), ahead or
  behind;
- without it: this host's time may not be more than ``tolerance`` seconds behind the
  newest object the store lists (an object cannot have been written in the future).

A clock outside that is implausible, and the caller refuses to act on it.
"""

from __future__ import annotations

import email.utils
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone

from ..audit import timestamp
from ..errors import RecoveryError
from .catalog import Snapshot, parse_time, shifted
from .s3 import ObjectInfo


class ClockImplausible(RecoveryError):
    """This host's clock is too far from the S3 store's to judge snapshots' ages."""


def parse_http_date(value: str) -> datetime | None:
    """An HTTP ``Date`` header (``Mon, 07 Dec 2026 19:40:00 GMT``) as UTC, or None; of
    a header repeated (joined with a comma by the HTTP client), the first."""
    moment = None
    for text in (value, value[:29]):
        try:
            moment = email.utils.parsedate_to_datetime(text)
            break
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Reading:
    """This host's time, and what the store says about its own."""

    now: datetime
    store_date: datetime | None
    newest_object: datetime | None

    def offset(self) -> float | None:
        """Seconds this host is ahead of the store (negative: behind), when known."""
        if self.store_date is None:
            return None
        return (self.now - self.store_date).total_seconds()


def reading(now: datetime, store_date: str, objects: t.Iterable[ObjectInfo]) -> Reading:
    times = [parse_time(item.last_modified) for item in objects]
    newest = max((moment for moment in times if moment), default=None)
    return Reading(now, parse_http_date(store_date), newest)


def problem(clock: Reading, tolerance: float) -> str | None:
    """Why the clock cannot be trusted, or None when it can."""
    offset = clock.offset()
    if offset is not None:
        if abs(offset) <= tolerance:
            return None
        return "this host's clock (%s) is %s %s the S3 store's (%s)" % (
            timestamp(clock.now),
            _duration(abs(offset)),
            "ahead of" if offset > 0 else "behind",
            timestamp(t.cast(datetime, clock.store_date)),
        )
    newest = clock.newest_object
    if newest is not None and clock.now < shifted(newest, -tolerance):
        return (
            "this host's clock (%s) is %s behind the newest object the S3 store "
            "lists (written %s)"
            % (
                timestamp(clock.now),
                _duration((newest - clock.now).total_seconds()),
                timestamp(newest),
            )
        )
    return None


def require_plausible(
    clock: Reading, tolerance: float, action: str, shard: str
) -> None:
    """Raise :class:`ClockImplausible` when ``action`` must not run on this clock."""
    why = problem(clock, tolerance)
    if why is None:
        return
    raise ClockImplausible(
        "Refusing to %s of shard %s: %s, more than future_tolerance (%ss)"
        % (action, shard, why, int(tolerance)),
        resource=shard,
        reason="implausible clock",
        next_step="Fix this host's clock (NTP, or the container's time) and run "
        "again; nothing was changed.",
        partial={"clock_offset": clock.offset()},
    )


def check_listing(
    now: datetime,
    store_date: str,
    snapshots: t.Mapping[str, Snapshot],
    tolerance: float,
    action: str,
    shard: str,
) -> None:
    """:func:`require_plausible` on a shard's listing (its objects and the store's
    ``Date`` when it answered it)."""
    objects = [item for s in snapshots.values() for item in s.objects.values()]
    require_plausible(reading(now, store_date, objects), tolerance, action, shard)


def _duration(seconds: float) -> str:
    """``3 s``, ``12 min``, ``5.0 h``, ``730 days``: how far off, readably."""
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 172800:
        return "%.1f h" % (seconds / 3600)
    return "%d days" % (seconds // 86400)
