"""A kubeconfig pointing kubectl and the Python client at the emulator."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path


def kubeconfig_text(
    url: str, token: str, namespace: str = "default", context: str = "lab", ca_pem: bytes | None = None,
) -> str:
    # JSON-quoted scalars are valid YAML and keep any token characters safe.
    q = json.dumps
    authority = [f"    certificate-authority-data: {q(base64.b64encode(ca_pem).decode())}"] if ca_pem else []
    return "\n".join([
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {q(context)}",
        "  cluster:",
        f"    server: {q(url)}",
        *authority,
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


def write_private(path: Path, text: str) -> Path:
    """Write atomically with owner-only permissions (the file carries a token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    return path
