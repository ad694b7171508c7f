"""Serial-port transport via pyserial: real ports (``/dev/ttyUSB0``) and ptys."""

from __future__ import annotations

import errno
import os
import time

import serial

from ..url import DeviceSpec, SerialOptions
from ..validation import check_int
from .base import Link, Transport, TransportError

_WRITE_SLICE = 1 << 16
_ABSENT = (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.ENOTDIR)  # no such port: fail at once, not at the deadline


class SerialTransport(Transport):
    """A serial port opened with ``serial.serial_for_url`` (``baudrate`` in bit/s)."""

    def __init__(self, port: str, baudrate: int = 115_200, write_timeout_s: float = 10.0) -> None:
        super().__init__(write_timeout_s)
        self.port, self.baudrate = port, check_int(baudrate, "baudrate", low=1)  # bit/s
        self._serial: serial.SerialBase | None = None

    def __repr__(self) -> str:
        return f"SerialTransport({self.port})"

    def _do_open(self, timeout_s: float) -> None:
        """Open the port, retrying until ``timeout_s`` while it is busy; a port that does not exist fails at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._serial = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0, write_timeout=self.write_timeout_s, exclusive=True
                )
                return
            except (serial.SerialException, OSError, ValueError) as exc:
                if getattr(exc, "errno", None) in _ABSENT:  # waiting will not make it appear
                    raise TransportError(
                        f"cannot open serial port {self.port}: it does not exist or is not a device "
                        f"({os.strerror(exc.errno)}); is it plugged in, and is the path right?"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise TransportError(f"cannot open serial port {self.port} within {timeout_s} s: {exc}") from exc
                time.sleep(0.05)

    def _do_close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def _do_write(self, data: memoryview) -> None:
        try:
            for start in range(0, len(data), _WRITE_SLICE):  # write_timeout_s bounds each slice: a stall, not a size
                self._serial.write(data[start : start + _WRITE_SLICE])
        except serial.SerialTimeoutException as exc:
            raise TransportError(f"{self}: the port accepted no data for {self.write_timeout_s} s") from exc
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"{self}: write failed: {exc}") from exc

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        port = self._serial
        try:
            if port.timeout != timeout_s:
                port.timeout = timeout_s  # pyserial reconfigures the port on every change
            first = port.read(1)  # blocks until one byte or the deadline
            if not first:
                return b""
            waiting = port.in_waiting
            return first + port.read(min(waiting, max_bytes - 1)) if waiting and max_bytes > 1 else first
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"{self}: read failed: {exc}") from exc


def serial_link(spec: DeviceSpec) -> Link:
    """The link of ``serial:///dev/PORT?baudrate=...`` (or a bare device path): a serial port."""
    path = spec.location
    if not path:
        raise ValueError(f"device: expected serial:///dev/PORT or a device path, got {spec.url.masked()!r}")
    baudrate = spec.get(SerialOptions).baudrate
    return Link(lambda: SerialTransport(path, baudrate), keys=lambda: (f"serial:{os.path.realpath(path)}",))
