"""The server side of RFC 6455 as far as the kubelet's streaming endpoints need it.

The opening handshake (key, accept, subprotocol), frames written unmasked by the server, and a parser
for the masked frames a client sends, fragmented messages and control frames included.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
# A client message larger than this ends the connection (stdin arrives in small pieces).
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection must end."""


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def requested_protocols(values: Iterable[str]) -> list[str]:
    """Every subprotocol of the Sec-WebSocket-Protocol header lines, in the client's order."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def choose_protocol(requested: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client asked for that the server speaks (the client's preference wins)."""
    return next((protocol for protocol in requested if protocol in supported), None)


def encode(opcode: int, payload: bytes = b"") -> bytes:
    """One final, unmasked frame, as a server sends."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key, repeated: done on whole integers, as a byte loop is slow in Python."""
    if not payload:
        return b""
    key = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(len(payload), "big")


def close_frame(code: int = NORMAL_CLOSURE, reason: str = "") -> bytes:
    return encode(CLOSE, struct.pack("!H", code) + reason.encode()[:120])


@dataclass
class Message:
    opcode: int
    payload: bytes


@dataclass
class FrameParser:
    """Feeds on bytes as they arrive; yields whole messages (fragments joined) and control frames."""

    buffer: bytearray = field(default_factory=bytearray)
    fragments: bytearray = field(default_factory=bytearray)
    fragment_opcode: int | None = None

    def feed(self, data: bytes) -> Iterator[Message]:
        self.buffer.extend(data)
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            message = self._assemble(*frame)
            if message is not None:
                yield message

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        if len(self.buffer) < 2:
            return None
        first, second = self.buffer[0], self.buffer[1]
        if first & 0x70:
            raise ProtocolError("reserved bits set without a negotiated extension")
        if not second & 0x80:
            raise ProtocolError("a client frame must be masked")
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(self.buffer) < 4:
                return None
            length, offset = struct.unpack_from("!H", self.buffer, 2)[0], 4
        elif length == 127:
            if len(self.buffer) < 10:
                return None
            length, offset = struct.unpack_from("!Q", self.buffer, 2)[0], 10
        if length > MAX_MESSAGE:
            raise ProtocolError(f"frame of {length} bytes is over the limit of {MAX_MESSAGE}")
        if len(self.buffer) < offset + 4 + length:
            return None
        start = offset + 4
        payload = unmask(bytes(self.buffer[start:start + length]), bytes(self.buffer[offset:start]))
        del self.buffer[:start + length]
        return bool(first & 0x80), first & 0x0F, payload

    def _assemble(self, final: bool, opcode: int, payload: bytes) -> Message | None:
        if opcode >= CLOSE:
            if not final or len(payload) > 125:
                raise ProtocolError("control frames must be whole and at most 125 bytes")
            return Message(opcode, payload)
        if opcode == CONTINUATION:
            if self.fragment_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self.fragment_opcode is not None:
            raise ProtocolError("new message before the fragmented one ended")
        else:
            self.fragment_opcode = opcode
        self.fragments.extend(payload)
        if len(self.fragments) > MAX_MESSAGE:
            raise ProtocolError(f"message over the limit of {MAX_MESSAGE} bytes")
        if not final:
            return None
        message = Message(self.fragment_opcode, bytes(self.fragments))
        self.fragments.clear()
        self.fragment_opcode = None
        return message
