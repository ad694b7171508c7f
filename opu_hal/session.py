"""Exclusive use of an OPU's device: the facade's public session API.

``with opu.session() as session:`` holds the OPU's lock for the whole block (no other
thread's ``transform`` interleaves), opens the device if needed, and gives raw access to
it: any 1-D geometry, any camera pixels and exposure (:meth:`DeviceSession.configure`),
frames of binary inputs (:meth:`DeviceSession.acquire`) through the very acquisition path
``transform`` uses, and the metadata of everything acquired (:meth:`DeviceSession.context`).
A session that changes the device's configuration tells the OPU, which restores its own
before its next ``transform``. Calibrations (:mod:`calibration`) and ``linear_transform``
are built on it::

    with opu.session() as session:
        session.configure(n_features=64, n_outputs=200, exposure_us=300.0)
        dark = session.acquire(np.zeros((8, 64), np.uint8))   # (8, 200) camera counts (DN)
        context = session.context(calibration_id=None)      # exposure, frame ids, device time...
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .backends import AppliedConfig, Frames
from .layout import DMDLayout, layout_1d
from .result import TransformContext
from .settings import DeviceInfo

if TYPE_CHECKING:
    from .opu import OPU

#: A transform estimated longer than this (s) logs its estimate and shows a progress bar.
PROGRESS_AFTER_S = 3.0
#: A long transform's device calls are split to at most about this (s), so that its bar moves.
PROGRESS_STEP_S = 2.0


class AcquisitionLog:
    """Metadata of the frames acquired so far: ids, timestamps (us), device time (s), saturation."""

    def __init__(self) -> None:
        self.frames = 0
        self.device_time_s = 0.0
        self._ids: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._saturated = 0.0

    def add(self, parts: list[Frames]) -> None:
        """Count the frames of some device calls."""
        for part in parts:
            count = part.frames.shape[0]
            self._ids.append(part.frame_ids)
            self._times.append(part.timestamps_us)
            self.device_time_s += part.device_time_s
            self._saturated += part.saturated_fraction * count
            self.frames += count

    @property
    def saturated_fraction(self) -> float:
        """Fraction of the output pixels acquired so far that were saturated."""
        return self._saturated / max(self.frames, 1)

    def context(
        self,
        info: DeviceInfo,
        layout: DMDLayout,
        applied: AppliedConfig,
        scale: tuple[float, float],
        calibration_id: str | None,
    ) -> TransformContext:
        """The :class:`TransformContext` of these frames; ``scale`` is (DN per unit intensity, dark level in DN)."""
        return TransformContext(
            exposure_us=applied.exposure_us,
            frametime_us=applied.frametime_us,
            gain_dn_per_intensity=scale[0],
            dark_level_dn=scale[1],
            input_roi=(*layout.offset, *layout.roi_shape),
            macro_pixel=layout.factor,
            output_roi=applied.output_roi,
            frame_ids=np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64),
            timestamps_us=np.concatenate(self._times) if self._times else np.zeros(0),
            device_time_s=self.device_time_s,
            saturated_fraction=self.saturated_fraction,
            calibration_id=calibration_id,
            fidelity=info.fidelity,
        )


class DeviceSession:
    """Exclusive, raw use of the device behind an OPU; made by :meth:`OPU.session`.

    ``frames`` counts the frames acquired through the session; ``layout`` and ``applied``
    are the geometry and the timing in force after :meth:`configure` (None before).
    """

    def __init__(self, opu: "OPU") -> None:
        self._opu = opu
        self._log = AcquisitionLog()
        self.layout: DMDLayout | None = None
        self.applied: AppliedConfig | None = None
        self._shape: tuple[int, int, float] | None = None

    @property
    def frames(self) -> int:
        """Frames acquired through this session."""
        return self._log.frames

    @property
    def info(self) -> DeviceInfo:
        """The device's description."""
        return self._opu.info

    @property
    def max_dn(self) -> float:
        """Saturated camera count (DN); infinite without a camera (ideal fidelity)."""
        bits = self.info.bit_depth
        return float((1 << bits) - 1) if bits else math.inf

    def clamp_exposure(self, exposure_us: float) -> float:
        """``exposure_us`` brought within the device's limits (us)."""
        limits = self.info.limits
        return float(min(max(exposure_us, limits.min_exposure_us), limits.max_exposure_us))

    def configure(self, n_features: int, n_outputs: int, exposure_us: float) -> AppliedConfig:
        """Show ``n_features`` features (1-D layout), read ``n_outputs`` pixels, expose ``exposure_us`` us.

        The exposure is clamped to the device's limits and the shortest frametime it allows
        is used. Returns what the device put in force; the OPU restores its own
        configuration before its next ``transform``.
        """
        exposure_us = self.clamp_exposure(exposure_us)
        shape = (n_features, n_outputs, exposure_us)
        if shape != self._shape or self.applied is None:
            layout = layout_1d(n_features, self.info.dmd_shape, self._opu.settings.input_roi_strategy)
            self.applied = self._opu._configure_for_session(layout, n_outputs, exposure_us)
            self.layout, self._shape = layout, shape
        return self.applied

    def acquire(self, features: np.ndarray) -> np.ndarray:
        """Frames (B, n_outputs) of binary ``features`` (B, n_features), in device-sized calls.

        Camera counts (DN), or float32 intensities in ideal fidelity. Nothing is counted
        unless every call succeeds.
        """
        if self.applied is None:
            raise RuntimeError("acquire: call configure() first in this session")
        features = np.ascontiguousarray(features, dtype=np.uint8)
        frames, parts = self._opu._acquire_frames(features, progress=False)
        self._log.add(parts)
        return frames

    def context(self, calibration_id: str | None) -> TransformContext:
        """Metadata of everything acquired in this session, at the configuration in force.

        Gain and dark level are the device's nominal ones at the exposure in force.
        """
        if self.applied is None:
            raise RuntimeError("context: call configure() first in this session")
        info = self.info
        return self._log.context(info, self.layout, self.applied, info.nominal_scale(self.applied.exposure_us), calibration_id)
