"""The lab's real shard and retriever programs as processes, for the golden-query end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT

LAB = ROOT / "lab"
GOLDEN = LAB / "data" / "golden.yml"
SHARDS = ("shard-0", "shard-1", "shard-2", "shard-3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def program_env(**extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    return {**base, "PYTHONPATH": str(LAB), "PYTHONUNBUFFERED": "1", "POD_IP": "127.0.0.1", **extra}


def build_index(shard: str, volume: Path) -> Path:
    """A shard's volume with its index built from the lab corpus, as the shard's init container does."""
    subprocess.run([sys.executable, "-m", "ragops_lab.programs.shard", "build", "--shard", shard, "--shards",
                    str(len(SHARDS)), "--out", str(volume)], env=program_env(), check=True, capture_output=True,
                   timeout=120)
    return volume


def http(method: str, url: str, body: t.Any = None, timeout: float = 5.0) -> tuple[int, t.Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@dataclass
class Program:
    """One lab program running as a process on 127.0.0.1."""

    name: str
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def wait_answering(self, timeout: float = 20.0) -> None:
        """Until the program answers; it must still be running then, or another process took its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("%s exited: %s" % (self.name, self.process.communicate()))
            try:
                http("GET", self.url + "/healthz", timeout=0.5)
            except OSError:
                time.sleep(0.05)
                continue
            time.sleep(0.2)
            if self.process.poll() is not None:
                raise AssertionError("%s exited: %s" % (self.name, self.process.communicate()))
            return
        raise AssertionError("%s did not answer within %ss" % (self.name, timeout))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()


def start(module: str, name: str, **env: str) -> Program:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ragops_lab.programs." + module],
                               env=program_env(PORT=str(port), **env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    program = Program(name, process, port)
    try:
        program.wait_answering()
    except AssertionError:
        program.stop()
        raise
    return program


def start_shard(shard: str, volume: Path, **env: str) -> Program:
    """A shard server on ``volume``; another attempt on a new port if a process elsewhere took the port
    between choosing it and binding it (other test runs share the loopback)."""
    ordinal = shard.rsplit("-", 1)[1]
    for _attempt in range(3):
        try:
            program = start("shard", "vectorstore-%s" % ordinal, POD_NAME="vectorstore-%s" % ordinal,
                            SHARD_ID=shard, DATA_DIR=str(volume), **env)
        except AssertionError:
            continue
        status, stats = http("GET", program.url + "/stats")
        if status == 200 and stats.get("data_dir") == str(volume):
            return program
        program.stop()
    raise AssertionError("could not start %s on %s" % (shard, volume))


def start_retriever(api_url: str, token: str, namespace: str, ca_file: Path | None) -> Program:
    return start("retriever", "retriever", POD_NAME="retriever-0", POD_NAMESPACE=namespace, KUBE_API_URL=api_url,
                 KUBE_TOKEN=token, KUBE_CA_FILE=str(ca_file or ""), REGISTRY_CACHE_SECONDS="0")


def copy_volume(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def corrupt(shard: Program, volume: Path) -> dict[str, t.Any]:
    """Flip bytes in the middle of the shard's vectors and make it re-open them; its answer, an error."""
    vectors = volume / "index" / "vectors.bin"
    data = bytearray(vectors.read_bytes())
    middle = len(data) // 2
    for offset in range(middle, middle + 16):
        data[offset] ^= 0xFF
    vectors.write_bytes(bytes(data))
    status, body = http("POST", shard.url + "/admin/reopen", {})
    assert status == 500, body
    return t.cast(t.Dict[str, t.Any], body)


def registry_entries(urls: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Registry entries that send each serving shard's traffic straight to its process."""
    return {shard: {"state": "serving", "url": url} for shard, url in urls.items()}
