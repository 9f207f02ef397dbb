# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle: what a shard looked like before anything changed, gathered
read-only.

Pod logs (current and previous containers), events, the affected objects as YAML, the
shard registry, the shard's snapshot listing and its health answers go into one
``tar.gz`` with a SHA-256 manifest. The bundle is written once: an existing bundle is
never overwritten, and nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import typing as t
from dataclasses import dataclass, field

from ..errors import ApiError, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import Ref
from .admin import HttpCall, join

SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|credential)")
# A document's path in the bundle: relative, each part a plain name.
DOCUMENT_PATH = re.compile(
    r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"
)
NOISE_FIELDS = ("managedFields",)
MANIFEST_NAME = "MANIFEST.json"


@dataclass(frozen=True)
class EvidenceRequest:
    """Whose evidence to gather and where the shard's pods answer health checks.

    Without ``shard`` nothing is read from the cluster: the bundle holds the
    ``documents`` given (what another scenario recorded) and the ``files`` read on the
    controller (reports, a postmortem, a timeline), by their name in the bundle.
    """

    incident_id: str
    shard: str | None = None
    documents: t.Mapping[str, t.Any] = field(default_factory=dict)
    files: t.Mapping[str, str] = field(default_factory=dict)
    namespace: str = "default"
    registry: str = "rag-shard-registry"
    shard_label: str = "ragops.io/shard"
    port: int = 8080
    health_paths: t.Sequence[str] = ("/readyz", "/stats")
    http_timeout: float = 5.0
    snapshot_prefix: str = "snapshots"


@dataclass
class Bundle:
    """Files of the bundle by path, and what could not be gathered (kept in
    ``errors.txt``)."""

    files: t.Dict[str, bytes] = field(default_factory=dict)
    errors: t.List[str] = field(default_factory=list)

    def add_yaml(self, path: str, value: t.Any) -> None:
        # PyYAML only when a bundle is written: the status view reads bundles' names only.
        from .. import yaml_text

        self.files[path] = yaml_text.dump(
            value, default_flow_style=False, sort_keys=True
        ).encode("utf-8")

    def add_json(self, path: str, value: t.Any) -> None:
        self.files[path] = json.dumps(
            value, indent=2, sort_keys=True, default=str
        ).encode("utf-8")


def _redact_env(container: Obj) -> None:
    for variable in container.get("env") or []:
        if "value" in variable and SECRET_NAME.search(variable.get("name", "")):
            variable["value"] = "<redacted>"


def clean(obj: Obj) -> Obj:
    """The object without noise fields and with secret-looking literal env values
    redacted."""
    obj = json.loads(json.dumps(obj))
    for name in NOISE_FIELDS:
        (obj.get("metadata") or {}).pop(name, None)
    spec = obj.get("spec") or {}
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _redact_env(container)
    return obj


def _containers(pod: Obj) -> t.List[str]:
    spec = pod.get("spec") or {}
    return [
        c["name"]
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    ]


def _logs(client: K8sClient, bundle: Bundle, namespace: str, pod: Obj) -> None:
    name = pod["metadata"]["name"]
    for container in _containers(pod):
        for previous in (False, True):
            path = "logs/%s/%s%s.log" % (
                name,
                container,
                ".previous" if previous else "",
            )
            try:
                bundle.files[path] = client.pod_log(
                    namespace, name, container=container, previous=previous
                ).encode("utf-8")
            except ApiError as error:
                if not previous:
                    bundle.errors.append("%s: %s" % (path, error.msg))


def _claims(pods: t.Sequence[Obj]) -> t.List[str]:
    names = {
        volume["persistentVolumeClaim"]["claimName"]
        for pod in pods
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if volume.get("persistentVolumeClaim")
    }
    return sorted(names)


def _objects(
    client: K8sClient, bundle: Bundle, request: EvidenceRequest, pods: t.Sequence[Obj]
) -> t.Set[str]:
    names = set()
    for pod in pods:
        names.add(pod["metadata"]["name"])
        bundle.add_yaml("objects/pod-%s.yaml" % pod["metadata"]["name"], clean(pod))
    for claim in _claims(pods):
        names.add(claim)
        found = client.get_or_none(
            Ref("PersistentVolumeClaim", claim, request.namespace)
        )
        if found is not None:
            bundle.add_yaml("objects/pvc-%s.yaml" % claim, clean(found))
    registry = client.get_or_none(Ref("ConfigMap", request.registry, request.namespace))
    bundle.add_yaml(
        "registry.yaml", clean(registry) if registry else {"missing": request.registry}
    )
    return names


def _events(
    client: K8sClient, bundle: Bundle, namespace: str, names: t.Set[str]
) -> None:
    events = [
        clean(event)
        for event in client.list("Event", namespace)
        if (event.get("involvedObject") or {}).get("name") in names
    ]
    events.sort(
        key=lambda event: str(
            event.get("lastTimestamp") or event.get("eventTime") or ""
        )
    )
    bundle.add_yaml("events.yaml", events)


def _health(
    call: HttpCall, bundle: Bundle, request: EvidenceRequest, pods: t.Sequence[Obj]
) -> None:
    for pod in pods:
        address = (pod.get("status") or {}).get("podIP")
        answers: Obj = {}
        for path in request.health_paths:
            if address:
                answer = call(
                    "GET",
                    join("http://%s:%d" % (address, request.port), path),
                    None,
                    request.http_timeout,
                )
                answers[path] = answer.to_dict()
            else:
                answers[path] = {"status": 0, "body": "the pod has no address"}
        bundle.add_json("health/%s.json" % pod["metadata"]["name"], answers)


def check_documents(documents: t.Mapping[str, t.Any]) -> None:
    """Refuse document names that are not plain relative paths, before anything is
    read or written."""
    bad = sorted(
        name
        for name in documents
        if not DOCUMENT_PATH.match(str(name)) or name == MANIFEST_NAME
    )
    if bad:
        raise RecoveryError(
            "Invalid document names %s: each must be a relative path of plain names "
            "(letters, digits, '.', '_', '-'), such as stack-before.json, and not %s"
            % (bad, MANIFEST_NAME),
            resource="documents",
            reason="invalid document name",
            next_step="Rename the documents; nothing was written.",
        )


def check_names(documents: t.Iterable[str], files: t.Iterable[str]) -> None:
    """Refuse a name given both as a document and as a file."""
    both = sorted(set(documents) & set(files))
    if both:
        raise RecoveryError(
            "%s given both in documents and in files" % ", ".join(both),
            resource="files",
            reason="duplicate name in the bundle",
            next_step="Give each name once; nothing was written.",
        )


def add_files(bundle: Bundle, files: t.Mapping[str, str]) -> None:
    """Each file as it is on disk; one that cannot be read is noted, not fatal, so
    that the rest is kept."""
    for name, path in sorted(files.items()):
        try:
            with open(path, "rb") as handle:
                bundle.files[name] = handle.read()
        except OSError as error:
            bundle.errors.append(
                "%s: not read from %s: %s" % (name, path, error.strerror)
            )


def add_documents(bundle: Bundle, documents: t.Mapping[str, t.Any]) -> None:
    """Text as it is, anything else as JSON."""
    for name, value in sorted(documents.items()):
        if isinstance(value, str):
            bundle.files[name] = value.encode("utf-8")
        else:
            bundle.add_json(name, value)


def gather(
    client: t.Callable[[], K8sClient],
    call: HttpCall,
    request: EvidenceRequest,
    snapshots: t.Sequence[Obj] | None,
) -> Bundle:
    """Everything the bundle holds; only reads, and every read that fails is noted,
    not fatal.  ``client`` makes the Kubernetes client, needed only for a shard."""
    bundle = Bundle()
    if request.shard:
        _shard_evidence(client(), call, request, bundle)
    if snapshots is not None:
        bundle.add_json("snapshots.json", list(snapshots))
    add_documents(bundle, request.documents)
    add_files(bundle, request.files)
    if bundle.errors:
        bundle.files["errors.txt"] = ("\n".join(bundle.errors) + "\n").encode("utf-8")
    return bundle


def _shard_evidence(
    client: K8sClient, call: HttpCall, request: EvidenceRequest, bundle: Bundle
) -> None:
    """The shard's pods, claims, registry, logs, events and health answers."""
    pods = client.list(
        "Pod",
        request.namespace,
        label_selector="%s=%s" % (request.shard_label, request.shard),
    )
    names = _objects(client, bundle, request, pods)
    for pod in pods:
        _logs(client, bundle, request.namespace, pod)
    _events(client, bundle, request.namespace, names)
    _health(call, bundle, request, pods)


def manifest(bundle: Bundle, request: EvidenceRequest, created: str) -> Obj:
    files = {
        path: {"sha256": sha256(data), "size": len(data)}
        for path, data in sorted(bundle.files.items())
    }
    return {
        "format": 1,
        "incident_id": request.incident_id,
        "shard": request.shard,
        "namespace": request.namespace,
        "created": created,
        "algorithm": "sha256",
        "files": files,
    }


def archive(bundle: Bundle, listing: Obj, mtime: float) -> bytes:
    """The ``tar.gz``: the manifest first, then every file, with fixed owner and
    time."""
    output = io.BytesIO()
    members = [(MANIFEST_NAME, json_bytes(listing))]
    with tarfile.open(fileobj=output, mode="w:gz") as tar:
        for path, data in members + sorted(bundle.files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
            tar.addfile(info, io.BytesIO(data))
    return output.getvalue()


def json_bytes(value: t.Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
