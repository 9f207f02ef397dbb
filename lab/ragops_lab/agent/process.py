"""A container as a local process: started in its own session, its output appended to the pod log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ragops_lab.clock import rfc3339

# Variables a container inherits from the node; everything else comes from the pod spec.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
LAB_DIR = Path(__file__).resolve().parents[2]


def log_paths(log_dir: Path, namespace: str, pod: str, container: str) -> tuple[Path, Path]:
    """(current, previous) log files, which the kubelet endpoint serves to `kubectl logs`."""
    directory = log_dir / namespace / pod
    return directory / f"{container}.log", directory / f"{container}.previous.log"


def rotate_log(current: Path, previous: Path) -> None:
    """Keep the finished instance's log as the previous one, as the kubelet does on a restart."""
    if current.exists():
        os.replace(current, previous)


def process_env(contract: Mapping[str, str]) -> dict[str, str]:
    inherited = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    return {**inherited, "PYTHONPATH": str(LAB_DIR), "PYTHONUNBUFFERED": "1", **contract}


def exit_reason(returncode: int) -> tuple[int, str, int | None]:
    """(exitCode, reason, signal) the way the container runtime reports a finished process."""
    if returncode < 0:
        return 128 - returncode, "Error", -returncode
    return returncode, "Completed" if returncode == 0 else "Error", None


class ContainerProcess:
    """One running instance of a container."""

    def __init__(self, module: str, args: Sequence[str], env: Mapping[str, str], log_file: Path,
                 workdir: Path) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            # a session of its own, so that stopping the container reaches everything it started
            self._popen = subprocess.Popen(
                [sys.executable, "-m", module, *args], env=dict(env), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        self.started_at = rfc3339()
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._popen.poll()
        return self.returncode

    def signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
