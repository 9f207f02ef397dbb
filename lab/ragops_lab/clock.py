"""Timestamps in the formats the Kubernetes API and the lab's logs use."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None = None) -> str:
    """Second-precision RFC 3339 with a 'Z' suffix, as metav1.Time serialises."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime | None = None) -> str:
    """Microsecond RFC 3339, as metav1.MicroTime serialises (Lease renew times, Events)."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
