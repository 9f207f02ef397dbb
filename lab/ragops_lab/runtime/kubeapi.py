"""The few Kubernetes REST calls the lab programs make, with the pod's own token."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from ragops_lab.runtime.httpclient import KeepAliveClient, Unreachable


class KubeError(RuntimeError):
    """The Kubernetes API answered with an error status or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {status or 'unreachable'}: {message}")
        self.status = status


class KubeClient:
    """The few REST calls the lab programs make against the Kubernetes API."""

    def __init__(self, base_url: str, token: str, namespace: str, timeout: float = 5.0, ca_file: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.timeout = timeout
        # The API server's certificate is trusted through the CA bundle the node agent names.
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        # Kept-alive connections: a program that reads the API every second (the retriever's registry)
        # does one TLS handshake, not one a read.
        self._http = KeepAliveClient(self.context)

    def path(self, plural: str, name: str = "", namespace: str | None = None) -> str:
        ns = urllib.parse.quote(namespace or self.namespace)
        suffix = f"/{urllib.parse.quote(name)}" if name else ""
        return f"/api/v1/namespaces/{ns}/{plural}{suffix}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        if not self.base_url:
            raise KubeError(0, "KUBE_API_URL is not set")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            result = self._http.call(method, self.base_url + path, body, self.timeout, headers)
        except (TimeoutError, Unreachable) as exc:
            raise KubeError(0, str(exc)) from exc
        if result.status >= 400:
            message = result.body.get("message", result.body) if isinstance(result.body, dict) else result.body
            raise KubeError(result.status, f"{method} {path}: {message}")
        return result.body

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_optional(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The named object, or None when the API says it does not exist."""
        try:
            obj = self.get(self.path(plural, name, namespace))
        except KubeError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    def configmap_data(self, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap, or None when it does not exist."""
        obj = self.get_optional("configmaps", name)
        return None if obj is None else dict(obj.get("data") or {})


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
