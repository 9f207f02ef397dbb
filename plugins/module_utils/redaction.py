# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets kept out of results and messages: the one place that knows what a secret
looks like.

API error bodies, connection errors and provider answers pass through :func:`scrub`
before they reach a result, so a token, a password, a presigned URL's signature or a key
the caller knows about is never shown.
"""

from __future__ import annotations

import re
import typing as t

REDACTED = "<redacted>"
# Anything that looks like a credential: bearer tokens and password-like values.
CREDENTIAL = re.compile(
    r"(?i)((?:bearer|token|password|secret)[\"'=:\s]+(?:bearer\s+)?)[^\s\"',}]+"
)
# The query parameters that make an S3 URL a presigned one.
SIGNED_QUERY = re.compile(
    r"(?i)((?:x-amz-)?(?:signature|credential|security-token)=)[^&\s\"']+"
)


def scrub(text: str, secrets: t.Iterable[str | None] = ()) -> str:
    """``text`` with signatures, credential-like values and the given ``secrets``
    redacted."""
    text = SIGNED_QUERY.sub(lambda match: match.group(1) + REDACTED, text)
    text = CREDENTIAL.sub(lambda match: match.group(1) + REDACTED, text)
    return hide(text, secrets)


def hide(text: str, secrets: t.Iterable[str | None]) -> str:
    """``text`` with each of the given ``secrets`` redacted, and nothing else changed:
    for the collection's own messages, which name Secrets and tokens by design."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
