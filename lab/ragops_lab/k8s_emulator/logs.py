"""Container logs: text set through the control API, or files written by the node agent."""

from __future__ import annotations

import threading
from pathlib import Path

LogKey = tuple[str, str, str, bool]  # (namespace, pod, container, previous)


class LogStore:
    """Log text by container; text set explicitly wins over a file under ``log_dir``."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._texts: dict[LogKey, str] = {}

    def set(self, key: LogKey, text: str, append: bool = False) -> None:
        with self._lock:
            self._texts[key] = (self._texts.get(key, "") if append else "") + text

    def clear(self) -> None:
        with self._lock:
            self._texts.clear()

    def _file(self, key: LogKey) -> Path | None:
        if self.log_dir is None:
            return None
        namespace, pod, container, previous = key
        if any(part in ("", ".", "..") or "/" in part for part in (namespace, pod, container)):
            return None
        suffix = ".previous.log" if previous else ".log"
        return self.log_dir / namespace / pod / f"{container}{suffix}"

    def read(self, key: LogKey) -> str | None:
        """The log text, or None when nothing was ever recorded for this container."""
        with self._lock:
            if key in self._texts:
                return self._texts[key]
        path = self._file(key)
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
        return None


def tail(text: str, lines: int | None, limit_bytes: int | None) -> str:
    """Apply ``tailLines`` then ``limitBytes`` the way the kubelet does."""
    if lines is not None:
        if lines <= 0:
            return ""
        kept = text.splitlines(keepends=True)[-lines:]
        text = "".join(kept)
    if limit_bytes is not None and limit_bytes >= 0:
        text = text.encode()[:limit_bytes].decode("utf-8", errors="ignore")
    return text
