"""Exclusive use of an OPU's device by a calibration: its own geometry and exposure, frames counted.

Calibrations show their own inputs (all-ones, dark, bit planes...) on a 1-D layout and
read their own camera pixels, at their own exposure. A :class:`DeviceSession` holds the
OPU's lock, configures the device for that, and marks the OPU's own configuration stale so
that the next ``transform`` puts it back.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from opu_hal.backends import AppliedConfig, DeviceConfig, Frames
from opu_hal.layout import DMDLayout, layout_1d
from opu_hal.result import TransformContext
from opu_hal.settings import DeviceInfo

from .record import DeviceIdentity

if TYPE_CHECKING:
    from opu_hal.opu import OPU


class DeviceSession:
    """Context manager giving a calibration the device behind ``opu``.

    ``frames`` counts the frames acquired through the session.
    """

    def __init__(self, opu: "OPU") -> None:
        self.opu = opu
        self.frames = 0
        self.applied: AppliedConfig | None = None
        self.layout: DMDLayout | None = None
        self._shape: tuple[int, int, float] | None = None
        self._ids: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._device_time_s = 0.0
        self._saturated = 0.0

    def __enter__(self) -> "DeviceSession":
        self.opu._lock.acquire()
        try:
            self.opu._require_open()
        except BaseException:
            self.opu._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.opu._lock.release()

    # ------------------------------------------------------------------ device
    @property
    def info(self) -> DeviceInfo:
        """The device's description."""
        return self.opu.backend.info

    @property
    def max_dn(self) -> float:
        """Saturated camera count (DN); infinite without a camera (ideal fidelity)."""
        bits = self.info.bit_depth
        return float((1 << bits) - 1) if bits else math.inf

    def clamp_exposure(self, exposure_us: float) -> float:
        """``exposure_us`` within the device's limits (us)."""
        limits = self.info.limits
        return float(min(max(exposure_us, limits.min_exposure_us), limits.max_exposure_us))

    def configure(self, n_features: int, n_outputs: int, exposure_us: float) -> AppliedConfig:
        """Show ``n_features`` features (1-D layout), read ``n_outputs`` pixels, expose ``exposure_us`` us.

        The shortest frametime the device allows is used.
        """
        exposure_us = self.clamp_exposure(exposure_us)
        shape = (n_features, n_outputs, exposure_us)
        if shape != self._shape or self.applied is None:
            self.layout = layout_1d(n_features, self.info.dmd_shape, self.opu.settings.input_roi_strategy)
            self.applied = self.opu.backend.configure(DeviceConfig(self.layout, n_outputs, exposure_us, None))
            self.opu._mark_config_stale()
            self._shape = shape
        return self.applied

    def acquire(self, features: np.ndarray) -> np.ndarray:
        """Frames (B, n_outputs) for binary ``features`` (B, n_features), in device-sized chunks."""
        features = np.ascontiguousarray(features, dtype=np.uint8)
        chunk = min(self.opu.settings.max_batch_frames, self.info.limits.max_batch_frames)
        parts: list[Frames] = []
        for start in range(0, features.shape[0], chunk):
            parts.append(self.opu.backend.acquire(features[start : start + chunk]))
        for part in parts:
            self._ids.append(part.frame_ids)
            self._times.append(part.timestamps_us)
            self._device_time_s += part.device_time_s
            self._saturated += part.saturated_fraction * part.frames.shape[0]
        self.frames += features.shape[0]
        return parts[0].frames if len(parts) == 1 else np.concatenate([p.frames for p in parts])

    def context(self, calibration_id: str | None) -> TransformContext:
        """Metadata of everything acquired since the session began, at the configuration in force."""
        info, applied, layout = self.info, self.applied, self.layout
        return TransformContext(
            exposure_us=applied.exposure_us,
            frametime_us=applied.frametime_us,
            gain_dn_per_intensity=info.dn_per_intensity_per_us * applied.exposure_us,
            dark_level_dn=info.dark_level_dn,
            input_roi=(*layout.offset, *layout.roi_shape),
            macro_pixel=layout.factor,
            output_roi=applied.output_roi,
            frame_ids=np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64),
            timestamps_us=np.concatenate(self._times) if self._times else np.zeros(0),
            device_time_s=self._device_time_s,
            saturated_fraction=self._saturated / max(self.frames, 1),
            calibration_id=calibration_id,
            fidelity=info.fidelity,
        )


def device_identity(opu: "OPU") -> DeviceIdentity:
    """Who the open ``opu`` is: model, serial, firmware, protocol and (emulated) seed."""
    info = opu.info
    params = getattr(opu.backend, "params", None)
    return DeviceIdentity(
        model=info.model,
        serial=info.serial,
        firmware_version=info.firmware_version,
        protocol_version=info.protocol_version,
        seed=getattr(params, "seed", None),
    )
