# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 access for snapshots: the boto3 client from the s3 option group, explicit retries,
paged listing, a multipart upload sink and a reader that fetches ranged parts in
parallel and verifies each one.

boto3's own retries are off (ours are explicit, jittered and only for idempotent calls),
and for non-AWS endpoints the CRC checksums are only sent where the API requires them,
since some S3-compatible stores reject them.  Integrity comes from the SHA-256s of the
manifest instead.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import email.utils
import functools
import hashlib
import math
import threading
import time
import typing as t
from dataclasses import dataclass, field

from ..errors import ApiError, NotFound, SnapshotInvalid
from ..redaction import scrub
from ..retry import Retrier, RetryPolicy
from .manifest import ArchiveInfo, crc32

BOTO3_REQUIREMENT = "boto3"
MIB = 1024 * 1024
T = t.TypeVar("T")
# The longest wait a store's Retry-After gets before a repeat: a run stays bounded.
MAX_RETRY_AFTER = 60.0
# Codes of a 403 that mean the credentials themselves, not the bucket's permissions.
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidToken",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)
# Codes of a 400 that mean the store checked a Content-MD5 and the body failed it.
DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest"})


def boto3_import_error() -> ImportError | None:
    """Why boto3 cannot be imported, or None.

    boto3 and botocore are imported when S3 is first used, not with this module: they
    take a quarter of a second, which modules that never reach S3 (and S3 modules
    before their arguments are checked) should not pay.
    """
    try:
        import boto3  # noqa: F401  # pylint: disable=unused-import
        import botocore.config  # noqa: F401  # pylint: disable=unused-import
    except ImportError as error:
        return error
    return None


def boto3_errors() -> t.Tuple[t.Type[BaseException], ...]:
    """The exceptions of a boto3 call that become an :class:`ApiError`; none without
    botocore."""
    try:
        import botocore.exceptions
    except ImportError:
        return ()
    return (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError)


@dataclass(frozen=True)
class Transfer:
    """How objects move: part size, parallel requests, patience and attempts per
    request."""

    part_size: int = 16 * MIB
    concurrency: int = 4
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    attempts: int = 5


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: str
    etag: str = ""


def content_md5(data: bytes) -> str:
    """The ``Content-MD5`` of a body: the store checks it, so a body damaged on the
    way is refused."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(
        "ascii"
    )


def bodies_signed(client: t.Any) -> bool:
    """Whether ``client`` signs the SHA-256 of every request body (``client_config``
    turns that on): the store then refuses a body that does not match its signed
    digest, and a Content-MD5 would only check the same bytes a second time."""
    config = getattr(getattr(client, "meta", None), "config", None)
    s3_config = getattr(config, "s3", None) or {}
    return bool(s3_config.get("payload_signing_enabled"))


def client_config(
    params: t.Mapping[str, t.Any], transfer: Transfer
) -> t.Dict[str, t.Any]:
    """Keyword arguments for ``boto3.session.Session.client("s3", ...)`` from the s3
    option group."""
    # Every body's SHA-256 is signed, so the store checks every upload; that costs less
    # than the Content-MD5 it replaces (S3Store.integrity) where the CPU hashes
    # SHA-256 in hardware, and every byte is covered by the manifest's checksums too.
    config = {
        "retries": {"total_max_attempts": 1},
        "connect_timeout": transfer.connect_timeout,
        "read_timeout": transfer.read_timeout,
        "max_pool_connections": max(10, transfer.concurrency * 2),
        "s3": {"payload_signing_enabled": True},
    }
    if params.get("endpoint_url"):
        config.update(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path", "payload_signing_enabled": True},
        )
    verify: t.Any = params.get("s3_validate_certs", True)
    if verify and params.get("s3_ca_bundle"):
        verify = params["s3_ca_bundle"]
    import botocore.config

    return {
        "endpoint_url": params.get("endpoint_url"),
        "verify": verify,
        "config": botocore.config.Config(**config),
    }


def connect(params: t.Mapping[str, t.Any], transfer: Transfer) -> t.Any:
    """A boto3 S3 client; credentials come from the options or boto3's usual chain."""
    import boto3.session

    session = boto3.session.Session(
        aws_access_key_id=params.get("access_key"),
        aws_secret_access_key=params.get("secret_key"),
        aws_session_token=params.get("session_token"),
        region_name=params.get("region") or "us-east-1",
        profile_name=params.get("profile"),
    )
    client = session.client("s3", **client_config(params, transfer))
    send_parts_whole(client)
    return client


def send_parts_whole(client: t.Any) -> None:
    """Upload parts as the bytes they are.

    botocore wraps a bytes body in a file object, which it then signs in 1 MiB reads
    and sends in 16 KiB writes after an ``Expect: 100-continue`` round trip: about a
    third of the CPU an upload thread spends on a part besides the hashing, copying
    every byte once more.  The body is the same, signed by the same SHA-256.
    """
    from botocore.handlers import convert_body_to_file_like_object

    client.meta.events.unregister(
        "before-parameter-build.s3.UploadPart", convert_body_to_file_like_object
    )


def open_store(
    params: t.Mapping[str, t.Any], bucket: str, transfer: Transfer | None = None
) -> S3Store:
    """An :class:`S3Store` on ``bucket``, connected with the s3 option group's
    settings."""
    settings = transfer or Transfer()
    return S3Store(connect(params, settings), bucket, settings)


def retry_after(headers: t.Mapping[str, str], now: float | None = None) -> float | None:
    """The seconds a store's ``Retry-After`` asks for (a number or an HTTP date), at
    most :data:`MAX_RETRY_AFTER`; None when there is no readable one."""
    value = str(headers.get("retry-after") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = moment - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_step_for(status: int, code: str) -> str | None:
    """What to do about an S3 error, from its status and code."""
    if code in CREDENTIAL_CODES:
        return (
            "The S3 store refused the credentials (%s): they expired or were revoked "
            "during the run. Renew them (a new session token), or use a profile whose "
            "credentials boto3 refreshes before they expire (a role, "
            "credential_process), and run again." % code
        )
    if code == "RequestTimeTooSkewed":
        return (
            "The S3 store refused the request's time: this host's clock is off. Fix "
            "the clock (NTP) and run again."
        )
    if status == 403:
        return "Check the S3 credentials and that they may read and write the bucket."
    if status == 0 or status >= 500:
        return "Check that the S3 endpoint (endpoint_url) is reachable and answers in time."
    return None


def api_error(error: Exception, verb: str, target: str) -> ApiError:
    """The :class:`ApiError` for a boto3/botocore failure; status 0 when no answer
    arrived."""
    response = getattr(error, "response", None)
    delay, code = None, ""
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata", {})
        status = int(metadata.get("HTTPStatusCode") or 0)
        code = str(response.get("Error", {}).get("Code") or status)
        reason = scrub(
            "%s: %s" % (code, response.get("Error", {}).get("Message") or code)
        )
        delay = retry_after(metadata.get("HTTPHeaders") or {})
    else:
        status, reason = 0, scrub("%s: %s" % (type(error).__name__, error))
    if status == 404 or reason.startswith(("NoSuchKey", "NoSuchBucket")):
        return NotFound(
            "Failed to %s %s: %s" % (verb, target, reason),
            status=404,
            resource=target,
            reason=reason,
        )
    return ApiError(
        "Failed to %s %s: %s" % (verb, target, reason),
        status=status,
        retry_after=delay,
        resource=target,
        reason=reason,
        next_step=next_step_for(status, code),
    )


def error_code(error: ApiError) -> str:
    """The S3 error code an :func:`api_error` put at the start of its reason."""
    return (error.reason or "").split(":", 1)[0]


def refuses_header(error: ApiError) -> bool:
    """Whether a request carrying Content-MD5 may have been refused for the header
    itself (some S3-compatible stores answer 400 or 501 to it), not for its body."""
    return error.status in (400, 501) and error_code(error) not in DIGEST_CODES


def check_etag(answer: t.Mapping[str, t.Any], data: bytes, target: str) -> None:
    """Where no Content-MD5 was sent: an ETag that is an MD5 (as stores give for a
    plain upload or a part) must be the body's, or the body was damaged on the way."""
    etag = str(answer.get("ETag") or "").strip('"').lower()
    if len(etag) != 32 or any(c not in "0123456789abcdef" for c in etag):
        return
    if etag != hashlib.md5(data, usedforsecurity=False).hexdigest():
        raise ApiError(
            "Failed to write %s: the store's ETag is not the body's MD5" % target,
            status=0,
            resource=target,
            reason="BadDigest: body damaged on the way",
        )


@dataclass
class S3Store:
    """The S3 calls snapshots need, each with explicit retries."""

    client: t.Any
    bucket: str
    transfer: Transfer = field(default_factory=Transfer)
    retrier: Retrier = field(default_factory=Retrier)
    # False once the store refused a Content-MD5 header: bodies go without it, their
    # ETag checked instead.
    send_content_md5: bool = True
    # The store's own time (its HTTP Date) when it answered the last listing.
    server_date: str = ""

    def __post_init__(self) -> None:
        self.retrier = Retrier(
            RetryPolicy(attempts=self.transfer.attempts),
            self.retrier.sleep,
            self.retrier.rand,
        )
        self.signed = bodies_signed(self.client)

    def call(
        self,
        verb: str,
        key: str,
        func: t.Callable[[], T],
        idempotent: bool = True,
        retry: bool = True,
    ) -> T:
        """``func()`` with boto3 errors turned into :class:`ApiError`; retried unless
        ``retry`` is false."""

        def attempt() -> T:
            try:
                return func()
            except ApiError:
                raise
            except (
                Exception
            ) as error:  # boto3 raises many unrelated classes; all become ApiError here
                if isinstance(error, boto3_errors()):
                    raise api_error(
                        error, verb, "s3://%s/%s" % (self.bucket, key)
                    ) from None
                raise

        return self.retrier.call(attempt, idempotent=idempotent) if retry else attempt()

    def list(self, prefix: str) -> t.List[ObjectInfo]:
        """Every object under ``prefix``, one page (1000 keys) per request."""
        objects: t.List[ObjectInfo] = []
        token: str | None = None
        while True:
            kwargs = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                **({"ContinuationToken": token} if token else {}),
            }
            request = functools.partial(self.client.list_objects_v2, **kwargs)
            page = self.call("list", prefix, request)
            headers = page.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
            self.server_date = str(headers.get("date") or "")
            for item in page.get("Contents") or []:
                modified = item["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ")
                objects.append(
                    ObjectInfo(
                        item["Key"],
                        int(item["Size"]),
                        modified,
                        str(item.get("ETag", "")),
                    )
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return objects

    def get_bytes(self, key: str, max_size: int) -> bytes:
        """A small object's content; more than ``max_size`` bytes is refused."""

        def fetch() -> bytes:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            if int(answer.get("ContentLength") or 0) > max_size:
                answer["Body"].close()
                raise ApiError(
                    "s3://%s/%s is larger than %d bytes" % (self.bucket, key, max_size),
                    status=413,
                )
            data = answer["Body"].read()
            if len(data) != int(answer.get("ContentLength", len(data))):
                raise ApiError(
                    "short read of s3://%s/%s" % (self.bucket, key), status=0
                )
            return t.cast(bytes, data)

        return self.call("read", key, fetch)

    def get_range(self, key: str, start: int, length: int, retry: bool = True) -> bytes:
        """Exactly ``length`` bytes from ``start``; a short or long body counts as a
        lost connection."""

        def fetch() -> bytes:
            answer = self.client.get_object(
                Bucket=self.bucket,
                Key=key,
                Range="bytes=%d-%d" % (start, start + length - 1),
            )
            data = t.cast(bytes, answer["Body"].read())
            if len(data) != length:
                raise ApiError(
                    "got %d of %d bytes at offset %d of s3://%s/%s"
                    % (len(data), length, start, self.bucket, key),
                    status=0,
                    reason="short read",
                )
            return data

        return self.call("read", key, fetch, retry=retry)

    def put_checked(
        self, verb: str, key: str, data: bytes, send: t.Callable[..., T]
    ) -> T:
        """``send(**headers)`` for an upload of ``data``, retried: as it is when the
        client signs every body's SHA-256 (the collection's clients do), else with its
        Content-MD5; a store that refuses that header gets the body without it from then
        on, its ETag checked instead."""
        target = "s3://%s/%s" % (self.bucket, key)
        if self.signed:
            # The store checks the body against its signed SHA-256: no header to add.
            return self.call(verb, key, send)

        def plain() -> T:
            answer = send()
            check_etag(t.cast(t.Mapping[str, t.Any], answer), data, target)
            return answer

        if not self.send_content_md5:
            return self.call(verb, key, plain)
        try:
            return self.call(verb, key, lambda: send(ContentMD5=content_md5(data)))
        except ApiError as error:
            if not refuses_header(error):
                raise
        answer = self.call(verb, key, plain)
        self.send_content_md5 = False
        return answer

    def put_bytes(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Store ``data``; with ``exclusive`` only if no object is there (False when
        one already was)."""
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            self.put_checked(
                "write",
                key,
                data,
                lambda **md5: self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, **extra, **md5
                ),
            )
        except ApiError as error:
            if exclusive and error.status == 412:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.call(
            "delete",
            key,
            lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
        )

    def exists(self, key: str) -> bool:
        try:
            self.call(
                "read",
                key,
                lambda: self.client.head_object(Bucket=self.bucket, Key=key),
            )
        except NotFound:
            return False
        return True


def part_error(
    error: ApiError, index: int, start: int, length: int, bucket: str, key: str
) -> ApiError:
    """A ranged part that could not be read in every attempt, named: which part,
    which bytes, why, and what to do."""
    target = "s3://%s/%s" % (bucket, key)
    reason = error.reason or error.msg
    next_step = error.next_step or ""
    if error.status == 0:
        next_step = (
            "Part %d never arrived whole in %d attempts: check the network path to the "
            "S3 endpoint (a proxy or load balancer that cuts long answers, "
            "s3_read_timeout, s3_attempts) and run again." % (index + 1, error.attempts)
        )
    failed = ApiError(
        "Failed to read part %d (bytes %d-%d) of %s: %s (%d attempts)"
        % (index + 1, start, start + length - 1, target, reason, error.attempts),
        status=error.status,
        resource=target,
        reason=reason,
        next_step=(
            next_step + " The restore stopped before anything was swapped in: "
            "the target was left unchanged."
        ).strip(),
    )
    failed.attempts = error.attempts
    return failed


class ChunkMismatch(ApiError):
    """A downloaded part differs from its SHA-256 in the manifest (retried: it may be
    the network)."""


@dataclass
class MultipartSink:
    """A write-only stream that uploads ``part_size`` pieces in parallel, at most
    ``concurrency`` in flight.

    Each part's chunk checksums are computed in the upload thread, so ``part_size`` is a
    multiple of ``chunk_size``.  Memory stays at about ``part_size * (concurrency +
    1)``.
    """

    store: S3Store
    key: str
    chunk_size: int
    executor: concurrent.futures.Executor
    upload_id: str = ""
    pieces: t.List[bytes] = field(default_factory=list)
    pending: int = 0
    futures: t.List[concurrent.futures.Future[t.Tuple[str, t.List[str]]]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.store.transfer.concurrency)
        answer = self.store.call(
            "start an upload of",
            self.key,
            lambda: self.store.client.create_multipart_upload(
                Bucket=self.store.bucket, Key=self.key
            ),
            idempotent=False,
        )
        self.upload_id = answer["UploadId"]

    def write(self, data: bytes | memoryview) -> int:
        """Collect ``data``; every whole part is joined once (one copy of each byte,
        into a buffer of exactly one part) and handed to an upload thread."""
        size = self.store.transfer.part_size
        view = memoryview(data)
        while self.pending + len(view) >= size:
            take = size - self.pending
            self._submit(b"".join([*self.pieces, view[:take]]))
            self.pieces, self.pending, view = [], 0, view[take:]
        if view:
            self.pieces.append(bytes(view))
            self.pending += len(view)
        return len(data)

    def _submit(self, data: bytes) -> None:
        for future in self.futures:
            if future.done() and future.exception():
                raise t.cast(BaseException, future.exception())
        self.slots.acquire()
        number = len(self.futures) + 1
        self.futures.append(self.executor.submit(self._upload, number, data))

    def _upload(self, number: int, data: bytes) -> t.Tuple[str, t.List[str]]:
        try:
            view = memoryview(data)
            chunks = [
                crc32(view[i : i + self.chunk_size])
                for i in range(0, len(data), self.chunk_size)
            ]
            answer = self.store.put_checked(
                "upload part %d of" % number,
                self.key,
                data,
                lambda **md5: self.store.client.upload_part(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                    **md5,
                ),
            )
            return str(answer["ETag"]), chunks
        finally:
            self.slots.release()

    def finish(self) -> t.List[str]:
        """Upload the rest, complete the upload, and return the chunk checksums in
        order."""
        if self.pending or not self.futures:
            self._submit(b"".join(self.pieces))
            self.pieces, self.pending = [], 0
        results = [future.result() for future in self.futures]
        parts = [
            {"ETag": result[0], "PartNumber": index + 1}
            for index, result in enumerate(results)
        ]
        self.store.call(
            "complete the upload of",
            self.key,
            lambda: self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )
        return [chunk for result in results for chunk in result[1]]

    def abort(self) -> None:
        for future in self.futures:
            future.cancel()
        concurrent.futures.wait(self.futures)
        # An unfinished upload is invisible to readers; the bucket's lifecycle rules
        # expire it if this fails.
        with contextlib.suppress(ApiError):
            self.store.call(
                "abort the upload of",
                self.key,
                lambda: self.store.client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
                ),
            )


@dataclass
class VerifiedReader:
    """Reads the archive as a stream of ranged parts fetched in parallel, each checked
    against its chunk checksum.

    A part that arrives short, times out, or does not match its checksum is fetched
    again (the network may have damaged it); a part that never matches means the stored
    archive is corrupt.
    """

    store: S3Store
    key: str
    archive: ArchiveInfo
    executor: concurrent.futures.Executor
    bytes_read: int = 0
    refetched: int = 0

    def __post_init__(self) -> None:
        self.pending: t.Deque[concurrent.futures.Future[bytes]] = collections.deque()
        self.next_chunk = 0
        self.current = memoryview(b"")
        self.lock = threading.Lock()
        for ahead in range(self.store.transfer.concurrency + 1):
            if ahead < len(self.archive.chunk_crc32):
                self._schedule()

    def _schedule(self) -> None:
        if self.next_chunk < len(self.archive.chunk_crc32):
            self.pending.append(self.executor.submit(self._fetch, self.next_chunk))
            self.next_chunk += 1

    def _fetch(self, index: int) -> bytes:
        start = index * self.archive.chunk_size
        length = min(self.archive.chunk_size, self.archive.size - start)
        attempts = 0

        def verified() -> bytes:
            nonlocal attempts
            attempts += 1
            data = self.store.get_range(self.key, start, length, retry=False)
            if crc32(data) != self.archive.chunk_crc32[index]:
                raise ChunkMismatch(
                    "part %d of %s does not match the manifest" % (index, self.key),
                    status=0,
                )
            return data

        try:
            return self.store.retrier.call(verified, idempotent=True)
        except ChunkMismatch:
            raise SnapshotInvalid(
                "The archive's bytes %d-%d do not match the manifest (%d attempts)"
                % (start, start + length - 1, attempts),
                resource="s3://%s/%s" % (self.store.bucket, self.key),
                reason="archive checksum mismatch",
            ) from None
        except ApiError as error:
            raise part_error(
                error, index, start, length, self.store.bucket, self.key
            ) from None
        finally:
            with self.lock:
                self.refetched += attempts - 1

    def read(self, size: int = -1) -> bytes:
        if not self.current:
            if not self.pending:
                return b""
            self.current = memoryview(self.pending.popleft().result())
            self._schedule()
        size = len(self.current) if size < 0 else min(size, len(self.current))
        data = bytes(self.current[:size])
        self.current = self.current[size:]
        self.bytes_read += size
        return data

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending.clear()
