# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``ragops.recovery.recovery_times`` filter (documented in recovery_times.yml)."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.plugin_utils import (
    recovery_times as times,
)


def recovery_times(moments: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The time to safe mode and the time to recover, as figures and as lines."""
    if not isinstance(moments, t.Mapping):
        raise AnsibleFilterError(
            "recovery_times expects a dict of moments (started, alert, safe_mode, "
            "recovered), not %s" % type(moments).__name__
        )
    try:
        return times.recovery_times(moments).to_dict()
    except ValueError as error:
        raise AnsibleFilterError(
            "recovery_times: %s; moments are ISO 8601 times such as "
            "2026-11-27T22:10:00Z or seconds since the epoch" % error
        ) from None


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"recovery_times": recovery_times}
