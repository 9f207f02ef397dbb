# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory S3 client with the calls the snapshot engine makes, and fault hooks per call."""

from __future__ import annotations

import hashlib
import io
import typing as t
from datetime import datetime, timezone

from botocore.exceptions import ClientError

Fault = t.Callable[[str, t.Dict[str, t.Any]], t.Any]


def client_error(status: int, code: str, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class Body(io.BytesIO):
    pass


class FakeS3:
    """Objects by key in one bucket; ``faults`` may replace a call's answer or raise."""

    def __init__(self, bucket: str = "snaps", page_size: int = 1000) -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.page_size = page_size
        self.faults: list[tuple[str, Fault]] = []
        self.calls: list[tuple[str, dict[str, t.Any]]] = []
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
        # The HTTP Date a listing answers with (none, as some stores, when empty).
        self.date = ""

    def _enter(self, operation: str, kwargs: dict[str, t.Any]) -> t.Any:
        self.calls.append((operation, dict(kwargs)))
        for entry in list(self.faults):
            if entry[0] == operation:
                outcome = entry[1](operation, kwargs)
                if outcome == "remove":
                    self.faults.remove(entry)
                elif outcome is not None:
                    return outcome
        if kwargs.get("Bucket") != self.bucket:
            raise client_error(404, "NoSuchBucket", operation)
        return None

    def _store(self, key: str, data: bytes) -> None:
        self.objects[key] = data
        self.modified[key] = self.now

    def list_objects_v2(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("ListObjectsV2", kwargs)
        keys = sorted(k for k in self.objects if k.startswith(kwargs.get("Prefix", "")))
        start = int(kwargs.get("ContinuationToken") or 0)
        page = keys[start : start + self.page_size]
        truncated = start + self.page_size < len(keys)
        answer: dict[str, t.Any] = {
            "Contents": [
                {
                    "Key": k,
                    "Size": len(self.objects[k]),
                    "ETag": '"x"',
                    "LastModified": self.modified.get(k, self.now),
                }
                for k in page
            ],
            "IsTruncated": truncated,
        }
        if truncated:
            answer["NextContinuationToken"] = str(start + self.page_size)
        if self.date:
            answer["ResponseMetadata"] = {"HTTPHeaders": {"date": self.date}}
        return answer

    def get_object(self, **kwargs: t.Any) -> dict[str, t.Any]:
        override = self._enter("GetObject", kwargs)
        if override is not None:
            return t.cast(t.Dict[str, t.Any], override)
        if kwargs["Key"] not in self.objects:
            raise client_error(404, "NoSuchKey", "GetObject")
        data = self.objects[kwargs["Key"]]
        if "Range" in kwargs:
            first, last = kwargs["Range"].split("=")[1].split("-")
            data = data[int(first) : int(last) + 1]
        return {"Body": Body(data), "ContentLength": len(data)}

    def head_object(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("HeadObject", kwargs)
        if kwargs["Key"] not in self.objects:
            raise client_error(404, "404", "HeadObject")
        return {"ContentLength": len(self.objects[kwargs["Key"]])}

    def put_object(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("PutObject", kwargs)
        if kwargs.get("IfNoneMatch") == "*" and kwargs["Key"] in self.objects:
            raise client_error(412, "PreconditionFailed", "PutObject")
        self._store(kwargs["Key"], bytes(kwargs["Body"]))
        return {"ETag": '"%s"' % hashlib.md5(kwargs["Body"]).hexdigest()}

    def delete_object(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("DeleteObject", kwargs)
        self.objects.pop(kwargs["Key"], None)
        return {}

    def create_multipart_upload(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("CreateMultipartUpload", kwargs)
        upload_id = "u%d" % (len(self.uploads) + 1)
        self.uploads[upload_id] = {}
        return {"UploadId": upload_id}

    def upload_part(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("UploadPart", kwargs)
        self.uploads[kwargs["UploadId"]][kwargs["PartNumber"]] = bytes(kwargs["Body"])
        return {"ETag": '"p%d"' % kwargs["PartNumber"]}

    def complete_multipart_upload(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("CompleteMultipartUpload", kwargs)
        parts = self.uploads.pop(kwargs["UploadId"])
        numbers = [p["PartNumber"] for p in kwargs["MultipartUpload"]["Parts"]]
        self._store(kwargs["Key"], b"".join(parts[n] for n in numbers))
        return {}

    def abort_multipart_upload(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self._enter("AbortMultipartUpload", kwargs)
        self.uploads.pop(kwargs["UploadId"], None)
        return {}

    def fail(self, operation: str, error: Exception, times: int = 1) -> None:
        remaining = [times]

        def fault(op: str, kwargs: dict[str, t.Any]) -> t.Any:
            remaining[0] -= 1
            if remaining[0] < 0:
                return "remove"
            raise error

        self.faults.append((operation, fault))
