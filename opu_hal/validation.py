"""Checks of user input: every failure names the argument, the expected and the received."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_torch_tensor(value: Any) -> bool:
    """True for a torch.Tensor, without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def as_numpy(value: Any, name: str) -> np.ndarray:
    """An array from a numpy array, a list or a torch tensor (copied to the CPU; bfloat16, which
    numpy lacks, as float32, exactly). A numpy masked array is refused: the OPU has no use for a mask."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: expected a plain array, got a numpy masked array ({int(np.ma.count_masked(value))} values "
            f"masked); its mask cannot be applied on the device: pass {name}.filled(fill_value) or {name}.data"
        )
    if is_torch_tensor(value):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        try:
            value = tensor.numpy()
        except (TypeError, RuntimeError):
            raise TypeError(
                f"{name}: expected a tensor of a dtype numpy supports (bool, integer, float16/32/64, bfloat16), "
                f"got {tensor.dtype}"
            ) from None
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


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is True or False (numpy booleans too); anything else, 0 and 1 included, is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _describe_number(low: float | None, high: float | None, low_open: bool, high_open: bool, unit: str) -> str:
    if high is None and low == 0:
        text = "a positive number" if low_open else "a non-negative number"
    elif low is None and high is None:
        text = "a number"
    elif high is None:
        text = f"a number {'>' if low_open else '>='} {low:g}"
    elif low is None:
        text = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if unit == "s":
        return text + " of seconds"
    return f"{text} ({unit})" if unit else text


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    unit: str = "",
) -> float:
    """A real number (int or float, numpy scalars too; not a bool, never NaN) within the bounds, as a float.

    ``low``/``high``: bounds (None: unbounded), inclusive unless ``low_open``/``high_open``;
    ``unit`` names the unit in the messages (``"s"``: "... number of seconds"). A value of
    the wrong type raises TypeError, one out of range or NaN ValueError; both messages name
    ``name``, the numbers expected and the value received.
    """
    expected = _describe_number(low, high, low_open, high_open, unit)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if math.isnan(number) or too_low or too_high:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return number


def check_positive_seconds(value: Any, name: str) -> float:
    """A duration in seconds, > 0 (infinity allowed: no limit), as a float; see :func:`check_number`."""
    return check_number(value, name, low=0, low_open=True, unit="s")


def check_finite(array: np.ndarray, name: str) -> None:
    """Reject NaN and infinities in floating-point data."""
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, got {int(np.size(array) - np.isfinite(array).sum())} NaN or inf")


def check_binary(array: np.ndarray, name: str, given: Any = None) -> np.ndarray:
    """Binary data as uint8 0/1; anything other than bool or integer 0/1 is an error
    (``given``: the dtype the caller received, if not the array's, e.g. a torch dtype)."""
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if array.dtype.kind not in "iu":
        check_finite(array, name)
        raise ValueError(
            f"{name}: expected binary data of dtype bool or integer holding 0 and 1, got dtype {given or array.dtype}; "
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


def check_rows_out(out: Any, shape: tuple[int, int], dtype: Any) -> None:
    """TypeError/ValueError unless ``out`` is a writable ``dtype`` array of ``shape`` with contiguous rows."""
    if not isinstance(out, np.ndarray) or out.dtype != dtype:
        described = f"{out.dtype} array" if isinstance(out, np.ndarray) else type(out).__name__
        raise TypeError(f"out: expected a {np.dtype(dtype)} array, got {described}")
    if out.shape != shape or not out.flags.writeable or (shape[1] > 1 and out.strides[1] != out.itemsize):
        raise ValueError(
            f"out: expected a writable array of shape {shape} with contiguous rows, got shape {out.shape}, "
            f"strides {out.strides}, writeable={out.flags.writeable}"
        )
