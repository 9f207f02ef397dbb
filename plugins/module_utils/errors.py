# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain exceptions: the single error path of every ragops.recovery module.

Helpers raise these; the module wrapper turns them into one ``fail_json`` call
carrying ``msg`` and, where known, the resource, the reason, the partial
result and the next manual step an on-call engineer should take.
"""

from __future__ import annotations

import typing as t


class RecoveryError(Exception):
    """A failure that a module reports as a failed task.

    A subclass names in ``RESULT_FIELDS`` the attributes of its own that the result
    carries, even when empty.
    """

    RESULT_FIELDS: t.Tuple[str, ...] = ()

    def __init__(
        self,
        msg: str,
        *,
        resource: str | None = None,
        reason: str | None = None,
        next_step: str | None = None,
        partial: dict[str, t.Any] | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.resource = resource
        self.reason = reason
        self.next_step = next_step
        self.partial = partial or {}

    def to_result(self) -> dict[str, t.Any]:
        """Keyword arguments for ``fail_json``; empty fields are left out."""
        result: dict[str, t.Any] = dict(self.partial)
        result["msg"] = self.msg
        for key in ("resource", "reason", "next_step"):
            value = getattr(self, key)
            if value:
                result[key] = value
        result.update((key, getattr(self, key)) for key in self.RESULT_FIELDS)
        return result


class ResourceTimeout(RecoveryError):
    """A wait ran out of time; ``last_seen`` is the last observed state."""

    RESULT_FIELDS = ("last_seen",)

    def __init__(self, msg: str, *, last_seen: t.Any = None, **kwargs: t.Any) -> None:
        super().__init__(msg, **kwargs)
        self.last_seen = last_seen


class ApiError(RecoveryError):
    """The Kubernetes or S3 API answered with an error (or could not be reached:
    status 0)."""

    RESULT_FIELDS = ("status", "attempts")

    def __init__(
        self,
        msg: str,
        *,
        status: int = 0,
        retry_after: float | None = None,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(msg, **kwargs)
        self.status = status
        self.retry_after = retry_after
        self.attempts = 1


class NotFound(ApiError):
    """The object does not exist (HTTP 404)."""


class Conflict(ApiError):
    """The object changed since it was read, or already exists (HTTP 409)."""


class InvalidTransition(RecoveryError):
    """A shard state change that the runbook does not allow."""


class RegistryCorrupt(RecoveryError):
    """A shard registry entry that is not valid JSON or not a valid entry."""


class SnapshotInvalid(RecoveryError):
    """A snapshot that fails verification against its manifest."""


class GoldenSetInvalid(RecoveryError):
    """A golden set that cannot be read or does not follow the golden set schema."""


class ValidationFailed(RecoveryError):
    """The golden-query gate judged the system not fit to serve (or to take traffic
    back)."""


class DependencyCycle(RecoveryError):
    """Components that wait for each other; ``cycle`` is closed: ``[a, b, a]``."""

    RESULT_FIELDS = ("cycle",)

    def __init__(self, msg: str, *, cycle: t.List[str], **kwargs: t.Any) -> None:
        super().__init__(msg, **kwargs)
        self.cycle = cycle


class MigrationFailed(RecoveryError):
    """A migration Job failed, or finished without bringing the stack to its version."""
