"""Watch streams: newline-delimited JSON events replayed from the store's history."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .registry import Registry
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import WatchEvent
from .tables import to_table

DEFAULT_TIMEOUT = 1800.0
# How often a quiet stream checks whether the client or the server went away.
POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class WatchRequest:
    resource: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str
    timeout: float
    send_initial_events: bool
    bookmarks: bool
    table_object: str | None  # includeObject mode when the client asked for Table rows


def _matches(request: WatchRequest, obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    namespace = obj["metadata"].get("namespace", "")
    if request.namespace is not None and request.resource.namespaced and namespace != request.namespace:
        return False
    return request.labels.matches(obj["metadata"].get("labels")) and request.fields.matches(obj)


def _visible_type(request: WatchRequest, event: WatchEvent) -> str | None:
    """The event type this watcher sees, given its selectors (None: not shown)."""
    now_matches = _matches(request, event.obj)
    if event.type != "MODIFIED":
        return event.type if now_matches else None
    before = _matches(request, event.previous)
    if before and now_matches:
        return "MODIFIED"
    if before:
        return "DELETED"
    return "ADDED" if now_matches else None


class WatchSession:
    """One client's watch: initial state if asked, then history, then live events."""

    def __init__(self, registry: Registry, request: WatchRequest, stopping: threading.Event) -> None:
        self.registry = registry
        self.request = request
        self.stopping = stopping
        self._columns_sent = False

    def _encode(self, event_type: str, obj: dict[str, Any]) -> bytes:
        if self.request.table_object is not None and event_type != "BOOKMARK" and event_type != "ERROR":
            table = to_table(self.request.resource, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                             self.request.table_object, with_columns=not self._columns_sent)
            self._columns_sent = True
            obj = table
        return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"

    def _with_type(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {"kind": self.request.resource.kind, "apiVersion": self.request.resource.api_version, **obj}

    def _bookmark(self, version: int, initial_end: bool) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return self._encode("BOOKMARK", {"kind": self.request.resource.kind,
                                         "apiVersion": self.request.resource.api_version, "metadata": meta})

    def _start(self) -> tuple[list[bytes], int]:
        """Initial events and the resourceVersion the live part starts after."""
        req = self.request
        with self.registry.store.lock:
            replay = req.resource_version in ("", "0") or req.send_initial_events
            if not replay:
                return [], int(req.resource_version)
            items, version = self.registry.list_objects(req.resource, req.namespace, req.labels, req.fields)
            chunks = [self._encode("ADDED", self._with_type(obj)) for obj in items]
        if req.send_initial_events and req.bookmarks:
            chunks.append(self._bookmark(version, initial_end=True))
        return chunks, version

    def _expired(self, version: int) -> bytes:
        error = ApiError(410, f"too old resource version: {version} ({self.registry.store.resource_version})",
                         "Expired")
        return self._encode("ERROR", error.status())

    def chunks(self, alive: Callable[[], bool]) -> Iterator[bytes]:
        initial, last = self._start()
        yield from initial
        deadline = time.monotonic() + self.request.timeout
        store = self.registry.store
        while alive() and not self.stopping.is_set() and not store.closed:
            events = store.events_after(last)
            if events is None:
                yield self._expired(last)
                return
            for event in events:
                last = event.resource_version
                if event.resource_key != self.request.resource.key:
                    continue
                shown = _visible_type(self.request, event)
                if shown is not None:
                    yield self._encode(shown, event.obj)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            store.wait(last, min(remaining, POLL_INTERVAL))
