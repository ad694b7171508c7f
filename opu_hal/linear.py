"""``OPU.linear_transform``: checks, calibration on demand, batching (the physics is in ``calibration.linear``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from calibration.device import DeviceSession
from calibration.linear import calibrate_linear, linear_project
from calibration.record import CalibrationRecord

from .errors import NotCalibratedError, NotFittedError
from .result import OPUResult
from .validation import as_numpy, check_features, check_finite, check_int, is_torch_tensor

if TYPE_CHECKING:
    from .opu import OPU

logger = logging.getLogger(__name__)

#: Input vectors per device round (bounds the memory of bit planes and frames).
VECTORS_PER_ROUND = 256


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
    record = calibrate_linear(opu, record=None if record is None else record.derive())
    opu.calibration = record
    return record


def linear_transform(opu: "OPU", X: Any, *, bits: int = 8, calibrate: bool = True) -> Any:
    """See :meth:`opu_hal.OPU.linear_transform`."""
    bits = check_int(bits, "bits", low=1, high=16)
    if not isinstance(calibrate, bool):
        raise TypeError(f"calibrate: expected a bool, got {type(calibrate).__name__}")
    torch_device = X.device if is_torch_tensor(X) else None
    array = as_numpy(X, "X")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"X: expected real numbers (bool, integer or float), got dtype {array.dtype}")
    check_finite(array, "X")
    with opu._lock:
        opu._require_open()
        if opu.layout is None:
            raise NotFittedError("linear_transform: call fit1d or fit2d before linear_transform")
        shape = opu.n_features if isinstance(opu.n_features, tuple) else (opu.n_features,)
        batch_shape = check_features(array, "X", shape)
        flat = array.reshape(-1, int(np.prod(shape))).astype(np.float64)
        record = _linear_record(opu, flat.shape[1], calibrate)
        parts: list[np.ndarray] = []
        bracketed = 0
        with DeviceSession(opu) as session:
            rounds = range(0, flat.shape[0], VECTORS_PER_ROUND)
            for start in tqdm(rounds, unit="round", disable=not opu.progress or len(rounds) <= 1, leave=False):
                z, extra = linear_project(session, record, flat[start : start + VECTORS_PER_ROUND], bits)
                parts.append(z)
                bracketed += extra
            lin = record.linear
            context = session.context(record.id).model_copy(
                update={
                    "exposure_us": lin.exposure_us,
                    "frametime_us": lin.frametime_us,
                    "gain_dn_per_intensity": lin.dn_per_intensity,
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
