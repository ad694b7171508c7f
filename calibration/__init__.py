"""Calibration of an OPU: camera (EMVA 1288), auto-exposure, linear projections, records and drift.

>>> from opu_hal import OPU
>>> from calibration import calibrate_linear
>>> with OPU("emu://", n_components=500) as opu:
...     opu.fit1d(n_features=1000)
...     opu.calibration = calibrate_linear(opu)
...     z = opu.linear_transform(x)

The record classes live below the facade, in :mod:`opu_hal.record` (the facade loads and
applies records); they are re-exported here. The calibration functions are imported on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from opu_hal.record import (
    CalibrationRecord,
    CameraCalibration,
    DeviceIdentity,
    ExposureCalibration,
    LinearCalibration,
    SentinelSet,
)

_LAZY = {
    "characterise_camera": ".camera",
    "auto_exposure": ".exposure",
    "calibrate_linear": ".linear",
    "true_linear_map": ".linear",
    "DriftMonitor": ".drift",
    "DriftReport": ".drift",
    "calibrate_all": ".pipeline",
    "retrieve_transmission_matrix": ".tm",
    "intensity_correlation": ".tm",
    "aligned_relative_error": ".tm",
    "TMResult": ".tm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CalibrationRecord",
    "CameraCalibration",
    "DeviceIdentity",
    "ExposureCalibration",
    "LinearCalibration",
    "SentinelSet",
    *_LAZY,
]
