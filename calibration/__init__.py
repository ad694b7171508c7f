"""Calibration of an OPU: camera (EMVA 1288), auto-exposure, linear projections, records and drift.

>>> from opu_hal import OPU
>>> from calibration import calibrate_linear
>>> with OPU("emu://", n_components=500) as opu:
...     opu.fit1d(n_features=1000)
...     opu.calibration = calibrate_linear(opu)
...     z = opu.linear_transform(x)

The record classes are imported eagerly (the OPU facade needs them); the calibration
functions are imported on first use, since they build on the facade.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .record import (
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
