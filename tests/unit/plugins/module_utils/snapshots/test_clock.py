# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An implausible clock: retention and the recovery-point check refuse to act on it."""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    clock,
    retention,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    ObjectInfo,
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    make_tree,
    snapshot,
)

STORE_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def objects(*written: datetime) -> list[ObjectInfo]:
    return [
        ObjectInfo("k%d" % n, 1, moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for n, moment in enumerate(written)
    ]


@pytest.mark.parametrize(
    "offset, plausible",
    [
        (timedelta(0), True),
        (timedelta(seconds=299), True),
        (timedelta(seconds=-299), True),
        (timedelta(seconds=301), False),
        (timedelta(seconds=-301), False),
        (timedelta(days=3 * 365), False),
        (-timedelta(days=3 * 365), False),
    ],
)
def test_the_clock_may_differ_from_the_stores_date_by_the_tolerance(
    offset: timedelta, plausible: bool
) -> None:
    reading = clock.reading(STORE_NOW + offset, http_date(STORE_NOW), [])
    assert (clock.problem(reading, 300) is None) is plausible


def test_a_repeated_date_header_is_read_by_its_first_value() -> None:
    twice = "%s, %s" % (http_date(STORE_NOW), http_date(STORE_NOW + HOUR))
    assert clock.parse_http_date(twice) == STORE_NOW
    assert clock.parse_http_date("yesterday") is None
    assert clock.parse_http_date("") is None


def test_the_problem_says_which_way_and_how_far() -> None:
    ahead = clock.reading(STORE_NOW + timedelta(days=730), http_date(STORE_NOW), [])
    assert clock.problem(ahead, 300) == (
        "this host's clock (2028-11-26T12:00:00Z) is 730 days ahead of the S3 "
        "store's (2026-11-27T12:00:00Z)"
    )
    behind = clock.reading(STORE_NOW - 1.5 * HOUR, http_date(STORE_NOW), [])
    assert "is 90 min behind the S3 store's" in t.cast(str, clock.problem(behind, 300))


def test_without_a_date_the_clock_may_not_be_behind_the_newest_object() -> None:
    written = objects(STORE_NOW - 48 * HOUR, STORE_NOW)
    assert clock.problem(clock.reading(STORE_NOW, "", written), 300) is None
    # Far ahead cannot be told from backups that stopped: that is the RPO's to report.
    later = STORE_NOW + timedelta(days=900)
    assert clock.problem(clock.reading(later, "", written), 300) is None
    behind = clock.reading(STORE_NOW - 3 * HOUR, "not a date", written)
    assert "3.0 h behind the newest object the S3 store lists" in t.cast(
        str, clock.problem(behind, 300)
    )
    assert clock.problem(clock.reading(STORE_NOW - HOUR, "", []), 300) is None


def test_an_implausible_clock_is_refused_naming_the_action_and_the_next_step() -> None:
    reading = clock.reading(STORE_NOW + HOUR, http_date(STORE_NOW), [])
    with pytest.raises(clock.ClockImplausible) as caught:
        clock.require_plausible(reading, 300, "prune the snapshots", "shard-1")
    result = caught.value.to_result()
    assert result["msg"].startswith("Refusing to prune the snapshots of shard shard-1")
    assert "more than future_tolerance (300s)" in result["msg"]
    assert result["reason"] == "implausible clock" and result["clock_offset"] == 3600.0
    assert "Fix this host's clock" in result["next_step"]


def pruned_store(tmp_path: Path, fake: FakeS3, s3: S3Store) -> None:
    for day in range(1, 6):
        snapshot(
            s3,
            make_tree(tmp_path / ("d%d" % day)),
            "s%d" % day,
            created="2026-10-%02dT00:00:00Z" % day,
        )
    snapshot(s3, make_tree(tmp_path / "new"), "s9", created="2026-11-27T10:00:00Z")


@pytest.mark.parametrize(
    "offset", [timedelta(days=3 * 365), -timedelta(days=3 * 365), HOUR]
)
def test_prune_refuses_to_delete_on_an_implausible_clock(
    tmp_path: Path,
    fake: FakeS3,
    s3: S3Store,
    monkeypatch: pytest.MonkeyPatch,
    offset: timedelta,
) -> None:
    pruned_store(tmp_path, fake, s3)
    fake.date = http_date(STORE_NOW)
    monkeypatch.setattr(retention, "utc_now", lambda: STORE_NOW + offset)
    before = dict(fake.objects)
    with pytest.raises(clock.ClockImplausible):
        retention.prune(
            s3, LOCATION, retention.PruneRequest(retention_days=7, keep_verified=1)
        )
    assert fake.objects == before


def test_prune_on_a_plausible_clock_deletes_what_retention_plans(
    tmp_path: Path, fake: FakeS3, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pruned_store(tmp_path, fake, s3)
    fake.date = http_date(STORE_NOW)
    monkeypatch.setattr(retention, "utc_now", lambda: STORE_NOW + timedelta(seconds=30))
    done = retention.prune(
        s3, LOCATION, retention.PruneRequest(retention_days=7, keep_verified=1)
    )
    assert [p["snapshot_id"] for p in done.result["pruned"]] == [
        "s5",
        "s4",
        "s3",
        "s2",
        "s1",
    ]
