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
    # The image's interpreter first on PATH, so that `python` in a command run in the pod (exec) is
    # the one its program runs on, as it would be inside the image.
    path = os.pathsep.join(filter(None, (str(Path(sys.executable).parent), inherited.get("PATH"))))
    return {**inherited, "PATH": path, "PYTHONPATH": str(LAB_DIR), "PYTHONUNBUFFERED": "1", **contract}


def exit_reason(returncode: int) -> tuple[int, str, int | None]:
    """(exitCode, reason, signal) the way the container runtime reports a finished process."""
    if returncode < 0:
        return 128 - returncode, "Error", -returncode
    return returncode, "Completed" if returncode == 0 else "Error", None


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a process started in a session of its own, and everything it started."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


class ContainerProcess:
    """One running instance of a container, and the commands run in it (exec) while it runs."""

    def __init__(self, module: str, args: Sequence[str], env: Mapping[str, str], log_file: Path,
                 workdir: Path, prefix: Sequence[str] = ()) -> None:
        """``prefix`` runs the container, and every command exec'd in it, somewhere else: in a network
        namespace (``ip netns exec NAME``, which execs the command, so the pid is the container's)."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.workdir = workdir
        self.prefix = list(prefix)
        self._execs: set[subprocess.Popen[bytes]] = set()
        with open(log_file, "ab") as log:
            # a session of its own, so that stopping the container reaches everything it started
            self._popen = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", module, *args], env=dict(env), stdin=subprocess.DEVNULL,
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
        """Signal the container and every command run in it: they stop with it, as in a container."""
        for command in list(self._execs):
            signal_group(command, signum)
        if self.poll() is None:
            signal_group(self._popen, signum)

    def track(self, command: subprocess.Popen[bytes]) -> None:
        self._execs.add(command)

    def untrack(self, command: subprocess.Popen[bytes]) -> None:
        self._execs.discard(command)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
