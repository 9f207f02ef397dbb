# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to one vectorstore shard over HTTP: finding its pod's address, health and
admin calls."""

from __future__ import annotations

import json
import typing as t
import urllib.error
from dataclasses import dataclass

from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import pod_ready

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status 0 means the shard could not be reached; ``body`` is
    parsed JSON or text."""

    status: int
    body: t.Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> Obj:
        return {"status": self.status, "body": self.body}


HttpCall = t.Callable[[str, str, t.Optional[Obj], float], Answer]


def _parse(raw: bytes) -> t.Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()[:2000]


def http_call(method: str, url: str, body: Obj | None, timeout: float) -> Answer:
    """One JSON request; HTTP errors are answers, an unreachable shard is status 0."""
    # Imported here: Ansible's HTTP client pulls in TLS and cryptography libraries that
    # the modules calling no shard over HTTP (re-open by exec, evidence from the API
    # alone) would otherwise load at every run.
    from ansible.module_utils.urls import open_url

    data = json.dumps(body).encode("utf-8") if body is not None else None
    try:
        with open_url(
            url,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
            follow_redirects="none",
        ) as response:
            return Answer(response.status, _parse(response.read(MAX_BODY)))
    except urllib.error.HTTPError as error:
        return Answer(error.code, _parse(error.read(MAX_BODY)))
    except (urllib.error.URLError, OSError) as error:
        return Answer(0, "unreachable: %s" % getattr(error, "reason", error))


@dataclass(frozen=True)
class ShardEndpoint:
    """Base URL of the shard and the pod behind it (``None`` when the URL was given)."""

    url: str
    pod: str | None = None


def _deleting(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _preference(pod: Obj) -> t.Tuple[bool, str]:
    return (pod_ready(pod), str(pod["metadata"].get("creationTimestamp") or ""))


def shard_pods(
    client: K8sClient, namespace: str, shard: str, shard_label: str
) -> t.List[Obj]:
    """The shard's pods that are not being deleted."""
    selector = "%s=%s" % (shard_label, shard)
    pods = client.list("Pod", namespace, label_selector=selector)
    return [pod for pod in pods if not _deleting(pod)]


def preferred(pods: t.Sequence[Obj]) -> Obj:
    """The pod to talk to among candidates: a Ready one first, then the newest."""
    return max(pods, key=_preference)


def no_pod_error(
    shard: str, namespace: str, shard_label: str, what: str, reason: str
) -> RecoveryError:
    selector = "%s=%s" % (shard_label, shard)
    return RecoveryError(
        "Failed to find a pod of shard %s %s (selector %s in %s)"
        % (shard, what, selector, namespace),
        resource="pods %s" % selector,
        reason=reason,
        next_step="Check the shard's workload and pods (kubectl get pods -l %s); a "
        "shard without a running "
        "pod cannot be re-opened: restore it from a snapshot instead." % selector,
    )


def find_endpoint(
    client: K8sClient, namespace: str, shard: str, shard_label: str, port: int
) -> ShardEndpoint:
    """The shard's pod to talk to: a Ready one first, then the newest; it must have
    an address."""
    pods = shard_pods(client, namespace, shard, shard_label)
    addressed = [pod for pod in pods if (pod.get("status") or {}).get("podIP")]
    if not addressed:
        reason = "no running pod for the shard" if not pods else "pod has no IP"
        raise no_pod_error(shard, namespace, shard_label, "with an address", reason)
    chosen = preferred(addressed)
    return ShardEndpoint(
        "http://%s:%d" % (chosen["status"]["podIP"], port), chosen["metadata"]["name"]
    )


def join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")
