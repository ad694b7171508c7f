"""An in-process loopback pair: two transports joined back to back, with no operating-system I/O.

``sim://`` connects the driver to firmware running in a thread through such a pair.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .base import Transport, TransportError


class _Pipe:
    """One direction: a queue of byte chunks, with a condition to wait on."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.cond = threading.Condition()
        self.closed = False

    def put(self, data: bytes) -> None:
        with self.cond:
            if self.closed:
                raise TransportError("loopback: the peer closed the link")
            self.chunks.append(data)
            self.cond.notify()

    def get(self, max_bytes: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not self.chunks:
                if self.closed:
                    raise TransportError("loopback: the peer closed the link")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                self.cond.wait(remaining)
            head = self.chunks[0]
            if len(head) <= max_bytes:
                return self.chunks.popleft()
            self.chunks[0] = head[max_bytes:]
            return head[:max_bytes]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class LoopbackTransport(Transport):
    """One end of a loopback pair; make pairs with :func:`loopback_pair`."""

    full_duplex = True

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, name: str) -> None:
        super().__init__()
        self._incoming, self._outgoing, self._name = incoming, outgoing, name

    def __repr__(self) -> str:
        return f"LoopbackTransport({self._name})"

    def _do_open(self, timeout_s: float) -> None:
        if self._incoming.closed or self._outgoing.closed:
            raise TransportError(f"{self}: the loopback pair was closed")

    def _do_close(self) -> None:
        self._incoming.close()
        self._outgoing.close()

    def _do_write(self, data: memoryview) -> None:
        self._outgoing.put(bytes(data))

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._incoming.get(max_bytes, timeout_s)


def loopback_pair() -> tuple[LoopbackTransport, LoopbackTransport]:
    """(host end, device end), both open; closing either end closes the link for both."""
    a_to_b, b_to_a = _Pipe(), _Pipe()
    host = LoopbackTransport(b_to_a, a_to_b, "host")
    device = LoopbackTransport(a_to_b, b_to_a, "device")
    host._open = device._open = True
    return host, device
