"""`kubectl exec` on the node: the kubelet's /exec endpoint over the channel.k8s.io WebSocket protocols.

The API server proxies `pods/exec` to `/exec/{namespace}/{pod}/{container}?command=...&output=1&error=1`
on the kubelet, upgrading the connection. Kubernetes 1.37 passes a WebSocket upgrade through unchanged
to a node that declares the feature ExtendWebSocketsToKubelet (as this one does), so `kubectl exec`
(v5.channel.k8s.io) and the Python client (v5, or v4.channel.k8s.io) reach the node as WebSocket.

Every message is binary: its first byte names the stream (0 stdin, 1 stdout, 2 stderr, 3 error, 4
terminal resize) and the rest is the data. v5 adds a close signal from the client (255, stream), which
ends the command's stdin. When the command ends, a JSON metav1.Status on the error stream says how
(Success, or NonZeroExitCode with the exit code as a cause, or an internal error), and the server
closes the connection with a normal closure.

The command runs as a local process with the container's environment and working directory, in a
session of its own; it is killed when the client goes away or the container stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from . import websocket
from .process import ContainerProcess, exit_reason, signal_group

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)
CLOSE_SIGNAL = 255
CHUNK = 32768
SEND_TIMEOUT_SECONDS = 30.0
# How long the server waits for the client's answer to its close frame before it drops the connection.
CLOSING_SECONDS = 2.0

Obj = dict[str, Any]


class ExecRequestError(ValueError):
    """The request cannot start a command (answered 400 before any upgrade)."""


@dataclass(frozen=True)
class ExecOptions:
    """What the query of an exec request asks for, read as the kubelet reads it (`1` means yes)."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]]) -> ExecOptions:
        def flag(name: str) -> bool:
            return (query.get(name) or [""])[0] == "1"

        if flag("tty"):
            raise ExecRequestError("the lab's node agent runs commands without a terminal: leave out -t/--tty")
        options = cls(tuple(query.get("command") or ()), flag("input"), flag("output"), flag("error"))
        if not (options.stdin or options.stdout or options.stderr):
            raise ExecRequestError("you must specify at least 1 of stdin, stdout, stderr")
        if not options.command:
            raise ExecRequestError("you must specify a command (the query parameter command)")
        return options


def success_status() -> Obj:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(code: int) -> Obj:
    """What the kubelet reports for a command that exited non-zero (kubectl exits with that code)."""
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error_status(error: str) -> Obj:
    """A command that could not run at all (apierrors.NewInternalError)."""
    text = f"error executing command in container: {error}"
    return {"metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
            "message": f"Internal error occurred: {text}", "details": {"causes": [{"message": text}]}}


def start_command(container: ContainerProcess, options: ExecOptions) -> subprocess.Popen[bytes]:
    """The command as a local process in the container's environment and working directory."""
    def pipe(wanted: bool) -> int:
        return subprocess.PIPE if wanted else subprocess.DEVNULL

    return subprocess.Popen([*container.prefix, *options.command], env=container.env, cwd=container.workdir,
                            stdin=pipe(options.stdin), stdout=pipe(options.stdout), stderr=pipe(options.stderr),
                            start_new_session=True)


class _StdinWriter:
    """Feeds the command's stdin from a thread of its own, so a command that reads slowly blocks no one."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        if stream is not None:
            threading.Thread(target=self._run, name="exec-stdin", daemon=True).start()

    def write(self, data: bytes) -> None:
        if self._stream is not None:
            self._queue.put(data)

    def close(self) -> None:
        if self._stream is not None:
            self._queue.put(None)

    def _run(self) -> None:
        assert self._stream is not None
        try:
            while (data := self._queue.get()) is not None:
                self._stream.write(data)
                self._stream.flush()
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self._stream.close()


class ExecSession:
    """One upgraded connection: the command's output out, stdin in, then its status and the close.

    Everything on the TLS socket happens on one thread (an SSL connection must not be read and
    written from two at once); the command's pipes and the socket are multiplexed with a selector.
    """

    def __init__(self, sock: ssl.SSLSocket, protocol: str, options: ExecOptions) -> None:
        self.sock = sock
        self.protocol = protocol
        self.options = options
        self.parser = websocket.FrameParser()
        self.client_open = True
        self.client_closed_at: float | None = None

    # -- the socket --------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        self.sock.settimeout(SEND_TIMEOUT_SECONDS)
        self.sock.sendall(frame)

    def send_channel(self, channel: int, data: bytes) -> None:
        self.send(websocket.encode(websocket.BINARY, bytes([channel]) + data))

    def receive(self) -> list[websocket.Message]:
        """Whatever whole messages the client has sent; end of stream marks the client gone."""
        messages: list[websocket.Message] = []
        self.sock.settimeout(0.0)
        try:
            while True:
                data = self.sock.recv(CHUNK)
                if not data:
                    self.client_open = False
                    break
                messages.extend(self.parser.feed(data))
                if not self.sock.pending():
                    break
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except (OSError, websocket.ProtocolError):
            self.client_open = False
        return messages

    def handle(self, message: websocket.Message, stdin: _StdinWriter) -> None:
        if message.opcode == websocket.PING:
            self.send(websocket.encode(websocket.PONG, message.payload))
        elif message.opcode == websocket.CLOSE:
            self.client_open = False
        elif message.opcode in (websocket.BINARY, websocket.TEXT) and message.payload:
            channel, data = message.payload[0], message.payload[1:]
            if self.protocol == V5 and channel == CLOSE_SIGNAL:
                if data[:1] == bytes([STDIN]):
                    stdin.close()
            elif channel == STDIN:
                stdin.write(data)
            # the resize stream (a terminal's size) has no use without a terminal

    # -- the command -------------------------------------------------------------------------------

    def run(self, container: ContainerProcess) -> None:
        # An empty message on the first stream the client reads tells it that the streams are ready.
        first = STDOUT if self.options.stdout else STDERR if self.options.stderr else ERROR
        self.send_channel(first, b"")
        try:
            command = start_command(container, self.options)
        except OSError as exc:
            self.finish(internal_error_status(_start_error(self.options.command, exc)))
            return
        container.track(command)
        try:
            status = self._pump(command)
        finally:
            signal_group(command, signal.SIGKILL)
            container.untrack(command)
            command.wait()
        if status is not None:
            self.finish(status)
        else:
            self._answer_close()

    def _answer_close(self) -> None:
        """The client left (or asked to close) before the command ended: the command is killed."""
        with contextlib.suppress(OSError):
            self.send(websocket.close_frame())

    def _pump(self, command: subprocess.Popen[bytes]) -> Obj | None:
        """Relay until the command has ended and its output is read; None when the client left first."""
        stdin = _StdinWriter(command.stdin)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, None)
        outputs = {STDOUT: command.stdout, STDERR: command.stderr}
        for channel, stream in outputs.items():
            if stream is not None:
                selector.register(stream, selectors.EVENT_READ, channel)
        open_outputs = sum(stream is not None for stream in outputs.values())
        try:
            while self.client_open:
                if open_outputs == 0 and command.poll() is not None:
                    code, _, _ = exit_reason(command.returncode)
                    return success_status() if code == 0 else exit_code_status(code)
                for key, _ in selector.select(timeout=0.1 if open_outputs == 0 else 1.0):
                    if key.data is None:
                        for message in self.receive():
                            self.handle(message, stdin)
                        continue
                    data = _read_some(key.fileobj)
                    if data:
                        self.send_channel(key.data, data)
                    else:
                        selector.unregister(key.fileobj)
                        open_outputs -= 1
            return None
        finally:
            stdin.close()
            selector.close()

    def finish(self, status: Obj) -> None:
        """The status on the error stream, then the closing handshake (so no reset drops the status)."""
        try:
            self.send_channel(ERROR, json.dumps(status, separators=(",", ":")).encode())
            self.send(websocket.close_frame())
        except OSError:
            return
        deadline = time.monotonic() + CLOSING_SECONDS
        while self.client_open and time.monotonic() < deadline:
            readable = selectors.DefaultSelector()
            with readable:
                readable.register(self.sock, selectors.EVENT_READ)
                if readable.select(timeout=max(0.0, deadline - time.monotonic())) or self.sock.pending():
                    self.receive()


def _read_some(stream: IO[bytes]) -> bytes:
    """What the pipe holds now, read past Python's buffer so that select() sees all that is left."""
    try:
        return os.read(stream.fileno(), CHUNK)
    except OSError:
        return b""


def _start_error(command: Sequence[str], exc: OSError) -> str:
    """The runtime's words for a command that cannot start."""
    if isinstance(exc, FileNotFoundError) and exc.filename in (command[0], None):
        return f'exec: "{command[0]}": executable file not found in $PATH'
    if isinstance(exc, PermissionError):
        return f'exec: "{command[0]}": permission denied'
    return f'exec: "{command[0]}": {exc.strerror or exc}'
