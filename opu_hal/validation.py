"""Checks of user input: every failure names the argument, the expected and the received."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def is_torch_tensor(value: Any) -> bool:
    """True for a torch.Tensor, without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def as_numpy(value: Any, name: str) -> np.ndarray:
    """An array from a numpy array, a list or a torch tensor (copied to the CPU)."""
    if is_torch_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name}: expected an array-like of numbers, got {type(value).__name__} ({exc})") from None
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"{name}: expected an array of numbers, got dtype {array.dtype}")
    return array


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer within [low, high]; rejects bools and floats such as 3.0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low if low is not None else '-inf'} to {high if high is not None else 'inf'}"
        raise ValueError(f"{name}: expected an integer from {span}, got {value}")
    return value


def check_finite(array: np.ndarray, name: str) -> None:
    """Reject NaN and infinities in floating-point data."""
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, got {int(np.size(array) - np.isfinite(array).sum())} NaN or inf")


def check_binary(array: np.ndarray, name: str) -> np.ndarray:
    """Binary data as uint8 0/1; anything other than bool or integer 0/1 is an error."""
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if array.dtype.kind not in "iu":
        check_finite(array, name)
        raise ValueError(
            f"{name}: expected binary data of dtype bool or integer holding 0 and 1, got dtype {array.dtype}; "
            "encode real-valued data first (e.g. encoder=opu_hal.encoding.BinaryThresholdEncoder())"
        )
    if array.size:
        low, high = array.min(), array.max()
        if low < 0 or high > 1:
            raise ValueError(
                f"{name}: expected only 0 and 1, got values from {low} to {high}; "
                "pass an encoder to transform real or integer data"
            )
    return array.astype(np.uint8, copy=False)


def check_features(array: np.ndarray, name: str, feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Check the trailing axes against the fitted feature shape; returns the batch shape."""
    k = len(feature_shape)
    if array.ndim < k or array.shape[array.ndim - k :] != feature_shape:
        raise ValueError(
            f"{name}: expected shape (..., {', '.join(map(str, feature_shape))}) as fitted, got {array.shape}"
        )
    batch = array.shape[: array.ndim - k]
    if array.size == 0:
        raise ValueError(f"{name}: expected at least one input, got an empty batch of shape {array.shape}")
    return batch
