"""Transport-neutral request and response values passed between the handler and the API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import protobuf
from .errors import ApiError, bad_request

JSON = "application/json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("true", "1")

    def int_param(self, name: str) -> int | None:
        value = self.param(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise bad_request(f"invalid value for {name}: {value!r}") from exc

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self) -> Any:
        content_type = self.header("content-type").split(";")[0].strip()
        if content_type == protobuf.PROTOBUF:
            return protobuf.decode(self.body)
        if not self.body:
            raise bad_request("the body of the request was empty")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from exc

    def json_or_none(self) -> Any:
        return self.json() if self.body.strip() else None

    def wants_table(self) -> bool:
        return any("as=Table" in part and "g=meta.k8s.io" in part for part in self.header("accept").split(","))


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode() + b"\n", JSON, headers or {})

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/plain")

    @classmethod
    def error(cls, error: ApiError) -> Response:
        return cls.json(error.status(), error.code, error.headers)


@dataclass
class Stream:
    """A chunked response; ``chunks`` yields until the stream ends or ``alive`` turns false."""

    chunks: Callable[[Callable[[], bool]], Iterator[bytes]]
    content_type: str = JSON
