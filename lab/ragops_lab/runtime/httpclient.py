"""JSON over HTTP as the programs and the lab call each other: every status is a result, only
transport failures raise."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]


class Unreachable(ConnectionError):
    """The peer refused the connection or its name did not resolve."""


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> HttpResult:
    """Send a JSON request; any HTTP status is a result, only transport failures raise.

    Raises TimeoutError when the peer does not answer in time and Unreachable when it cannot be
    reached, so callers can classify failures the way an SRE would.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return _result(response.status, response.read(), response.headers.items())
    except urllib.error.HTTPError as err:
        return _result(err.code, err.read(), err.headers.items())
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise TimeoutError(f"{method} {url} timed out") from err
        raise Unreachable(f"{method} {url}: {err.reason}") from err
    except ConnectionError as err:
        raise Unreachable(f"{method} {url}: {err}") from err


def _result(status: int, raw: bytes, header_items: Sequence[tuple[str, str]]) -> HttpResult:
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return HttpResult(status, parsed, {k.lower(): v for k, v in header_items})


def error_text(result: HttpResult) -> str:
    """A short description of an error answer for logs and error maps."""
    body = result.body
    detail = body.get("error", body) if isinstance(body, dict) else body
    return f"HTTP {result.status}: {detail}"
