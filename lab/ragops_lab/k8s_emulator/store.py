"""In-memory object storage with a global resourceVersion counter and a watch history."""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ObjectKey = tuple[str, str, str]  # (resource key, namespace, name)


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    resource_key: str
    type: str
    obj: dict[str, Any]
    # The object as it was before this event, so watchers with selectors can tell
    # when an object starts or stops matching.
    previous: dict[str, Any] | None = None


class Store:
    """Objects by resource, namespace and name; every write gets the next resourceVersion.

    One condition variable guards everything: callers hold ``store.lock`` across a
    read-modify-write so that resourceVersion checks and writes are atomic.
    """

    def __init__(self, history: int = 20000) -> None:
        self.lock = threading.Condition(threading.RLock())
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._resource_version = 0
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._closed = False

    @property
    def resource_version(self) -> int:
        return self._resource_version

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, resource_key: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Copies of the stored objects of one resource, sorted by namespace and name."""
        with self.lock:
            keys = sorted(k for k in self._objects if k[0] == resource_key
                          and (namespace is None or k[1] == namespace))
            found = [copy.deepcopy(self._objects[k]) for k in keys]
        return iter(found)

    def all_items(self) -> Iterator[tuple[ObjectKey, dict[str, Any]]]:
        with self.lock:
            found = [(k, copy.deepcopy(v)) for k, v in sorted(self._objects.items())]
        return iter(found)

    def put(self, key: ObjectKey, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Store ``obj`` under the next resourceVersion and record the watch event."""
        with self.lock:
            self._resource_version += 1
            stored = copy.deepcopy(obj)
            stored["metadata"]["resourceVersion"] = str(self._resource_version)
            previous = self._objects.get(key)
            self._objects[key] = stored
            self._record(key, event_type, stored, previous)
            return copy.deepcopy(stored)

    def remove(self, key: ObjectKey) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.pop(key, None)
            if obj is None:
                return None
            self._resource_version += 1
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
            self._record(key, "DELETED", obj, None)
            return copy.deepcopy(obj)

    def _record(
        self, key: ObjectKey, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None,
    ) -> None:
        self._history.append(
            WatchEvent(self._resource_version, key[0], event_type, copy.deepcopy(obj), previous)
        )
        self.lock.notify_all()

    def events_after(self, resource_version: int) -> list[WatchEvent] | None:
        """Events newer than ``resource_version``, or None when history no longer reaches back."""
        with self.lock:
            if self._history and resource_version < self._history[0].resource_version - 1:
                return None
            if not self._history and resource_version < self._resource_version:
                return None
            return [e for e in self._history if e.resource_version > resource_version]

    def wait(self, resource_version: int, timeout: float) -> None:
        """Block until something newer than ``resource_version`` is written, or timeout/close."""
        with self.lock:
            if self._resource_version <= resource_version and not self._closed:
                self.lock.wait(timeout)

    def clear(self, keep: set[ObjectKey]) -> None:
        """Drop every object not in ``keep``; watchers see DELETED events."""
        with self.lock:
            for key in [k for k in self._objects if k not in keep]:
                self.remove(key)

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self.lock.notify_all()
