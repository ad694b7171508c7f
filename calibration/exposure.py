"""Auto-exposure for speckle (docs/physics.md section 2.5).

The exposure is set so that a high percentile (default 99.9 %) of the dark-subtracted
output over representative inputs sits at a fraction (default 0.7) of the dark-subtracted
range, never the maximum: speckle maxima grow like ln M times the mean, so the maximum of
a frame says little about the bulk. For exponential speckle statistics, a 99.9 %
percentile at 0.7 of the range leaves a fraction ``1000 ** (-1 / 0.7) = 5e-5`` of pixels
saturated, within the default cap of 1e-4.

When the percentile itself is saturated (exposure far too long) it is extrapolated from a
lower, unsaturated percentile, or from the saturated fraction, with the exponential law
of speckle ``Q(p) = mean * ln(1 / (1 - p))``, so that even a 10x over-exposure converges in
a couple of acquisitions.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from opu_hal.errors import NotFittedError, SaturationWarning
from opu_hal.record import ExposureCalibration

if TYPE_CHECKING:
    from opu_hal.opu import OPU

logger = logging.getLogger(__name__)

HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class Measurement:
    """One acquisition at ``exposure_us``: raw frames (DN) and the dark level (DN) to subtract."""

    exposure_us: float
    frametime_us: float
    frames: np.ndarray
    dark_dn: float
    max_dn: float


def speckle_quantile(signal: np.ndarray, saturated: np.ndarray, percentile: float, range_dn: float) -> float:
    """The ``percentile`` of dark-subtracted ``signal`` (DN), extrapolated when it is saturated.

    ``saturated`` marks values at the ADC maximum; ``range_dn`` is the dark-subtracted
    saturation level. Returns ``inf`` when nearly everything is saturated.
    """
    p = percentile / 100.0
    s = float(np.mean(saturated))
    if s <= (1.0 - p) / 2:
        return float(np.quantile(signal, p))
    if s >= 0.99:
        return math.inf
    tail = math.log(1.0 / (1.0 - p))
    p_ref = 1.0 - 2.0 * s
    if p_ref >= 0.5:
        return float(np.quantile(signal, p_ref)) * tail / math.log(1.0 / (1.0 - p_ref))
    return range_dn * tail / math.log(1.0 / s)


def find_exposure(
    measure: Callable[[float], Measurement],
    start_us: float,
    clamp: Callable[[float], float],
    *,
    percentile: float = 99.9,
    target_fraction: float = 0.7,
    max_saturated_fraction: float = 1e-4,
    tolerance: float = 0.05,
    max_acquisitions: int = 8,
) -> ExposureCalibration:
    """Iterate ``measure(exposure_us)`` until the percentile is within ``tolerance`` of its target.

    ``clamp`` maps an exposure to the device's allowed range (us). Stops early when the
    device's exposure limit is reached.
    """
    if not 50.0 <= percentile < 100.0:
        raise ValueError(f"percentile: expected 50 <= percentile < 100, got {percentile}")
    if not 0.0 < target_fraction < 1.0:
        raise ValueError(f"target_fraction: expected 0 < target_fraction < 1, got {target_fraction}")
    if max_acquisitions < 1:
        raise ValueError(f"max_acquisitions: expected at least 1, got {max_acquisitions}")
    exposure = clamp(start_us)
    history: list[tuple[float, float, float]] = []
    first: Measurement | None = None
    converged = False
    for _ in range(max_acquisitions):
        m = measure(exposure)
        if not math.isfinite(m.max_dn):
            raise ValueError("device: auto-exposure needs a camera, got a device without one (ideal fidelity)")
        first = first or m
        saturated = m.frames >= m.max_dn
        range_dn = m.max_dn - m.dark_dn
        quantile = speckle_quantile(m.frames.astype(np.float32) - np.float32(m.dark_dn), saturated, percentile, range_dn)
        sat_fraction = float(np.mean(saturated))
        target = target_fraction * range_dn
        history.append((m.exposure_us, quantile, sat_fraction))
        logger.debug("exposure %.1f us: p%.2f = %.1f DN (target %.1f), saturated %.2e", exposure, percentile, quantile, target, sat_fraction)
        if abs(quantile / target - 1.0) <= tolerance and sat_fraction <= max_saturated_fraction:
            converged = True
            break
        if not math.isfinite(quantile):
            factor = 0.1
        elif quantile <= 0.0:
            factor = 10.0
        else:
            factor = min(max(target / quantile, 0.01), 100.0)
        if sat_fraction > max_saturated_fraction:
            factor = min(factor, 0.9)
        new = clamp(exposure * factor)
        if new == exposure:
            logger.warning("auto-exposure: the device's exposure limit %.1f us is reached before the target", new)
            break
        exposure = new
    last = m
    if not converged:
        logger.warning("auto-exposure did not converge in %d acquisitions: %s", len(history), history[-1])
    edges = np.linspace(0.0, last.max_dn + 1.0, HISTOGRAM_BINS + 1)
    return ExposureCalibration(
        exposure_us=last.exposure_us,
        frametime_us=last.frametime_us,
        frame_rate_hz=1e6 / last.frametime_us,
        percentile=percentile,
        target_fraction=target_fraction,
        quantile_dn=history[-1][1],
        target_dn=target_fraction * (last.max_dn - last.dark_dn),
        saturated_fraction=history[-1][2],
        acquisitions=len(history),
        converged=converged,
        history=history,
        histogram_before=np.histogram(first.frames, edges)[0].tolist(),
        histogram_after=np.histogram(last.frames, edges)[0].tolist(),
        max_dn=last.max_dn,
    )


def auto_exposure(
    opu: "OPU",
    inputs: np.ndarray | None = None,
    *,
    percentile: float = 99.9,
    target_fraction: float = 0.7,
    max_saturated_fraction: float = 1e-4,
    tolerance: float = 0.05,
    max_acquisitions: int = 8,
    apply: bool = True,
    seed: int = 0,
) -> ExposureCalibration:
    """Set the exposure of a fitted ``opu`` for speckle; see the module docstring.

    Parameters
    ----------
    inputs:
        Representative binary inputs shaped like ``transform`` input; default 8 random
        inputs of density 1/2 (seeded by ``seed``).
    percentile, target_fraction:
        The ``percentile`` (%) of the dark-subtracted output is brought to
        ``target_fraction`` of the dark-subtracted range (``max_dn - dark``).
    max_saturated_fraction:
        Largest accepted fraction of saturated pixels.
    tolerance:
        Relative tolerance on the percentile.
    apply:
        Keep the exposure found in ``opu.settings`` (else restore the previous settings).

    Returns
    -------
    The result, with the achieved frametime (us) and frame rate (Hz). The frametime is the
    shortest the device allows at that exposure.
    """
    if opu.layout is None:
        raise NotFittedError("auto_exposure: call fit1d or fit2d before auto-exposure")
    if inputs is None:
        shape = opu.n_features if isinstance(opu.n_features, tuple) else (opu.n_features,)
        inputs = np.random.default_rng(seed).random((8, *shape)) < 0.5
    before = opu.settings
    start = before.exposure_us or opu.info.default_exposure_us
    limits = opu.info.limits

    def clamp(exposure_us: float) -> float:
        return float(min(max(exposure_us, limits.min_exposure_us), limits.max_exposure_us))

    dark: list[float] = []

    def measure(exposure_us: float) -> Measurement:
        opu.settings = before.model_copy(update={"exposure_us": exposure_us, "frametime_us": None})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SaturationWarning)
            if not dark:
                zeros = np.zeros((4, *np.shape(inputs)[1:]), dtype=np.uint8)
                dark.append(float(np.mean(opu.transform(zeros))))
            frames = opu.transform(inputs)
        ctx = frames.context
        max_dn = float((1 << opu.info.bit_depth) - 1) if opu.info.bit_depth else math.inf
        return Measurement(ctx.exposure_us, ctx.frametime_us, np.asarray(frames), dark[0], max_dn)

    try:
        result = find_exposure(
            measure,
            start,
            clamp,
            percentile=percentile,
            target_fraction=target_fraction,
            max_saturated_fraction=max_saturated_fraction,
            tolerance=tolerance,
            max_acquisitions=max_acquisitions,
        )
    except BaseException:
        opu.settings = before
        raise
    result = result.model_copy(update={"frames": result.acquisitions * len(inputs) + 4})
    opu.settings = before.model_copy(update={"exposure_us": result.exposure_us, "frametime_us": None}) if apply else before
    logger.info(
        "auto-exposure: %.1f us (%.0f frames/s) after %d acquisitions, p%.1f = %.1f DN, saturated %.1e",
        result.exposure_us, result.frame_rate_hz, result.acquisitions, percentile, result.quantile_dn,
        result.saturated_fraction,
    )
    return result
