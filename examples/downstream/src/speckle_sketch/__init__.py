"""Binary similarity sketches of binary data, computed by an OPU."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from opu_hal import OPU

__all__ = ["sketch", "hamming_similarity"]


def sketch(opu: OPU, X: ArrayLike) -> NDArray[np.bool_]:
    """Codes of ``opu.n_components // 2`` bits for binary inputs X (..., n_features).

    Bit j is ``y[2j] > y[2j + 1]`` for the camera counts y of the input: two independent
    speckle pixels, so each bit is a fair coin over inputs, and inputs whose fields are
    correlated share most bits.
    """
    y = np.asarray(opu.transform(X), dtype=np.float32)
    n_bits = y.shape[-1] // 2
    return y[..., 0 : 2 * n_bits : 2] > y[..., 1 : 2 * n_bits : 2]


def hamming_similarity(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Fraction of equal bits along the last axis (1: identical codes, ~0.5: unrelated)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"b: expected codes of the shape of a {a.shape}, got {b.shape}")
    return np.mean(a == b, axis=-1)
