"""Stable Service addresses for the host, as kube-proxy gives a cluster: each Service with a selector
gets a loopback address of its own; a connection to it is forwarded to one of the Service's Ready pods.

Pod IPs change whenever a pod is replaced; these addresses last as long as the Service, so the
inventory and the playbooks can keep using them across restarts and rollouts.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import threading
from collections.abc import Mapping
from typing import Any

from ragops_lab.runtime.kubeapi import pod_is_ready
from ragops_lab.runtime.log import JsonLog

ADDRESS_ANNOTATION = "lab.ragops.io/address"
# Service addresses live in x.y.255.0/24 of the agent's network; pods get the rest.
SERVICE_OCTET = 255
CONNECT_TIMEOUT_SECONDS = 2.0
CHUNK = 65536

Obj = dict[str, Any]
Backend = tuple[str, int]


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Backend) -> None:
        super().__init__(address, _Forward)
        self.backends: list[Backend] = []
        self._turn = itertools.count()

    def next_backend(self) -> Backend | None:
        backends = self.backends
        return backends[next(self._turn) % len(backends)] if backends else None


class _Forward(socketserver.BaseRequestHandler):
    server: _Listener

    def handle(self) -> None:
        backend = self.server.next_backend()
        if backend is None:
            return
        try:
            upstream = socket.create_connection(backend, timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError:
            return
        upstream.settimeout(None)
        with upstream:
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join()


def _target_port(port: Mapping[str, Any], pod: Obj) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return None


def backends(service: Obj, port: Mapping[str, Any], pods: list[Obj]) -> list[Backend]:
    """Ready pods the Service selects, by name, with the port the Service port targets."""
    selector = service["spec"].get("selector") or {}
    namespace = service["metadata"]["namespace"]
    found = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        labels = pod["metadata"].get("labels") or {}
        if pod["metadata"]["namespace"] != namespace or not pod_is_ready(pod):
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            target = _target_port(port, pod)
            if target is not None:
                found.append((str(pod["status"]["podIP"]), target))
    return found


def proxied(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName"


class ServiceProxies:
    """One listener per Service port, kept in step with the Services and pods of each cycle."""

    def __init__(self, network: str, log: JsonLog) -> None:
        self.network = network
        self.log = log
        self._addresses: dict[str, str] = {}
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._next_host = itertools.count(1)

    def address_of(self, uid: str) -> str:
        if uid not in self._addresses:
            host = next(self._next_host)
            if host > 254:
                raise RuntimeError("no Service address left")
            self._addresses[uid] = f"{self.network}.{SERVICE_OCTET}.{host}"
        return self._addresses[uid]

    def sync(self, services: list[Obj], pods: list[Obj]) -> None:
        wanted: set[tuple[str, int]] = set()
        for service in filter(proxied, services):
            address = self.address_of(service["metadata"]["uid"])
            for port in service["spec"].get("ports") or []:
                key = (address, int(port["port"]))
                wanted.add(key)
                listener = self._listeners.get(key) or self._listen(key, service)
                if listener is not None:
                    listener.backends = backends(service, port, pods)
        for key in [k for k in self._listeners if k not in wanted]:
            self._close(key)

    def _listen(self, key: tuple[str, int], service: Obj) -> _Listener | None:
        try:
            listener = _Listener(key)
        except OSError as exc:
            self.log.warning("service_listen_failed", service=service["metadata"]["name"], error=str(exc))
            return None
        threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name=f"svc-{service['metadata']['name']}").start()
        self._listeners[key] = listener
        self.log.info("service_address", service=f"{service['metadata']['namespace']}/{service['metadata']['name']}",
                      address=f"{key[0]}:{key[1]}")
        return listener

    def _close(self, key: tuple[str, int]) -> None:
        listener = self._listeners.pop(key)  # dict.pop is atomic, so closing threads never share one
        listener.shutdown()
        listener.server_close()

    def close(self) -> None:
        """Stop every listener at once: each takes up to a poll interval to notice."""
        closing = [threading.Thread(target=self._close, args=(key,)) for key in list(self._listeners)]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()
