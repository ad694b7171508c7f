"""The light-source interface: output on/off, power setpoint and readback, interlock and faults.

Powers are in milliwatts (``_mw``). The setpoint is checked against the source's range
(read when it opened) before anything is sent.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .common import Device, check_range, coerce_model


class LightSourceSettings(BaseModel):
    """What a light source is told when it opens."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    power_mw: float | None = Field(None, ge=0, description="power setpoint (mW); None: leave as is")
    enabled: bool | None = Field(None, description="output on/off; None: leave as is")


class LightSourceLimits(BaseModel):
    """What a light source accepts."""

    model_config = ConfigDict(frozen=True)

    power_mw: tuple[float, float] = Field(description="lowest and highest power setpoint (mW)")


class LightSourceStatus(BaseModel):
    """Safety and health: output state, interlock (closed = the output may emit) and fault."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    interlock_closed: bool
    fault_code: int = Field(0, description="0: no fault")
    fault: str = Field("", description="the device's description of the fault")

    @property
    def ok(self) -> bool:
        """Interlock closed and no fault."""
        return self.interlock_closed and self.fault_code == 0


class LightSource(Device):
    """A light source (laser, LED): on/off, power setpoint (mW) and readback (mW), status."""

    def __init__(self, settings: LightSourceSettings | dict[str, Any] | None = None) -> None:
        super().__init__()
        self._initial = coerce_model(settings, LightSourceSettings, "settings")
        self._limits: LightSourceLimits | None = None

    @property
    def limits(self) -> LightSourceLimits:
        """What the open source accepts."""
        self._require_open()
        return self._limits

    def open(self) -> "LightSource":
        """Connect, read limits, and apply the settings given to the constructor."""
        if not self.is_open:
            super().open()
            try:
                self._limits = self._do_limits()
                if self._initial.power_mw is not None:
                    self.set_power_mw(self._initial.power_mw)
                if self._initial.enabled is True:
                    self.enable()
                elif self._initial.enabled is False:
                    self.disable()
            except BaseException:
                self.close()
                raise
        return self

    def enable(self) -> None:
        """Switch the output on (raises DeviceError if the interlock is open or a fault is set)."""
        self._require_open()
        self._do_enable(True)

    def disable(self) -> None:
        """Switch the output off."""
        self._require_open()
        self._do_enable(False)

    @property
    def enabled(self) -> bool:
        """Whether the output is on (asked of the device)."""
        self._require_open()
        return self._do_status().enabled

    def set_power_mw(self, power_mw: float) -> None:
        """Set the power setpoint (mW), checked against the limits before any I/O."""
        self._require_open()
        check_range("power_mw", "mW", power_mw, *self.limits.power_mw)
        self._do_set_power_mw(float(power_mw))

    @property
    def setpoint_mw(self) -> float:
        """The power setpoint in force (mW, asked of the device)."""
        self._require_open()
        return self._do_get_setpoint_mw()

    @property
    def power_mw(self) -> float:
        """The power the source measures it emits (mW)."""
        self._require_open()
        return self._do_read_power_mw()

    def status(self) -> LightSourceStatus:
        """Output state, interlock and fault."""
        self._require_open()
        return self._do_status()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _do_limits(self) -> LightSourceLimits: ...

    @abstractmethod
    def _do_enable(self, on: bool) -> None: ...

    @abstractmethod
    def _do_set_power_mw(self, power_mw: float) -> None: ...

    @abstractmethod
    def _do_get_setpoint_mw(self) -> float: ...

    @abstractmethod
    def _do_read_power_mw(self) -> float: ...

    @abstractmethod
    def _do_status(self) -> LightSourceStatus: ...
