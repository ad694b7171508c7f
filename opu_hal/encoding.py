"""Binary encoders and decoders for OPU inputs and outputs.

The DMD of an OPU displays binary images, so real-valued data is encoded to arrays of
0/1 before a projection and, for the linear schemes, the projected planes are
recombined afterwards. Names follow LightOn's ``lightonml.encoding``.

Conventions
-----------
* ``fit`` takes ``(batch, n_features)`` (leading axes are flattened into the batch);
  ``transform`` takes ``(..., n_features)`` (a single ``(n_features,)`` vector too).
* Encoders return ``uint8`` arrays holding only 0 and 1; shapes are given per class.
* Inputs may be numpy arrays, nested lists or CPU torch tensors (via ``np.asarray``);
  NaN/inf, empty arrays, wrong ranks and feature-count mismatches raise ``ValueError``,
  non-numeric inputs ``TypeError``, always naming the argument.
* ``transform`` never changes the state of an encoder, and never re-fits it: values
  outside the range seen by ``fit`` raise ``ValueError`` unless ``clip=True``.
"""

from __future__ import annotations

import abc
import logging
import math
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from opu_hal.errors import NotFittedError
from opu_hal.validation import check_number

__all__ = [
    "Encoder",
    "Decoder",
    "BinaryThresholdEncoder",
    "MultiThresholdEncoder",
    "SeparatedBitPlanEncoder",
    "SeparatedBitPlanDecoder",
    "SignSplitEncoder",
    "SignSplitDecoder",
    "NoEncoding",
    "NoDecoding",
    "pack_bits",
    "unpack_bits",
]

logger = logging.getLogger(__name__)


def _as_array(X: Any, name: str) -> np.ndarray:
    """``np.asarray(X)``, with a ``TypeError`` naming ``name`` for non-numeric data."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError, RuntimeError) as exc:  # ragged lists, GPU tensors
        raise TypeError(
            f"{name}: expected a numeric array-like (numpy array, list, CPU tensor), "
            f"got {type(X).__name__} ({exc})"
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: expected real numbers (bool, int or float dtype), got dtype {arr.dtype}"
        )
    return arr


def _validate(X: Any, name: str, min_ndim: int, layout: str) -> NDArray[np.float64]:
    """Return ``X`` as a finite, non-empty float64 array with at least ``min_ndim`` axes."""
    arr = _as_array(X, name)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array of shape {layout} (at least {min_ndim}-D), "
            f"got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array of shape {layout}, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/inf entries")
    return arr


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an int {bounds}, got {value}")
    return int(value)


def _check_thresholds(value: Any, name: str, max_ndim: int) -> NDArray[np.float64]:
    """Validate user thresholds: finite reals with at most ``max_ndim`` axes, copied."""
    arr = _as_array(value, name)
    if arr.ndim > max_ndim or arr.size == 0:
        raise ValueError(
            f"{name}: expected a scalar or a non-empty array with at most {max_ndim} axes, "
            f"got shape {arr.shape}"
        )
    arr = np.array(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {arr}")
    return arr


class Encoder(abc.ABC):
    """Base class of the encoders: validated ``fit``/``transform`` around two hooks.

    Subclasses implement ``_do_transform`` (and ``_do_fit`` if they learn anything);
    the hooks receive validated float64 arrays. ``_do_fit`` must compute everything
    before assigning, so that a failed ``fit`` leaves the previous state intact.
    """

    #: False for encoders that learn nothing and can transform without ``fit``.
    _requires_fit: bool = True

    def __init__(self) -> None:
        self.n_features_: int | None = None

    @property
    def is_fitted(self) -> bool:
        """Whether ``transform`` can be called."""
        return self.n_features_ is not None or not self._requires_fit

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Learn the encoding parameters from training data.

        Parameters
        ----------
        X : array-like of shape (batch, n_features)
            Training data, real and finite. Leading axes beyond two are flattened into the batch.
        y : ignored
            Present for scikit-learn compatibility.

        Returns
        -------
        self
        """
        arr = _validate(X, "X", 2, "(batch, n_features)")
        arr = arr.reshape(-1, arr.shape[-1])
        self._do_fit(arr)
        self.n_features_ = arr.shape[1]
        logger.debug("fitted %s on %d samples x %d features", type(self).__name__, *arr.shape)
        return self

    def transform(self, X: ArrayLike) -> NDArray[np.uint8]:
        """Encode ``X`` to a binary uint8 array (shape given by the subclass). Never changes state."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(X) before transform(X)")
        arr = _validate(X, "X", 1, "(..., n_features)")
        if self.n_features_ is not None and arr.shape[-1] != self.n_features_:
            raise ValueError(f"X: expected {self.n_features_} features (as fitted), got {arr.shape[-1]}")
        return self._do_transform(arr)

    def fit_transform(self, X: ArrayLike, y: Any = None) -> NDArray[np.uint8]:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, y).transform(X)

    def _do_fit(self, X: NDArray[np.float64]) -> None:  # noqa: B027 - stateless default
        """Learn parameters from validated ``X`` of shape (batch, n_features)."""

    @abc.abstractmethod
    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        """Encode validated ``X`` of shape (..., n_features)."""


class _RangeCheckedEncoder(Encoder):
    """Encoder remembering the range of its training data and refusing values outside it."""

    def __init__(self, columnwise: bool, clip: bool) -> None:
        super().__init__()
        self.columnwise = bool(columnwise)
        self.clip = bool(clip)
        self.data_min_: NDArray[np.float64] | None = None
        self.data_max_: NDArray[np.float64] | None = None

    def _fit_range(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-feature (columnwise) or global min and max, as arrays of shape (n_features,)."""
        if self.columnwise:
            return X.min(axis=0), X.max(axis=0)
        n = X.shape[1]
        return np.full(n, X.min()), np.full(n, X.max())

    def _check_range(self, X: NDArray[np.float64]) -> None:
        if self.clip:
            return
        assert self.data_min_ is not None and self.data_max_ is not None
        flat = X.reshape(-1, X.shape[-1])
        lo, hi = flat.min(axis=0), flat.max(axis=0)
        bad = np.flatnonzero((lo < self.data_min_) | (hi > self.data_max_))
        if bad.size:
            j = bad[0]
            raise ValueError(
                f"X: expected values within the range seen in fit "
                f"[{self.data_min_[j]:g}, {self.data_max_[j]:g}] (feature {j}), got values in "
                f"[{lo[j]:g}, {hi[j]:g}] ({bad.size} feature(s) out of range); check units/scale, "
                f"or pass clip=True to accept out-of-range values"
            )


class BinaryThresholdEncoder(_RangeCheckedEncoder):
    """One bit per feature: ``X > threshold``.

    Parameters
    ----------
    threshold : float or array-like of shape (n_features,), optional
        Fixed threshold(s). If None, ``fit`` sets the median of the training data
        (global, or per feature if ``columnwise``).
    columnwise : bool, default False
        Fit one median per feature, and check the range per feature, instead of globally.
    clip : bool, default False
        If True, ``transform`` accepts values outside the range seen by ``fit`` (they
        simply compare to the threshold); otherwise they raise ``ValueError``.

    Attributes
    ----------
    threshold_ : ndarray of shape () or (n_features,), float64
        Threshold in use after ``fit``.
    data_min_, data_max_ : ndarray of shape (n_features,), float64
        Range of the training data (global values repeated unless ``columnwise``).

    Notes
    -----
    ``transform`` maps ``(..., n_features)`` to uint8 ``(..., n_features)``.
    ``fit`` is required even with a fixed threshold: it records the feature count and range.
    """

    def __init__(self, threshold: ArrayLike | None = None, columnwise: bool = False, clip: bool = False) -> None:
        super().__init__(columnwise, clip)
        self.threshold = None if threshold is None else _check_thresholds(threshold, "threshold", 1)
        self.threshold_: NDArray[np.float64] | None = None

    def _do_fit(self, X: NDArray[np.float64]) -> None:
        if self.threshold is None:
            threshold = np.median(X, axis=0) if self.columnwise else np.asarray(np.median(X))
        else:
            threshold = self.threshold
            if threshold.ndim == 1 and threshold.shape[0] != X.shape[1]:
                raise ValueError(
                    f"threshold: expected one threshold per feature ({X.shape[1]}), got {threshold.shape[0]}"
                )
        self.data_min_, self.data_max_ = self._fit_range(X)
        self.threshold_ = threshold

    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        self._check_range(X)
        return (X > self.threshold_).astype(np.uint8)


class MultiThresholdEncoder(_RangeCheckedEncoder):
    """Thermometer code: ``n_bins - 1`` bits per feature, bit k is ``x > thresholds[k]``.

    Parameters
    ----------
    n_bins : int, optional
        Number of distinct codes per feature (>= 2), default 8. If ``thresholds`` is
        given, it defaults to ``thresholds.shape[-1] + 1`` and must agree with it.
    thresholds : array-like of shape (n_bins - 1,) or (n_features, n_bins - 1), optional
        Fixed non-decreasing thresholds (common, or one row per feature). If None, ``fit``
        sets the quantiles ``k / n_bins`` (k = 1 .. n_bins - 1) of the training data,
        global or per feature if ``columnwise``.
    columnwise : bool, default False
        Fit thresholds, and check the range, per feature instead of globally.
    clip : bool, default False
        If True, ``transform`` accepts values outside the range seen by ``fit`` (they
        saturate the code); otherwise they raise ``ValueError``.

    Attributes
    ----------
    thresholds_ : ndarray of shape (n_bins - 1,) or (n_features, n_bins - 1), float64
    data_min_, data_max_ : ndarray of shape (n_features,), float64

    Notes
    -----
    ``transform`` maps ``(..., n)`` to uint8 ``(..., n * (n_bins - 1))``, **feature-major**:
    the levels of one feature are adjacent, ``out[..., j * (n_bins - 1) + k] = x[..., j] > t_jk``.
    Within a feature the bits read 1...1 0...0, and their sum is the bin index of x.
    """

    def __init__(
        self,
        n_bins: int | None = None,
        thresholds: ArrayLike | None = None,
        columnwise: bool = False,
        clip: bool = False,
    ) -> None:
        super().__init__(columnwise, clip)
        if thresholds is None:
            self.thresholds = None
            self.n_bins = 8 if n_bins is None else _check_int(n_bins, "n_bins", 2)
        else:
            t = _check_thresholds(thresholds, "thresholds", 2)
            t = t.reshape(1) if t.ndim == 0 else t
            if (np.diff(t, axis=-1) < 0).any():
                raise ValueError(f"thresholds: expected non-decreasing values along the last axis, got {t}")
            if n_bins is not None and _check_int(n_bins, "n_bins", 2) != t.shape[-1] + 1:
                raise ValueError(
                    f"n_bins: expected thresholds.shape[-1] + 1 = {t.shape[-1] + 1} for the given "
                    f"thresholds, got {n_bins}"
                )
            self.thresholds, self.n_bins = t, t.shape[-1] + 1
        self.thresholds_: NDArray[np.float64] | None = None

    def _do_fit(self, X: NDArray[np.float64]) -> None:
        if self.thresholds is None:
            q = np.arange(1, self.n_bins) / self.n_bins
            thresholds = np.quantile(X, q, axis=0).T if self.columnwise else np.quantile(X, q)
        else:
            thresholds = self.thresholds
            if thresholds.ndim == 2 and thresholds.shape[0] != X.shape[1]:
                raise ValueError(
                    f"thresholds: expected one row per feature ({X.shape[1]}), got {thresholds.shape[0]} rows"
                )
        self.data_min_, self.data_max_ = self._fit_range(X)
        self.thresholds_ = thresholds

    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        self._check_range(X)
        bits = X[..., None] > self.thresholds_  # (..., n, n_bins - 1)
        return bits.reshape(*X.shape[:-1], -1).astype(np.uint8)


class SeparatedBitPlanEncoder(_RangeCheckedEncoder):
    """Signed real data to bit planes of its positive and negative parts.

    ``q = rint(|x| / scale_ * (2**precision - 1))``; ``q+ = q`` where x > 0 else 0,
    ``q- = q`` where x < 0 else 0; bit k of each is one binary plane.

    Parameters
    ----------
    precision : int, default 8
        Bits per part, in [1, 32].
    clip : bool, default False
        If True, values with ``|x| > scale_`` are clipped to ``±scale_``; otherwise
        they raise ``ValueError``.

    Attributes
    ----------
    scale_ : float
        Largest absolute value of the training data (must be > 0).

    Notes
    -----
    ``transform`` maps ``(..., n)`` to uint8 ``(2 * precision, ..., n)``: planes
    ``0 .. precision - 1`` are bits LSB..MSB of ``q+``, planes ``precision .. 2 * precision - 1``
    bits LSB..MSB of ``q-``. Decode projected planes with :class:`SeparatedBitPlanDecoder`;
    the quantisation error of each entry of x is at most ``scale_ / (2**precision - 1) / 2``.
    """

    def __init__(self, precision: int = 8, clip: bool = False) -> None:
        super().__init__(columnwise=False, clip=clip)
        self.precision = _check_int(precision, "precision", 1, 32)
        self.scale_: float | None = None

    def _do_fit(self, X: NDArray[np.float64]) -> None:
        scale = float(np.abs(X).max())
        if scale == 0:
            raise ValueError("X: expected at least one non-zero value to fit the scale, got all zeros")
        self.data_min_, self.data_max_ = np.full(X.shape[1], -scale), np.full(X.shape[1], scale)
        self.scale_ = scale

    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        self._check_range(X)
        levels = 2**self.precision - 1
        q = np.rint(np.minimum(np.abs(X) / self.scale_, 1.0) * levels).astype(np.uint64)
        parts = np.stack([np.where(X > 0, q, 0), np.where(X < 0, q, 0)])  # (2, ..., n)
        k = np.arange(self.precision, dtype=np.uint64).reshape(1, -1, *([1] * X.ndim))
        planes = (parts[:, None] >> k) & 1  # (2, precision, ..., n)
        return planes.reshape(2 * self.precision, *X.shape).astype(np.uint8)


class Decoder(abc.ABC):
    """Base class of the decoders: validated ``transform`` around a ``_do_transform`` hook."""

    #: Required length of axis 0 (the planes), or None for any shape.
    _n_planes: int | None = None

    def transform(self, Y: ArrayLike) -> NDArray[np.float64]:
        """Decode ``Y`` (shape given by the subclass) to a float64 array."""
        if self._n_planes is None:
            return self._do_transform(_validate(Y, "Y", 1, "(...)"))
        arr = _validate(Y, "Y", 2, f"({self._n_planes}, ..., n_outputs)")
        if arr.shape[0] != self._n_planes:
            raise ValueError(f"Y: expected {self._n_planes} planes on axis 0, got shape {arr.shape}")
        return self._do_transform(arr)

    @abc.abstractmethod
    def _do_transform(self, Y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Decode validated ``Y``."""


class SeparatedBitPlanDecoder(Decoder):
    """Recombine projected bit planes of a :class:`SeparatedBitPlanEncoder`.

    ``y = scale / (2**precision - 1) * sum_k 2**k (Y[k] - Y[precision + k])``, so that
    ``decoder.transform(f(encoder.transform(x))) == f(x)`` up to quantisation error for
    any linear map f applied to each plane.

    Parameters
    ----------
    precision : int
        Bits per part used by the encoder, in [1, 32].
    scale : float
        The encoder's fitted ``scale_`` (> 0).

    Notes
    -----
    ``transform`` maps float ``(2 * precision, ..., m)`` to float64 ``(..., m)``.
    """

    def __init__(self, precision: int, scale: float) -> None:
        self.precision = _check_int(precision, "precision", 1, 32)
        self.scale = check_number(scale, "scale", low=0, low_open=True, high=math.inf, high_open=True)
        self._n_planes = 2 * self.precision

    @classmethod
    def from_encoder(cls, encoder: SeparatedBitPlanEncoder) -> SeparatedBitPlanDecoder:
        """Decoder matching a fitted :class:`SeparatedBitPlanEncoder`."""
        if not isinstance(encoder, SeparatedBitPlanEncoder):
            raise TypeError(f"encoder: expected a SeparatedBitPlanEncoder, got {type(encoder).__name__}")
        if not encoder.is_fitted:
            raise NotFittedError("encoder: expected a fitted SeparatedBitPlanEncoder, got an unfitted one")
        return cls(encoder.precision, encoder.scale_)

    def _do_transform(self, Y: NDArray[np.float64]) -> NDArray[np.float64]:
        p = self.precision
        weights = 2.0 ** np.arange(p) * (self.scale / (2**p - 1))
        return np.tensordot(weights, Y[:p] - Y[p:], axes=1)


class SignSplitEncoder(Encoder):
    """Ternary data in {-1, 0, 1} to its positive and negative indicators.

    Stateless: ``fit`` is optional (it only fixes the feature count).

    Notes
    -----
    ``transform`` maps ``(..., n)`` to uint8 ``(2, ..., n)``: ``[x == 1, x == -1]``.
    Values other than -1, 0, 1 raise ``ValueError``.
    """

    _requires_fit = False

    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        bad = (X != 0) & (np.abs(X) != 1)
        if bad.any():
            raise ValueError(
                f"X: expected ternary values in {{-1, 0, 1}}, got {X[bad][0]:g} "
                f"({int(bad.sum())} entries outside)"
            )
        return np.stack([X == 1, X == -1]).astype(np.uint8)


class SignSplitDecoder(Decoder):
    """Recombine the projections of :class:`SignSplitEncoder` planes.

    Notes
    -----
    ``transform`` maps float ``(2, ..., m)`` to float64 ``(..., m)``: ``Y[0] - Y[1]``.
    """

    _n_planes = 2

    def _do_transform(self, Y: NDArray[np.float64]) -> NDArray[np.float64]:
        return Y[0] - Y[1]


class NoEncoding(Encoder):
    """Passthrough for data that is already binary.

    Stateless: ``fit`` is optional (it only fixes the feature count).

    Notes
    -----
    ``transform`` maps ``(..., n)`` holding only 0 and 1 to uint8 ``(..., n)``;
    other values raise ``ValueError``.
    """

    _requires_fit = False

    def _do_transform(self, X: NDArray[np.float64]) -> NDArray[np.uint8]:
        bad = (X != 0) & (X != 1)
        if bad.any():
            raise ValueError(
                f"X: expected binary values in {{0, 1}}, got {X[bad][0]:g} ({int(bad.sum())} entries "
                f"outside); use an encoder for non-binary data"
            )
        return X.astype(np.uint8)


class NoDecoding(Decoder):
    """Identity decoder: returns ``Y`` (any shape) as a finite float64 array."""

    def _do_transform(self, Y: NDArray[np.float64]) -> NDArray[np.float64]:
        return Y


BitOrder = Literal["big", "little"]


def check_bitorder(bitorder: Any) -> str:
    """``bitorder`` if it is ``"big"`` or ``"little"``, else ValueError naming it."""
    if bitorder not in ("big", "little"):
        raise ValueError(f"bitorder: expected 'big' or 'little', got {bitorder!r}")
    return str(bitorder)


def pack_bits(X: ArrayLike, *, bitorder: BitOrder = "big") -> NDArray[np.uint8]:
    """Pack binary data along the last axis, 8 features per byte.

    Parameters
    ----------
    X : array-like of shape (..., n_features), bool or integer dtype, values in {0, 1}
    bitorder : {"big", "little"}, default "big"
        ``"big"`` (numpy's and lightonml's order): feature ``8 * i`` is the high bit (value
        128) of byte ``i``. ``"little"``: feature ``8 * i + b`` is bit ``b`` (value ``2**b``).

    Returns
    -------
    ndarray of shape (..., ceil(n_features / 8)), uint8
        As ``np.packbits(X, axis=-1, bitorder=bitorder)``; padding bits are 0.
    """
    check_bitorder(bitorder)
    arr = _as_array(X, "X")
    if arr.dtype.kind == "f":
        raise TypeError(f"X: expected bool or integer dtype holding 0 and 1, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"X: expected a non-empty array of shape (..., n_features), got shape {arr.shape}")
    if ((arr != 0) & (arr != 1)).any():
        raise ValueError(f"X: expected only 0 and 1, got values {np.unique(arr)[:8]}")
    return np.packbits(arr.astype(np.uint8, copy=False), axis=-1, bitorder=bitorder)


def unpack_bits(P: ArrayLike, n_features: int, *, bitorder: BitOrder = "big", name: str = "P") -> NDArray[np.uint8]:
    """Inverse of :func:`pack_bits`.

    Parameters
    ----------
    P : ndarray of shape (..., ceil(n_features / 8)), uint8
        Packed data; padding bits must be 0.
    n_features : int
        Number of features packed (>= 1).
    bitorder : {"big", "little"}, default "big"
        Bit order of ``P`` (see :func:`pack_bits`); ``"big"`` is ``np.packbits``'s.
    name : str
        The argument's name in error messages.

    Returns
    -------
    ndarray of shape (..., n_features), uint8 holding 0 and 1
    """
    n = _check_int(n_features, "n_features", 1)
    check_bitorder(bitorder)
    arr = _as_array(P, name)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name}: expected packed data of dtype uint8, got dtype {arr.dtype}")
    n_bytes = -(-n // 8)
    if arr.ndim == 0 or arr.shape[-1] != n_bytes:
        raise ValueError(
            f"{name}: expected a last axis of length ceil(n_features / 8) = {n_bytes} for "
            f"n_features={n}, got shape {arr.shape}"
        )
    bits = np.unpackbits(arr, axis=-1, bitorder=bitorder)
    if bits[..., n:].any():
        raise ValueError(f"{name}: expected zero padding bits beyond n_features={n}, got set bits: wrong n_features?")
    return bits[..., :n]
