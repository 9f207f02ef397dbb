# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a snapshot's upload costs in CPU: every body is checked by the store once, by
the SHA-256 that botocore signs (a Content-MD5 only where no body is signed), and zstd
leaves a CPU to the rest of the pipeline."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import typing as t

import pytest
from botocore.awsrequest import AWSResponse

from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    create,
    s3,
)

BODY = b"index segment " * 1000
# What the store answers, per operation: headers and an XML body.
ANSWERS = {
    "CreateMultipartUpload": (
        {},
        b"<InitiateMultipartUploadResult><UploadId>u-1</UploadId>"
        b"</InitiateMultipartUploadResult>",
    ),
    "UploadPart": ({"ETag": '"etag-1"'}, b""),
    "PutObject": ({"ETag": '"etag-1"'}, b""),
    "CompleteMultipartUpload": ({}, b"<CompleteMultipartUploadResult/>"),
}
Sent = t.List[t.Tuple[str, t.Dict[str, str]]]


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> t.Iterator[bytes]:
        return iter([self.data])


def store_on(
    endpoint: str, sent: Sent, bodies: t.List[t.Any] | None = None
) -> s3.S3Store:
    """A store whose botocore client signs each request for ``endpoint`` and records
    it in ``sent`` (and its body in ``bodies``) instead of sending it."""
    params = {"endpoint_url": endpoint, "access_key": "key", "secret_key": "secret"}
    client = s3.connect(params, s3.Transfer())

    def answer(request: t.Any, event_name: str, **_kwargs: t.Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        sent.append((operation, headers))
        if bodies is not None:
            bodies.append(request.body)
        answer_headers, body = ANSWERS[operation]
        return AWSResponse(request.url, 200, answer_headers, Body(body))

    client.meta.events.register("before-send.s3", answer)
    return s3.S3Store(client, "snaps")


def put(store: s3.S3Store) -> None:
    store.put_bytes("snapshots/shard-1/s-1/manifest.json", BODY)


def multipart(store: s3.S3Store) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        sink = s3.MultipartSink(
            store, "snapshots/shard-1/s-1/data", len(BODY), executor
        )
        sink.write(BODY)
        sink.finish()


def uploads(endpoint: str, upload: t.Callable[[s3.S3Store], None]) -> Sent:
    sent: Sent = []
    upload(store_on(endpoint, sent))
    bodies = [(op, h) for op, h in sent if op in ("PutObject", "UploadPart")]
    assert len(bodies) == 1
    return bodies


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:8333", "https://s3.example.test"]
)
@pytest.mark.parametrize("upload", [put, multipart])
def test_the_store_checks_every_body_by_its_signed_sha256(
    endpoint: str, upload: t.Callable[[s3.S3Store], None]
) -> None:
    [(operation, headers)] = uploads(endpoint, upload)
    assert operation in ("PutObject", "UploadPart")
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(BODY).hexdigest()
    assert "Content-MD5" not in headers


def test_a_part_is_signed_and_sent_as_the_bytes_it_is() -> None:
    """One write of the whole body, after no ``Expect: 100-continue`` wait: not a
    file object read again in 16 KiB pieces."""
    sent: Sent = []
    bodies: t.List[t.Any] = []
    multipart(store_on("http://127.0.0.1:8333", sent, bodies))
    [body] = [b for (op, _h), b in zip(sent, bodies) if op == "UploadPart"]
    [headers] = [h for op, h in sent if op == "UploadPart"]
    assert isinstance(body, bytes) and body == BODY
    assert "Expect" not in headers
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(BODY).hexdigest()


def test_parts_are_exact_and_each_byte_is_sent_once() -> None:
    sent: Sent = []
    bodies: t.List[t.Any] = []
    store = store_on("http://127.0.0.1:8333", sent, bodies)
    store = s3.S3Store(store.client, store.bucket, s3.Transfer(part_size=1000))
    data = os.urandom(3500)
    with concurrent.futures.ThreadPoolExecutor(1) as executor:  # parts in order
        sink = s3.MultipartSink(store, "snapshots/shard-1/s-1/data", 500, executor)
        # Writes that straddle the part boundaries.
        for start in range(0, len(data), 700):
            sink.write(data[start : start + 700])
        chunks = sink.finish()
    parts = [b for (op, _h), b in zip(sent, bodies) if op == "UploadPart"]
    assert [len(p) for p in parts] == [1000, 1000, 1000, 500]
    assert b"".join(parts) == data and len(chunks) == 7


def test_a_client_that_signs_no_body_sends_a_content_md5() -> None:
    sent: Sent = []
    store = store_on("https://s3.example.test", sent)
    store.client.meta.config.s3["payload_signing_enabled"] = False
    store = s3.S3Store(store.client, store.bucket)
    put(store)
    [(operation, headers)] = sent
    assert operation == "PutObject"
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers["Content-MD5"] == s3.content_md5(BODY)


@pytest.mark.parametrize(
    "given, cpus, threads", [(0, 2, 1), (0, 8, 7), (0, 1, 0), (3, 2, 3), (-1, 2, -1)]
)
def test_zstd_leaves_a_cpu_to_hashing_and_uploading_by_default(
    monkeypatch: pytest.MonkeyPatch, given: int, cpus: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert create.compression_threads(given) == threads
