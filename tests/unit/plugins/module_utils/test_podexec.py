# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command run in a pod: the streams read until they close or the time is up, the
exit code from the Status on the error stream, and the client's failures named."""

from __future__ import annotations

import json
import typing as t

import pytest
import websocket
from kubernetes import client as k8s_client

from ansible_collections.ragops.recovery.plugins.module_utils.errors import ApiError
from ansible_collections.ragops.recovery.plugins.module_utils.k8s import (
    podexec,
    transport,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

COMMAND = ("shard-admin", "reopen")
# What the kubelet writes on the error stream (k8s.io/apimachinery remotecommand).
SUCCESS = {"metadata": {}, "status": "Success"}
EXIT_3 = {
    "metadata": {},
    "status": "Failure",
    "reason": "NonZeroExitCode",
    "message": "command terminated with non-zero exit code: exit status 3",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}
NOT_FOUND = {
    "metadata": {},
    "status": "Failure",
    "code": 500,
    "reason": "InternalError",
    "message": 'Internal error occurred: exec: "shard-admin": executable file not '
    "found in $PATH",
}


class FakeChannels:
    """The WSClient of an exec: frames arrive one ``update`` at a time, each taking
    ``step`` seconds of a fake clock; the connection closes after the last."""

    def __init__(
        self, frames: t.Sequence[t.Tuple[int, bytes]], step: float = 0.5
    ) -> None:
        self.frames = list(frames)
        self.step = step
        self.now = 0.0
        self.buffers: t.Dict[int, bytes] = {}
        self.closed = False
        self.open = True

    def clock(self) -> float:
        return self.now

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float = 0) -> None:
        assert timeout > 0
        self.now += min(self.step, timeout)
        if self.frames:
            channel, data = self.frames.pop(0)
            self.buffers[channel] = self.buffers.get(channel, b"") + data
        else:
            self.open = False

    def read_channel(self, channel: int, timeout: float = 0) -> bytes:
        return self.buffers.pop(channel, b"")

    def close(self) -> None:
        self.closed = True


def status_frame(status: t.Dict[str, t.Any]) -> t.Tuple[int, bytes]:
    return podexec.ERROR_CHANNEL, json.dumps(status).encode()


def collect(channels: FakeChannels, timeout: float = 10.0) -> podexec.ExecResult:
    return podexec.collect(channels, COMMAND, timeout, channels.clock)


def test_output_and_success_are_collected_and_the_stream_closed() -> None:
    channels = FakeChannels(
        [
            (1, b"re-opened: "),
            (2, b"warning\n"),
            (1, b"4000 documents\n"),
            status_frame(SUCCESS),
        ]
    )
    result = collect(channels)
    assert result.ok and result.exit_code == 0 and channels.closed
    assert (result.stdout, result.stderr) == (
        "re-opened: 4000 documents\n",
        "warning\n",
    )
    assert result.to_dict()["command"] == list(COMMAND)
    assert result.describe() == "exit code 0"


def test_a_non_zero_exit_code_comes_from_the_status_cause() -> None:
    result = collect(FakeChannels([(2, b"checksum mismatch\n"), status_frame(EXIT_3)]))
    assert not result.ok and result.exit_code == 3 and not result.timed_out
    assert result.stderr == "checksum mismatch\n" and result.describe() == "exit code 3"


def test_a_command_that_cannot_start_has_no_exit_code_but_the_reason() -> None:
    result = collect(FakeChannels([status_frame(NOT_FOUND)]))
    assert result.exit_code is None and not result.ok
    assert "executable file not found" in result.error
    assert result.describe() == result.error


def test_a_stream_that_ends_without_a_status_is_not_a_success() -> None:
    result = collect(FakeChannels([(1, b"half of it")]))
    assert result.exit_code is None and result.stdout == "half of it"
    assert result.error == "the stream ended without the command's status"


def test_the_timeout_stops_the_wait_keeps_the_output_and_closes() -> None:
    channels = FakeChannels([(1, b"started\n")] + [(1, b".")] * 100, step=0.5)
    result = collect(channels, timeout=2.0)
    assert result.timed_out and result.exit_code is None and channels.closed
    assert result.stdout.startswith("started\n") and result.duration == 2.0
    assert result.describe() == "timed out after 2s"


def test_only_the_end_of_a_long_output_is_kept() -> None:
    chunk = b"x" * 40_000
    result = collect(FakeChannels([(1, chunk), (1, chunk), (1, b"end")]))
    assert len(result.stdout) == podexec.MAX_OUTPUT and result.stdout.endswith("end")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (SUCCESS, (0, "")),
        (EXIT_3, (3, "")),
        ({"status": "Failure", "reason": "NonZeroExitCode"}, (None, "Failure")),
        ({"status": "Failure", "message": "token=abc123 refused"}, (None, "refused")),
    ],
)
def test_exit_codes_from_statuses(
    status: t.Dict[str, t.Any], expected: t.Tuple[t.Optional[int], str]
) -> None:
    code, error = podexec.exit_code_of(status)
    assert code == expected[0] and expected[1] in error
    assert "abc123" not in error


def test_a_status_that_is_not_json_is_kept_as_its_message() -> None:
    assert podexec.parse_status(b"  ") is None
    status = podexec.parse_status(b"error: container not running")
    assert podexec.exit_code_of(status) == (None, "error: container not running")


# --- the production transport, over a fake of the kubernetes client's stream ------------------


class RecordingStream:
    """Stands in for ``kubernetes.stream.stream``: records the call, returns channels."""

    def __init__(self, channels: FakeChannels) -> None:
        self.channels = channels
        self.calls: t.List[t.Tuple[t.Any, t.Tuple[t.Any, ...], t.Dict[str, t.Any]]] = []

    def __call__(self, method: t.Any, *args: t.Any, **kwargs: t.Any) -> FakeChannels:
        self.calls.append((method, args, kwargs))
        return self.channels


def kubernetes_transport() -> transport.KubernetesTransport:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    return transport.KubernetesTransport(configuration)


def test_the_transport_streams_the_exec_subresource_without_stdin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = RecordingStream(FakeChannels([(1, b"ok\n"), status_frame(SUCCESS)]))
    monkeypatch.setattr(transport, "k8s_stream", fake)
    result = kubernetes_transport().pod_exec(
        "rag", "vectorstore-2", "shard", COMMAND, 30.0
    )
    assert result.ok and result.stdout == "ok\n"
    method, args, kwargs = fake.calls[0]
    assert method.__name__ == "connect_get_namespaced_pod_exec"
    assert args == ("vectorstore-2", "rag")
    assert kwargs == {
        "command": list(COMMAND),
        "container": "shard",
        "stdin": False,
        "stdout": True,
        "stderr": True,
        "tty": False,
        "_preload_content": False,
        "binary": True,
    }


def test_a_lost_connection_ends_the_wait_without_a_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Dropping(FakeChannels):
        def update(self, timeout: float = 0) -> None:
            raise websocket.WebSocketConnectionClosedException(
                "socket is already closed."
            )

    monkeypatch.setattr(transport, "k8s_stream", RecordingStream(Dropping([])))
    result = kubernetes_transport().pod_exec("rag", "p", None, COMMAND, 30.0)
    assert result.exit_code is None and "without the command's status" in result.error


def refused_handshake(status: int, body: bytes) -> k8s_client.ApiException:
    """What ``stream`` raises when the API server refuses the upgrade: the client's
    ApiException with status 0, raised while handling the handshake's own error."""
    try:
        try:
            raise websocket.WebSocketBadStatusException(
                "Handshake status %d" % status, status, resp_body=body
            )
        except websocket.WebSocketException as error:
            raise k8s_client.ApiException(status=0, reason=str(error)) from None
    except k8s_client.ApiException as wrapped:
        return wrapped


def test_a_refused_upgrade_keeps_the_api_servers_status_and_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forbidden = {
        "kind": "Status",
        "message": 'pods "vectorstore-2" is forbidden: User "system:serviceaccount:rag:'
        'ragops-recovery" cannot get resource "pods/exec" in API group "" in the '
        'namespace "rag"',
    }
    refusal = refused_handshake(403, json.dumps(forbidden).encode())
    assert isinstance(refusal.__context__, websocket.WebSocketBadStatusException)

    def refuse(*args: t.Any, **kwargs: t.Any) -> None:
        raise refusal

    monkeypatch.setattr(transport, "k8s_stream", refuse)
    client = K8sClient(kubernetes_transport(), Retrier(sleep=lambda s: None))
    with pytest.raises(ApiError) as raised:
        client.pod_exec("rag", "vectorstore-2", COMMAND)
    assert raised.value.status == 403
    assert raised.value.msg.startswith(
        "Failed to run a command in Pod rag/vectorstore-2: forbidden by RBAC"
    )
    assert 'Grant verb "get" on resource "pods/exec"' in raised.value.next_step


def test_an_unreachable_api_server_is_status_zero() -> None:
    error = transport.upgrade_error(
        k8s_client.ApiException(status=0, reason="[Errno 111] Connection refused")
    )
    assert error.status == 0 and "Connection refused" in error.reason


def test_the_client_runs_a_command_once_even_when_it_fails() -> None:
    fake = FakeTransport()
    fake.fail("EXEC", "/pods/vectorstore-2/exec", ApiError("busy", status=503))
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    with pytest.raises(ApiError) as raised:
        client.pod_exec("rag", "vectorstore-2", COMMAND, container="shard", timeout=5)
    assert raised.value.msg.startswith(
        "Failed to run a command in Pod rag/vectorstore-2: HTTP 503"
    )
    assert fake.execs == [("rag", "vectorstore-2", "shard", COMMAND, 5)]


def test_the_time_spent_connecting_counts_against_the_timeout() -> None:
    channels = FakeChannels([(1, b".")] * 100, step=0.5)
    channels.now = 5.0
    result = podexec.collect(channels, COMMAND, 6.0, channels.clock, started=1.0)
    assert result.timed_out and result.duration == 6.0 and result.stdout == "...."
