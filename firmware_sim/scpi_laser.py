"""A SCPI laser on a loopback TCP port, driven by the physical model's :class:`~firmware_sim.laser.Laser`.

Reach it with pyvisa as ``TCPIP::127.0.0.1::PORT::SOCKET`` (lines end with ``\\n``).
Commands (case-insensitive; the same set ``scpi_laser.yaml`` describes for pyvisa-sim):

==================  ===============================================================
``*IDN?``           ``firmware_sim,SCPI laser,SN<seed>,<version>``
``*RST``            output off, setpoint back to the model's nominal power
``SYST:ERR?``       oldest queued error as ``code,"text"``; ``0,"No error"`` when empty
``OUTP ON|OFF|1|0`` output on or off (on is refused while the interlock is open or a fault is set)
``OUTP?``           ``1`` or ``0``
``SOUR:POW <mW>``   power setpoint (mW), 0 to the maximum
``SOUR:POW?``       setpoint (mW); ``SOUR:POW? MIN`` / ``SOUR:POW? MAX`` its range
``MEAS:POW?``       measured output power (mW): the setpoint with the model's jitter and wander; 0 when off
``SYST:INTL?``      ``1`` when the interlock is closed (emission allowed), ``0`` when open
``SYST:FAUL?``      ``code,"text"``; ``0,"No fault"`` when healthy
==================  ===============================================================

Errors follow SCPI: -113 undefined header, -222 data out of range, -221 settings conflict.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time

import numpy as np

from .laser import Laser
from .model import FIRMWARE_VERSION
from .params import EmulatorParams

logger = logging.getLogger(__name__)

NO_ERROR = '0,"No error"'


class ScpiLaserState:
    """The instrument behind the port: the model's laser plus interlock, fault and error queue."""

    def __init__(self, laser: Laser, max_power_mw: float = 50.0) -> None:
        self.laser = laser
        self.max_power_mw = max_power_mw
        self.interlock_closed = True
        self.fault: tuple[int, str] = (0, "No fault")
        self.errors: list[str] = []
        self.commands: list[str] = []  # every line received, for tests
        self._readings = 0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """``*RST``: output off, setpoint at the model's nominal power, error queue cleared."""
        self.laser.enabled = False
        self.laser.power_mw = self.laser.params.laser_power_mw
        self.errors.clear()

    def open_interlock(self) -> None:
        """Open the interlock (as a door switch would): the output goes off at once."""
        with self._lock:
            self.interlock_closed = False
            self.laser.enabled = False

    def close_interlock(self) -> None:
        """Close the interlock again (the output stays off until switched on)."""
        self.interlock_closed = True

    def measured_mw(self) -> float:
        """What the power monitor reads (mW)."""
        if not self.laser.enabled:
            return 0.0
        self._readings += 1
        rel = self.laser.relative_power(np.array([self._readings]), np.array([time.monotonic() - self._t0]))
        return float(rel[0]) * self.laser.params.laser_power_mw

    def handle(self, line: str) -> str | None:
        """Execute one command line; returns the reply of a query (None for a command)."""
        with self._lock:
            self.commands.append(line)
            text = line.strip()
            head, _, arg = text.partition(" ")
            head, arg = head.upper(), arg.strip().upper()
            if head == "*IDN?":
                return f"firmware_sim,SCPI laser,SN{self.laser.params.seed:08d},{FIRMWARE_VERSION}"
            if head == "*RST":
                self.reset()
                return None
            if head in ("SYST:ERR?", "SYSTEM:ERROR?"):
                return self.errors.pop(0) if self.errors else NO_ERROR
            if head in ("OUTP?", "OUTPUT?"):
                return "1" if self.laser.enabled else "0"
            if head in ("OUTP", "OUTPUT"):
                return self._output(arg)
            if head in ("SOUR:POW?", "SOURCE:POWER?"):
                return {"": f"{self.laser.power_mw:.6g}", "MIN": "0", "MAX": f"{self.max_power_mw:.6g}"}.get(
                    arg
                ) or self._error(-224, "Illegal parameter value")
            if head in ("SOUR:POW", "SOURCE:POWER"):
                return self._power(arg)
            if head in ("MEAS:POW?", "MEASURE:POWER?"):
                return f"{self.measured_mw():.6g}"
            if head == "SYST:INTL?":
                return "1" if self.interlock_closed else "0"
            if head == "SYST:FAUL?":
                return f'{self.fault[0]},"{self.fault[1]}"'
            return self._error(-113, f"Undefined header; {text}")

    def _error(self, code: int, message: str) -> None:
        self.errors.append(f'{code},"{message}"')
        logger.info("SCPI error %d: %s", code, message)
        return None

    def _output(self, arg: str) -> None:
        if arg in ("OFF", "0"):
            self.laser.enabled = False
            return None
        if arg not in ("ON", "1"):
            return self._error(-224, f"Illegal parameter value; {arg}")
        if not self.interlock_closed:
            return self._error(-221, "Settings conflict; interlock open")
        if self.fault[0]:
            return self._error(-221, f"Settings conflict; fault {self.fault[0]}")
        self.laser.enabled = True
        return None

    def _power(self, arg: str) -> None:
        try:
            value = float(arg)
        except ValueError:
            return self._error(-104, f"Data type error; {arg}")
        if not 0 <= value <= self.max_power_mw:
            return self._error(-222, f"Data out of range; {value} mW not in 0 to {self.max_power_mw} mW")
        self.laser.power_mw = value
        return None


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        state: ScpiLaserState = self.server.state  # type: ignore[attr-defined]
        for raw in self.rfile:
            reply = state.handle(raw.decode(errors="replace"))
            if reply is not None:
                self.wfile.write(reply.encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScpiLaserServer:
    """A SCPI laser on ``host:port`` (port 0: any free port), served from a background thread.

    ``laser``: the model's laser to drive (e.g. a firmware's ``model.laser``, so that the
    OPU's light follows the SCPI commands); default: a new one from ``params``.
    """

    def __init__(
        self,
        laser: Laser | None = None,
        *,
        params: EmulatorParams | None = None,
        max_power_mw: float = 50.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = ScpiLaserState(laser or Laser(params or EmulatorParams()), max_power_mw)
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state  # type: ignore[attr-defined]
        self.address: tuple[str, int] = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def resource(self) -> str:
        """The VISA resource name: ``TCPIP::HOST::PORT::SOCKET``."""
        return f"TCPIP::{self.address[0]}::{self.address[1]}::SOCKET"

    def start(self) -> "ScpiLaserServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="scpi-laser", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "ScpiLaserServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

