"""The scattering medium: the interface every medium model implements, and the choice of model.

Two models of the transmission matrix ``R`` (M outputs x N features, docs/physics.md sections 1.2 and 1.7)
share one interface, :class:`Medium`, so :class:`~firmware_sim.model.OPUModel` uses either:

- ``dense`` (:class:`~firmware_sim.medium_dense.DenseMedium`): i.i.d. circular complex
  Gaussian entries, ``R = G[:M, :N] / sqrt(N)``, kept in memory or streamed (8 bytes per entry);
- ``structured`` (:class:`~firmware_sim.medium_structured.StructuredMedium`): a product of
  unitary FFTs and random phase diagonals, O(L log L) per input row and a few vectors of
  memory, with the same first and second moments.

``auto`` (the default of ``EmulatorParams.medium``) takes the dense model while its matrix
fits the memory budget (:func:`memory_budget_bytes`) and the structured one beyond
(:func:`resolve_medium`).

Public methods validate their arguments, take the medium's lock and call the ``_do_*``
hooks a model implements. Device time advances with :meth:`Medium.advance`; a drifting
model applies the elapsed drift when it is next used (docs/physics.md section 3.1).
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np

from opu_hal.validation import (
    check_int,
    check_number,
    check_positive_seconds,
    check_rows_out,
)

MediumKind = Literal["dense", "structured"]
MEDIUM_STREAM = 0x6D656469  # "medi": separates medium streams from noise streams
DRIFT_STREAM = 0x64726966  # "drif"
_MEMORY_FRACTION = 4  # the budget never exceeds 1/_MEMORY_FRACTION of physical memory
_BYTES_PER_ENTRY = 8  # complex64


def memory_budget_bytes(cache_mb: float) -> int:
    """Bytes the matrix in use may keep: ``cache_mb`` MB, capped at a quarter of physical memory."""
    budget = int(cache_mb * 2**20)
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: the setting alone
        return budget
    return min(budget, physical // _MEMORY_FRACTION)


def stream_generator(seed: int, *key: int) -> np.random.Generator:
    """The random stream keyed by ``(seed, *key)``: independent of every other key, reproducible."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=key)))


def resolve_medium(
    kind: Literal["dense", "structured", "auto"], n_features: int, n_outputs: int, cache_mb: float
) -> MediumKind:
    """The model ``kind`` asks for N features and M outputs.

    ``auto``: ``dense`` while the dense matrix (8 bytes per entry) fits
    ``memory_budget_bytes(cache_mb)``, ``structured`` beyond.
    """
    if kind == "auto":
        fits = n_features * n_outputs * _BYTES_PER_ENTRY <= memory_budget_bytes(cache_mb)
        return "dense" if fits else "structured"
    if kind not in ("dense", "structured"):
        raise ValueError(f"kind: expected 'dense', 'structured' or 'auto', got {kind!r}")
    return kind


def _check_real_batch(x: np.ndarray) -> None:
    """TypeError unless x is a real 2-D array (batch, features) with at least one feature."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype.kind not in "biuf":
        described = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"x: expected a real 2-D array (batch, features), got {described}")
    check_int(x.shape[1], "x.shape[1] (features)", low=1)


class Medium(ABC):
    """A seeded transmission matrix R (M x N, E|R_ij|^2 = 1/N) with optional drift.

    Parameters
    ----------
    seed:
        Seed of the medium (>= 0).
    cache_mb:
        Memory budget (megabytes), capped at a quarter of physical memory.
    drift_tau_s:
        Decorrelation time tau (seconds), or None for a frozen medium.
    workers:
        Threads a product may use (default: one per CPU).
    unit_mb:
        Size (megabytes) of the units a product is computed in.
    """

    kind: ClassVar[MediumKind]

    def __init__(
        self,
        seed: int,
        cache_mb: float = 4096.0,
        drift_tau_s: float | None = None,
        workers: int | None = None,
        unit_mb: float = 64.0,
    ) -> None:
        check_int(seed, "seed", low=0)
        check_number(unit_mb, "unit_mb", low=0, low_open=True)
        if drift_tau_s is not None:
            check_positive_seconds(drift_tau_s, "drift_tau_s")
        if workers is not None:
            check_int(workers, "workers", low=1)
        self.seed = int(seed)
        self.cache_bytes = memory_budget_bytes(cache_mb)
        self.drift_tau_s = drift_tau_s
        self.workers = workers or os.cpu_count() or 1
        self.unit_bytes = int(unit_mb * 2**20)
        self._time_s = 0.0  # device time reached (s); drift catches up with it when the medium is used
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ public interface
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of device time pass (the medium drifts if drift is on)."""
        if not seconds >= 0:
            raise ValueError(f"seconds: expected a non-negative duration, got {seconds}")
        with self._lock:
            self._time_s += seconds

    def prepare(self, n_features: int, n_outputs: int) -> None:
        """Make (and keep, if the model keeps anything) the medium for N features and M outputs."""
        n_features, n_outputs = check_int(n_features, "n_features", low=1), check_int(n_outputs, "n_outputs", low=1)
        with self._lock:
            self._do_prepare(n_features, n_outputs)

    def field(self, x: np.ndarray, n_outputs: int) -> np.ndarray:
        """Complex field ``R x`` of a batch x (B, N) of real inputs, as complex64 (B, n_outputs)."""
        _check_real_batch(x)
        n_outputs = check_int(n_outputs, "n_outputs", low=1)
        with self._lock:
            return self._do_field(x, n_outputs)

    def intensity(
        self, x: np.ndarray, n_outputs: int, scale: float | np.ndarray = 1.0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Intensity ``scale |R x|^2`` of a batch x (B, N) of real inputs, as float32 (B, n_outputs).

        ``scale``: a factor (dimensionless, or the units the caller wants per unit of
        ``|R x|^2``), one for the batch or one per row (shape (B,)). ``out``: a writable
        float32 (B, n_outputs) array with contiguous rows to write into (returned), or None
        for a new one.
        """
        _check_real_batch(x)
        n_outputs = check_int(n_outputs, "n_outputs", low=1)
        scales = np.asarray(scale, dtype=np.float32)
        if scales.ndim == 0:
            scales = np.full(x.shape[0], scales)
        if scales.shape != (x.shape[0],):
            raise ValueError(f"scale: expected a number or one per row ({x.shape[0]},), got shape {scales.shape}")
        if out is None:
            out = np.empty((x.shape[0], n_outputs), dtype=np.float32)
        else:
            check_rows_out(out, (x.shape[0], n_outputs), np.float32)
        with self._lock:
            self._do_intensity(x, n_outputs, scales, out)
        return out

    def matrix(self, n_outputs: int, n_features: int, features: np.ndarray | None = None) -> np.ndarray:
        """Ground truth R (complex64, n_outputs x n_features) at the current time, or its columns ``features``.

        ``features``: indices of the columns to return (complex64, n_outputs x len(features));
        None for all.
        """
        n_outputs, n_features = check_int(n_outputs, "n_outputs", low=1), check_int(n_features, "n_features", low=1)
        if features is not None:
            features = np.asarray(features)
            if features.ndim != 1 or features.dtype.kind not in "iu":
                raise TypeError(
                    f"features: expected a 1-D array of column indices, got {features.dtype} {features.shape}"
                )
            if features.size and not (0 <= features.min() and features.max() < n_features):
                raise ValueError(
                    f"features: expected indices in [0, {n_features}), got {features.min()} to {features.max()}"
                )
        with self._lock:
            return self._do_matrix(n_outputs, n_features, features)

    def estimate_seconds(self, batch: int, n_features: int, n_outputs: int) -> float:
        """Rough compute time (s) of one product ``R x`` of ``batch`` rows, N features, M outputs.

        An order of magnitude from the model's operation count and throughputs measured on a
        2-core machine (docs/physics.md section 1.8), for progress reporting, never a promise.
        """
        batch = check_int(batch, "batch", low=0)
        n_features, n_outputs = check_int(n_features, "n_features", low=1), check_int(n_outputs, "n_outputs", low=1)
        return self._estimate_seconds(batch, n_features, n_outputs)

    def close(self) -> None:
        """Release what the medium keeps (matrix, threads)."""
        with self._lock:
            self._do_close()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _do_prepare(self, n_features: int, n_outputs: int) -> None:
        """Make what products at this size need."""

    @abstractmethod
    def _do_field(self, x: np.ndarray, n_outputs: int) -> np.ndarray:
        """``R x`` for validated x (B, N); complex64 (B, n_outputs)."""

    @abstractmethod
    def _estimate_seconds(self, batch: int, n_features: int, n_outputs: int) -> float:
        """Compute time (s) of a product of validated sizes."""

    def _do_intensity(self, x: np.ndarray, n_outputs: int, scales: np.ndarray, out: np.ndarray) -> None:
        """``scales[:, None] |R x|^2`` for validated x (B, N) into ``out``, float32 (B, n_outputs). By default from the field."""
        np.abs(self._do_field(x, n_outputs), out=out)  # vectorised hypot: cheaper than squaring the parts and adding them
        np.square(out, out=out)
        out *= scales[:, None]

    def _do_matrix(self, n_outputs: int, n_features: int, features: np.ndarray | None) -> np.ndarray:
        """Columns of R, by applying the medium to unit vectors, a unit's worth at a time."""
        columns = np.arange(n_features) if features is None else features
        out = np.empty((n_outputs, columns.size), dtype=np.complex64)
        row_bytes = max(n_features * 4, n_outputs * _BYTES_PER_ENTRY)
        step = max(1, self.unit_bytes // row_bytes)
        for start in range(0, columns.size, step):
            chosen = columns[start : start + step]
            unit = np.zeros((chosen.size, n_features), dtype=np.float32)
            unit[np.arange(chosen.size), chosen] = 1.0
            out[:, start : start + chosen.size] = self._do_field(unit, n_outputs).T
        return out

    def _do_close(self) -> None:
        """Release resources; nothing by default."""
