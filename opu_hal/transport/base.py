"""A byte stream to a device: open, close, write, and read with a deadline.

Every wait is bounded: ``open`` and ``read`` take a timeout in seconds, and ``write``
fails when the peer accepts no byte for ``write_timeout_s`` seconds. A link that is gone
(peer closed, cable pulled) raises :class:`TransportError`, never hangs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from ..errors import TransportError
from ..validation import check_int, check_number, check_positive_seconds


class Transport(ABC):
    """A bidirectional byte stream. Public methods validate, then call the ``_do_*`` hooks.

    Parameters
    ----------
    write_timeout_s:
        Seconds ``write`` waits for the peer to accept at least one more byte.
    """

    #: Whether one thread may write while another reads (then large frames go out from a thread of their own).
    full_duplex = False

    def __init__(self, write_timeout_s: float = 10.0) -> None:
        check_positive_seconds(write_timeout_s, "write_timeout_s")
        self.write_timeout_s = float(write_timeout_s)
        self._open = False

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._open

    def open(self, timeout_s: float) -> None:
        """Connect within ``timeout_s`` seconds (raises :class:`TransportError` otherwise)."""
        check_positive_seconds(timeout_s, "timeout_s")
        if not self._open:
            self._do_open(float(timeout_s))
            self._open = True

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if self._open:
            self._open = False
            self._do_close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data`` (raises :class:`TransportError` if the link is down or stalls)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes, bytearray or memoryview, got {type(data).__name__}")
        self._require_open()
        if len(data):
            self._do_write(memoryview(data).cast("B"))

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Between 1 and ``max_bytes`` bytes, or ``b""`` if none arrived within ``timeout_s`` seconds."""
        check_int(max_bytes, "max_bytes", low=1)
        check_number(timeout_s, "timeout_s", low=0, unit="s")
        self._require_open()
        return self._do_read(max_bytes, float(timeout_s))

    def read_into(self, buffer: memoryview, timeout_s: float) -> int:
        """Like ``read`` but into ``buffer`` (bulk data without a copy); returns the bytes read, 0 on timeout."""
        if len(buffer) < 1:
            raise ValueError("buffer: expected room for at least one byte, got an empty buffer")
        check_number(timeout_s, "timeout_s", low=0, unit="s")
        self._require_open()
        return self._do_read_into(buffer, float(timeout_s))

    def _do_read_into(self, buffer: memoryview, timeout_s: float) -> int:
        data = self._do_read(len(buffer), timeout_s)
        buffer[: len(data)] = data
        return len(data)

    def _require_open(self) -> None:
        if not self._open:
            raise TransportError(f"{self}: the link is closed")

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _do_open(self, timeout_s: float) -> None: ...

    @abstractmethod
    def _do_close(self) -> None: ...

    @abstractmethod
    def _do_write(self, data: memoryview) -> None: ...

    @abstractmethod
    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes: ...


@dataclass(frozen=True)
class Link:
    """How to reach a device behind the wire protocol: what a URL scheme's link factory returns.

    ``connect()`` makes the host's transport (open or not) when the device is opened;
    ``release()``, if given, runs after that transport is closed (e.g. stops an in-process
    firmware). ``exclusive``: whether the device is this process's alone while open (the
    OPU then takes the device lock); False for devices shared by design. ``keys()``, if
    given, names the device for that lock as resolved now (TCP: every address and port the
    host name resolves to; a serial port: its real path), so that two names of one device
    take one lock; without it the lock is keyed on the URL.
    """

    connect: Callable[[], Transport]
    release: Callable[[], None] | None = None
    exclusive: bool = True
    keys: Callable[[], tuple[str, ...]] | None = None

