"""The structured medium: unitary FFTs and random phase diagonals, for full-size devices.

A dense transmission matrix of a full device (1,039,680 mirrors x ~2,000,000 pixels) would
take 16 TB. This medium computes the field as

    R x = sqrt(L / N) P_out F D3 F D2 F D1 P_in x,

where P_in zero-pads the N features to a length L = L1 L2 >= max(N, M, ``_MIN_LENGTH``), both
sides fast for the FFT (``scipy.fft.next_fast_len``, :meth:`StructuredMedium.shape`), F is
the unitary 2-D FFT of the vector seen as an L1 x L2 grid, row-major (``scipy.fft.fft2``,
``norm="ortho"``: F = F_L1 (x) F_L2, a Kronecker product of DFTs), D_k = diag(exp(i phi_k))
with phases phi_k i.i.d. uniform on [0, 2 pi), and P_out keeps the first M entries (output
j is entry j). A product costs three 2-D FFTs of L points per input row (about 2 to 3
times faster than a 1-D FFT of length L at L = 2,000,000: the short FFTs of the grid's rows
and columns stay in cache) and the medium keeps six vectors of length L (three phase
vectors, float64, and their diagonals, complex64), plus one work row per thread.

Moments (docs/physics.md section 1.7). Every entry of F has modulus 1/sqrt(L), as for the
1-D DFT. With independent uniform phases, E[d_a conj(d_b)] = delta_ab, so
for U = F D3 F D2 F D1: E|U_ji|^2 = sum_ab |F_ja|^2 |F_ab|^2 |F_bi|^2 = 1/L exactly, hence
E|R_ji|^2 = 1/N as for the dense medium, and E[R^H R] = (M / N) I (the off-diagonal terms
vanish through D1). Entries are sums of L^2 unit-modulus terms with random phases: close
to circular Gaussian, but not exactly (and not independent: U is unitary).

Seed. The phases of D_k are drawn from the stream ``(seed, "medi", "strc", L, k)``: the same
seed and grid give the same medium. Unlike the dense medium, the medium of another grid
is another medium: a smaller device's matrix is a block of a larger one only when both use
the same grid (L1, L2).

Drift (docs/physics.md section 3.1). Each phase performs a Brownian motion: between device times t0
and t1, phi_k += sqrt((t1 - t0) / (3 tau)) * n, n standard normal, drawn from the stream
``(seed, "drif", "strc", L, step, k)``. Then E[exp(i (phi(t1) - phi(t0)))] = exp(-(t1 - t0) / (6 tau))
per diagonal, so the field keeps the correlation exp(-(t1 - t0) / (2 tau)) = sqrt(1 - eps),
eps = 1 - exp(-(t1 - t0) / tau), exactly as the dense medium's Ornstein-Uhlenbeck
process, and splitting an interval gives the same law; the phases stay uniform (stationary).
A new L while drifting draws new phases and brings them to the current time (a valid
state of the process): the history is not carried to another length.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import scipy.fft

from .medium import DRIFT_STREAM, MEDIUM_STREAM, Medium, MediumKind, stream_generator

logger = logging.getLogger(__name__)

_STRUCTURED_STREAM = 0x73747263  # "strc"
_STAGES = 3  # diagonals D1, D2, D3, each followed by an FFT
_MIN_LENGTH = 1024  # at least this many terms mix in each FFT: near-Gaussian entries at small sizes
_BAND_BYTES = 2**20  # grid rows transformed along axis 1 right after their elementwise step (stays in cache)
FFT_FLOP_PER_S = 2e9  # complex64 FFT throughput, 2 cores (for estimates: docs/physics.md section 1.8)


class StructuredMedium(Medium):
    """Seeded FFT-based transmission matrix ``sqrt(L/N) P_out F D3 F D2 F D1 P_in``, with optional drift.

    Same interface as :class:`~firmware_sim.medium_dense.DenseMedium` (see
    :class:`~firmware_sim.medium.Medium`); ``cache_mb`` is not used (the medium keeps six
    vectors of length L and one work row per thread), ``unit_mb`` only sizes the groups of
    unit vectors of :meth:`matrix`. The rows of a
    product are shared among ``workers`` threads, each doing a whole row (embedding, FFTs,
    phase multiplies, and the squared modulus for :meth:`intensity`) in its own buffer.
    """

    kind: ClassVar[MediumKind] = "structured"

    def __init__(
        self,
        seed: int,
        cache_mb: float = 4096.0,
        drift_tau_s: float | None = None,
        workers: int | None = None,
        unit_mb: float = 64.0,
    ) -> None:
        super().__init__(seed, cache_mb, drift_tau_s, workers, unit_mb)
        self._length = 0  # L of the phases in use (0: none yet)
        self._phases = np.empty((_STAGES, 0))  # phi_k (rad), float64 (3, L)
        self._diagonals = np.empty((_STAGES, 0), dtype=np.complex64)  # exp(i phi_k), complex64 (3, L)
        self._phase_time_s = 0.0  # device time the phases are at (s)
        self._drift_step = 0
        self._work = np.empty((0, 0), dtype=np.complex64)  # per-thread work rows (threads, L)
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def shape(n_features: int, n_outputs: int) -> tuple[int, int]:
        """Grid (L1, L2), L1 <= L2, of the 2-D FFT for N features and M outputs.

        Both sides fast for ``scipy.fft`` (``next_fast_len``), L1 at most sqrt(target), the
        smallest L = L1 L2 >= target = max(N, M, 1024), the squarest among equals.
        """
        target = max(n_features, n_outputs, _MIN_LENGTH)
        root = math.isqrt(target - 1) + 1
        best = (target * target, 0), (1, target)
        for low in range(root // 2, root + 1):
            side = scipy.fft.next_fast_len(low)
            if side > root:
                break
            other = scipy.fft.next_fast_len(-(-target // side))
            key = (side * other, other - side)
            if key < best[0]:
                best = key, (side, other)
        return best[1]

    @staticmethod
    def length(n_features: int, n_outputs: int) -> int:
        """Length L = L1 L2 of the medium for N features and M outputs (>= max(N, M, 1024))."""
        first, second = StructuredMedium.shape(n_features, n_outputs)
        return first * second

    # ------------------------------------------------------------------ the diagonals in use
    def _current(self, length: int) -> np.ndarray:
        """Diagonals (complex64 (3, L)) of length L at the current device time."""
        if length != self._length:
            if self.drift_tau_s and self._length:
                logger.info("structured medium: FFT length %d -> %d, drift history restarts from the seed",
                            self._length, length)
            self._phases = np.stack([
                stream_generator(self.seed, MEDIUM_STREAM, _STRUCTURED_STREAM, length, k).random(length) * (2 * math.pi)
                for k in range(_STAGES)
            ])
            self._length, self._phase_time_s = length, 0.0
            self._diagonals = np.exp(1j * self._phases).astype(np.complex64)
        if self.drift_tau_s and self._time_s > self._phase_time_s:
            self._drift(self._time_s - self._phase_time_s)
            self._phase_time_s = self._time_s
        return self._diagonals

    def _drift(self, seconds: float) -> None:
        """Brownian phases: each phi_k gains N(0, seconds / (3 tau)) per entry, from a fresh stream."""
        self._drift_step += 1
        sigma = math.sqrt(seconds / (_STAGES * self.drift_tau_s))
        for k in range(_STAGES):
            steps = stream_generator(
                self.seed, DRIFT_STREAM, _STRUCTURED_STREAM, self._length, self._drift_step, k
            ).standard_normal(self._length)
            self._phases[k] += sigma * steps
        np.remainder(self._phases, 2 * math.pi, out=self._phases)  # keep float64 precision on the circle
        self._diagonals = np.exp(1j * self._phases).astype(np.complex64)

    # ------------------------------------------------------------------ hooks
    def _do_prepare(self, n_features: int, n_outputs: int) -> None:
        self._current(self.length(n_features, n_outputs))

    def _estimate_seconds(self, batch: int, n_features: int, n_outputs: int) -> float:
        """Three FFTs of L points per row, about 5 L log2(L) flops each."""
        length = self.length(n_features, n_outputs)
        return batch * _STAGES * 5.0 * length * math.log2(length) / FFT_FLOP_PER_S

    def _do_field(self, x: np.ndarray, n_outputs: int) -> np.ndarray:
        """``R x`` for x (B, N), complex64 (B, n_outputs)."""
        out = np.empty((x.shape[0], n_outputs), dtype=np.complex64)

        def keep(row: int, outputs: slice, field: np.ndarray) -> None:
            out[row, outputs] = field

        self._rows(x, n_outputs, keep)
        return out

    def _do_intensity(self, x: np.ndarray, n_outputs: int, scales: np.ndarray, out: np.ndarray) -> None:
        """``scales[:, None] |R x|^2`` for x (B, N) into ``out``, float32 (B, n_outputs), from each row's FFT buffer."""

        def square(row: int, outputs: slice, field: np.ndarray) -> None:
            # |z| (numpy's vectorised hypot) then its square: two contiguous passes, 2-3x
            # cheaper than squaring the interleaved parts and adding them (within 2 ulp of it).
            light = out[row, outputs]
            np.abs(field, out=light)
            np.square(light, out=light)
            if scales[row] != 1:
                light *= scales[row]

        self._rows(x, n_outputs, square)

    def _rows(self, x: np.ndarray, n_outputs: int, take: Callable[[int, slice, np.ndarray], None]) -> None:
        """Compute the field of every row of x and hand it over, band by band.

        ``take(row, outputs, field)`` receives the field (complex64) of the outputs in the
        slice ``outputs``, in a buffer it may overwrite, while the band is in cache. Rows are
        shared among up to ``workers`` threads, each with its own buffer, so that the
        elementwise work (embedding, phase multiplies, what ``take`` does) runs on every
        core as the FFTs do (numpy and scipy.fft release the GIL). The FFTs along the grid's
        rows run over bands of ``_BAND_BYTES``, each right after the elementwise step before
        it (embedding, phase multiply) and before the hand-over: one trip through memory for both.
        """
        batch, n_features = x.shape
        shape = self.shape(n_features, n_outputs)
        length = shape[0] * shape[1]
        width = shape[1]
        diagonals = self._current(length)
        first = diagonals[0, :n_features] * np.complex64(math.sqrt(length / n_features))  # sqrt(L/N) D1 P_in
        second = diagonals[1].reshape(shape)
        threads = max(1, min(self.workers, batch))
        fft_workers = max(1, self.workers // threads)  # a lone row's FFTs are spread over the cores
        buffers = self._buffers(threads, length)
        band = max(1, _BAND_BYTES // (width * np.dtype(np.complex64).itemsize))  # grid rows per band
        # Grid rows holding inputs (the rest are zero: their FFTs along axis 1 are skipped in
        # the first stage) and outputs (only those rows get the last stage's FFTs along axis 1).
        rows_in, rows_out = -(-n_features // width), -(-n_outputs // width)

        def fft(grid: np.ndarray, axis: int) -> None:
            done = scipy.fft.fft(grid, axis=axis, norm="ortho", overwrite_x=True, workers=fft_workers)
            if not np.may_share_memory(done, grid):  # scipy transforms a complex64 array in place; if not, copy
                grid[...] = done

        def run(thread: int) -> None:
            work = buffers[thread]
            grid = work.reshape(shape)
            for row in range(thread, batch, threads):
                # Stage 1 (F = F_L1 (x) F_L2: the two axes in either order): embed, rows, columns.
                for low in range(0, rows_in, band):
                    high = min(low + band, rows_in)
                    start, stop = low * width, min(high * width, n_features)
                    np.multiply(x[row, start:stop], first[start:stop], out=work[start:stop], casting="same_kind")
                    work[stop : high * width] = 0
                    fft(grid[low:high], 1)
                work[rows_in * width :] = 0
                fft(grid, 0)
                # Stage 2: D2 and the rows' FFTs band by band, then the columns.
                for low in range(0, shape[0], band):
                    rows = grid[low : low + band]
                    np.multiply(rows, second[low : low + band], out=rows)
                    fft(rows, 1)
                fft(grid, 0)
                # Stage 3: D3, the columns, then the rows holding outputs, each band handed over.
                np.multiply(work, diagonals[2], out=work)
                fft(grid, 0)
                for low in range(0, rows_out, band):
                    fft(grid[low : low + band], 1)
                    outputs = slice(low * width, min((low + band) * width, n_outputs))
                    take(row, outputs, work[outputs])

        if threads == 1:
            run(0)
        else:
            list(self._pool().map(run, range(threads)))

    def _buffers(self, count: int, length: int) -> np.ndarray:
        """``count`` work rows of length L (complex64), kept between products of the same L."""
        if self._work.shape[0] < count or self._work.shape[1] != length:
            self._work = np.empty((max(count, self.workers), length), dtype=np.complex64)
        return self._work

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="medium")
        return self._executor

    def _do_close(self) -> None:
        """Stop the worker threads and drop the work rows."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._work = np.empty((0, 0), dtype=np.complex64)
