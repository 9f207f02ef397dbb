# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two times every report states, and the filter the roles compute them with."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.filter.recovery_times import (
    FilterModule,
)
from ansible_collections.ragops.recovery.plugins.plugin_utils.recovery_times import (
    parse_moment,
    recovery_times,
)

EPOCH = datetime(2026, 11, 27, 22, 10, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T22:10:00Z",
        "2026-11-27T22:10:00.000000Z",
        "2026-11-27 22:10:00",
        "2026-11-27T22:10Z",
        "2026-11-27T23:10:00+01:00",
        "2026-11-27T23:10:00+0100",
        "2026-11-27T22:10:00.0000000001z",
        str(int(EPOCH)),
    ],
)
def test_iso_8601_and_epoch_seconds_are_moments(text: str) -> None:
    assert parse_moment(text) == EPOCH


def test_moments_of_other_types_and_none() -> None:
    assert parse_moment(EPOCH) == EPOCH
    assert parse_moment(datetime(2026, 11, 27, 22, 10)) == EPOCH
    assert parse_moment("") is None and parse_moment(None) is None
    for bad in ("soon", "2026-13-01T00:00:00Z", "27/11/2026 22:10", True):
        with pytest.raises(ValueError):
            parse_moment(bad)  # type: ignore[arg-type]


def test_times_from_the_start_and_from_the_alert() -> None:
    times = recovery_times(
        {
            "started": EPOCH,
            "alert": EPOCH - 4.25,
            "safe_mode": "2026-11-27T22:10:03Z",
            "recovered": EPOCH + 14.84,
        }
    )
    figures = times.figures()
    assert (figures["time_to_safe_mode"], figures["time_to_recover"]) == (3.0, 14.8)
    assert figures["time_to_recover_from_alert"] == 19.1
    assert figures["started_at"] == "2026-11-27T22:10:00.000Z"
    assert times.lines() == [
        "time to safe mode: 3.0 s from the playbook's start (7.2 s from the alert)",
        "time to recover: 14.8 s from the playbook's start (19.1 s from the alert)",
    ]


def test_notes_stand_in_for_moments_not_reached_and_earlier_runs_are_named() -> None:
    times = recovery_times(
        {
            "started": EPOCH,
            "safe_mode": EPOCH - 60,
            "recovered_note": "not in this run: the failback returns the primary",
        }
    )
    assert times.lines() == [
        "time to safe mode: reached before this run started (at 2026-11-27T22:09:00.000Z)",
        "time to recover: not in this run: the failback returns the primary",
    ]
    assert recovery_times({"started": EPOCH}).lines()[1] == (
        "time to recover: not reached in this run"
    )


def test_a_moment_before_the_start_is_no_figure_of_this_run() -> None:
    """An earlier run's quarantine is not this run's time to safe mode: the figures
    (what set_stats hands AWX and EDA) are null, not negative; from the alert, the
    time still counts."""
    figures = recovery_times(
        {"started": EPOCH, "alert": EPOCH - 120, "safe_mode": EPOCH - 60}
    ).figures()
    assert figures["time_to_safe_mode"] is None
    assert figures["safe_mode_at"] == "2026-11-27T22:09:00.000Z"
    assert figures["time_to_safe_mode_from_alert"] == 60.0


def test_a_malformed_alert_time_is_said_never_raised() -> None:
    times = recovery_times(
        {"started": EPOCH, "alert": "in a minute", "safe_mode": EPOCH}
    )
    assert times.alert is None
    assert times.lines()[-1] == (
        "alert time not used: alert_received_at 'in a minute' is not a time: give the "
        "alert's time as ISO 8601, such as 2026-11-27T22:10:00Z, or as seconds since "
        "the epoch"
    )


def test_the_filter_refuses_what_is_not_moments_with_a_clear_error() -> None:
    recovery = FilterModule().filters()["recovery_times"]
    assert (
        recovery({"started": EPOCH, "recovered": EPOCH + 1})["time_to_recover"] == 1.0
    )
    with pytest.raises(AnsibleFilterError, match="expects a dict of moments"):
        recovery(["not", "a", "dict"])
    with pytest.raises(
        AnsibleFilterError, match=r"the run's start \(started\) is required"
    ):
        recovery({"safe_mode": EPOCH})
    with pytest.raises(AnsibleFilterError, match="'yesterday' is not a time"):
        recovery({"started": EPOCH, "safe_mode": "yesterday"})
