"""Kubeconfig files for the lab's users: the admin, the controllers and the node agent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .pki import write_private


def kubeconfig_text(url: str, token: str, ca_pem: bytes, namespace: str = "default", context: str = "lab") -> str:
    # JSON-quoted scalars are valid YAML and keep any token characters safe.
    q = json.dumps
    return "\n".join([
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {q(context)}",
        "  cluster:",
        f"    server: {q(url)}",
        f"    certificate-authority-data: {q(base64.b64encode(ca_pem).decode())}",
        "users:",
        f"- name: {q(context)}",
        "  user:",
        f"    token: {q(token)}",
        "contexts:",
        f"- name: {q(context)}",
        "  context:",
        f"    cluster: {q(context)}",
        f"    user: {q(context)}",
        f"    namespace: {q(namespace)}",
        f"current-context: {q(context)}",
        "preferences: {}",
        "",
    ])


def write_kubeconfig(path: Path, url: str, token: str, ca_pem: bytes, namespace: str = "default") -> Path:
    return write_private(path, kubeconfig_text(url, token, ca_pem, namespace).encode())
