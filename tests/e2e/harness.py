"""Drive real ansible-playbook runs against a Kubernetes cluster and read it back with kubectl."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ragops_lab.kube.kubectl import kubectl_binary

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECAP = re.compile(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Cluster:
    """The API (``server``: the fault proxy in front of it), a kubeconfig for it, the admin token, the
    CA bundle a client trusts, and the namespace of the current test."""

    server: t.Any
    kubeconfig: Path
    token: str
    namespace: str = "default"
    ca_file: Path | None = None

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        """kubectl as built with the control plane (the same release as the API server)."""
        command = [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError("kubectl %s failed: %s" % (" ".join(args), done.stderr))
        return done.stdout

    def apply(self, manifest: dict[str, t.Any]) -> None:
        manifest.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def wait_for_service_account(self, name: str, timeout: float = 30.0) -> None:
        """The serviceaccount controller creates a namespace's ``default`` account soon after the namespace."""
        deadline = time.monotonic() + timeout
        while not self.kubectl("get", "serviceaccount", name, "-n", self.namespace, "-o", "name", check=False):
            if time.monotonic() > deadline:
                raise AssertionError("ServiceAccount %s/%s did not appear" % (self.namespace, name))
            time.sleep(0.2)

    def unprivileged_token(self, name: str = "e2e-no-rbac") -> str:
        """A real token of a ServiceAccount that no Role binds: the API authenticates it, RBAC denies it."""
        self.kubectl("create", "serviceaccount", name, "-n", self.namespace)
        return self.kubectl("create", "token", name, "-n", self.namespace).strip()

    def get(self, kind: str, name: str) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], json.loads(self.kubectl("get", kind, name, "-n", self.namespace, "-o", "json")))

    def registry(self, name: str = "rag-shard-registry") -> dict[str, t.Any]:
        """The registry's entries, parsed where they are JSON."""
        data = self.get("configmap", name).get("data") or {}
        parsed: dict[str, t.Any] = {}
        for shard, text in data.items():
            try:
                parsed[shard] = json.loads(text)
            except ValueError:
                parsed[shard] = text
        return parsed


@dataclass
class Result:
    """One ansible-playbook run: exit code, output, and the recap counts of the host."""

    returncode: int
    stdout: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    results: dict[str, t.Any] = field(default_factory=dict)
    # Every host's result of every task: {host: {task name: result}}.
    host_results: dict[str, dict[str, t.Any]] = field(default_factory=dict)


@dataclass
class Runner:
    """Writes a playbook of module tasks and runs it with the collection from this checkout."""

    cluster: Cluster
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, **self.env)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).resolve().parent / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join(filter(None, ["record_results", self.env.get("CALLBACKS")])),
            "PATH": "%s:%s" % (BIN, env.get("PATH", "")),
        })
        return env

    def play(self, tasks: list[dict[str, t.Any]], *, check: bool = False, diff: bool = False,
             auth: dict[str, t.Any] | None = None) -> Result:
        """Run ``tasks`` on localhost; each task's result is saved under its name in ``Result.results``."""
        defaults = auth if auth is not None else {"kubeconfig": str(self.cluster.kubeconfig)}
        defaults = dict(defaults, namespace=self.cluster.namespace)
        playbook = [{"name": "e2e", "hosts": "localhost", "gather_facts": False,
                     "module_defaults": {"group/ragops.recovery.rag": defaults},
                     "tasks": [dict(task, ignore_errors=True) for task in tasks]}]
        path = self.workdir / "playbook.yml"
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        return self.run(path, check=check, diff=diff)

    def command(self, playbook: Path, *, check: bool = False, diff: bool = False,
                extra: list[str] | None = None) -> list[str]:
        command = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                   "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook), *(extra or [])]
        command += ["--check"] if check else []
        command += ["--diff"] if diff else []
        return command

    @staticmethod
    def note_run(playbook: Path) -> None:
        """With RAGOPS_E2E_RUN_LOG set, add a line for this ansible-playbook run to that file: the test that
        started it and the playbook (the fault matrix counts its playbook runs this way)."""
        log = os.environ.get("RAGOPS_E2E_RUN_LOG")
        if log:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
            with open(log, "a", encoding="utf-8") as out:
                out.write("%s\t%s\n" % (test, Path(playbook).name))

    def start(self, playbook: Path, *, extra: list[str] | None = None) -> subprocess.Popen[str]:
        """Start a run in a process group of its own (so that a test can kill it with its modules), output to a file."""
        self.note_run(playbook)
        with open(self.workdir / "started.log", "w", encoding="utf-8") as log:
            return subprocess.Popen(self.command(playbook, extra=extra), stdout=log, stderr=subprocess.STDOUT,
                                    text=True, env=self.environment(), cwd=self.workdir, start_new_session=True)

    def kill_when(self, playbook: Path, extra: list[str], step: str, reached: t.Callable[[], t.Any],
                  timeout: float = 240) -> None:
        """Start ``playbook`` and SIGKILL it with every process it started (:func:`kill_run`) as soon as
        ``reached()`` holds; fail when the run ends first, or when ``step`` does not show within ``timeout``."""
        started = self.start(playbook, extra=extra)
        try:
            deadline = time.monotonic() + timeout
            while not (reached() or started.poll() is not None):
                if time.monotonic() > deadline:
                    raise AssertionError("timed out after %gs waiting for %s" % (timeout, step))
                time.sleep(0.1)
            assert started.poll() is None, "the run ended before %s:\n%s" % (
                step, (self.workdir / "started.log").read_text()[-5000:])
        finally:
            if started.poll() is None:
                kill_run(started.pid)
            started.wait(timeout=30)

    def run(self, playbook: Path, *, check: bool = False, diff: bool = False,
            extra: list[str] | None = None, timeout: float = 300) -> Result:
        command = self.command(playbook, check=check, diff=diff, extra=extra)
        self.note_run(playbook)
        dump = self.workdir / "results.json"
        env = dict(self.environment(), RAGOPS_E2E_RESULTS=str(dump))
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.workdir,
                              check=False)
        result = Result(done.returncode, done.stdout + done.stderr)
        # Every host of the recap counts: a run over several shards recovers each on a host of its own.
        recap = [[int(group) for group in match.groups()] for match in RECAP.finditer(done.stdout)]
        if recap:
            result.ok, result.changed, _, result.failed = (sum(column) for column in zip(*recap))
        else:
            result.failed = 1  # the run died before its recap (a syntax error, a crash): never a success
        if dump.exists():
            result.results = json.loads(dump.read_text())
            dump.unlink()
        hosts = dump.with_suffix(".hosts.json")
        if hosts.exists():
            result.host_results = json.loads(hosts.read_text())
            hosts.unlink()
        return result


def descendants(pid: int) -> set[int]:
    """Every process started by ``pid``, at any depth, from each process's parent in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def kill_run(pid: int) -> None:
    """SIGKILL a run with every process it started, as a crash of the controller would. A signal to the
    run's process group is not enough: ansible-playbook runs each task's worker, and so its module, in a
    session of its own. The processes are stopped first, so that none starts another before the kill."""
    stopped: set[int] = set()
    while fresh := (descendants(pid) | {pid}) - stopped:
        for process in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGSTOP)
        stopped |= fresh
    for process in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process, signal.SIGKILL)


def task(name: str, module: str, **args: t.Any) -> dict[str, t.Any]:
    return {"name": name, "ragops.recovery." + module: args}


def registry_manifest(entries: dict[str, t.Any], name: str = "rag-shard-registry") -> dict[str, t.Any]:
    data = {shard: value if isinstance(value, str) else json.dumps(value) for shard, value in entries.items()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


@contextmanager
def snapshotted_lab(root: Path) -> Iterator[t.Any]:
    """A lab in ``root`` whose shards all have a snapshot, as the nightly safety net leaves them."""
    from lab_support import running_lab

    from ragops_lab.drills import shard_recovery

    with running_lab(root / "state") as running:
        shard_recovery.snapshot_every_shard(running, running.paths.root / "e2e" / "snapshots.log")
        yield running
