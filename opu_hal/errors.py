"""Exceptions raised by opu_hal.

Every error the driver raises on purpose derives from :class:`OPUError`, except bad
arguments, which raise the built-in ``ValueError`` / ``TypeError`` with a message that
names the argument, what was expected and what was received.
"""

from __future__ import annotations


class OPUError(Exception):
    """Base class of every opu_hal error."""


class DeviceError(OPUError):
    """The device refused a command; ``code`` is the device's error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(OPUError):
    """A corrupt or unexpected frame was received after all retries."""


class DeviceTimeoutError(OPUError, TimeoutError):
    """The device did not answer within the timeout (seconds)."""


class DeviceBusyError(OPUError):
    """Another process holds the device."""


class IncompatibleFirmwareError(OPUError):
    """The device's firmware or protocol version is not supported by this driver."""


class NotCalibratedError(OPUError):
    """An operation needs a calibration that is neither loaded nor runnable."""


class NotFittedError(OPUError):
    """``transform`` was called before ``fit`` (of an OPU or an encoder)."""


class DeviceClosedError(OPUError):
    """The OPU was used after ``close()`` (or before ``open()``)."""


class SaturationWarning(UserWarning):
    """Some camera pixels were saturated: the affected outputs are clipped."""
