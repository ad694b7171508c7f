"""Exceptions raised by opu_hal (and by ``firmware_sim`` and ``calibration``).

Every exception class of the packages lives here and derives from :class:`OPUError`
(warnings excepted). Bad arguments raise the built-in ``ValueError`` / ``TypeError`` with a
message that names the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .protocol.messages import ErrorCode


class OPUError(Exception):
    """Base class of every opu_hal error."""


class DeviceError(OPUError):
    """The device refused a command; ``code`` is the device's error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(OPUError):
    """A corrupt or unexpected frame was received after all retries."""


class RetriesSpentError(ProtocolError):
    """A request's retries were all spent on corrupt frames (the request's, or its reply's)."""


class RetryBudgetError(ProtocolError):
    """A device call's retry budget is spent: too many re-plans or too many requests resent.

    ``resent`` and ``max_resent`` count requests sent again during the call and the call's
    limit; ``replans`` and ``max_replans`` count chunk halvings and their limit.
    """

    def __init__(self, message: str, *, resent: int, max_resent: int, replans: int, max_replans: int) -> None:
        super().__init__(message)
        self.resent, self.max_resent = resent, max_resent
        self.replans, self.max_replans = replans, max_replans


class DeviceTimeoutError(OPUError, TimeoutError):
    """The device did not answer within the timeout (seconds)."""


class DeviceBusyError(OPUError):
    """Another process holds the device."""


class IncompatibleFirmwareError(OPUError):
    """The device's firmware or protocol version is not supported by this driver."""


class NotCalibratedError(OPUError):
    """An operation needs a calibration that is neither loaded nor runnable."""


class CalibrationRecordError(OPUError, ValueError):
    """A calibration record on disk is unreadable, out of range or corrupt.

    ``path`` is the file at fault (the ``.json`` or the ``.npz``), ``field`` the value or
    array (dotted, e.g. ``linear.exposure_us``; ``(file)`` when the file itself is bad).
    """

    def __init__(self, path: Path, field: str, problem: str) -> None:
        super().__init__(f"calibration record {path}: {field}: {problem}")
        self.path, self.field = path, field


class NotFittedError(OPUError):
    """``transform`` was called before ``fit`` (of an OPU or an encoder)."""


class DeviceClosedError(OPUError):
    """The OPU was used after ``close()`` (or before ``open()``)."""


class InvalidArgumentError(DeviceError, ValueError):
    """The device refused an argument (a setting out of its range): a DeviceError and a ValueError."""


class FrameSyncError(DeviceError):
    """Frames and pictures stayed misaligned (a trigger lost or a frame shifted) after all retries."""


class AlpError(DeviceError):
    """An ALP function returned something other than ALP_OK; ``code`` is its return code."""


class CorruptFrameError(ProtocolError):
    """A frame whose header was intact but whose payload failed its CRC; ``seq`` names it."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class TransportError(OPUError, ConnectionError):
    """The link to the device is down (closed by the peer, unreachable, or stalled on write)."""


class TLSError(TransportError):
    """A TLS link failed: the server's certificate refused, or the peer does not speak TLS."""


class DeviceResetError(OPUError):
    """The device rebooted (its boot id changed): its configuration and pending work are gone."""

    def __init__(self, message: str, boot_id: str) -> None:
        super().__init__(message)
        self.boot_id = boot_id


class CommandError(OPUError):
    """Raised by a device-side endpoint to refuse a request with an error code.

    ``cacheable``: whether the refusal is the final answer to this request (False when the
    request changed nothing and may succeed if sent again, e.g. out of order).
    """

    def __init__(self, code: ErrorCode, message: str, cacheable: bool = True, **details: Any) -> None:
        super().__init__(message)
        self.code, self.cacheable, self.details = code, cacheable, details


class OPUNotFittedError(NotFittedError, AssertionError):
    """lightonml compatibility: transform before fit1d/fit2d; an AssertionError too, as lightonml raised."""


class SaturationWarning(UserWarning):
    """Some camera pixels were saturated: the affected outputs are clipped.

    The message is the same every time at a given place, so Python's default warning filter
    shows it once per place however often it happens; the numbers are attributes.

    Attributes
    ----------
    fraction:
        Fraction of the output pixels that were saturated (0 to 1), or None.
    exposure_us:
        Exposure in force (microseconds), or None.
    frames:
        Frames (or frame pairs) concerned, or None.
    """

    def __init__(self, message: str, *, fraction: float | None = None, exposure_us: float | None = None,
                 frames: int | None = None) -> None:
        super().__init__(message)
        self.fraction, self.exposure_us, self.frames = fraction, exposure_us, frames


__all__ = [
    "AlpError",
    "CalibrationRecordError",
    "CommandError",
    "CorruptFrameError",
    "DeviceBusyError",
    "DeviceClosedError",
    "DeviceError",
    "DeviceResetError",
    "DeviceTimeoutError",
    "FrameSyncError",
    "IncompatibleFirmwareError",
    "InvalidArgumentError",
    "NotCalibratedError",
    "NotFittedError",
    "OPUError",
    "OPUNotFittedError",
    "ProtocolError",
    "RetriesSpentError",
    "RetryBudgetError",
    "SaturationWarning",
    "TLSError",
    "TransportError",
]
