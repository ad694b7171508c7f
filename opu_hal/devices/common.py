"""What every instrument shares: open/close, identity, trigger enums and range checks.

Public methods of the device classes validate their arguments and then call ``_do_*``
hooks that implementations provide; a value out of range is refused before any I/O with
a ``ValueError`` naming the setting, its unit, the allowed range and the value received.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from ..errors import DeviceClosedError
from ..validation import check_number

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class TriggerType(enum.Enum):
    """What starts an exposure (camera) or a picture (DMD)."""

    SOFTWARE = "software"  #: a call: ``Camera.trigger()`` or ``DMD.run()``
    RISING_EDGE = "rising_edge"  #: a hardware line going high
    FALLING_EDGE = "falling_edge"  #: a hardware line going low


class TriggerMode(enum.Enum):
    """What one trigger does."""

    ONCE = "once"  #: one frame (camera) or one picture (DMD) per trigger
    START = "start"  #: one trigger starts the whole sequence, paced by the device's own clock


class DeviceIdentity(BaseModel):
    """What an instrument says about itself when opened."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    model: str
    serial: str
    firmware_version: str = ""


def check_range(setting: str, unit: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high``; the message names all four and the unit."""
    check_number(value, setting, unit=unit)
    if not low <= value <= high:
        unit_text = f" {unit}" if unit else ""
        raise ValueError(f"{setting}: expected {low:g} to {high:g}{unit_text}, got {value!r}")


def check_choice(setting: str, value: object, allowed: tuple[object, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        names = [getattr(a, "value", a) for a in allowed]
        raise ValueError(f"{setting}: expected one of {names} on this device, got {getattr(value, 'value', value)!r}")


class Device(ABC):
    """An instrument with a life cycle: ``open()``, use, ``close()`` (also a context manager)."""

    def __init__(self) -> None:
        self._identity: DeviceIdentity | None = None

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._identity is not None

    @property
    def identity(self) -> DeviceIdentity:
        """Vendor, model, serial and firmware of the open device."""
        self._require_open()
        return self._identity

    def open(self) -> "Device":
        """Connect and read the device's identity and limits; returns self (a no-op if open)."""
        if self._identity is None:
            self._identity = self._do_open()
            logger.info("opened %s %s (serial %s)", self._identity.vendor, self._identity.model, self._identity.serial)
        return self

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if self._identity is not None:
            try:
                self._do_close()
            finally:
                self._identity = None

    def __enter__(self) -> "Device":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if self._identity is None:
            raise DeviceClosedError(f"{type(self).__name__} is not open: call open() first")

    @abstractmethod
    def _do_open(self) -> DeviceIdentity: ...

    @abstractmethod
    def _do_close(self) -> None: ...


def coerce_model(value: Any, model: type[M], name: str) -> M:
    """A validated ``model`` from an instance, a dict or None (the defaults)."""
    if value is None:
        return model()
    if isinstance(value, model):
        return value
    if isinstance(value, dict):
        return model.model_validate(value)
    raise TypeError(f"{name}: expected {model.__name__}, a dict or None, got {type(value).__name__}")
