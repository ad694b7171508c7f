"""opu-hal: the open Python driver stack for optical processing units (OPUs).

>>> from opu_hal import OPU
>>> with OPU("emu://", n_components=2000, seed=0) as opu:
...     opu.fit1d(n_features=1000)
...     y = opu.transform(x)
"""

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
    SaturationWarning,
    TransportError,
)
from .opu import OPU
from .result import OPUResult, TransformContext
from .settings import DeviceInfo, DeviceLimits, OPUSettings

__version__ = "0.1.0"

__all__ = [
    "OPU",
    "AlpError",
    "CommandError",
    "CorruptFrameError",
    "DeviceBusyError",
    "DeviceClosedError",
    "DeviceError",
    "DeviceInfo",
    "DeviceLimits",
    "DeviceResetError",
    "DeviceTimeoutError",
    "FrameSyncError",
    "IncompatibleFirmwareError",
    "InvalidArgumentError",
    "NotCalibratedError",
    "NotFittedError",
    "OPUError",
    "OPUNotFittedError",
    "OPUResult",
    "OPUSettings",
    "ProtocolError",
    "SaturationWarning",
    "TransformContext",
    "TransportError",
]
