"""Instrument drivers: abstract DMD, camera and light source, and their implementations.

Abstract classes (public methods validate, then call ``_do_*`` hooks):
:class:`DMD`, :class:`Camera`, :class:`LightSource`. Implementations:
:mod:`~opu_hal.devices.opu_firmware` (the DMD and camera of OPU firmware),
:mod:`~opu_hal.devices.scpi_laser` (SCPI lasers over VISA),
:mod:`~opu_hal.devices.pylon` (Basler cameras, extra ``pylon``),
:mod:`~opu_hal.devices.alp` (Vialux DMDs through the ALP library).
"""

from .camera import ROI, Camera, CameraLimits, CameraSettings, CapturedFrame, PixelFormat
from .common import Device, DeviceIdentity, TriggerMode, TriggerType, check_range
from .dmd import DMD, DMDLimits, DMDSettings, packed_shape
from .light import LightSource, LightSourceLimits, LightSourceSettings, LightSourceStatus

__all__ = [
    "DMD",
    "ROI",
    "Camera",
    "CameraLimits",
    "CameraSettings",
    "CapturedFrame",
    "DMDLimits",
    "DMDSettings",
    "Device",
    "DeviceIdentity",
    "LightSource",
    "LightSourceLimits",
    "LightSourceSettings",
    "LightSourceStatus",
    "PixelFormat",
    "TriggerMode",
    "TriggerType",
    "check_range",
    "packed_shape",
]
