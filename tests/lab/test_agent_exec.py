"""The node agent serves exec as a kubelet does: `kubectl exec` and the Python client through the real
API server, which passes the WebSocket upgrade on to the node (it declares ExtendWebSocketsToKubelet).
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.parse
from pathlib import Path

import pytest
import websocket as ws_client  # the websocket-client package, as the kubernetes Python client uses it
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.stream import stream
from lab_support import (  # noqa: F401 - pytest finds fixtures by name
    Cluster,
    bare_pod,
    cluster_fixture,
    container_pid,
    container_status,
    eventually,
    kube_fixture,
    process_env,
    processes_with,
    provider_container,
)

from ragops_lab.agent import websocket
from ragops_lab.agent.execstream import ExecOptions, ExecRequestError
from ragops_lab.agent.registration import DECLARED_FEATURES
from ragops_lab.runtime.kubeapi import pod_is_ready

pytestmark = pytest.mark.lab
PYTHON_ENV_AND_CWD = "import os; print(os.environ['POD_NAME'], os.environ['PROVIDER_NAME'], os.getcwd())"


def ready_pod(cluster: Cluster, name: str) -> dict[str, object]:
    cluster.create(bare_pod(name, [provider_container({"PROVIDER_NAME": "exec-target"})]))
    return cluster.wait_object("Pod", name, pod_is_ready)


def test_the_node_declares_that_it_takes_exec_websockets(cluster: Cluster) -> None:
    node = cluster.kubectl.json("get", "node", "lab-node")
    assert node["status"]["declaredFeatures"] == list(DECLARED_FEATURES) == ["ExtendWebSocketsToKubelet"]


def test_kubectl_exec_runs_in_the_containers_environment_and_directory(cluster: Cluster) -> None:
    pod = ready_pod(cluster, "target")
    done = cluster.kubectl.run("exec", "target", "--", "python", "-c", PYTHON_ENV_AND_CWD)
    name, provider, cwd = done.stdout.split()
    assert (name, provider) == ("target", "exec-target")
    container_cwd = Path(os.readlink(f"/proc/{container_pid(pod)}/cwd"))
    assert Path(cwd) == container_cwd
    # the same environment as the container's own process (the command is not a child of the agent's env)
    container_env = process_env(container_pid(pod))
    printed = cluster.kubectl.run("exec", "target", "-c", "main", "--", "python", "-c",
                                  "import json, os; print(json.dumps(dict(os.environ)))").stdout
    assert json.loads(printed) == container_env


def test_kubectl_exec_reports_the_exit_code_and_both_streams(cluster: Cluster) -> None:
    ready_pod(cluster, "exits")
    done = cluster.kubectl.run("exec", "exits", "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 3", check=False)
    assert done.returncode == 3, done
    assert done.stdout == "to-out\n"
    assert "to-err" in done.stderr and "command terminated with exit code 3" in done.stderr


def test_kubectl_exec_passes_stdin_until_it_closes(cluster: Cluster) -> None:
    ready_pod(cluster, "reads")
    done = cluster.kubectl.run("exec", "-i", "reads", "--", "sh", "-c", "wc -c; cat", stdin="twelve bytes")
    assert done.stdout.split() == ["12"]  # wc saw the end of stdin (v5's close signal); cat saw nothing left


def test_kubectl_exec_of_a_missing_program_or_container_says_so(cluster: Cluster) -> None:
    ready_pod(cluster, "missing")
    done = cluster.kubectl.run("exec", "missing", "--", "no-such-program", check=False)
    assert done.returncode != 0
    assert 'exec: "no-such-program": executable file not found in $PATH' in done.stderr
    # a pod still running (kubectl checks that itself) with one container that has ended
    ended = {"name": "ended", "image": "ragops-lab/controller",
             "env": [{"name": "REQUIRED_SCHEMA_VERSION", "value": "3"}]}
    cluster.create(bare_pod("half", [provider_container(), ended], restart_policy="Never"))
    cluster.wait_object("Pod", "half", lambda p: "terminated" in container_status(p, "ended").get("state", {}))
    refused = cluster.kubectl.run("exec", "half", "-c", "ended", "--", "true", check=False)
    assert refused.returncode != 0 and 'container not found ("ended")' in refused.stderr, refused.stderr


def test_a_client_that_goes_away_ends_the_command(cluster: Cluster) -> None:
    ready_pod(cluster, "sleeper")
    marker = f"sleeper-{time.monotonic_ns()}"
    command = ["python", "-c", "import sys, time; print('started', flush=True); time.sleep(60)", marker]
    api = core_api(cluster)
    client = stream(api.connect_get_namespaced_pod_exec, "sleeper", cluster.namespace, command=command,
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    assert client.readline_stdout(timeout=20) == "started"
    assert processes_with(marker)
    client.close()
    eventually(lambda: processes_with(marker), lambda found: not found, what="the command to be killed")


def test_the_python_client_gets_output_and_exit_code_over_v5(cluster: Cluster) -> None:
    ready_pod(cluster, "python-client")
    api = core_api(cluster)
    client = stream(api.connect_get_namespaced_pod_exec, "python-client", cluster.namespace,
                    command=["sh", "-c", "echo out; echo err >&2; exit 4"],
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    client.run_forever(timeout=20)
    assert client.subprotocol == "v5.channel.k8s.io"
    assert (client.read_stdout(), client.read_stderr()) == ("out\n", "err\n")
    assert client.returncode == 4


def test_a_v4_client_gets_the_status_on_the_error_stream(cluster: Cluster) -> None:
    """A client that speaks only v4.channel.k8s.io (no close signal), straight over a WebSocket."""
    ready_pod(cluster, "v4-client")
    messages = raw_exec(cluster, "v4-client", ["sh", "-c", "printf abc"], "v4.channel.k8s.io")
    assert messages[0] == b"\x01"  # the empty message that says the streams are ready
    assert b"".join(m[1:] for m in messages if m[:1] == b"\x01") == b"abc"
    status = [json.loads(m[1:]) for m in messages if m[:1] == b"\x03"]
    assert status == [{"metadata": {}, "status": "Success"}]


def test_a_spdy_client_is_told_that_only_websocket_is_served(cluster: Cluster) -> None:
    ready_pod(cluster, "spdy")
    env = {**cluster.kubectl.env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    original, cluster.kubectl.env = cluster.kubectl.env, env
    try:
        done = cluster.kubectl.run("exec", "spdy", "--", "true", check=False)
    finally:
        cluster.kubectl.env = original
    assert done.returncode != 0 and "serves exec over WebSocket only" in done.stderr, done.stderr


# --- the protocol's pieces, against the client library's own frames ----------------------------------


def client_frame(payload: bytes, opcode: int = ws_client.ABNF.OPCODE_BINARY, fin: int = 1) -> bytes:
    """A frame as the websocket-client package sends it: masked with a random key."""
    return ws_client.ABNF(fin, 0, 0, 0, opcode, 1, payload).format()


def test_the_parser_reads_masked_client_frames_fragments_and_control_frames() -> None:
    parser = websocket.FrameParser()
    big = bytes(range(256)) * 300  # a 16-bit and then a 64-bit length
    stream = (client_frame(b"\x00hello") + client_frame(b"\x00par", fin=0)
              + client_frame(b"ping!", ws_client.ABNF.OPCODE_PING)
              + client_frame(b"ts", ws_client.ABNF.OPCODE_CONT) + client_frame(big[:1000]) + client_frame(big))
    messages = []
    for start in range(0, len(stream), 7):  # bytes arrive in small pieces
        messages.extend(parser.feed(stream[start:start + 7]))
    assert [(m.opcode, m.payload) for m in messages] == [
        (websocket.BINARY, b"\x00hello"), (websocket.PING, b"ping!"), (websocket.BINARY, b"\x00parts"),
        (websocket.BINARY, big[:1000]), (websocket.BINARY, big)]


def test_the_parser_refuses_unmasked_frames() -> None:
    with pytest.raises(websocket.ProtocolError, match="must be masked"):
        list(websocket.FrameParser().feed(websocket.encode(websocket.BINARY, b"\x01x")))


def test_the_handshake_answer_and_the_protocol_choice() -> None:
    # RFC 6455's own example key and answer
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    requested = websocket.requested_protocols(["v5.channel.k8s.io, v4.channel.k8s.io", "channel.k8s.io"])
    assert websocket.choose_protocol(requested, ("v4.channel.k8s.io", "v5.channel.k8s.io")) == "v5.channel.k8s.io"
    assert websocket.choose_protocol(["base64.channel.k8s.io"], ("v5.channel.k8s.io",)) is None


def test_exec_options_are_read_as_the_kubelet_reads_them() -> None:
    options = ExecOptions.from_query({"command": ["ls", "-l"], "output": ["1"], "error": ["0"]})
    assert options == ExecOptions(("ls", "-l"), stdin=False, stdout=True, stderr=False)
    with pytest.raises(ExecRequestError, match="at least 1 of stdin, stdout, stderr"):
        ExecOptions.from_query({"command": ["ls"]})
    with pytest.raises(ExecRequestError, match="without a terminal"):
        ExecOptions.from_query({"command": ["sh"], "tty": ["1"], "input": ["1"]})


# --- helpers ------------------------------------------------------------------------------------------


def core_api(cluster: Cluster) -> k8s_client.CoreV1Api:
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=cluster.kubectl.env["KUBECONFIG"], client_configuration=configuration)
    return k8s_client.CoreV1Api(k8s_client.ApiClient(configuration))




def raw_exec(cluster: Cluster, pod: str, command: list[str], protocol: str) -> list[bytes]:
    """Every binary message of an exec through the API server, with one subprotocol offered."""
    configuration = core_api(cluster).api_client.configuration
    query = urllib.parse.urlencode([("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")])
    url = configuration.host.replace("https://", "wss://") + \
        f"/api/v1/namespaces/{cluster.namespace}/pods/{pod}/exec?{query}"
    socket = ws_client.create_connection(
        url, subprotocols=[protocol], header=[f"Authorization: {configuration.api_key['BearerToken']}"],
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": configuration.ssl_ca_cert}, timeout=20)
    assert socket.subprotocol == protocol
    messages = []
    try:
        while True:
            opcode, data = socket.recv_data(control_frame=True)
            if opcode == ws_client.ABNF.OPCODE_CLOSE:
                return messages
            if opcode == ws_client.ABNF.OPCODE_BINARY:
                messages.append(bytes(data))
    finally:
        socket.close()
