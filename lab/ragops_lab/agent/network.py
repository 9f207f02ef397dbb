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


def random_network() -> str:
    """A /16 of 127.0.0.0/8 away from 127.0.0.x, so lab instances running side by side rarely meet."""
    return f"127.{random.randint(2, 254)}"


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
