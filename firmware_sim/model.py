"""The whole emulated OPU: DMD, medium, laser, camera and time, independent of any transport.

``OPUModel`` is what firmware (or the in-process ``emu://`` backend) drives: configure it
for N features and M outputs, then acquire batches of binary inputs. Each acquisition
returns the camera frames and what a real device would report with them: frame ids,
device timestamps (us), exposure and frametime (us), saturated fraction, and the device
time the batch took (s).

Camera pixels: output j is pixel ``(roi_y0 + j // width, j % width)`` of the sensor, where
the output ROI spans full sensor rows centred on the sensor. Row j of the transmission
matrix belongs to output j.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from opu_hal.limits import MAX_EXPOSURE_US, MIN_EXPOSURE_US
from opu_hal.validation import check_rows_out

from . import timing
from .camera import Camera
from .laser import Laser
from .medium import Medium, MediumKind, resolve_medium
from .medium_dense import DenseMedium
from .medium_structured import StructuredMedium
from .params import EmulatorParams

logger = logging.getLogger(__name__)

CAMERA_SECONDS_PER_PIXEL = 7e-9  # physical fidelity's noise per pixel, 2 cores (estimates: docs/physics.md section 1.8)
SLOW_ROW_S = 60.0  # a dense product slower than this per row is announced with a WARNING
FIRMWARE_VERSION = "0.1.0"
_CHUNK_BYTES = 256 * 2**20  # field (complex64) computed at once by acquire: 16 rows of 2,000,000 outputs
MODEL_NAME = "firmware_sim emulated OPU"


@dataclass(frozen=True)
class Acquisition:
    """Frames of one batch and their metadata.

    ``frames``: (B, n_components) camera counts (uint8/uint16), or float32 ``|R x|^2`` in
    ideal fidelity. ``timestamps_us``: device time of each frame's start (us).
    """

    frames: np.ndarray
    frame_ids: np.ndarray
    timestamps_us: np.ndarray
    exposure_us: float
    frametime_us: float
    saturated_fraction: float
    device_time_s: float


@dataclass(frozen=True)
class Configuration:
    """Acquisition geometry and timing in force."""

    n_features: int
    n_components: int
    exposure_us: float
    frametime_us: float
    roi: tuple[int, int, int, int]  # output ROI on the sensor: (y0, x0, rows, columns)
    mirrors_per_feature: int = 1  # mirrors of one feature's macro-pixel (factor ** 2)


class OPUModel:
    """Physical model of an OPU (docs/physics.md sections 1-3)."""

    def __init__(self, params: EmulatorParams | None = None) -> None:
        self.params = params or EmulatorParams()
        p = self.params
        self.medium = self._make_medium(self.medium_for(1, 1))
        self.camera = Camera(p)
        self.laser = Laser(p)
        self.next_frame_id = 0
        self.time_us = 0.0
        self.config: Configuration | None = None

    # ------------------------------------------------------------------ description
    @property
    def ideal(self) -> bool:
        """True in ideal fidelity (no camera: float intensities)."""
        return self.params.fidelity == "ideal"

    @property
    def serial(self) -> str:
        """Serial number of the emulated device (derived from the seed)."""
        return f"EMU-{self.params.seed:08d}"

    def max_outputs(self) -> int:
        """Most outputs one frame can return (the whole sensor)."""
        return self.params.n_pixels

    def dark_level_dn(self, exposure_us: float) -> float:
        """Mean camera count of an unlit pixel (DN)."""
        if self.ideal:
            return 0.0
        p = self.params
        return p.offset_dn + p.system_gain * self.camera.dark_electrons(exposure_us)

    def dn_per_intensity(self, exposure_us: float) -> float:
        """Mean camera counts per unit of ``|R x|^2`` at this exposure (DN), laser at setpoint."""
        if self.ideal:
            return 1.0
        p = self.params
        return p.system_gain * p.electrons_per_intensity_per_us * exposure_us * self.laser.power_mw / p.laser_power_mw

    # ------------------------------------------------------------------ configuration
    def configure(
        self,
        n_features: int,
        n_components: int,
        exposure_us: float | None = None,
        frametime_us: float | None = None,
        mirrors_per_feature: int = 1,
    ) -> Configuration:
        """Set the geometry and timing; makes the transmission matrix if it fits the budget.

        ``mirrors_per_feature``: DMD mirrors of each feature's macro-pixel (``factor ** 2`` of
        the layout); a lit feature sends that many mirrors' worth of light (docs/physics.md
        section 1.1).
        """
        p = self.params
        if not 1 <= n_components <= self.max_outputs():
            raise ValueError(f"n_components: expected 1 to {self.max_outputs()} (camera pixels), got {n_components}")
        if not 1 <= n_features <= p.n_mirrors:
            raise ValueError(f"n_features: expected 1 to {p.n_mirrors} (DMD mirrors), got {n_features}")
        if not (isinstance(mirrors_per_feature, int) and 1 <= mirrors_per_feature * n_features <= p.n_mirrors):
            raise ValueError(
                f"mirrors_per_feature: expected an integer from 1 to {p.n_mirrors // n_features} "
                f"({n_features} features on {p.n_mirrors} DMD mirrors), got {mirrors_per_feature!r}"
            )
        exposure_us = p.exposure_us if exposure_us is None else exposure_us
        if not MIN_EXPOSURE_US <= exposure_us <= MAX_EXPOSURE_US:
            raise ValueError(f"exposure_us: expected {MIN_EXPOSURE_US:g} to {MAX_EXPOSURE_US:g} us, got {exposure_us}")
        rows = timing.roi_rows(p, n_components)
        shortest = timing.min_frametime_us(p, exposure_us, rows)
        if frametime_us is None:
            frametime_us = shortest
        elif frametime_us < shortest:
            raise ValueError(
                f"frametime_us: expected at least {shortest:.1f} us (exposure {exposure_us:.1f} us, "
                f"readout of {rows} rows), got {frametime_us}"
            )
        roi = ((p.camera_shape[0] - rows) // 2, 0, rows, p.camera_shape[1])
        self.config = Configuration(n_features, n_components, exposure_us, frametime_us, roi, mirrors_per_feature)
        kind = self.medium_for(n_features, n_components)
        if kind != self.medium.kind:  # auto crossed the memory budget: the other model, at the same device time
            self.medium.close()
            self.medium = self._make_medium(kind)
            self.medium.advance(self.time_us * 1e-6)
        logger.info("medium: %s (%s) for %d features x %d outputs", kind, self.params.medium, n_features, n_components)
        self._warn_if_slow(n_features, n_components)
        self.medium.prepare(n_features, self._field_outputs(n_components))
        logger.debug("configured %s", self.config)
        return self.config

    def medium_for(self, n_features: int, n_components: int) -> MediumKind:
        """The medium model (``dense`` or ``structured``) a configuration uses (docs/physics.md section 1.7).

        ``medium=auto``: dense while the matrix of the field outputs fits the memory budget.
        """
        p = self.params
        return resolve_medium(p.medium, n_features, self._field_outputs(n_components), p.cache_mb)

    def estimate_seconds(self, batch: int) -> float:
        """Rough compute time (s) of acquiring ``batch`` rows in one call at the configuration in force.

        The medium's product plus, in physical fidelity, the camera's noise: an order of
        magnitude (docs/physics.md section 1.8) for progress reporting. Device time (the
        frametimes) is emulated, not waited for, so it does not count.
        """
        cfg = self._require_config()
        seconds = self.medium.estimate_seconds(batch, cfg.n_features, self._field_outputs(cfg.n_components))
        if not self.ideal:
            seconds += batch * cfg.n_components * CAMERA_SECONDS_PER_PIXEL
        return seconds

    def _warn_if_slow(self, n_features: int, n_components: int) -> None:
        """WARNING when a dense product would take minutes per row, naming the structured medium."""
        if self.medium.kind != "dense":
            return
        n_out = self._field_outputs(n_components)
        per_call = self.medium.estimate_seconds(0, n_features, n_out)  # a streamed matrix, made at every call
        per_row = self.medium.estimate_seconds(1, n_features, n_out) - per_call
        if per_call + per_row < SLOW_ROW_S:
            return
        structured = StructuredMedium(self.params.seed).estimate_seconds(1, n_features, n_out)
        logger.warning(
            "medium=dense: %d features x %d outputs take about %.1f min per device call (the %.1f GB matrix is "
            "generated again) plus %.2f s per row; medium=structured computes a row in about %.2f s",
            n_features, n_components, per_call / 60, n_features * n_out * 8 / 1e9, per_row, structured,
        )

    def _make_medium(self, kind: MediumKind) -> Medium:
        """A new medium of model ``kind`` from the parameters (at device time 0)."""
        p = self.params
        if kind == "dense":
            return DenseMedium(p.seed, p.tile_size, p.cache_mb, p.drift_tau_s)
        return StructuredMedium(p.seed, p.cache_mb, p.drift_tau_s)

    def _field_outputs(self, n_components: int) -> int:
        """Pixels whose field must be computed.

        When grains couple pixels: the ROI rectangle plus a margin of the blur's half-width
        on every side, so that every pixel of the ROI sees a full kernel of independent
        field values (no border effect: the same mean and contrast at the edges).
        """
        if self.params.grain_px <= 1:
            return n_components
        rows = timing.roi_rows(self.params, n_components)
        pad = self._grain_kernel().size // 2
        return (rows + 2 * pad) * (self.params.camera_shape[1] + 2 * pad)

    def _grain_kernel(self) -> np.ndarray:
        """1-D Gaussian blur of the field whose intensity correlation has FWHM ``grain_px`` (pixels)."""
        sigma = self.params.grain_px / (2 * math.sqrt(2 * math.log(2)))  # field kernel FWHM = grain
        size = 2 * math.ceil(3 * sigma) + 1
        return cv2.getGaussianKernel(size, sigma).astype(np.float32)

    # ------------------------------------------------------------------ time
    def advance(self, seconds: float) -> None:
        """Let device time pass without acquiring (the medium drifts, the laser wanders)."""
        self._elapse_us(seconds * 1e6)

    def _elapse_us(self, microseconds: float) -> None:
        # Device time is kept in microseconds, so frames of a whole number of microseconds
        # get exact timestamps however a batch is split.
        self.medium.advance(microseconds * 1e-6)
        self.time_us += microseconds

    # ------------------------------------------------------------------ optics
    @property
    def lit_fraction(self) -> float:
        """Fraction of the DMD's mirrors the all-ones input lights: N · mirrors per feature / mirrors.

        The media keep E|R_ji|^2 = 1/N per feature; the model scales R by ``sqrt(lit_fraction)``
        so that E|R_ji|^2 = (mirrors per feature) / (DMD mirrors): the light follows the lit
        mirrors (docs/physics.md section 1.2).
        """
        cfg = self._require_config()
        return cfg.n_features * cfg.mirrors_per_feature / self.params.n_mirrors

    def field(self, features: np.ndarray) -> np.ndarray:
        """Complex field on the output pixels, complex64 (B, n_components)."""
        cfg = self._require_config()
        n_out = self._field_outputs(cfg.n_components)
        u = self.medium.field(features, n_out)
        u *= np.float32(math.sqrt(self.lit_fraction))
        if self.params.grain_px > 1:
            u = self._speckle_grain(u, cfg.roi[2])[:, : cfg.n_components]
        return u

    def _speckle_grain(self, u: np.ndarray, rows: int) -> np.ndarray:
        """Correlate neighbouring pixels: a Gaussian blur of the field of width ``grain_px``.

        ``u`` holds the field of the ROI's ``rows`` plus the margin of ``_field_outputs``;
        the result is the ROI only, (B, rows * sensor width) complex64, with the field's
        variance preserved (the kernel has unit energy), so the intensity's mean and
        contrast do not change.
        """
        width = self.params.camera_shape[1]
        kernel = self._grain_kernel()
        pad = kernel.size // 2
        kernel /= np.float32(math.sqrt(float(np.sum(kernel**2))))  # unit energy in 2-D: ||k x k|| = 1
        planes = u.view(np.float32).reshape(u.shape[0], rows + 2 * pad, width + 2 * pad, 2)
        out = np.empty((u.shape[0], rows, width, 2), dtype=np.float32)
        for b in range(planes.shape[0]):
            for part in (0, 1):
                blurred = cv2.sepFilter2D(np.ascontiguousarray(planes[b, :, :, part]), -1, kernel, kernel)
                out[b, :, :, part] = blurred[pad : pad + rows, pad : pad + width]
        return out.reshape(u.shape[0], rows * width * 2).view(np.complex64)

    def intensity(
        self, features: np.ndarray, scale: float | np.ndarray = 1.0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact ``|R x|^2`` times ``scale`` (one number, or one per row), float32 (B, n_components).

        ``out``: a float32 (B, n_components) array with contiguous rows to write into (returned).
        """
        if self.params.grain_px > 1:
            parts = self.field(features).view(np.float32).reshape(features.shape[0], -1, 2)
            if out is None:
                out = np.empty(parts.shape[:2], dtype=np.float32)
            check_rows_out(out, parts.shape[:2], np.float32)
            np.square(parts[..., 0], out=out)
            out += np.square(parts[..., 1])
            out *= np.asarray(scale, dtype=np.float32).reshape(-1, 1)
            return out
        # The medium squares its field in place: no complex copy of the outputs, one pass for the light.
        n_out = self._field_outputs(self._require_config().n_components)
        return self.medium.intensity(
            features, n_out, np.float32(self.lit_fraction) * np.asarray(scale, np.float32), out=out
        )

    def transmission_matrix(self, features: np.ndarray | None = None) -> np.ndarray:
        """Ground truth R (complex64, n_components x n_features) at the current device time.

        ``features``: indices of the columns to return (n_components x len(features)), for
        a block of a matrix too large to hold; None for all.
        """
        cfg = self._require_config()
        if self.params.grain_px > 1:
            raise ValueError("grain_px: the transmission matrix of a grainy camera is not a single block of G")
        r = self.medium.matrix(cfg.n_components, cfg.n_features, features)
        r *= np.float32(math.sqrt(self.lit_fraction))
        return r

    # ------------------------------------------------------------------ acquisition
    def _require_config(self) -> Configuration:
        if self.config is None:
            raise RuntimeError("the emulated OPU is not configured: call configure() first")
        return self.config

    def acquire(self, features: np.ndarray) -> Acquisition:
        """Show each row of ``features`` (B, n_features; 0/1) on the DMD and read the camera.

        Rows go through the optics and the camera in chunks of about ``_CHUNK_BYTES`` of
        field, so memory stays bounded at any size (the frames aside).
        """
        cfg = self._require_config()
        batch = features.shape[0]
        frame_ids = np.arange(self.next_frame_id, self.next_frame_id + batch, dtype=np.int64)
        timestamps_us = self.time_us + cfg.frametime_us * np.arange(batch)
        power = None if self.ideal else self.laser.relative_power(frame_ids, timestamps_us * 1e-6).astype(np.float32)
        step = max(1, _CHUNK_BYTES // (8 * self._field_outputs(cfg.n_components)))
        frames = np.empty((batch, cfg.n_components), dtype=np.float32 if self.ideal else self.camera.dtype)
        # The light of a chunk (physical): one buffer for all chunks, its pages touched once.
        light = None if self.ideal else np.empty((min(step, batch), cfg.n_components), dtype=np.float32)
        saturated_pixels = 0
        for start in range(0, batch, step):  # written in place: no copy of the frames
            rows = slice(start, start + step)
            if power is None:
                self.intensity(features[rows], out=frames[rows])
            else:
                saturated_pixels += self._expose(features[rows], frame_ids[rows], power[rows], light, frames[rows])
        saturated = saturated_pixels / max(frames.size, 1)
        device_time_s = batch * cfg.frametime_us * 1e-6
        self.next_frame_id += batch
        self._elapse_us(batch * cfg.frametime_us)
        return Acquisition(frames, frame_ids, timestamps_us, cfg.exposure_us, cfg.frametime_us, saturated, device_time_s)

    def _expose(
        self, features: np.ndarray, frame_ids: np.ndarray, power: np.ndarray, light: np.ndarray, out: np.ndarray
    ) -> int:
        """The camera's counts of some rows into ``out``, with laser power ``power`` (relative) and
        ``light`` as work space for their mean photo-electrons; returns the pixels at the ADC maximum."""
        exposure_us = self._require_config().exposure_us
        electrons = self.intensity(
            features, power * np.float32(self.params.electrons_per_intensity_per_us * exposure_us),
            out=light[: features.shape[0]],
        )
        return self.camera.expose_into(electrons, exposure_us, frame_ids, out)

    def close(self) -> None:
        """Release the matrix and worker threads."""
        self.medium.close()
        self.camera.close()

