"""Linear projections with a linear calibration record: ``OPU.linear_transform`` and the arithmetic behind it.

The calibration (choosing pixels and exposure, measuring the reference and the camera
scale) is :func:`calibration.calibrate_linear`; this module *applies* a record of it
(docs/physics.md, linear projections). Each real vector is split into bit planes, each
plane sent as a pair of frames (``(x, 1 - x)`` for the complement scheme, ``(x + r, x)``
for the fixed-reference scheme), and the pair's difference turned into ``z = M x`` with
the record's reference and scale. A pair with a saturated selected pixel is acquired
again at a quarter of the exposure, and again, until clean or at the device's shortest
exposure (high-dynamic-range bracketing).

When a transform needs a calibration that the record in use lacks, the calibration is
run through the ``opu_hal.calibrations`` entry point named ``linear`` (registered by the
``calibration`` package), so the facade never imports the calibration algorithms.
"""

from __future__ import annotations

import logging
import math
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .errors import NotCalibratedError, NotFittedError, SaturationWarning
from .record import CalibrationRecord
from .result import OPUResult
from .session import PROGRESS_AFTER_S, DeviceSession
from .validation import (
    as_numpy,
    check_bool,
    check_features,
    check_finite,
    check_int,
    is_torch_tensor,
)

if TYPE_CHECKING:
    from .opu import OPU

logger = logging.getLogger(__name__)

#: Input vectors per device round (bounds the memory of bit planes and frames).
VECTORS_PER_ROUND = 256
#: Exposure ratio between two brackets of a saturated frame pair.
BRACKET_FACTOR = 4.0
#: Brackets tried before giving up on a saturated pair.
MAX_BRACKETS = 6
#: Entry-point group of the calibrations the facade runs on demand.
CALIBRATIONS_GROUP = "opu_hal.calibrations"


def _calibrator(name: str) -> Callable[..., CalibrationRecord]:
    """The calibration ``name`` registered in the ``opu_hal.calibrations`` entry-point group."""
    found = entry_points(group=CALIBRATIONS_GROUP, name=name)
    if not found:
        raise NotCalibratedError(
            f"linear_transform: expected the '{name}' calibration of the {CALIBRATIONS_GROUP!r} entry points "
            "(installed with opu-hal's calibration package), found none; load a calibration record instead"
        )
    return next(iter(found)).load()


def _linear_record(opu: "OPU", n_features: int, calibrate: bool) -> CalibrationRecord:
    """The record whose linear calibration matches the fitted geometry, calibrating if allowed."""
    record = opu.calibration
    lin = None if record is None else record.linear
    if lin is not None and lin.n_features == n_features and lin.n_components == opu.n_components:
        return record
    if not calibrate:
        raise NotCalibratedError(
            f"linear_transform: expected a linear calibration for {n_features} features and {opu.n_components} "
            f"components, got {'none' if lin is None else f'one for {lin.n_features} and {lin.n_components}'}; "
            "pass calibrate=True or load a record"
        )
    logger.info("linear_transform: calibrating for %d features and %d components", n_features, opu.n_components)
    record = _calibrator("linear")(opu, record=None if record is None else record.derive())
    opu.calibration = record
    return record


def linear_transform(opu: "OPU", X: Any, *, bits: int = 8, calibrate: bool = True) -> Any:
    """See :meth:`opu_hal.OPU.linear_transform`."""
    bits = check_int(bits, "bits", low=1, high=16)
    check_bool(calibrate, "calibrate")
    torch_device = X.device if is_torch_tensor(X) else None
    array = as_numpy(X, "X")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"X: expected real numbers (bool, integer or float), got dtype {array.dtype}")
    check_finite(array, "X")
    with opu.session() as session:
        if opu.layout is None:
            raise NotFittedError("linear_transform: call fit1d or fit2d before linear_transform")
        shape = opu.n_features if isinstance(opu.n_features, tuple) else (opu.n_features,)
        batch_shape = check_features(array, "X", shape)
        flat = array.reshape(-1, int(np.prod(shape))).astype(np.float64)
        record = _linear_record(opu, flat.shape[1], calibrate)
        parts: list[np.ndarray] = []
        bracketed = 0
        rounds = range(0, flat.shape[0], VECTORS_PER_ROUND)
        lin = record.linear
        # the calibrated geometry, so that the context exists even when no plane needs a frame (all-zero inputs)
        session.configure(lin.n_device_features, lin.n_candidates, lin.exposure_us)
        # at most 4 * bits frames per vector: a bar only for a long transform, as transform's
        long = opu.backend.estimate_seconds(flat.shape[0] * 4 * bits) > PROGRESS_AFTER_S
        for start in tqdm(rounds, unit="round", disable=not (opu.progress == "always" or (opu.progress and long)) or len(rounds) <= 1, leave=False):
            z, extra = linear_project(session, record, flat[start : start + VECTORS_PER_ROUND], bits)
            parts.append(z)
            bracketed += extra
        context = session.context(record.id).model_copy(
            update={
                "exposure_us": lin.exposure_us,
                "frametime_us": lin.frametime_us,
                "gain_dn_per_intensity": lin.dn_per_intensity / lin.lit_fraction,  # per unit of the device's |R x|^2
                "dark_level_dn": lin.dark_level_dn,
            }
        )
    if bracketed:
        logger.info("linear_transform: %d saturated frame pair(s) acquired again at shorter exposures", bracketed)
    z = np.concatenate(parts).astype(np.float32)
    result = OPUResult(z.reshape(*batch_shape, opu.n_components), context)
    if torch_device is not None:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(result)).to(torch_device)
        tensor.context = context
        return tensor
    return result


def pair_frames(planes: np.ndarray, reference: np.ndarray, scheme: str, n_features: int) -> np.ndarray:
    """Device inputs (2K, n_dev), interleaved: (x, 1 - x) for scheme B, (x + r, x) for scheme A."""
    k = planes.shape[0]
    out = np.empty((2 * k, reference.size), np.uint8)
    if scheme == "complement":
        out[0::2] = planes
        out[1::2] = 1 - planes
    else:
        out[0::2] = reference
        out[0::2, :n_features] = planes
        out[1::2] = 0
        out[1::2, :n_features] = planes
    return out



def z_from_differences(diff: np.ndarray, record: CalibrationRecord, planes: np.ndarray) -> np.ndarray:
    """z (K, M) from ``diff`` = I(a) - I(b) of each pair (K, M) at the calibrated exposure (DN).

    The record's reference estimate (``linear_reference_dn``, DN) fixes both the constant of
    the difference and the direction along 1: its estimation error leaves a fixed offset
    per output, whose size is set by the reference frames averaged (docs/physics.md 4.4).
    """
    lin = record.linear
    ref = record.array("linear_reference_dn")
    root = np.sqrt(ref)
    c = lin.dn_per_intensity
    if lin.scheme == "complement":
        y = (diff + ref) / (2.0 * root)
        ones = planes.sum(axis=1, dtype=np.float64)[:, None]
        n = lin.n_features
        h = record.array("linear_completion")
        return math.sqrt(2.0 * n / c) * (y - root * ones / n) + h * ones / math.sqrt(n)
    y = (diff - ref) / (2.0 * root)
    return math.sqrt(2.0 * lin.n_device_features / c) * y


def project_planes(session: DeviceSession, record: CalibrationRecord, planes: np.ndarray) -> tuple[np.ndarray, int]:
    """z (K, M) of binary ``planes`` (K, n_features), with saturated outputs bracketed.

    Returns z and the number of frame pairs acquired again at a shorter exposure.
    """
    lin = record.linear
    pixels = record.array("linear_pixels")
    reference = np.zeros(lin.n_device_features, np.uint8)
    reference[lin.n_features :] = 1
    if lin.scheme == "complement":
        reference[:] = 1
    diff = np.empty((planes.shape[0], lin.n_components))
    clipped = np.ones(diff.shape, dtype=bool)  # entries still to measure
    pending = np.arange(planes.shape[0])
    exposure = lin.exposure_us
    bracketed = 0
    for bracket in range(MAX_BRACKETS + 1):
        applied = session.configure(lin.n_device_features, lin.n_candidates, exposure)
        ratio = lin.exposure_us / applied.exposure_us
        frames = session.acquire(pair_frames(planes[pending], reference, lin.scheme, lin.n_features))[:, pixels]
        a, b = frames[0::2], frames[1::2]
        fresh = (a < lin.max_dn) & (b < lin.max_dn)
        last = bracket == MAX_BRACKETS or applied.exposure_us <= session.info.limits.min_exposure_us
        todo = clipped[pending] & (fresh | last)  # each entry from the longest exposure it is clean at
        values = (a.astype(np.float64) - b) * ratio
        rows = diff[pending]
        rows[todo] = values[todo]
        diff[pending] = rows
        still = clipped[pending] & ~todo
        clipped[pending] = still
        if last and np.any(~fresh):
            stuck = int(np.any(~fresh, axis=1).sum())
            logger.info("%d frame pair(s) saturated at the shortest exposure %s us", stuck, applied.exposure_us)
            warnings.warn(
                SaturationWarning(
                    "frame pairs stay saturated at the shortest exposure; their projections are clipped (numbers "
                    "in .frames, .exposure_us)", frames=stuck, exposure_us=applied.exposure_us,
                ),
                stacklevel=3,
            )
        pending = pending[np.any(still, axis=1)]
        if pending.size == 0:
            break
        bracketed += pending.size
        exposure = applied.exposure_us / BRACKET_FACTOR
    return z_from_differences(diff, record, planes), bracketed


def encode_planes(X: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit planes of real-valued ``X`` (B, N) and their weights.

    Returns planes (B, 2 bits, N) uint8 (positive part's bits, then negative part's) and
    weights (B, 2 bits) float64 such that ``X ~ sum_p weights[:, p, None] * planes[:, p]``.
    """
    levels = (1 << bits) - 1
    scale = np.max(np.abs(X), axis=1)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.rint(X / safe[:, None] * levels).astype(np.int64)
    pos, neg = np.maximum(q, 0), np.maximum(-q, 0)
    k = np.arange(bits)
    planes = np.concatenate(
        [((pos[:, None, :] >> k[None, :, None]) & 1), ((neg[:, None, :] >> k[None, :, None]) & 1)], axis=1
    ).astype(np.uint8)
    step = (scale / levels)[:, None] * (2.0 ** k)[None, :]
    return planes, np.concatenate([step, -step], axis=1)


def linear_project(session: DeviceSession, record: CalibrationRecord, X: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """``X @ M.T`` (B, M) for real ``X`` (B, N): bit planes, each distinct non-empty plane acquired once."""
    planes, weights = encode_planes(X, bits)
    flat = planes.reshape(-1, planes.shape[-1])
    packed = np.packbits(flat, axis=1)
    unique, inverse = np.unique(packed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    unique_planes = np.unpackbits(unique, axis=1, count=flat.shape[1])
    nonzero = unique_planes.any(axis=1)
    z_unique = np.zeros((unique.shape[0], record.linear.n_components))
    bracketed = 0
    if np.any(nonzero):
        z_unique[nonzero], bracketed = project_planes(session, record, unique_planes[nonzero])
    z_planes = z_unique[inverse].reshape(*planes.shape[:2], -1)
    return np.einsum("bp,bpm->bm", weights, z_planes), bracketed
