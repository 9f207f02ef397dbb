"""Pod IPs: a loopback address per pod, so every pod can bind its container port unchanged."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterable, Iterator


def port_is_free(ip: str, port: int) -> bool:
    """Whether a server could bind ip:port now (with SO_REUSEADDR, as the lab programs bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


# Holding this address and port marks a 127.N network as taken by one agent on this machine.
CLAIM_HOST = "255.255"
CLAIM_PORT = 65000


def claim_network(wanted: str = "") -> tuple[str, socket.socket]:
    """A 127.N network (away from 127.0 and 127.1) that no other agent on this machine uses.

    The claim is a socket bound to 127.N.255.255:65000, which the kernel lets one process hold at a
    time; it is released when the socket is closed or the agent exits. Pass `wanted` ("127.42") to
    claim that network or fail.
    """
    candidates = [wanted] if wanted else [f"127.{n}" for n in random.sample(range(2, 255), 253)]
    for network in candidates:
        claim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            claim.bind((f"{network}.{CLAIM_HOST}", CLAIM_PORT))
        except OSError:
            claim.close()
            continue
        return network, claim
    raise RuntimeError(f"no free pod network ({wanted or '127.2-127.254'} taken by other agents)")


class PodNetwork:
    """Hands out 127.N.x.y addresses in turn; an address is reused only after the others."""

    def __init__(self, network: str) -> None:
        self.network = network
        self._lock = threading.Lock()
        self._in_use: set[str] = set()
        self._candidates = self._addresses()

    def _addresses(self) -> Iterator[str]:
        while True:
            # x.y.255.0/24 is left for Service addresses (see proxy.py)
            for third in range(0, 255):
                for fourth in range(1, 255):
                    yield f"{self.network}.{third}.{fourth}"

    def allocate(self, ports: Iterable[int]) -> str:
        """A free address on which every port in `ports` can be bound."""
        wanted = list(ports)
        with self._lock:
            for _ in range(255 * 254):
                ip = next(self._candidates)
                if ip not in self._in_use and all(port_is_free(ip, port) for port in wanted):
                    self._in_use.add(ip)
                    return ip
        raise RuntimeError(f"no free pod address left in {self.network}.0.0/16")

    def release(self, ip: str) -> None:
        with self._lock:
            self._in_use.discard(ip)
