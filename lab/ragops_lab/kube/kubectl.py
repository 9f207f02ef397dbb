"""kubectl as built with the control plane (same release), run against a kubeconfig."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ragops_lab.kube import build


def kubectl_binary() -> Path:
    """kubectl as built with the control plane, at the same release."""
    return build.ensure_binary().parent / "kubectl"


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([str(kubectl_binary()), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
