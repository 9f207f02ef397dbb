# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults from the store, at the engine: a part that never arrives whole, 429 with
Retry-After, credentials that expire mid-transfer, a store that refuses Content-MD5."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ansible_collections.ragops.recovery.plugins.module_utils.errors import ApiError
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    s3 as s3_module,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
    Transfer,
    api_error,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    Body,
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    make_tree,
    restore_into,
    snapshot,
    staging_left,
    tree_of,
)


def throttled(operation: str, seconds: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TooManyRequests", "Message": "slow down"},
            "ResponseMetadata": {
                "HTTPStatusCode": 429,
                "HTTPHeaders": {"retry-after": seconds},
            },
        },
        operation,
    )


def refused(status: int, code: str, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def test_retry_after_is_read_as_seconds_or_a_date_and_bounded() -> None:
    assert s3_module.retry_after({"retry-after": "7"}) == 7.0
    assert s3_module.retry_after({"retry-after": "3600"}) == s3_module.MAX_RETRY_AFTER
    assert (
        s3_module.retry_after(
            {"retry-after": "Thu, 01 Jan 1970 00:00:30 GMT"}, now=10.0
        )
        == 20.0
    )
    assert s3_module.retry_after({"retry-after": "-5"}) == 0.0
    assert (
        s3_module.retry_after({"retry-after": "soon"}) is None
        and s3_module.retry_after({}) is None
    )
    assert s3_module.retry_after({"retry-after": "nan"}) is None
    error = api_error(throttled("GetObject", "4"), "read", "s3://b/k")
    assert error.status == 429 and error.retry_after == 4.0


def test_a_429_waits_at_least_its_retry_after_then_succeeds(tmp_path: Path) -> None:
    fake = FakeS3()
    waits: list[float] = []
    store = S3Store(fake, "snaps", Transfer(attempts=3), Retrier(sleep=waits.append))
    snapshot(store, make_tree(tmp_path / "src"), "s1")
    fake.fail("GetObject", throttled("GetObject", "3"), times=2)
    outcome = restore_into(store, tmp_path / "dest")
    assert outcome.restored is not None and waits == [3.0, 3.0]
    assert tree_of(tmp_path / "dest") == tree_of(tmp_path / "src")


def test_a_part_short_on_every_attempt_fails_naming_the_part(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    dest = make_tree(tmp_path / "dest", files=2, seed=9)
    before = tree_of(dest)

    def short(operation: str, kwargs: dict[str, t.Any]) -> t.Any:
        if "Range" in kwargs:
            return {"Body": Body(b"abc"), "ContentLength": 3}
        return None

    fake.faults.append(("GetObject", short))
    with pytest.raises(ApiError) as caught:
        restore_into(s3, dest)
    error = caught.value
    assert error.msg.startswith("Failed to read part 1 (bytes 0-")
    assert "of s3://snaps/snapshots/shard-1/s1/data.tar.zst: short read" in error.msg
    assert error.attempts == 3 and "(3 attempts)" in error.msg
    assert (
        error.next_step is not None and "Part 1 never arrived whole" in error.next_step
    )
    assert "the target was left unchanged" in error.next_step
    assert error.partial["target_unchanged"] is True
    assert tree_of(dest) == before and staging_left(tmp_path) == []


def failed_upload(
    tmp_path: Path, fake: FakeS3, s3: S3Store, status: int, code: str
) -> ApiError:
    """The error of a snapshot whose every part the store answers with ``code``."""
    fake.fail("UploadPart", refused(status, code, "UploadPart"), times=100)
    with pytest.raises(ApiError) as caught:
        snapshot(s3, make_tree(tmp_path / "src"), "s1")
    return caught.value


def test_credentials_expiring_mid_upload_name_them_and_publish_nothing(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    error = failed_upload(tmp_path, fake, s3, 403, "ExpiredToken")
    assert error.status == 403 and "ExpiredToken" in error.msg
    assert error.next_step is not None and "expired or were revoked" in error.next_step
    assert "No snapshot was published: snapshot s1 has no manifest" in error.next_step
    assert fake.objects == {} and fake.uploads == {}
    assert [call[0] for call in fake.calls].count("UploadPart") == 1


def test_a_skewed_request_time_names_the_clock() -> None:
    error = api_error(
        refused(403, "RequestTimeTooSkewed", "ListObjectsV2"), "list", "p"
    )
    assert error.next_step is not None and "clock" in error.next_step


def refuse_md5(operation: str, kwargs: dict[str, t.Any]) -> t.Any:
    if "ContentMD5" in kwargs:
        raise refused(400, "InvalidArgument", operation)
    return None


def test_a_store_refusing_content_md5_gets_bodies_without_it(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    fake.faults += [("PutObject", refuse_md5), ("UploadPart", refuse_md5)]
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    assert s3.send_content_md5 is False
    sent = [
        kwargs
        for operation, kwargs in fake.calls
        if operation in ("PutObject", "UploadPart")
    ]
    assert ["ContentMD5" in kwargs for kwargs in sent] == [True, False, False, False]
    assert restore_into(s3, tmp_path / "dest").restored is not None
    assert tree_of(tmp_path / "dest") == tree_of(tmp_path / "src")


def test_a_body_that_fails_the_stores_digest_check_is_not_sent_without_it(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    error = failed_upload(tmp_path, fake, s3, 400, "BadDigest")
    assert "BadDigest" in error.msg and s3.send_content_md5 is True
    assert [call[0] for call in fake.calls].count("UploadPart") == 1


def test_without_content_md5_a_damaged_body_is_caught_by_its_etag() -> None:
    s3_module.check_etag(
        {"ETag": '"900150983cd24fb0d6963f7d28e17f72"'}, b"abc", "s3://b/k"
    )
    s3_module.check_etag({"ETag": '"not-an-md5-3"'}, b"abc", "s3://b/k")
    with pytest.raises(ApiError) as caught:
        s3_module.check_etag(
            {"ETag": '"900150983cd24fb0d6963f7d28e17f73"'}, b"abc", "s3://b/k"
        )
    assert caught.value.status == 0 and "BadDigest" in (caught.value.reason or "")


def test_without_content_md5_a_write_whose_etag_differs_is_repeated(
    fake: FakeS3, s3: S3Store
) -> None:
    s3.send_content_md5 = False
    store_object = fake.put_object
    damaged = [{"ETag": '"%s"' % ("0" * 32)}]

    def put_object(**kwargs: t.Any) -> dict[str, t.Any]:
        answer = store_object(**kwargs)
        return damaged.pop() if damaged else answer

    fake.put_object = put_object  # type: ignore[method-assign]
    assert s3.put_bytes("snapshots/shard-1/x", b"abc") is True
    puts = [kwargs for operation, kwargs in fake.calls if operation == "PutObject"]
    assert len(puts) == 2 and all("ContentMD5" not in kwargs for kwargs in puts)
    assert fake.objects["snapshots/shard-1/x"] == b"abc"
