"""One JSON object per line on stdout: the pod log a real service would write."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from ragops_lab.clock import utc_now


class JsonLog:
    """One JSON object per line: the pod log a real service would write."""

    def __init__(self, program: str, stream: TextIO | None = None, **fields: object) -> None:
        self._program = program
        self._stream = stream
        self._fields = fields
        self._lock = threading.Lock()

    def bind(self, **fields: object) -> JsonLog:
        child = JsonLog(self._program, self._stream, **{**self._fields, **fields})
        child._lock = self._lock
        return child

    def info(self, event: str, **fields: object) -> None:
        self._write("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._write("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._write("error", event, fields)

    def _write(self, level: str, event: str, fields: Mapping[str, object]) -> None:
        record: dict[str, object] = {"ts": utc_now(), "level": level, "program": self._program, "event": event}
        record.update(self._fields)
        record.update(fields)
        line = json.dumps(record, default=str, sort_keys=False)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
