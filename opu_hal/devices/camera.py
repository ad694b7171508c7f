"""The camera interface: settings, limits, triggered frame grabbing with counters.

Units are in the names: ``_us`` microseconds, ``_s`` seconds, ``_db`` decibels, ``px``
sensor pixels. A :class:`Camera` checks every setting against the device's
:class:`CameraLimits` (read when it opened) before anything is sent to it.
"""

from __future__ import annotations

import enum
import logging
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DeviceTimeoutError
from ..validation import check_int, check_number
from .common import Device, DeviceIdentity, TriggerMode, TriggerType, check_choice, check_range, coerce_model

logger = logging.getLogger(__name__)

#: Time allowed for a frame beyond its exposure when no grab timeout is given (s).
DEFAULT_GRAB_MARGIN_S = 1.0


class PixelFormat(enum.Enum):
    """Pixel formats: monochrome integers of 8 to 16 bits, or float intensities (emulators)."""

    MONO8 = "Mono8"
    MONO10 = "Mono10"
    MONO12 = "Mono12"
    MONO16 = "Mono16"
    FLOAT32 = "Float32"

    @property
    def bit_depth(self) -> int:
        """ADC bits of the format (0 for float intensities)."""
        return 0 if self is PixelFormat.FLOAT32 else int(self.value[4:])

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of a frame in this format."""
        if self is PixelFormat.FLOAT32:
            return np.dtype(np.float32)
        return np.dtype(np.uint8 if self is PixelFormat.MONO8 else np.uint16)


class ROI(BaseModel):
    """A rectangle of the sensor in unbinned pixels: corner (``x``, ``y``), ``width`` x ``height``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    x: int = Field(0, ge=0, description="first column (px)")
    y: int = Field(0, ge=0, description="first row (px)")
    width: int = Field(gt=0, description="columns (px)")
    height: int = Field(gt=0, description="rows (px)")


class CameraSettings(BaseModel):
    """Everything a camera is told. ``roi`` None: the whole sensor."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    exposure_us: float = Field(1000.0, gt=0, description="exposure time (us)")
    gain_db: float = Field(0.0, description="analog gain (dB)")
    roi: ROI | None = Field(None, description="region read out (unbinned px); None: whole sensor")
    binning: int = Field(1, ge=1, description="pixels summed along each axis")
    pixel_format: PixelFormat = Field(PixelFormat.MONO8, description="pixel format")
    trigger_type: TriggerType = Field(TriggerType.SOFTWARE, description="what starts an exposure")
    trigger_mode: TriggerMode = Field(TriggerMode.ONCE, description="frames per trigger")


class CameraLimits(BaseModel):
    """What a camera accepts (read from the device when it opens)."""

    model_config = ConfigDict(frozen=True)

    sensor_shape: tuple[int, int] = Field(description="sensor pixels (rows, columns)")
    exposure_us: tuple[float, float] = Field(description="shortest and longest exposure (us)")
    gain_db: tuple[float, float] = Field(description="lowest and highest gain (dB)")
    max_binning: int = Field(1, description="largest binning factor")
    pixel_formats: tuple[PixelFormat, ...]
    trigger_types: tuple[TriggerType, ...]
    trigger_modes: tuple[TriggerMode, ...]


@dataclass(frozen=True)
class CapturedFrame:
    """One frame: ``image`` (rows, columns), the device's ``frame_id`` (a counter),
    ``timestamp_us`` (device clock, us; None if the device keeps none), ``host_time_s``
    (``time.monotonic()`` when it was handed over) and ``dropped_before`` (frames the
    counter skipped since the previous frame)."""

    image: np.ndarray
    frame_id: int
    timestamp_us: float | None
    host_time_s: float
    dropped_before: int = 0


class Camera(Device):
    """A camera: settings checked against limits, arm, trigger, grab frames with counters."""

    def __init__(self, settings: CameraSettings | dict[str, Any] | None = None) -> None:
        super().__init__()
        self._initial = coerce_model(settings, CameraSettings, "settings")
        self._settings: CameraSettings | None = None
        self._limits: CameraLimits | None = None
        self._armed = False
        self._last_id: int | None = None
        self.frames_grabbed = 0
        self.dropped_frames = 0

    # ------------------------------------------------------------------ state
    @property
    def limits(self) -> CameraLimits:
        """What the open camera accepts."""
        self._require_open()
        return self._limits

    @property
    def settings(self) -> CameraSettings:
        """The settings in force."""
        self._require_open()
        return self._settings

    @property
    def armed(self) -> bool:
        """True while the camera takes triggers (between ``arm()`` and ``disarm()``)."""
        return self._armed

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape of the frames the current settings produce (rows, columns)."""
        roi = self.roi
        b = self.settings.binning
        return (roi.height // b, roi.width // b)

    @property
    def roi(self) -> ROI:
        """The region read out (the whole sensor when the settings say None)."""
        roi = self.settings.roi
        if roi is None:
            rows, cols = self.limits.sensor_shape
            roi = ROI(x=0, y=0, width=cols, height=rows)
        return roi

    def open(self) -> "Camera":
        """Connect, read limits, and apply the settings given to the constructor."""
        if not self.is_open:
            super().open()
            try:
                self._limits = self._do_limits()
                self._settings = self._do_read_settings()
                wanted = self._initial.model_dump(exclude_unset=True)
                if wanted:
                    self.update(**wanted)
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Stop acquiring and disconnect; safe to call twice."""
        if self.is_open and self._armed:
            self.disarm()
        super().close()

    # ------------------------------------------------------------------ settings
    def update(self, **changes: Any) -> CameraSettings:
        """Change some settings (keyword names of :class:`CameraSettings`); returns the new settings.

        Every value is checked against the camera's limits before anything is sent.
        """
        self._require_open()
        if self._armed:
            raise RuntimeError("settings: cannot change the settings of an armed camera; call disarm() first")
        new = coerce_model({**self._settings.model_dump(), **changes}, CameraSettings, "settings")
        self.check(new)
        changed = {k for k in type(new).model_fields if getattr(new, k) != getattr(self._settings, k)}
        if changed:
            self._do_apply(new, changed)
            self._settings = new
        return new

    def check(self, settings: CameraSettings) -> None:
        """Raise ``ValueError`` if ``settings`` exceed this camera's limits (no I/O)."""
        lim = self.limits
        check_range("exposure_us", "us", settings.exposure_us, *lim.exposure_us)
        check_range("gain_db", "dB", settings.gain_db, *lim.gain_db)
        check_range("binning", "px per px", settings.binning, 1, lim.max_binning)
        check_choice("pixel_format", settings.pixel_format, lim.pixel_formats)
        check_choice("trigger_type", settings.trigger_type, lim.trigger_types)
        check_choice("trigger_mode", settings.trigger_mode, lim.trigger_modes)
        roi = settings.roi
        if roi is not None:
            rows, cols = lim.sensor_shape
            check_range("roi.x", "px", roi.x, 0, cols - 1)
            check_range("roi.y", "px", roi.y, 0, rows - 1)
            check_range("roi.width", "px", roi.width, 1, cols - roi.x)
            check_range("roi.height", "px", roi.height, 1, rows - roi.y)
            for name, size in (("roi.width", roi.width), ("roi.height", roi.height)):
                if size % settings.binning:
                    raise ValueError(
                        f"{name}: expected a multiple of the binning {settings.binning} px, got {size} px"
                    )

    # ------------------------------------------------------------------ acquisition
    def arm(self, n_frames: int | None = None) -> None:
        """Start acquiring: from now on each trigger makes a frame; ``n_frames`` None: until ``disarm()``."""
        self._require_open()
        if n_frames is not None:
            check_int(n_frames, "n_frames", low=1)
        if self._armed:
            raise RuntimeError("arm: the camera is already armed; call disarm() first")
        self._do_arm(n_frames)
        self._armed = True
        self._last_id = None  # counters are compared within one acquisition

    def disarm(self) -> None:
        """Stop acquiring; frames not yet grabbed are discarded."""
        self._require_open()
        if self._armed:
            self._armed = False
            self._do_disarm()

    def trigger(self) -> None:
        """Software trigger: expose one frame now (the trigger type must be SOFTWARE)."""
        self._require_open()
        if self._settings.trigger_type is not TriggerType.SOFTWARE:
            raise RuntimeError(
                f"trigger: the camera waits for {self._settings.trigger_type.value} triggers, not software ones"
            )
        if not self._armed:
            raise RuntimeError("trigger: the camera is not armed; call arm() first")
        self._do_trigger()

    def grab(self, timeout_s: float | None = None) -> CapturedFrame:
        """The next frame, waiting at most ``timeout_s`` seconds (longer than the exposure).

        Default: the exposure plus 1 s. Raises DeviceTimeoutError if none comes. A gap in
        the device's frame counter is counted in ``dropped_frames`` and the frame's
        ``dropped_before``.
        """
        self._require_open()
        exposure_s = self._settings.exposure_us * 1e-6
        if timeout_s is None:
            timeout_s = exposure_s + DEFAULT_GRAB_MARGIN_S
        elif not check_number(timeout_s, "timeout_s", unit="s") > exposure_s:
            raise ValueError(f"timeout_s: expected more than the exposure ({exposure_s:g} s), got {timeout_s!r}")
        if not self._armed:
            raise RuntimeError("grab: the camera is not armed; call arm() first")
        frame = self._do_grab(float(timeout_s))
        if frame is None:
            raise DeviceTimeoutError(
                f"{type(self).__name__}: no frame within {timeout_s:g} s (after {self.frames_grabbed} frames)"
            )
        gap = 0 if self._last_id is None else frame.frame_id - self._last_id - 1
        if gap:
            if gap > 0:
                self.dropped_frames += gap
            logger.warning("camera frame counter jumped from %d to %d", self._last_id, frame.frame_id)
            frame = CapturedFrame(frame.image, frame.frame_id, frame.timestamp_us, frame.host_time_s, gap)
        self._last_id = frame.frame_id
        self.frames_grabbed += 1
        return frame

    def grab_many(self, n_frames: int, timeout_s: float | None = None) -> list[CapturedFrame]:
        """``n_frames`` frames, each within ``timeout_s`` (see :meth:`grab`)."""
        check_int(n_frames, "n_frames", low=0)
        return [self.grab(timeout_s) for _ in range(n_frames)]

    @property
    def nominal_response(self) -> tuple[float, float] | None:
        """(dark level in DN, DN per unit intensity per us of exposure) when the device knows them, else None."""
        return None

    @property
    def min_frame_period_us(self) -> float:
        """Shortest time between triggers at the current settings (us): exposure or readout, plus overhead."""
        self._require_open()
        return self._do_min_frame_period_us()

    @staticmethod
    def now_s() -> float:
        """Host monotonic time (s), as stamped on frames."""
        return time.monotonic()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _do_limits(self) -> CameraLimits: ...

    @abstractmethod
    def _do_read_settings(self) -> CameraSettings: ...

    @abstractmethod
    def _do_apply(self, settings: CameraSettings, changed: set[str]) -> None: ...

    @abstractmethod
    def _do_min_frame_period_us(self) -> float: ...

    @abstractmethod
    def _do_arm(self, n_frames: int | None) -> None: ...

    @abstractmethod
    def _do_disarm(self) -> None: ...

    @abstractmethod
    def _do_trigger(self) -> None: ...

    @abstractmethod
    def _do_grab(self, timeout_s: float) -> CapturedFrame | None: ...


__all__ = [
    "DEFAULT_GRAB_MARGIN_S",
    "Camera",
    "CameraLimits",
    "CameraSettings",
    "CapturedFrame",
    "DeviceIdentity",
    "PixelFormat",
    "ROI",
]
