"""``ScpiLaser``: a laser spoken to in SCPI over VISA (pyvisa with the pure-Python pyvisa-py backend).

The laser *has* a VISA resource. Every command is followed by ``SYST:ERR?`` and a
non-zero error raises :class:`~opu_hal.errors.DeviceError` carrying the SCPI error code.
The command set is the one ``firmware_sim.scpi_laser`` documents (``OUTP``, ``SOUR:POW``,
``MEAS:POW?``, ``SYST:INTL?``, ``SYST:FAUL?``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import DeviceError, DeviceTimeoutError, OPUError
from ..validation import check_positive_seconds
from .common import DeviceIdentity
from .light import LightSource, LightSourceLimits, LightSourceSettings, LightSourceStatus

logger = logging.getLogger(__name__)


def parse_scpi_error(reply: str) -> tuple[int, str]:
    """``-222,"Data out of range"`` -> (-222, "Data out of range")."""
    code, _, text = reply.partition(",")
    try:
        return int(code.strip()), text.strip().strip('"')
    except ValueError:
        raise OPUError(f"SCPI: expected an error reply 'code,\"text\"', got {reply!r}") from None


class ScpiLaser(LightSource):
    """A SCPI laser at a VISA ``resource`` (e.g. ``TCPIP::127.0.0.1::5025::SOCKET``).

    ``visa_library``: ``"@py"`` (pyvisa-py, the default) or ``"path.yaml@sim"`` (pyvisa-sim);
    ``timeout_s``: seconds to wait for a reply.
    """

    def __init__(
        self,
        resource: str,
        *,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        settings: LightSourceSettings | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(settings)
        if not isinstance(resource, str) or "::" not in resource:
            raise ValueError(f"resource: expected a VISA resource name such as 'TCPIP::HOST::PORT::SOCKET', got {resource!r}")
        self.resource, self.visa_library = resource, visa_library
        self.timeout_s = check_positive_seconds(timeout_s, "timeout_s")
        self._manager: Any = None
        self._inst: Any = None

    # ------------------------------------------------------------------ SCPI
    def query(self, command: str) -> str:
        """Send a query and return its reply line (raises DeviceError if the laser queued an error)."""
        reply = self._io(lambda: self._inst.query(command))
        self._check_errors(command)
        return reply.strip()

    def write(self, command: str) -> None:
        """Send a command, then raise DeviceError if the laser refused it."""
        self._io(lambda: self._inst.write(command))
        self._check_errors(command)

    def _io(self, call: Any) -> Any:
        import pyvisa

        try:
            return call()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise DeviceTimeoutError(f"{self.resource}: no reply within {self.timeout_s} s") from exc
            raise DeviceError(f"{self.resource}: VISA I/O error: {exc}", exc.error_code) from exc

    def _check_errors(self, command: str) -> None:
        code, text = parse_scpi_error(self._io(lambda: self._inst.query("SYST:ERR?")))
        if code != 0:
            raise DeviceError(f"{self.resource}: {command!r} refused: SCPI error {code} ({text})", code)

    # ------------------------------------------------------------------ hooks
    def _do_open(self) -> DeviceIdentity:
        import pyvisa

        self._manager = pyvisa.ResourceManager(self.visa_library)
        try:
            self._inst = self._manager.open_resource(
                self.resource, read_termination="\n", write_termination="\n", timeout=int(self.timeout_s * 1000)
            )
            while parse_scpi_error(self._io(lambda: self._inst.query("SYST:ERR?")))[0] != 0:
                pass  # empty the error queue left by earlier sessions
            vendor, model, serial, version = (self.query("*IDN?").split(",") + ["", "", "", ""])[:4]
        except BaseException:
            self._release()
            raise
        return DeviceIdentity(vendor=vendor, model=model, serial=serial, firmware_version=version)

    def _release(self) -> None:
        if self._inst is not None:
            self._inst.close()
        if self._manager is not None:
            self._manager.close()
        self._inst, self._manager = None, None

    def _do_close(self) -> None:
        self._release()

    def _do_limits(self) -> LightSourceLimits:
        return LightSourceLimits(power_mw=(float(self.query("SOUR:POW? MIN")), float(self.query("SOUR:POW? MAX"))))

    def _do_enable(self, on: bool) -> None:
        self.write(f"OUTP {int(on)}")

    def _do_set_power_mw(self, power_mw: float) -> None:
        self.write(f"SOUR:POW {power_mw:f}")

    def _do_get_setpoint_mw(self) -> float:
        return float(self.query("SOUR:POW?"))

    def _do_read_power_mw(self) -> float:
        return float(self.query("MEAS:POW?"))

    def _do_status(self) -> LightSourceStatus:
        code, text = parse_scpi_error(self.query("SYST:FAUL?"))
        return LightSourceStatus(
            enabled=self.query("OUTP?") == "1",
            interlock_closed=self.query("SYST:INTL?") == "1",
            fault_code=code,
            fault="" if code == 0 else text,
        )
