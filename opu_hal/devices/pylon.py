"""``PylonCamera``: Basler cameras through pypylon (extra ``pylon``).

Works with pylon's camera emulation too (environment ``PYLON_CAMEMU=1``). Settings map
to the GenICam features ``ExposureTime`` (us), ``Gain`` (dB), ``OffsetX/Y``, ``Width``,
``Height``, ``BinningHorizontal/Vertical``, ``PixelFormat``, ``TriggerSelector =
FrameStart``, ``TriggerMode`` and ``TriggerSource`` (``Software`` or ``Line1``). The frame
counter is the stream's block id; the timestamp is the camera's tick counter (taken as
nanoseconds, as USB3 Vision cameras count) when the camera keeps one.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import DeviceError
from .camera import ROI, Camera, CameraLimits, CameraSettings, CapturedFrame, PixelFormat
from .common import DeviceIdentity, TriggerMode, TriggerType

logger = logging.getLogger(__name__)

_FORMATS = (PixelFormat.MONO8, PixelFormat.MONO10, PixelFormat.MONO12, PixelFormat.MONO16)
_SOURCES = {TriggerType.SOFTWARE: "Software", TriggerType.RISING_EDGE: "Line1", TriggerType.FALLING_EDGE: "Line1"}


class PylonCamera(Camera):
    """A Basler camera; ``serial`` None: the first camera pylon finds."""

    def __init__(self, serial: str | None = None, settings: CameraSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.serial = serial
        self._cam: Any = None

    def _do_open(self) -> DeviceIdentity:
        from pypylon import pylon

        factory = pylon.TlFactory.GetInstance()
        devices = [d for d in factory.EnumerateDevices() if self.serial is None or d.GetSerialNumber() == self.serial]
        if not devices:
            raise DeviceError(f"pylon: no camera {'with serial ' + self.serial if self.serial else 'found'}")
        info = devices[0]
        self._cam = pylon.InstantCamera(factory.CreateDevice(info))
        self._cam.Open()
        return DeviceIdentity(
            vendor=info.GetVendorName(), model=info.GetModelName(), serial=info.GetSerialNumber(),
            firmware_version=info.GetDeviceVersion() if info.IsDeviceVersionAvailable() else "",
        )

    def _do_close(self) -> None:
        self._cam.Close()
        self._cam = None

    def _do_limits(self) -> CameraLimits:
        cam = self._cam
        formats = tuple(f for f in _FORMATS if f.value in cam.PixelFormat.Symbolics)
        return CameraLimits(
            sensor_shape=(cam.HeightMax.Value, cam.WidthMax.Value),
            exposure_us=(cam.ExposureTime.Min, cam.ExposureTime.Max),
            gain_db=(cam.Gain.Min, cam.Gain.Max),
            max_binning=min(cam.BinningHorizontal.Max, cam.BinningVertical.Max),
            pixel_formats=formats,
            trigger_types=(TriggerType.SOFTWARE, TriggerType.RISING_EDGE, TriggerType.FALLING_EDGE),
            trigger_modes=(TriggerMode.ONCE,),
        )

    def _do_read_settings(self) -> CameraSettings:
        """The camera's settings, its trigger put in the default state (one frame per software trigger)."""
        cam = self._cam
        self._set_trigger(TriggerType.SOFTWARE)
        b = cam.BinningHorizontal.Value
        return CameraSettings(
            exposure_us=cam.ExposureTime.Value,
            gain_db=cam.Gain.Value,
            roi=ROI(x=cam.OffsetX.Value * b, y=cam.OffsetY.Value * b, width=cam.Width.Value * b, height=cam.Height.Value * b),
            binning=b,
            pixel_format=PixelFormat(cam.PixelFormat.Value),
        )

    def _do_apply(self, settings: CameraSettings, changed: set[str]) -> None:
        cam = self._cam
        if "exposure_us" in changed:
            cam.ExposureTime.Value = settings.exposure_us
        if "gain_db" in changed:
            cam.Gain.Value = settings.gain_db
        if "pixel_format" in changed:
            cam.PixelFormat.Value = settings.pixel_format.value
        if changed & {"roi", "binning"}:
            b = settings.binning
            rows, cols = self.limits.sensor_shape
            roi = settings.roi or ROI(x=0, y=0, width=cols, height=rows)
            cam.OffsetX.Value, cam.OffsetY.Value = 0, 0  # make room before growing
            cam.BinningHorizontal.Value, cam.BinningVertical.Value = b, b
            cam.Width.Value, cam.Height.Value = roi.width // b, roi.height // b
            cam.OffsetX.Value, cam.OffsetY.Value = roi.x // b, roi.y // b
        if changed & {"trigger_type", "trigger_mode"}:
            self._set_trigger(settings.trigger_type)

    def _set_trigger(self, trigger_type: TriggerType) -> None:
        cam = self._cam
        cam.TriggerSelector.Value = "FrameStart"
        cam.TriggerMode.Value = "On"
        cam.TriggerSource.Value = _SOURCES[trigger_type]
        if trigger_type is not TriggerType.SOFTWARE:
            cam.TriggerActivation.Value = "RisingEdge" if trigger_type is TriggerType.RISING_EDGE else "FallingEdge"

    def _do_min_frame_period_us(self) -> float:
        cam = self._cam
        for name in ("ResultingFrameRate", "ResultingFrameRateAbs"):
            node = cam.GetNodeMap().GetNode(name)
            if node is not None and node.GetAccessMode() >= 3:  # readable
                return 1e6 / float(node.GetValue())
        return self.settings.exposure_us

    def _do_arm(self, n_frames: int | None) -> None:
        from pypylon import pylon

        if n_frames is None:
            self._cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
        else:
            self._cam.StartGrabbingMax(n_frames, pylon.GrabStrategy_OneByOne)

    def _do_disarm(self) -> None:
        self._cam.StopGrabbing()

    def _do_trigger(self) -> None:
        from pypylon import pylon

        self._cam.WaitForFrameTriggerReady(1000, pylon.TimeoutHandling_ThrowException)
        self._cam.ExecuteSoftwareTrigger()

    def _do_grab(self, timeout_s: float) -> CapturedFrame | None:
        from pypylon import pylon

        if not self._cam.IsGrabbing():
            return None
        result = self._cam.RetrieveResult(int(timeout_s * 1000), pylon.TimeoutHandling_Return)
        if result is None or not result.IsValid():
            return None
        try:
            if not result.GrabSucceeded():
                raise DeviceError(f"pylon: grab failed: {result.GetErrorDescription()}", result.GetErrorCode())
            stamp = result.GetTimeStamp()
            return CapturedFrame(
                result.GetArray().copy(), int(result.GetBlockID()), float(stamp) * 1e-3 if stamp else None, self.now_s()
            )
        finally:
            result.Release()
