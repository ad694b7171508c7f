"""opu-hal: the open Python driver stack for optical processing units (OPUs).

>>> from opu_hal import OPU
>>> with OPU("emu://", n_components=2000, seed=0) as opu:
...     opu.fit1d(n_features=1000)
...     y = opu.transform(x)
"""

from .errors import (
    DeviceBusyError,
    DeviceClosedError,
    DeviceError,
    DeviceTimeoutError,
    IncompatibleFirmwareError,
    NotCalibratedError,
    NotFittedError,
    OPUError,
    ProtocolError,
    SaturationWarning,
)
from .opu import OPU
from .result import OPUResult, TransformContext
from .settings import DeviceInfo, DeviceLimits, OPUSettings

__version__ = "0.1.0"

__all__ = [
    "OPU",
    "DeviceBusyError",
    "DeviceClosedError",
    "DeviceError",
    "DeviceInfo",
    "DeviceLimits",
    "DeviceTimeoutError",
    "IncompatibleFirmwareError",
    "NotCalibratedError",
    "NotFittedError",
    "OPUError",
    "OPUResult",
    "OPUSettings",
    "ProtocolError",
    "SaturationWarning",
    "TransformContext",
]
