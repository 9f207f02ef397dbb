# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory Kubernetes API for unit tests: objects by path, resourceVersion, merge patch, dry run, faults."""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    ApiError,
    Conflict,
    NotFound,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.podexec import (
    ExecResult,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import KINDS

# (namespace, pod, container, command, timeout) → how the command ended, or an ApiError.
ExecHandler = t.Callable[
    [str, str, t.Optional[str], t.Tuple[str, ...], float], ExecResult
]


def merge_patch(target: t.Any, patch: t.Any) -> t.Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeTransport:
    """Answers requests like an API server would for the paths the tests use."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, t.Any]] = {}
        self.version = 100
        self.faults: list[tuple[str, str, ApiError]] = []
        self.calls: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
        # Pod logs by the log path (".../pods/<name>/log"); other pods answer "log of <path>".
        self.logs: dict[str, str] = {}
        # Commands run in pods (pods/exec), and what answers them.
        self.execs: list[tuple[str, str, t.Optional[str], tuple[str, ...], float]] = []
        self.exec_handler: ExecHandler | None = None

    def add(self, collection: str, obj: dict[str, t.Any]) -> dict[str, t.Any]:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.objects[collection + "/" + stored["metadata"]["name"]] = stored
        return stored

    def fail(
        self, method: str, path_suffix: str, error: ApiError, times: int = 1
    ) -> None:
        self.faults.extend([(method, path_suffix, error)] * times)

    def writes(self) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
        return [call for call in self.calls if call[0] != "GET"]

    def _fault(self, method: str, path: str) -> None:
        for index, (fault_method, suffix, error) in enumerate(self.faults):
            if fault_method == method and path.endswith(suffix):
                del self.faults[index]
                raise error

    def request(
        self,
        method: str,
        path: str,
        *,
        query: t.Sequence[tuple[str, str]] = (),
        body: t.Any = None,
        content_type: str | None = None,
    ) -> t.Any:
        self.calls.append((method, path, tuple(query)))
        self._fault(method, path)
        dry_run = ("dryRun", "All") in query
        if method == "GET":
            return self._get(path, dict(query))
        if method == "POST":
            return self._store(
                path + "/" + body["metadata"]["name"], body, dry_run, create=True
            )
        current = self._read(path)
        if method == "PUT":
            if (
                body["metadata"].get("resourceVersion")
                != current["metadata"]["resourceVersion"]
            ):
                raise Conflict("the object has been modified", status=409)
            return self._store(path, body, dry_run)
        if method == "PATCH":
            return self._store(path, merge_patch(current, body), dry_run)
        if method == "DELETE":
            wanted = ((body or {}).get("preconditions") or {}).get("uid")
            if wanted and current["metadata"].get("uid") != wanted:
                raise Conflict("Precondition failed: UID in precondition", status=409)
            if not dry_run:
                self.remove(path)
            return {"kind": "Status", "status": "Success"}
        raise AssertionError("unexpected method " + method)

    def remove(self, path: str) -> None:
        """What a DELETE does to the stored object: here it is gone at once."""
        del self.objects[path]

    def pod_exec(
        self,
        namespace: str,
        name: str,
        container: t.Optional[str],
        command: t.Sequence[str],
        timeout: float,
    ) -> ExecResult:
        """A command run in a pod: recorded, then answered by ``exec_handler``."""
        call = (namespace, name, container, tuple(command), timeout)
        self.execs.append(call)
        self._fault("EXEC", "/namespaces/%s/pods/%s/exec" % (namespace, name))
        if self.exec_handler is None:
            raise AssertionError("unexpected command run in a pod: %r" % (call,))
        return self.exec_handler(*call)

    def _read(self, path: str) -> dict[str, t.Any]:
        if path not in self.objects:
            raise NotFound('"%s" not found' % path.rsplit("/", 1)[-1], status=404)
        return self.objects[path]

    def _get(self, path: str, query: dict[str, str]) -> t.Any:
        if path.endswith("/log"):
            return self.logs.get(path, "log of " + path)
        if path in self.objects:
            return copy.deepcopy(self.objects[path])
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self.objects.items())
            if key.rsplit("/", 1)[0] == path
        ]
        if (
            not items
            and not any(key.startswith(path + "/") for key in self.objects)
            and not _collection(path)
            and "/pods" not in path
        ):
            return self._read(path)
        selector = query.get("labelSelector", "")
        return {"items": [obj for obj in items if _matches(obj, selector)]}

    def _store(
        self, path: str, obj: dict[str, t.Any], dry_run: bool, create: bool = False
    ) -> dict[str, t.Any]:
        if create and path in self.objects:
            raise Conflict("already exists", status=409)
        stored = copy.deepcopy(obj)
        if create:
            stored["metadata"].setdefault("uid", "uid-%d" % (self.version + 1))
        if not dry_run:
            self.version += 1
            stored["metadata"]["resourceVersion"] = str(self.version)
            self.objects[path] = stored
        return copy.deepcopy(stored)


def _collection(path: str) -> bool:
    """Whether ``path`` names a collection (it ends with a plural the collection knows): an empty list, not 404."""
    return path.rsplit("/", 1)[-1] in {kind.plural for kind in KINDS.values()}


def _matches(obj: dict[str, t.Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, value = [*term.split("=", 1), ""][:2]
        if key not in labels or (value and labels[key] != value):
            return False
    return True
