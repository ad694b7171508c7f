"""Camera characterisation after EMVA 1288 (docs/physics.md section 2.4): dark frames and the photon-transfer curve.

**Dark frames** (all mirrors off): offset (mean count, DN), temporal dark noise (DN),
DSNU (spatial std of the per-pixel dark mean, the temporal part removed, DN) and hot
pixels (dark mean more than 6 sigma plus 1 DN above the offset).

**Photon-transfer curve.** The all-ones input lights a speckle pattern; pairs of frames are
taken at exposures spaced geometrically from ~2 % to ~100 % of saturation for the mean
pixel, with a dark pair at each. Per pixel and exposure, the mean ``mu = (A + B)/2 - dark``
and the temporal variance ``(A - B)^2 / 2`` give one point; speckle spreads the pixels
over the whole range, and the points are averaged in bins of mu. Each frame is first
normalised by its total dark-subtracted signal over the unsaturated pixels, which removes
the laser's frame-to-frame power jitter (it would add ``(jitter * mu)^2`` to the variance).
For a linear camera ``var = K mu + sigma_dark^2``:

- system gain K (DN/e-): slope of the weighted least-squares line through the bins between
  10 % and 70 % of saturation (below 10 % an 8-bit camera's quantisation dominates);
- saturation (DN, e-): mean at the variance peak;
- read noise: ``sqrt(sigma_dark^2 - 1/12)`` (DN; 1/12 DN^2 is the quantisation noise) over K
  (e-). Below 0.5 DN of dark noise (the default 8-bit camera: 12 e- are 0.26 DN) the
  quantisation of dark frames is not a uniform dither and this fails
  (``read_noise_resolved`` False); the read noise is then taken from the intercept of the
  photon-transfer line instead, where shot noise dithers the quantisation
  (``read_noise_source`` "ptc_intercept"), a less precise extrapolation;
- linearity error (%): half the spread of the relative deviations from a straight line of
  the mean signal against exposure, over pixels unsaturated at every exposure, between
  5 % and 95 % of saturation.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from opu_hal.record import CalibrationRecord, CameraCalibration
from opu_hal.session import DeviceSession

if TYPE_CHECKING:
    from opu_hal.opu import OPU

logger = logging.getLogger(__name__)

N_BINS = 128
MIN_BIN_COUNT = 50
FIT_RANGE = (0.10, 0.70)
LINEARITY_RANGE = (0.05, 0.95)


def _normalise_power(frame: np.ndarray, dark: float, reference: float, ok: np.ndarray) -> np.ndarray:
    """Scale a dark-subtracted frame so that its total over ``ok`` pixels equals ``reference``."""
    signal = frame - dark
    total = float(signal[ok].sum())
    return signal * (reference / total) if total > 0 else signal


def characterise_camera(
    opu: "OPU",
    *,
    rows: int = 32,
    n_dark_frames: int = 16,
    n_exposures: int = 16,
    n_features: int = 64,
    record: CalibrationRecord | None = None,
) -> CalibrationRecord:
    """Measure the camera of ``opu``'s device; see the module docstring.

    Parameters
    ----------
    rows:
        Sensor rows read (pixels = rows x sensor width).
    n_dark_frames:
        Dark frames for offset, DSNU and temporal dark noise.
    n_exposures:
        Exposures of the photon-transfer curve (one pair and one dark pair each).
    n_features:
        Features lit (all ones) to make the speckle.
    record:
        Record to complete; a new one by default.

    Returns
    -------
    The record with its ``camera`` section and the arrays ``camera_ptc_mean_dn``,
    ``camera_ptc_var_dn2``, ``camera_ptc_count``, ``camera_linearity`` ((exposure_us,
    mean_dn) pairs) and ``camera_hot_pixels``.
    """
    if rows < 1 or n_dark_frames < 2 or n_exposures < 4:
        raise ValueError(
            f"rows, n_dark_frames, n_exposures: expected >= 1, >= 2, >= 4, got {rows}, {n_dark_frames}, {n_exposures}"
        )
    with opu.session() as session:
        info = session.info
        if info.bit_depth == 0:
            raise ValueError("device: camera characterisation needs a camera, got a device without one (ideal fidelity)")
        max_dn = session.max_dn
        n_out = min(rows * info.camera_shape[1], info.limits.max_n_components)
        base = opu.settings.exposure_us or info.default_exposure_us
        dark_stats = _dark_frames(session, n_features, n_out, base, n_dark_frames, max_dn)
        offset, dark_var, dsnu, hot = dark_stats
        good = ~hot
        ones = np.ones((1, n_features), np.uint8)
        session.configure(n_features, n_out, base)
        probe = float(np.mean(session.acquire(ones)[0, good])) - offset
        top = session.clamp_exposure(base * (max_dn - offset) / max(probe, 1e-3))
        exposures = np.geomspace(top / 50.0, top, n_exposures)
        means, variances, levels = [], [], []
        used: list[float] = []
        for exposure in exposures:
            applied = session.configure(n_features, n_out, float(exposure))
            if used and applied.exposure_us == used[-1]:
                continue
            used.append(applied.exposure_us)
            dark = float(session.acquire(np.zeros((2, n_features), np.uint8))[:, good].mean())
            a, b = session.acquire(np.repeat(ones, 2, axis=0)).astype(np.float64)
            ok = good & (a < max_dn) & (b < max_dn)
            reference = 0.5 * float((a[ok] + b[ok] - 2 * dark).sum())
            a_n = _normalise_power(a, dark, reference, ok)
            b_n = _normalise_power(b, dark, reference, ok)
            means.append(((a_n + b_n) / 2)[good])
            variances.append(((a_n - b_n) ** 2 / 2)[good])
            levels.append(np.where(ok, (a_n + b_n) / 2, np.nan)[good])
        frames = session.frames
    mu, var = np.concatenate(means), np.concatenate(variances)
    edges = np.linspace(0.0, max_dn - offset + 1.0, N_BINS + 1)
    index = np.clip(np.digitize(mu, edges) - 1, 0, N_BINS - 1)
    count = np.bincount(index, minlength=N_BINS)
    filled = count >= MIN_BIN_COUNT
    bin_mu = np.bincount(index, mu, N_BINS)[filled] / count[filled]
    bin_var = np.bincount(index, var, N_BINS)[filled] / count[filled]
    bin_count = count[filled]
    peak = int(np.argmax(bin_var))
    saturation_dn = float(bin_mu[peak])
    fit = (bin_mu >= FIT_RANGE[0] * saturation_dn) & (bin_mu <= FIT_RANGE[1] * saturation_dn)
    if np.count_nonzero(fit) < 3:
        raise ValueError("exposures: the photon-transfer curve has fewer than 3 usable bins; read more rows")
    gain, intercept = np.polyfit(bin_mu[fit], bin_var[fit], 1, w=np.sqrt(bin_count[fit]))
    dark_noise = math.sqrt(dark_var)
    resolved = dark_noise >= 0.5
    read_dn = math.sqrt(max((dark_var if resolved else intercept) - 1.0 / 12.0, 0.0))
    linearity, lin_pairs = _linearity(np.array(used), np.vstack(levels), saturation_dn)
    camera = CameraCalibration(
        dark_exposure_us=base,
        offset_dn=offset,
        dark_noise_dn=dark_noise,
        dsnu_dn=dsnu,
        hot_pixels=int(hot.sum()),
        gain_dn_per_e=float(gain),
        read_noise_dn=read_dn,
        read_noise_e=read_dn / float(gain),
        read_noise_resolved=resolved,
        read_noise_source="dark" if resolved else "ptc_intercept",
        saturation_dn=saturation_dn,
        saturation_capacity_e=saturation_dn / float(gain),
        linearity_error_pct=linearity,
        n_pixels=n_out,
        exposures_us=[float(e) for e in used],
        frames=frames,
    )
    record = record or CalibrationRecord(device=opu.identity(), settings=opu.settings.model_dump())
    record.camera = camera
    record.set_array("camera_ptc_mean_dn", bin_mu)
    record.set_array("camera_ptc_var_dn2", bin_var)
    record.set_array("camera_ptc_count", bin_count)
    record.set_array("camera_linearity", lin_pairs)
    record.set_array("camera_hot_pixels", np.flatnonzero(hot))
    record.spend("camera", frames)
    record.metrics.update(
        camera_gain_dn_per_e=camera.gain_dn_per_e,
        camera_read_noise_e=camera.read_noise_e,
        camera_ptc_intercept_dn2=float(intercept),
    )
    logger.info(
        "camera: K = %.4f DN/e-, read noise %.2f e- (%s), saturation %.0f e-, linearity error %.2f %%",
        camera.gain_dn_per_e, camera.read_noise_e, "resolved" if resolved else "below quantisation",
        camera.saturation_capacity_e, camera.linearity_error_pct,
    )
    return record


def _dark_frames(
    session: DeviceSession, n_features: int, n_out: int, exposure_us: float, n_frames: int, max_dn: float
) -> tuple[float, float, float, np.ndarray]:
    """Offset (DN), temporal dark variance (DN^2), DSNU (DN) and the hot-pixel mask."""
    session.configure(n_features, n_out, exposure_us)
    dark = session.acquire(np.zeros((n_frames, n_features), np.uint8)).astype(np.float64)
    pixel_mean = dark.mean(axis=0)
    temporal = dark.var(axis=0, ddof=1)
    stuck = pixel_mean >= max_dn - 0.5
    offset = float(np.median(pixel_mean[~stuck])) if np.any(~stuck) else float(max_dn)
    dark_var = float(temporal[~stuck].mean())
    spatial = float(pixel_mean[~stuck].var()) - dark_var / n_frames
    dsnu = math.sqrt(max(spatial, 0.0))
    hot = stuck | (pixel_mean > offset + 6.0 * math.sqrt(dark_var + dsnu**2) + 1.0)
    offset = float(pixel_mean[~hot].mean())
    return offset, dark_var, dsnu, hot


def _linearity(exposures: np.ndarray, levels: np.ndarray, saturation_dn: float) -> tuple[float, np.ndarray]:
    """EMVA linearity error (%) and the (exposure_us, mean_dn) pairs it was computed from.

    ``levels`` (exposures, pixels): mean dark-subtracted signal, NaN where saturated.
    Uses the pixels unsaturated at every exposure that reach 75 % to 95 % of saturation at
    the longest one, so their mean spans the range.
    """
    top = levels[-1]
    chosen = np.all(np.isfinite(levels), axis=0) & (top >= 0.75 * saturation_dn) & (top <= 0.95 * saturation_dn)
    if not np.any(chosen):
        return math.nan, np.zeros((0, 2))
    mean = levels[:, chosen].mean(axis=1)
    pairs = np.column_stack([exposures, mean])
    keep = (mean >= LINEARITY_RANGE[0] * saturation_dn) & (mean <= LINEARITY_RANGE[1] * saturation_dn)
    if np.count_nonzero(keep) < 3:
        return math.nan, pairs
    slope, icpt = np.polyfit(exposures[keep], mean[keep], 1)
    fitted = slope * exposures[keep] + icpt
    delta = (mean[keep] - fitted) / fitted
    return float((delta.max() - delta.min()) / 2 * 100), pairs
