"""TCP transport (``socket://HOST:PORT``), on the socket module directly for throughput."""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
from typing import Any

from ..errors import TLSError
from .base import Transport, TransportError

_SOCKET_BUFFER = 4 * 2**20  # bytes the kernel buffers each way (fewer stalls on bulk data)
_TIMEVAL = struct.Struct("@ll")  # struct timeval: seconds, microseconds
# A read timeout already set is kept if at most this much longer than asked (seconds): the
# kernel rounds it up to its clock tick (1-10 ms) anyway, and a read saves a system call.
_TIMEOUT_SLACK_S = 0.002
_TLS_RECORDS = (b"\x15\x03", b"\x16\x03")  # how a TLS alert or handshake record starts (never a frame's sync)


def split_host_port(location: str) -> tuple[str, int]:
    """``"HOST:PORT"`` to (host, port); raises ValueError naming the expected form."""
    host, sep, port = location.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"device: expected socket://HOST:PORT with a port in 1-65535, got {location!r}")
    return host.strip("[]"), int(port)


class TCPTransport(Transport):
    """A TCP connection to ``host:port`` (client side), or around an accepted socket (server side).

    The socket blocks, its waits bounded by the kernel (``SO_RCVTIMEO``, ``SO_SNDTIMEO``):
    a read is one system call that sleeps until data or the deadline, so a reply is
    handed over as soon as the process wakes, with no ``poll`` round before it.
    """

    full_duplex = True

    def __init__(
        self, host: str = "", port: int = 0, *, sock: socket.socket | None = None, write_timeout_s: float = 10.0
    ) -> None:
        super().__init__(write_timeout_s)
        self.host, self.port = host, port
        self._sock: socket.socket | None = None
        self._heard = False
        self._read_timeout_s: float | None = None  # the SO_RCVTIMEO set, seconds
        self._write_timeout_s: float | None = None  # the SO_SNDTIMEO set, seconds
        if sock is not None:
            self._attach(sock)
            self._open = True

    def __repr__(self) -> str:
        return f"TCPTransport({self.host}:{self.port})"

    def _attach(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        sock.settimeout(None)  # blocking: the kernel bounds every wait
        self._sock, self._read_timeout_s, self._write_timeout_s = sock, None, None
        self._heard = False  # whether a byte arrived on this connection

    def _do_open(self, timeout_s: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except OSError as exc:
            raise TransportError(f"cannot connect to {self.host}:{self.port} within {timeout_s} s: {exc}") from exc
        self._attach(sock)

    def _do_close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in a read or write
            except OSError:
                pass
            sock.close()

    def _do_write(self, data: memoryview) -> None:
        sock = self._sock
        if sock is None:
            raise TransportError(f"{self}: the link is closed")
        if self.write_timeout_s != self._write_timeout_s:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.write_timeout_s))
            except OSError as exc:
                raise TransportError(f"{self}: write failed: {exc}") from exc
            self._write_timeout_s = self.write_timeout_s
        while len(data):
            try:
                sent = sock.send(data)  # sleeps at most SO_SNDTIMEO for the peer to accept a byte
            except BlockingIOError:
                raise TransportError(f"{self}: the peer accepted no data for {self.write_timeout_s} s") from None
            except OSError as exc:
                raise TransportError(f"{self}: write failed: {exc}") from exc
            data = data[sent:]

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self._receive(False, max_bytes, timeout_s) or b""
        if data and not self._heard:
            self._first_bytes(data)
        return data

    def _do_read_into(self, buffer: memoryview, timeout_s: float) -> int:
        count = self._receive(True, buffer, timeout_s) or 0
        if count and not self._heard:
            self._first_bytes(buffer[:count])
        return count

    def _first_bytes(self, data: bytes | memoryview) -> None:
        """The first bytes of a connection: a TLS record there means the peer speaks TLS (TLSError)."""
        self._heard = True
        if bytes(data[:2]) in _TLS_RECORDS:
            raise TLSError(f"{self}: the peer speaks TLS, this link plain TCP (a TLS server is reached with sockets://HOST:PORT)")

    def _receive(self, into: bool, target: Any, timeout_s: float) -> Any:
        """``recv_into(target)`` or ``recv(target)``: data, or None once ``timeout_s`` seconds passed
        without any; raises TransportError when the peer closed."""
        sock = self._sock
        if sock is None:
            raise TransportError(f"{self}: the link is closed")
        flags = 0
        try:
            if timeout_s <= 0:
                flags = socket.MSG_DONTWAIT
            elif not timeout_s <= (self._read_timeout_s or -1.0) <= timeout_s + _TIMEOUT_SLACK_S:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout_s))
                self._read_timeout_s = timeout_s
            data = sock.recv_into(target, 0, flags) if into else sock.recv(target, flags)
        except BlockingIOError:  # the timeout passed
            return None
        except (OSError, ValueError) as exc:  # also closed by another thread
            raise TransportError(f"{self}: read failed: {exc}") from exc
        if not data:
            raise TransportError(f"{self}: the peer closed the connection")
        return data


def _timeval(seconds: float) -> bytes:
    """``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO, rounded up to whole microseconds (never 0: no limit)."""
    whole = int(seconds)
    micros = math.ceil((seconds - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    return _TIMEVAL.pack(whole, micros or (0 if whole else 1))


def device_keys(host: str, port: int) -> tuple[str, ...]:
    """Names of the TCP device ``host:port`` for the device lock: ``tcp:ADDRESS:PORT`` for every
    address the host resolves to, every loopback address as ``tcp:loopback:PORT`` (all are this
    machine); the name as given if it does not resolve (opening then fails anyway)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return (f"tcp:{host.lower()}:{port}",)
    keys = set()
    for *_, address in infos:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        keys.add(f"tcp:{'loopback' if ip.is_loopback else ip.compressed}:{port}")
    return tuple(sorted(keys))
