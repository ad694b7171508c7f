"""Linear projections from an intensity-only OPU (docs/physics.md sections 4.1 and 4.2).

Notation: c is the camera scale (DN per unit of ``|R x|^2``), ``I(x)`` a frame (DN) and
``I0`` the dark frame, N the features shown on the DMD.

**Complement scheme (B, default).** With ``t = R 1`` (the all-ones input is the reference),
``D(x) = I(x) - I(1 - x) + I(1) - I0 = 2 c Re(conj(t_j) (R x)_j)``, so
``y_j = D_j / (2 sqrt(I_j(1) - I0_j)) = sqrt(c) Re(e^{-i phi_j} (R x)_j)`` with
``phi_j = arg t_j``. Writing ``R_ji = t_j / N + r_ji``, the real matrix
``Re(e^{-i phi_j} R_ji) = |t_j| / N + e_ji`` has a row mean ``|t_j| / N`` (known:
``sqrt(I_j(1) - I0_j) / (sqrt(c) N)``) and zero-sum rows ``e_ji`` of variance ``(1 - 1/N) / (2N)``.
The all-ones direction of each row is the reference itself and carries no random
information, so the row mean is removed and replaced by ``h_j / sqrt(N)`` with ``h ~ N(0, 1)``
drawn once and kept in the record:

    M = sqrt(2 N) e + h 1^T / sqrt(N),

which has exactly the distribution of a matrix of i.i.d. N(0, 1) entries (an i.i.d.
Gaussian row is its projection orthogonal to 1, Gaussian with covariance ``I - 11^T/N``,
plus an independent N(0, 1) component along ``1 / sqrt(N)``). Two frames per binary input.

**Fixed-reference scheme (A).** The DMD shows the N data features plus ``n_reference``
always-lit reference features r; ``y_j = [I_j(x + r) - I_j(x) - I_j(r) + I0_j] / (2 sqrt(I_j(r) - I0_j))``
``= sqrt(c) Re(e^{-i phi_j} (R x)_j)`` with phi from ``R r``, independent of the data columns,
so ``M = sqrt(2 N_dmd) Re(e^{-i phi} R[:, :N])`` is i.i.d. N(0, 1) as it stands.

**Scale.** c is estimated from the data: E|(R x)_j|^2 + E|(R(1 - x))_j|^2 = 1 for any x, so the
mean over pixels and sentinel inputs of ``I(x) + I(1 - x) - 2 I0`` estimates c (in scheme A,
``I(x + r) + I(x) - 2 I0`` has mean ``c (2|x| + n_reference) / N_dmd``). The same estimator on every backend gives the
same scale (unit-variance entries of M) everywhere.

**Pixels.** The device reads ``n_candidates`` pixels (at least twice ``n_components``, whole
sensor rows) and keeps the ``n_components`` with the brightest reference that stays clear
of saturation (``I(1) - I0`` below 85 % of the dark-subtracted range): dark references
amplify noise without bound.

**Real-valued inputs.** Each vector is scaled by its largest magnitude, quantised to
``bits`` bits, split into positive and negative parts and sent as bit planes:
``z(x) = s / (2^b - 1) * sum_k 2^k (z(bit_k(q+)) - z(bit_k(q-)))``. Identical and empty
planes are acquired once / never (a binary input costs 2 frames whatever ``bits``).

**Saturation.** A frame pair with a saturated selected pixel (optical focusing) is
acquired again at a quarter of the exposure, and again, until it is clean or the device's
shortest exposure is reached (high-dynamic-range bracketing). Each output is taken from
the longest exposure at which both frames of its pair are unsaturated, its difference
rescaled by the exposure ratio (the dark level cancels in the difference), so the
unsaturated outputs keep the noise of the calibrated exposure.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Literal

import numpy as np

from opu_hal.errors import NotFittedError
from opu_hal.linear import pair_frames, z_from_differences
from opu_hal.record import CalibrationRecord, LinearCalibration, SentinelSet
from opu_hal.session import DeviceSession

from .exposure import Measurement, find_exposure

if TYPE_CHECKING:
    from opu_hal.opu import OPU

logger = logging.getLogger(__name__)

Scheme = Literal["complement", "reference"]
SCHEMES: tuple[str, ...] = ("complement", "reference")

#: Largest reference kept, as a fraction of the dark-subtracted range.
REFERENCE_CEILING = 0.85
#: Frames per device call when the dark and reference frames are averaged.
FRAMES_PER_CHUNK = 128


def _candidates(n_components: int, sensor_width: int, max_pixels: int) -> int:
    """Pixels to read: whole sensor rows holding at least twice ``n_components``."""
    rows = math.ceil(2 * n_components / sensor_width)
    return min(rows * sensor_width, max_pixels)


def _features(opu: "OPU") -> int:
    n = opu.n_features
    if n is None:
        raise NotFittedError("linear calibration: call fit1d or fit2d first")
    return int(np.prod(n)) if isinstance(n, tuple) else int(n)


# ---------------------------------------------------------------------------- calibration
def calibrate_linear(
    opu: "OPU",
    *,
    scheme: Scheme = "complement",
    exposure_us: float | None = None,
    n_reference: int | None = None,
    n_reference_frames: int = 1024,
    n_dark_frames: int = 256,
    n_sentinels: int = 16,
    seed: int = 0,
    record: CalibrationRecord | None = None,
) -> CalibrationRecord:
    """Calibrate linear projections for the fitted features and ``n_components`` of ``opu``.

    Parameters
    ----------
    scheme:
        ``"complement"`` (B, default) or ``"reference"`` (A).
    exposure_us:
        Exposure (us); default: auto-exposure on the reference and near-reference inputs
        (their 99.5 % percentile at 70 % of the range).
    n_reference:
        Reference features of scheme A (default: as many as data features).
    n_reference_frames:
        Frames averaged for the reference ``I(1) - I0`` (scheme A: ``I(r) - I0``). Its
        estimation error is a fixed per-output offset of every projection (the map is
        affine by it): with F frames its rms is about ``sqrt(2 / F)`` times the noise of one
        projection, 4 % at the default 1024 (docs/physics.md section 4.4).
    n_dark_frames:
        Frames averaged for the dark frame I0 (read noise only: far fewer needed).
    n_sentinels:
        Random binary inputs kept for the scale estimate, the repeatability metric and the
        drift monitor.
    seed:
        Seed of the sentinel inputs and of the completion vector h.
    record:
        Record to complete (its ``linear`` and ``sentinels`` sections are replaced); a new one by default.

    Returns
    -------
    The record, with ``linear``, ``sentinels``, the arrays ``linear_pixels``,
    ``linear_reference_dn``, ``linear_completion``, ``linear_sentinel_z`` (two passes of the
    sentinels' projections), ``sentinel_inputs``, ``sentinel_frames`` and
    ``sentinel_dark_dn``, the frames spent and the metric ``linear_noise_rel``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    if n_reference_frames < 1 or n_dark_frames < 1 or n_sentinels < 2:
        raise ValueError(
            "n_reference_frames, n_dark_frames, n_sentinels: expected >= 1, >= 1 and >= 2, "
            f"got {n_reference_frames}, {n_dark_frames} and {n_sentinels}"
        )
    n_features = _features(opu)
    n_components = opu.n_components
    n_ref = 0 if scheme == "complement" else (n_reference or n_features)
    n_dev = n_features + n_ref
    rng = np.random.default_rng(seed)
    with opu.session() as session:
        info = session.info
        n_cand = _candidates(n_components, info.camera_shape[1], info.limits.max_n_components)
        if n_cand < n_components + 1:
            raise ValueError(f"n_components: expected fewer than the {n_cand} camera pixels, got {n_components}")
        reference = np.zeros(n_dev, np.uint8)
        reference[n_features:] = 1
        if scheme == "complement":
            reference[:] = 1
        max_dn = session.max_dn
        if exposure_us is None:
            exposure_us = _reference_exposure(session, opu, n_dev, n_cand, reference, rng)
        session.configure(n_dev, n_cand, exposure_us)
        exposure_us = session.applied.exposure_us
        lit_fraction = session.layout.lit_fraction  # the unit of c: R / sqrt(lit_fraction) (docs/physics.md 4.3)
        dark_dn, _ = _mean_frame(session, np.zeros(n_dev, np.uint8), n_dark_frames)
        ref_mean, ref_peak = _mean_frame(session, reference, n_reference_frames)
        ref_dn = ref_mean - dark_dn
        hot = dark_dn >= max_dn - 0.5
        eligible = ~hot & (ref_peak < max_dn) & (ref_dn <= REFERENCE_CEILING * (max_dn - dark_dn))
        eligible &= ref_dn > 0
        if np.count_nonzero(eligible) < n_components:
            raise ValueError(
                f"n_components: expected at most {np.count_nonzero(eligible)} pixels with a usable reference "
                f"among {n_cand}, got {n_components}"
            )
        order = np.argsort(np.where(eligible, ref_dn, -np.inf))[::-1]
        pixels = np.sort(order[:n_components]).astype(np.int64)

        # sentinels: scale estimate, repeatability, drift
        sentinels = (rng.random((n_sentinels, n_features)) < 0.5).astype(np.uint8)
        data = pair_frames(sentinels, reference, scheme, n_features)
        first = session.acquire(data).astype(np.float64)
        second = session.acquire(data).astype(np.float64)
        scale = _scale(first, dark_dn, ~hot, scheme, n_dev, n_ref, sentinels.sum(axis=1, dtype=np.float64))
        frametime_us = session.applied.frametime_us
        frames = session.frames
        sentinel_time_s = float(session.context(None).timestamps_us[-1]) * 1e-6  # the device's clock
    h = np.random.default_rng([seed, 0x6C696E]).standard_normal(n_components)
    lin = LinearCalibration(
        scheme=scheme,
        n_features=n_features,
        n_device_features=n_dev,
        lit_fraction=lit_fraction,
        n_candidates=n_cand,
        n_components=n_components,
        exposure_us=exposure_us,
        frametime_us=frametime_us,
        dn_per_intensity=scale,
        dark_level_dn=float(dark_dn[~hot].mean()) if np.any(~hot) else float(dark_dn.mean()),
        max_dn=max_dn,
        noise_rel=0.0,
        frames=frames,
    )
    record = record or CalibrationRecord(device=opu.identity(), settings=opu.settings.model_dump())
    record.set_array("linear_pixels", pixels)
    record.set_array("linear_reference_dn", ref_dn[pixels].astype(np.float64))
    record.set_array("linear_completion", h)
    record.linear = lin
    z1 = z_from_differences(first[0::2, pixels] - first[1::2, pixels], record, sentinels)
    z2 = z_from_differences(second[0::2, pixels] - second[1::2, pixels], record, sentinels)
    noise = float(np.linalg.norm(z1 - z2) / (math.sqrt(2.0) * np.linalg.norm((z1 + z2) / 2)))
    record.set_array("linear_sentinel_z", np.stack([z1, z2]).astype(np.float32))
    record.linear = lin.model_copy(update={"noise_rel": noise})
    record.sentinels = SentinelSet(
        n_features=n_dev,
        n_outputs=n_cand,
        exposure_us=exposure_us,
        device_time_s=sentinel_time_s,
    )
    record.set_array("sentinel_inputs", pair_frames(sentinels, reference, scheme, n_features)[: 2 * n_sentinels : 2])
    record.set_array("sentinel_frames", first[::2].astype(np.float32))
    record.set_array("sentinel_dark_dn", dark_dn.astype(np.float32))
    record.metrics["linear_noise_rel"] = noise
    record.metrics["linear_dn_per_intensity"] = scale
    record.spend("linear", frames)
    logger.info(
        "linear calibration (%s): %d of %d pixels, exposure %.1f us, c = %.2f DN, repeatability %.2f %%, %d frames",
        scheme, n_components, n_cand, exposure_us, scale, 100 * noise, frames,
    )
    return record


def _mean_frame(session: DeviceSession, pattern: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and maximum count (DN) per candidate pixel over ``n_frames`` >= 1 frames of one DMD ``pattern``.

    Acquired in chunks of :data:`FRAMES_PER_CHUNK` frames, so memory does not grow with ``n_frames``.
    """
    chunks = [min(FRAMES_PER_CHUNK, n_frames - start) for start in range(0, n_frames, FRAMES_PER_CHUNK)]
    frames = session.acquire(np.tile(pattern, (chunks[0], 1))).astype(np.float64)
    total, peak = frames.sum(axis=0), frames.max(axis=0)
    for count in chunks[1:]:
        frames = session.acquire(np.tile(pattern, (count, 1))).astype(np.float64)
        total += frames.sum(axis=0)
        peak = np.maximum(peak, frames.max(axis=0))
    return total / n_frames, peak


def _reference_exposure(
    session: DeviceSession, opu: "OPU", n_dev: int, n_cand: int, reference: np.ndarray, rng: np.random.Generator
) -> float:
    """Auto-exposure on the reference and 7 near-reference inputs (the brightest frames of linear mode).

    Their 99.5 % percentile goes to 70 % of the range; the few saturated reference pixels
    (~5e-4 for exponential speckle) are not selected.
    """
    if not math.isfinite(session.max_dn):
        return opu.settings.exposure_us or session.info.default_exposure_us
    near = np.where(rng.random((7, n_dev)) < 0.1, 0, reference[None, :]).astype(np.uint8)
    inputs = np.vstack([reference[None, :], near])
    dark: list[float] = []

    def measure(exposure_us: float) -> Measurement:
        applied = session.configure(n_dev, n_cand, exposure_us)
        if not dark:
            dark.append(float(session.acquire(np.zeros((4, n_dev), np.uint8)).mean()))
        frames = session.acquire(inputs)
        return Measurement(applied.exposure_us, applied.frametime_us, frames, dark[0], session.max_dn)

    start = opu.settings.exposure_us or session.info.default_exposure_us
    result = find_exposure(
        measure, start, session.clamp_exposure, percentile=99.5, target_fraction=0.7, max_saturated_fraction=2e-3
    )
    return result.exposure_us


def _scale(
    frames: np.ndarray, dark: np.ndarray, ok: np.ndarray, scheme: str, n_dev: int, n_ref: int, lit: np.ndarray
) -> float:
    """Camera scale c (DN per unit intensity) from the sentinel pairs on all usable candidate pixels.

    E[I(a) + I(b) - 2 I0] = c (|a| + |b|) / n_dev: 1 for (x, 1 - x), (2 |x| + n_ref) / n_dev for (x + r, x).
    ``lit`` holds |x| of each sentinel.
    """
    sums = (frames[0::2] + frames[1::2] - 2 * dark)[:, ok].mean(axis=1)
    if scheme == "complement":
        return float(sums.mean())
    return float(np.mean(sums * n_dev / (2 * lit + n_ref)))


# ---------------------------------------------------------------------------- ground truth
def true_linear_map(R: np.ndarray, record: CalibrationRecord) -> np.ndarray:
    """The matrix M (n_components, n_features) that ``linear_transform`` estimates, from the true R.

    ``R`` is the emulator's transmission matrix of the calibration's geometry (at least
    ``n_candidates`` rows, ``n_device_features`` columns), e.g.
    ``opu.backend.model.transmission_matrix()`` right after a linear transform. The
    calibration's unit is R / sqrt(f), f the record's ``lit_fraction`` (E|R_ji|^2 = f / N:
    docs/physics.md sections 1.2 and 4.3).
    """
    lin = record.linear
    if lin is None:
        raise ValueError("record: expected a record with a linear calibration, got none")
    if R.ndim != 2 or R.shape[0] < lin.n_candidates or R.shape[1] != lin.n_device_features:
        raise ValueError(
            f"R: expected shape (>= {lin.n_candidates}, {lin.n_device_features}) of the calibrated geometry, got {R.shape}"
        )
    rows = R[record.array("linear_pixels")].astype(np.complex128) / math.sqrt(lin.lit_fraction)
    n = lin.n_features
    if lin.scheme == "complement":
        t = rows.sum(axis=1)
        e = np.real(np.conj(t / np.abs(t))[:, None] * rows) - (np.abs(t) / n)[:, None]
        return math.sqrt(2.0 * n) * e + record.array("linear_completion")[:, None] / math.sqrt(n)
    t = rows[:, n:].sum(axis=1)
    return math.sqrt(2.0 * lin.n_device_features) * np.real(np.conj(t / np.abs(t))[:, None] * rows[:, :n])
