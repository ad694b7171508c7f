"""Sketch operators: the random test matrix S of randomized linear algebra.

A sketch operator holds a random matrix ``S`` of shape ``(n_features, size)`` whose entries
have mean 0 and variance 1 (so ``E[S S^T] = size * I``), and applies it to the rows of
a matrix: ``apply(X) = X @ S``. The OPU computes this product optically in a time
that does not depend on ``n_features`` or ``size``; the digital references compute it
with numpy.

Two properties decide how an algorithm may use a sketch:

- ``exact``: the product is exact to floating point, so the same ``S`` can be applied
  twice consistently (a second pass, ``S^T A S``). An OPU sketch is not exact: its
  products carry camera noise and 8-bit quantisation, and a second optical pass on data
  correlated with ``S`` focuses light on single pixels and saturates them. Algorithms in
  :mod:`opu_hal.randnla` use an inexact sketch once, to find a range, and continue
  digitally.
- ``realize()``: the test matrix as numbers, for estimators that need the test vectors
  themselves (Hutchinson-type trace estimators). The OPU realizes its matrix by probing
  the medium with one-hot inputs (``n_features`` inputs, counted in the frames).

Every sketch counts the device frames and emulated device time (s) it spent, read from
``result.context`` of the OPU; digital sketches spend none.
"""

from __future__ import annotations

import hashlib
import logging
import math
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import hadamard

from ..validation import check_int

logger = logging.getLogger(__name__)

#: Entries per block of rows when an SRHT sketch is realized (8 bytes each: 16 MB).
_SRHT_BLOCK_ENTRIES = 1 << 21


@dataclass(frozen=True)
class Usage:
    """Device effort: ``frames`` acquired and ``device_time_s`` (s) of device time."""

    frames: int = 0
    device_time_s: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.frames + other.frames, self.device_time_s + other.device_time_s)

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(self.frames - other.frames, self.device_time_s - other.device_time_s)


def _check_rows(X: Any, n_features: int, name: str = "X") -> np.ndarray | sp.sparray:
    """A 2-D numpy array or scipy sparse matrix with ``n_features`` columns, finite."""
    if sp.issparse(X):
        X = sp.csr_array(X)
        values = X.data
    else:
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        if not isinstance(X, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array or a scipy sparse matrix, got {type(X).__name__}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected real numbers, got dtype {X.dtype}")
        values = X
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name}: expected a 2-D array of shape (rows, {n_features}), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {X.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return X


class SketchOperator(ABC):
    """A random ``(n_features, size)`` test matrix S with unit-variance entries, applied as ``X @ S``.

    Public methods validate their arguments, then call the ``_do_*`` hooks.
    """

    exact: ClassVar[bool] = True

    def __init__(self, n_features: int, size: int) -> None:
        self.n_features = check_int(n_features, "n_features", low=1)
        self.size = check_int(size, "size", low=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_features={self.n_features}, size={self.size})"

    def apply(self, X: Any) -> np.ndarray:
        """``X @ S`` for X of shape (rows, n_features) (numpy or scipy sparse); float64 (rows, size)."""
        X = _check_rows(X, self.n_features)
        out = np.asarray(self._do_apply(X), dtype=np.float64)
        return out

    def realize(self) -> np.ndarray:
        """The test matrix S as numbers, float64 (n_features, size)."""
        return np.asarray(self._do_realize(), dtype=np.float64)

    def fresh(self) -> "SketchOperator":
        """An independent sketch of the same kind and shape (new randomness)."""
        return self._do_fresh()

    def usage(self) -> Usage:
        """Frames and device time (s) spent so far by the device behind this sketch."""
        return Usage()

    @abstractmethod
    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray: ...

    def _do_realize(self) -> np.ndarray:
        return self._do_apply(np.eye(self.n_features))

    @abstractmethod
    def _do_fresh(self) -> "SketchOperator": ...


class _SeededSketch(SketchOperator):
    """A digital sketch drawn from ``numpy.random.default_rng(seed)``."""

    def __init__(self, n_features: int, size: int, seed: int = 0) -> None:
        super().__init__(n_features, size)
        self.seed = check_int(seed, "seed", low=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_features={self.n_features}, size={self.size}, seed={self.seed})"

    def __reduce__(self) -> tuple[Any, ...]:
        # travels as its recipe: the matrix is drawn again from the seed where it lands
        return (type(self), self._recipe())

    def _recipe(self) -> tuple[Any, ...]:
        return (self.n_features, self.size, self.seed)

    def _do_fresh(self) -> "SketchOperator":
        # a child seed from the parent's: independent streams, reproducible
        child = int(np.random.SeedSequence(self.seed, spawn_key=(1,)).generate_state(1)[0])
        return self._with_seed(child)

    @abstractmethod
    def _with_seed(self, seed: int) -> "SketchOperator": ...


class GaussianSketch(_SeededSketch):
    """Dense i.i.d. N(0, 1) test matrix (the textbook reference)."""

    def __init__(self, n_features: int, size: int, seed: int = 0) -> None:
        super().__init__(n_features, size, seed)
        self._matrix = np.random.default_rng(self.seed).standard_normal((self.n_features, self.size))

    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray:
        return X @ self._matrix

    def _do_realize(self) -> np.ndarray:
        return self._matrix.copy()

    def _with_seed(self, seed: int) -> "GaussianSketch":
        return GaussianSketch(self.n_features, self.size, seed)


class SparseSignSketch(_SeededSketch):
    """Sparse sign embedding: each input coordinate adds ±sqrt(size/nnz) to ``nnz`` random outputs.

    The outputs are drawn with replacement (a repeat adds twice), which keeps the
    entries of S uncorrelated with variance 1.
    """

    def __init__(self, n_features: int, size: int, seed: int = 0, nnz: int = 8) -> None:
        super().__init__(n_features, size, seed)
        self.nnz = check_int(nnz, "nnz", low=1, high=self.size)
        rng = np.random.default_rng(self.seed)
        cols = rng.integers(0, self.size, size=self.n_features * self.nnz)
        rows = np.repeat(np.arange(self.n_features), self.nnz)
        signs = rng.choice([-1.0, 1.0], size=rows.size) * math.sqrt(self.size / self.nnz)
        self._matrix = sp.csr_array((signs, (rows, cols)), shape=(self.n_features, self.size))

    def _recipe(self) -> tuple[Any, ...]:
        return (self.n_features, self.size, self.seed, self.nnz)

    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray:
        out = X @ self._matrix
        return out.toarray() if sp.issparse(out) else out

    def _do_realize(self) -> np.ndarray:
        return self._matrix.toarray()

    def _with_seed(self, seed: int) -> "SparseSignSketch":
        return SparseSignSketch(self.n_features, self.size, seed, self.nnz)


class CountSketch(_SeededSketch):
    """CountSketch (Clarkson and Woodruff 2013): each input coordinate adds ``±sqrt(size)`` to one random output.

    Row i of S has a single nonzero, ``sign_i * sqrt(size)`` in column ``h(i)`` (uniform
    hash and sign), so entries have mean 0 and variance 1 as for the other sketches, and
    ``X @ S`` costs one pass over the nonzeros of X (``O(nnz(X))``). ``matrix`` is S as a
    scipy sparse CSR array; ``realize()`` densifies it without forming an identity.
    """

    def __init__(self, n_features: int, size: int, seed: int = 0) -> None:
        super().__init__(n_features, size, seed)
        rng = np.random.default_rng(self.seed)
        cols = rng.integers(0, self.size, size=self.n_features)
        signs = rng.choice([-1.0, 1.0], size=self.n_features) * math.sqrt(self.size)
        self.matrix: sp.csr_array = sp.csr_array(
            (signs, (np.arange(self.n_features), cols)), shape=(self.n_features, self.size)
        )

    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray:
        out = X @ self.matrix
        return out.toarray() if sp.issparse(out) else out

    def _do_realize(self) -> np.ndarray:
        return self.matrix.toarray()

    def _with_seed(self, seed: int) -> "CountSketch":
        return CountSketch(self.n_features, self.size, seed)


class SRHTSketch(_SeededSketch):
    """Subsampled randomized Hadamard transform: random signs, Walsh-Hadamard mixing, ``size`` sampled outputs.

    Entries of S are ±1. Inputs are zero-padded to the next power of two.
    """

    def __init__(self, n_features: int, size: int, seed: int = 0) -> None:
        super().__init__(n_features, size, seed)
        self._padded = 1 << (self.n_features - 1).bit_length()
        if self.size > self._padded:
            raise ValueError(f"size: expected at most {self._padded} for {self.n_features} features, got {self.size}")
        rng = np.random.default_rng(self.seed)
        self._signs = rng.choice([-1.0, 1.0], size=self.n_features)
        self._picks = rng.choice(self._padded, size=self.size, replace=False)

    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray:
        dense = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        work = np.zeros((dense.shape[0], self._padded))
        work[:, : self.n_features] = dense * self._signs
        h = 1
        while h < self._padded:  # in-place fast Walsh-Hadamard transform along the rows
            view = work.reshape(work.shape[0], -1, 2, h)
            a = view[:, :, 0, :].copy()
            view[:, :, 0, :] += view[:, :, 1, :]
            view[:, :, 1, :] *= -1.0
            view[:, :, 1, :] += a
            h *= 2
        return work[:, self._picks]

    def _do_realize(self) -> np.ndarray:
        """S (n_features, size) entry by entry: ``S[i, j] = signs[i] * H[i, picks[j]]``.

        ``H`` is the Sylvester-Hadamard matrix of the fast transform, ``H[i, k] = (-1)^popcount(i & k)``;
        rows are made in blocks so that no intermediate exceeds ~16 MB beside the result.
        """
        out = np.empty((self.n_features, self.size))
        picks = self._picks.astype(np.uint64)[None, :]
        block = max(1, _SRHT_BLOCK_ENTRIES // self.size)
        for start in range(0, self.n_features, block):
            stop = min(start + block, self.n_features)
            bits = np.arange(start, stop, dtype=np.uint64)[:, None] & picks
            shift = 32
            while shift:  # fold the bits onto bit 0: its value is the parity of popcount
                bits ^= bits >> np.uint64(shift)
                shift //= 2
            parity = (bits & np.uint64(1)).astype(np.float64)
            out[start:stop] = (1.0 - 2.0 * parity) * self._signs[start:stop, None]
        return out

    def _with_seed(self, seed: int) -> "SRHTSketch":
        return SRHTSketch(self.n_features, self.size, seed)


class _OPUEngine:
    """One fitted OPU shared by the sketches that use disjoint blocks of its outputs.

    The optical product computes every output at once, so the full result of the last
    inputs is kept (keyed by a digest of the data, up to ``cache_mb``): sketches of other
    blocks applied to the same data cost no further frames, as on the device.
    """

    def __init__(self, opu: Any, n_features: int, bits: int, cache_mb: float) -> None:
        self.opu = opu
        self.n_features = n_features
        self.bits = check_int(bits, "bits", low=1, high=16)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._usage = Usage()
        self._probe: np.ndarray | None = None
        self._calibration: str | None = None
        self._fit()

    def _fit(self) -> None:
        """Fit the OPU to this engine's features; a new calibration invalidates what was kept."""
        if self.opu.n_features != self.n_features:
            self.opu.fit1d(n_features=self.n_features)
        record = getattr(self.opu, "calibration", None)
        calibration = None if record is None else getattr(record, "id", None)
        if calibration != self._calibration:
            self._cache.clear()
            self._probe = None
            self._calibration = calibration

    def _spent(self, context: Any) -> None:
        """Count a result's frames and device time (s); remember the calibration it used."""
        if context is not None:
            self._usage += Usage(int(np.size(context.frame_ids)), float(context.device_time_s))
            self._calibration = getattr(context, "calibration_id", self._calibration)

    @property
    def n_components(self) -> int:
        return int(self.opu.n_components)

    def usage(self) -> Usage:
        return self._usage

    @staticmethod
    def _digest(X: np.ndarray) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((X.shape, X.dtype.str)).encode())
        h.update(np.ascontiguousarray(X).data)
        return h.digest()

    def project(self, X: np.ndarray) -> np.ndarray:
        """All outputs ``X @ M.T`` (float64 (rows, n_components)); rows are scaled to unit max first."""
        self._fit()
        key = self._digest(X)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        scale = np.max(np.abs(X), axis=1)
        scale[scale == 0] = 1.0
        result = self.opu.linear_transform((X / scale[:, None]).astype(np.float32), bits=self.bits)
        self._spent(getattr(result, "context", None))
        out = np.asarray(result, dtype=np.float64) * scale[:, None]
        if out.nbytes <= self.cache_bytes:
            self._cache[key] = out
            while sum(v.nbytes for v in self._cache.values()) > self.cache_bytes:
                self._cache.popitem(last=False)
        return out

    def probe(self) -> np.ndarray:
        """The realized matrix ``M^T`` (n_features, n_components), measured once.

        The probes are the rows of a Hadamard matrix restricted to the features (±1, one bit
        each; orthogonal columns), so ``M^T = H^T Z / P`` with noise spread evenly: dense
        probes carry far more light than one-hot inputs, whose signal is lost in the
        reference's shot noise.
        """
        self._fit()
        if self._probe is None:
            padded = 1 << (self.n_features - 1).bit_length()
            probes = hadamard(padded, dtype=np.float32)[:, : self.n_features]
            result = self.opu.linear_transform(probes, bits=1)
            self._spent(getattr(result, "context", None))
            self._probe = probes.T.astype(np.float64) @ np.asarray(result, dtype=np.float64) / padded
            logger.info("realized the OPU matrix with %d Hadamard probes", padded)
        return self._probe


#: Engines of each OPU by (n_features, bits): sketches of one OPU share its cache and counters.
_ENGINES: "weakref.WeakKeyDictionary[Any, dict[tuple[int, int], _OPUEngine]]" = weakref.WeakKeyDictionary()


class OPUSketch(SketchOperator):
    """The OPU's linear projection as a sketch: outputs ``offset:offset + size`` of ``opu.linear_transform``.

    Each block of outputs is an independent i.i.d. matrix of the same fixed medium, so
    :meth:`fresh` (the next block) gives estimators fresh randomness. The OPU must be
    opened with ``n_components`` at least the total of the blocks used; it is fitted to
    ``n_features`` here. Inputs are scaled to unit maximum per row (the projection is
    linear), so rows of any magnitude use all ``bits`` of the encoding.

    Parameters
    ----------
    opu:
        An open :class:`opu_hal.OPU` (any backend) with ``linear_transform``.
    n_features:
        Length of the inputs (columns of the matrices sketched).
    size:
        Outputs per block (sketch size).
    offset:
        First output of this block.
    bits:
        Bits per input value of ``linear_transform``.
    cache_mb:
        Memory (MB) for keeping the full outputs of recent inputs for other blocks.
    """

    exact = False

    def __init__(
        self, opu: Any, n_features: int, size: int, *, offset: int = 0, bits: int = 8, cache_mb: float = 256.0
    ) -> None:
        super().__init__(n_features, size)
        if not hasattr(opu, "linear_transform"):
            raise TypeError(
                f"opu: expected an opu_hal.OPU with linear_transform (the linear calibration), got {type(opu).__name__}"
            )
        engines = _ENGINES.setdefault(opu, {})
        key = (self.n_features, check_int(bits, "bits", low=1, high=16))
        if key not in engines:
            engines[key] = _OPUEngine(opu, self.n_features, bits, cache_mb)
        self._attach(engines[key], offset)

    def _attach(self, engine: _OPUEngine, offset: int) -> None:
        self.offset = check_int(offset, "offset", low=0)
        if self.offset + self.size > engine.n_components:
            raise ValueError(
                f"offset: expected offset + size <= n_components = {engine.n_components} of the OPU, got "
                f"{self.offset} + {self.size}; open the OPU with more n_components for more independent blocks"
            )
        self._engine = engine

    def __repr__(self) -> str:
        return f"OPUSketch({self._engine.opu!r}, n_features={self.n_features}, size={self.size}, offset={self.offset})"

    @property
    def opu(self) -> Any:
        """The OPU behind the sketch."""
        return self._engine.opu

    def usage(self) -> Usage:
        return self._engine.usage()

    def _do_apply(self, X: np.ndarray | sp.sparray) -> np.ndarray:
        dense = X.toarray() if sp.issparse(X) else X
        return self._engine.project(np.asarray(dense, dtype=np.float64))[:, self.offset : self.offset + self.size]

    def _do_realize(self) -> np.ndarray:
        return self._engine.probe()[:, self.offset : self.offset + self.size]

    def _do_fresh(self) -> "OPUSketch":
        return self.block(self.offset + self.size)

    def block(self, offset: int, size: int | None = None) -> "OPUSketch":
        """The sketch on outputs ``offset:offset + size`` of the same OPU (sharing its cache and counters)."""
        other = object.__new__(OPUSketch)
        SketchOperator.__init__(other, self.n_features, self.size if size is None else size)
        other._attach(self._engine, offset)
        return other


def resolve_sketch(
    sketch: Any, n_features: int, size: int, seed: int = 0, *, name: str = "sketch", offset: int = 0
) -> SketchOperator:
    """The sketch an entry point works with: ``sketch`` itself, a default, or an OPU wrapped.

    ``None`` gives a digital :class:`GaussianSketch` of ``size`` columns (seed ``seed``);
    an OPU (anything with ``linear_transform``) gives ``OPUSketch(opu, n_features, size,
    offset=offset)``: the size is the one the entry point would give its own digital
    sketch (docs/api.md section 13.1). A :class:`SketchOperator` is used as given after
    checking its ``n_features``.
    """
    if sketch is None:
        return GaussianSketch(n_features, size, seed)
    if not isinstance(sketch, SketchOperator) and hasattr(sketch, "linear_transform"):
        return OPUSketch(sketch, n_features, size, offset=offset)
    if not isinstance(sketch, SketchOperator):
        raise TypeError(
            f"{name}: expected a SketchOperator (OPUSketch, GaussianSketch, ...) or an OPU, got {type(sketch).__name__}"
        )
    if sketch.n_features != n_features:
        raise ValueError(f"{name}: expected a sketch of {n_features} features, got {sketch.n_features}")
    return sketch


def make_sketch(kind: str, n_features: int, size: int, seed: int = 0) -> SketchOperator:
    """A digital sketch by name: ``"gaussian"``, ``"sparse"``, ``"srht"`` or ``"count"``."""
    kinds = {"gaussian": GaussianSketch, "sparse": SparseSignSketch, "srht": SRHTSketch, "count": CountSketch}
    if kind not in kinds:
        raise ValueError(f"kind: expected one of {sorted(kinds)}, got {kind!r}")
    return kinds[kind](n_features, size, seed)
