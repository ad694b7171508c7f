"""opu-hal: the open Python driver stack for optical processing units (OPUs).

>>> from opu_hal import OPU
>>> with OPU("emu://", n_components=2000, seed=0) as opu:
...     opu.fit1d(n_features=1000)
...     y = opu.transform(x)

The public names below are imported on first use, so that importing a low layer (say
``opu_hal.transport``) does not load the facade (docs/architecture.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "OPU": ".opu",
    "DeviceSession": ".session",
    "OPUResult": ".result",
    "TransformContext": ".result",
    "DeviceInfo": ".settings",
    "DeviceLimits": ".settings",
    "OPUSettings": ".settings",
    "CalibrationRecord": ".record",
    "AlpError": ".errors",
    "CalibrationRecordError": ".errors",
    "CommandError": ".errors",
    "CorruptFrameError": ".errors",
    "DeviceBusyError": ".errors",
    "DeviceClosedError": ".errors",
    "DeviceError": ".errors",
    "DeviceResetError": ".errors",
    "DeviceTimeoutError": ".errors",
    "FrameSyncError": ".errors",
    "IncompatibleFirmwareError": ".errors",
    "InvalidArgumentError": ".errors",
    "NotCalibratedError": ".errors",
    "NotFittedError": ".errors",
    "OPUError": ".errors",
    "OPUNotFittedError": ".errors",
    "ProtocolError": ".errors",
    "RetriesSpentError": ".errors",
    "RetryBudgetError": ".errors",
    "SaturationWarning": ".errors",
    "TLSError": ".errors",
    "TransportError": ".errors",
}

if TYPE_CHECKING:
    from .errors import (
        AlpError,
        CommandError,
        CorruptFrameError,
        DeviceBusyError,
        DeviceClosedError,
        DeviceError,
        DeviceResetError,
        DeviceTimeoutError,
        FrameSyncError,
        IncompatibleFirmwareError,
        InvalidArgumentError,
        NotCalibratedError,
        NotFittedError,
        OPUError,
        OPUNotFittedError,
        ProtocolError,
        RetriesSpentError,
        RetryBudgetError,
        SaturationWarning,
        TLSError,
        TransportError,
    )
    from .opu import OPU
    from .record import CalibrationRecord
    from .result import OPUResult, TransformContext
    from .session import DeviceSession
    from .settings import DeviceInfo, DeviceLimits, OPUSettings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
