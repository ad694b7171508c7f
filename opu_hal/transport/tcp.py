"""TCP transport (``socket://HOST:PORT``), on the socket module directly for throughput."""

from __future__ import annotations

import select
import socket
import time
from typing import Any, Callable

from .base import Transport, TransportError

_SOCKET_BUFFER = 4 * 2**20  # bytes the kernel buffers each way (fewer stalls on bulk data)


def split_host_port(location: str) -> tuple[str, int]:
    """``"HOST:PORT"`` to (host, port); raises ValueError naming the expected form."""
    host, sep, port = location.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"device: expected socket://HOST:PORT with a port in 1-65535, got {location!r}")
    return host.strip("[]"), int(port)


class TCPTransport(Transport):
    """A TCP connection to ``host:port`` (client side), or around an accepted socket (server side)."""

    full_duplex = True

    def __init__(
        self, host: str = "", port: int = 0, *, sock: socket.socket | None = None, write_timeout_s: float = 10.0
    ) -> None:
        super().__init__(write_timeout_s)
        self.host, self.port = host, port
        self._sock = sock
        if sock is not None:
            self._setup(sock)
            self._open = True

    def __repr__(self) -> str:
        return f"TCPTransport({self.host}:{self.port})"

    @staticmethod
    def _setup(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        sock.setblocking(False)

    def _do_open(self, timeout_s: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except OSError as exc:
            raise TransportError(f"cannot connect to {self.host}:{self.port} within {timeout_s} s: {exc}") from exc
        self._setup(sock)
        self._sock = sock

    def _do_close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _do_write(self, data: memoryview) -> None:
        sock = self._sock
        if sock is None:
            raise TransportError(f"{self}: the link is closed")
        while len(data):
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise TransportError(f"{self}: write failed: {exc}") from exc
            if sent:
                data = data[sent:]
                continue
            try:
                _, writable, _ = select.select([], [sock], [], self.write_timeout_s)
            except (OSError, ValueError) as exc:  # closed by another thread
                raise TransportError(f"{self}: write failed: {exc}") from exc
            if not writable:
                raise TransportError(f"{self}: the peer accepted no data for {self.write_timeout_s} s")

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._receive(lambda sock: sock.recv(max_bytes), timeout_s) or b""

    def _do_read_into(self, buffer: memoryview, timeout_s: float) -> int:
        return self._receive(lambda sock: sock.recv_into(buffer), timeout_s) or 0

    def _receive(self, call: Callable[[socket.socket], Any], timeout_s: float) -> Any:
        """``call(sock)`` once data is there (None/0 on timeout); raises TransportError when the peer closed."""
        sock = self._sock
        if sock is None:
            raise TransportError(f"{self}: the link is closed")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                data = call(sock)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    readable, _, _ = select.select([sock], [], [], remaining)
                except (OSError, ValueError) as exc:  # closed by another thread
                    raise TransportError(f"{self}: read failed: {exc}") from exc
                if not readable:
                    return None
                continue
            except OSError as exc:
                raise TransportError(f"{self}: read failed: {exc}") from exc
            if not data:
                raise TransportError(f"{self}: the peer closed the connection")
            return data
