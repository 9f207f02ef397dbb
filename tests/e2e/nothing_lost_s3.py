"""The S3 part of "nothing lost" after a faulted run: no half-written object under a final name.

A snapshot is published by its manifest, written last.  So after any run, however it ended, every
``manifest.json`` under the prefix must describe an archive that is there whole: the object exists,
has the manifest's size and hashes to the manifest's SHA-256 (hashed here, as ``sha256sum`` would, not
taken from the store's ETag).  A snapshot without a manifest is unfinished, never published, and is
allowed; so are objects that are not part of a snapshot.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

MANIFEST = "manifest.json"


def listing(client: t.Any, bucket: str, prefix: str) -> dict[str, int]:
    """Every object under ``prefix`` with its size, all pages."""
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update((item["Key"], int(item["Size"])) for item in page.get("Contents") or [])
    return found


def sha256_of(client: t.Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for block in iter(lambda: body.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def half_written(client: t.Any, bucket: str, prefix: str) -> list[str]:
    """What is wrong under ``prefix``: one line per published snapshot whose archive is missing,
    of another size or of another SHA-256 than its manifest says (empty: nothing lost)."""
    objects = listing(client, bucket, prefix)
    problems = []
    for key in sorted(k for k in objects if k.rsplit("/", 1)[-1] == MANIFEST):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            archive = json.loads(body)["archive"]
            archive_key = key.rsplit("/", 1)[0] + "/" + archive["name"]
        except (ValueError, KeyError, TypeError):
            problems.append("%s: not a snapshot manifest" % key)
            continue
        if archive_key not in objects:
            problems.append("%s: published, but %s is missing" % (key, archive_key))
        elif objects[archive_key] != archive["size"]:
            problems.append("%s: %d bytes, the manifest says %d" % (archive_key, objects[archive_key],
                                                                     archive["size"]))
        elif sha256_of(client, bucket, archive_key) != archive["sha256"]:
            problems.append("%s: its SHA-256 is not the manifest's" % archive_key)
    return problems


def assert_nothing_half_written(client: t.Any, bucket: str, prefix: str) -> None:
    """Fail naming every published snapshot whose archive is not whole."""
    problems = half_written(client, bucket, prefix)
    assert not problems, "half-written objects under final names: " + "; ".join(problems)
