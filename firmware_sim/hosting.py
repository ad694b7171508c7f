"""Hosting the emulated firmware on real links: a TCP port, a pseudo-terminal (serial port) or a loopback pair.

One host at a time: a new connection replaces the current one (a host that lost its
link reconnects), and the device state (configuration, counters, reply cache) carries
over, so the host can resume where it was.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from opu_hal.protocol.device_side import ServerLink
from opu_hal.transport import Link, TCPTransport, TLSTransport, Transport, TransportError, server_context
from opu_hal.url import DeviceSpec

from .faults import FaultyTransport
from .firmware import Firmware
from .params import EmulatorParams

logger = logging.getLogger(__name__)


def serve_link(firmware: Firmware, transport: Transport) -> ServerLink:
    """A link serving ``firmware`` on ``transport`` (through the fault injector if faults are set)."""
    if firmware.faults.settings.byte_faults:
        transport = FaultyTransport(transport, firmware.faults)
    link = ServerLink(transport, firmware.resolve, max_payload=firmware.max_payload)
    firmware.on_boot = link.notify_boot
    return link


class TCPFirmwareServer:
    """The firmware on a TCP port. ``start()`` serves in a background thread; ``address`` is (host, port).

    With ``tls_cert`` and ``tls_key`` (PEM files of a certificate and its private key) it
    serves TLS: hosts open ``sockets://HOST:PORT``.
    """

    def __init__(
        self,
        firmware: Firmware,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError(f"tls_cert, tls_key: expected both PEM files or neither, got {tls_cert!r} and {tls_key!r}")
        self.firmware = firmware
        self._tls = None if tls_cert is None else server_context(tls_cert, tls_key)
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._link: ServerLink | None = None
        self._link_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``socket://HOST:PORT`` of this server (``sockets://`` with TLS)."""
        return f"{'socket' if self._tls is None else 'sockets'}://{self.address[0]}:{self.address[1]}"

    def start(self) -> "TCPFirmwareServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="firmware-tcp", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Accept connections until ``close()``; each new one replaces the previous."""
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                break
            logger.info("host connected from %s:%d", *peer[:2])
            self._drop_link()
            transport = (
                TCPTransport(*peer[:2], sock=conn) if self._tls is None
                else TLSTransport(*peer[:2], sock=conn, context=self._tls, label=f"TLS host {peer[0]}:{peer[1]}")
            )
            self._link = serve_link(self.firmware, transport)
            self._link_thread = threading.Thread(target=self._link.serve, name="firmware-link", daemon=True)
            self._link_thread.start()
        self._drop_link()

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.stop()
            self._link_thread.join()
            self._link = None

    def close(self) -> None:
        """Stop serving and close the port."""
        self._stop.set()
        self._listener.close()
        if self._thread is not None:
            self._thread.join()
        self._drop_link()


class FdTransport(Transport):
    """The device's end of a pseudo-terminal (its master file descriptor)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self._open = True

    def _do_open(self, timeout_s: float) -> None:
        raise TransportError("FdTransport: a closed pty cannot be re-opened")

    def _do_close(self) -> None:
        os.close(self.fd)

    def _do_write(self, data: memoryview) -> None:
        try:
            while len(data):
                _, writable, _ = select.select([], [self.fd], [], self.write_timeout_s)
                if not writable:
                    raise TransportError(f"pty: the host accepted no data for {self.write_timeout_s} s")
                data = data[os.write(self.fd, data) :]
        except (OSError, ValueError) as exc:
            raise TransportError(f"pty: write failed: {exc}") from exc

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        try:
            readable, _, _ = select.select([self.fd], [], [], timeout_s)
        except (OSError, ValueError) as exc:  # closed by another thread
            raise TransportError(f"pty: read failed: {exc}") from exc
        if not readable:
            return b""
        try:
            return os.read(self.fd, max_bytes)
        except OSError:  # EIO while no process has the other end open
            time.sleep(min(timeout_s, 0.05))
            return b""


class PtyFirmwareServer:
    """The firmware behind a pseudo-terminal; ``path`` is the serial port a host opens."""

    def __init__(self, firmware: Firmware) -> None:
        self.firmware = firmware
        master, slave = os.openpty()
        tty.setraw(slave)  # bytes pass unchanged: no echo, no line editing
        tty.setraw(master)
        self._slave = slave  # kept open so the master never sees a hang-up between hosts
        self.path = os.ttyname(slave)
        self._link = serve_link(firmware, FdTransport(master))
        self._thread: threading.Thread | None = None

    def start(self) -> "PtyFirmwareServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._link.serve, name="firmware-pty", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until ``close()``."""
        self._link.serve()

    def close(self) -> None:
        """Stop serving and release the pty."""
        self._link.stop()
        if self._thread is not None:
            self._thread.join()
        os.close(self._slave)


class LoopbackFirmware:
    """The firmware in a thread of this process, reached through a loopback transport pair (``sim://``)."""

    def __init__(self, firmware: Firmware) -> None:
        self.firmware = firmware
        self._link: ServerLink | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Transport:
        """Start serving; returns the host's end of the link."""
        from opu_hal.transport import loopback_pair

        host, device = loopback_pair()
        self._link = serve_link(self.firmware, device)
        self._thread = threading.Thread(target=self._link.serve, name="firmware-sim", daemon=True)
        self._thread.start()
        return host

    def close(self) -> None:
        """Stop the firmware thread and release the model."""
        if self._link is not None:
            self._link.stop()
            self._thread.join()
            self._link = None
        self.firmware.close()


class SimOptions(BaseModel):
    """Query keys of ``sim://`` besides the emulator's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optics: bool = Field(True, description="on: the firmware computes camera frames; off: empty frames (protocol tests)")


class SimDevice:
    """``sim://``'s device: a new firmware at each ``start()``, in a thread of this process, behind a loopback pair."""

    def __init__(self, params: EmulatorParams, optics: bool = True) -> None:
        self.params, self.optics = params, optics
        self.running: LoopbackFirmware | None = None

    def start(self) -> Transport:
        """Start a firmware; returns the host's end of its link."""
        self.running = LoopbackFirmware(Firmware(self.params, optics=self.optics))
        return self.running.start()

    def stop(self) -> None:
        """Stop the firmware started last (no-op if none runs)."""
        running, self.running = self.running, None
        if running is not None:
            running.close()


@dataclass(frozen=True)
class SimLink(Link):
    """The link of a ``sim://`` URL; ``device`` runs the firmware (its ``running.firmware`` while open)."""

    device: SimDevice | None = None


def sim_link(spec: DeviceSpec) -> SimLink:
    """The link of ``sim://?KEY=VALUE...``: emulator firmware in this process (shared by design: not exclusive)."""
    device = SimDevice(spec.get(EmulatorParams), optics=spec.get(SimOptions).optics)
    return SimLink(device.start, device.stop, exclusive=False, device=device)
