"""An AWX project sync of this repository gives a job the collection: collections/requirements.yml."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from harness import BIN
from shipped import project_checkout, project_sync


@pytest.fixture(name="api_requests")
def api_requests_fixture() -> Iterator[tuple[str, list[str]]]:
    """An HTTP endpoint on loopback standing in for a Kubernetes API server: it records each request's
    path and answers 403 Forbidden, as an API server answers an account without rights."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                               "code": 403, "message": "forbidden"}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(path: Path, server: str) -> Path:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sync",
              "clusters": [{"name": "sync", "cluster": {"server": server}}],
              "users": [{"name": "sync", "user": {"token": "not-a-real-token"}}],
              "contexts": [{"name": "sync", "context": {"cluster": "sync", "user": "sync"}}]}
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_job_with_only_the_project_sync_finds_the_action_group(
        tmp_path: Path, api_requests: tuple[str, list[str]]) -> None:
    project = project_checkout(tmp_path / "project")
    collections = tmp_path / "requirements_collections"
    log = project_sync(project, collections)
    assert "ragops.recovery:" in log and "was installed successfully" in log, log
    installed = collections / "ansible_collections" / "ragops" / "recovery"
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["name"] == "recovery"
    # A job as AWX runs it: the project's playbook, the inventory's variables, the synced collections only.
    server, seen = api_requests
    inventory = {"rag_stacks": {"hosts": {"stack-1": {
        "ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
        "ragops_kubeconfig": str(kubeconfig(tmp_path / "kubeconfig", server)),
        "ragops_namespace": "rag-from-inventory"}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = {"PATH": "%s:/usr/bin:/bin" % BIN, "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(collections),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "LANG": os.environ.get("LANG", "C.UTF-8")}
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           "playbooks/shard_quarantine.yml", "-e", "shard=shard-1", "-e", "incident_id=INC-SYNC",
                           "--check"], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    # The module came from the synced collection and got its kubeconfig and namespace through
    # module_defaults' group/ragops.recovery.rag: it asked the inventory's API server about the
    # inventory's namespace, and reports the server's refusal.
    assert done.returncode != 0, output
    assert "/api/v1/namespaces/rag-from-inventory/configmaps/rag-shard-registry" in seen, (seen, output)
    assert "Forbidden" in output or "403" in output, output
