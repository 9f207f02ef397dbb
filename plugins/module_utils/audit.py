# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who changed something and when, as written into the objects the collection
changes."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timezone

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime:
    """The current UTC time to the second: the precision of Kubernetes timestamps."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def timestamp(moment: datetime | None = None) -> str:
    """``moment`` (by default now) as RFC 3339 UTC with second precision, as
    Kubernetes writes it."""
    return (moment or utc_now()).astimezone(timezone.utc).strftime(RFC3339)


def instant() -> str:
    """Now as RFC 3339 UTC to the millisecond: when a change took effect, for the
    times a report measures across tasks (time to safe mode)."""
    text = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def default_actor() -> str:
    """``user@host`` of the process running the module; only ``host`` when the user
    has no name."""
    host = socket.gethostname()
    try:
        return "%s@%s" % (getpass.getuser(), host)
    except (KeyError, OSError):
        return host
