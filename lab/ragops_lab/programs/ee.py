"""The collection's execution-environment image, as the lab runs it: the project's own environment.

A Job that uses the EE image (default ``localhost/ragops-recovery-ee``, as ``make ee`` tags it) passes its
command as ``args`` (the real image's entrypoint runs them). Here they run with this checkout's Python, its Ansible
commands (``ansible-playbook``: the image has them on its PATH) and the collection from
``build/collections`` (what ``make venv`` links), in a mount namespace of their own where each volume
of the pod is bind-mounted at its ``mountPath``, read-only where the pod says so, as a container sees
its volumes (the mount points are created on the host as empty directories when missing, e.g.
``/restore``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / "build" / "collections"
PYTHONS = ("python", "python3")


def program(name: str) -> str:
    """The image's command ``name`` in this environment: its Python, or one of its tools (``ansible-playbook``)."""
    if name in PYTHONS:
        return sys.executable
    tool = Path(sys.executable).parent / name
    return str(tool) if "/" not in name and tool.is_file() else name


def command(argv: list[str], mounts: dict[str, str], readonly: list[str] | None = None) -> list[str]:
    """``argv`` under ``unshare --mount`` with the pod's volumes bind-mounted where the container expects them."""
    argv = [program(arg) if index == 0 else arg for index, arg in enumerate(argv)]
    steps = ["mkdir -p %s && mount --bind %s %s" % (shlex.quote(path), shlex.quote(local), shlex.quote(path))
             + (" && mount -o remount,bind,ro %s" % shlex.quote(path) if path in (readonly or []) else "")
             for path, local in sorted(mounts.items())]
    script = " && ".join([*steps, "exec " + shlex.join(argv)])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write('{"level": "error", "event": "no_command", "error": "the EE image needs args"}\n')
        return 2
    mounts = json.loads(os.environ.get("LAB_MOUNTS") or "{}")
    readonly = json.loads(os.environ.get("LAB_READONLY_MOUNTS") or "[]")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               PYTHONPATH=os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")])))
    full = command(argv, mounts, readonly)
    os.execvpe(full[0], full, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
