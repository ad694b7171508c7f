"""The scattering medium: a seeded complex Gaussian transmission matrix, made in tiles.

The medium is an unbounded grid of unit-variance circular complex Gaussian entries
``G[j, i]`` (output pixel j, input feature i). Each ``tile_size x tile_size`` tile is drawn
from its own random stream keyed by ``(seed, tile row, tile column)``, so any tile can be
made on demand in any order, the same seed always gives the same matrix, and the matrix
of a smaller device is exactly the top-left block of a larger one. The transmission matrix
of a device using N features is ``R = G[:M, :N] / sqrt(N)`` (PHYSICS.md 1: E|R_ij|^2 = 1/N).

The matrix in use is kept in memory when it fits a budget (``cache_mb``); beyond it its
panels are made again at each product, so memory stays bounded for any N x M.

Drift (PHYSICS.md 3) is an Ornstein-Uhlenbeck process per entry: between device times
t0 and t1 the matrix becomes ``sqrt(1 - eps) G + sqrt(eps) W`` with W fresh and
``eps = 1 - exp(-(t1 - t0) / tau)`` (= dt / tau for dt << tau, and consistent however the
interval is split). A drifting medium must fit the budget, since its history cannot
be made again from the seed.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
import numpy as np

logger = logging.getLogger(__name__)

_MEDIUM_STREAM = 0x6D656469  # "medi": separates medium streams from noise streams
_DRIFT_STREAM = 0x64726966  # "drif"


def _tile_generator(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=key)))


def _complex_normal(gen: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Circular complex Gaussian entries with E|z|^2 = 2 (unit-variance parts), float32 (rows, 2*cols).

    Real and imaginary parts are interleaved, so ``out.view(np.complex64)`` is the complex
    matrix and a real GEMM with a binary input computes the complex product at half cost.
    The factor 1/sqrt(2) that makes E|G|^2 = 1 is applied to products, not to the entries.
    """
    return gen.standard_normal((shape[0], 2 * shape[1]), dtype=np.float32)


class Medium:
    """Seeded transmission matrix, generated in tiles, with optional drift.

    Parameters
    ----------
    seed:
        Seed of the medium.
    tile_size:
        Edge of a tile (entries).
    cache_mb:
        Memory budget (megabytes) for keeping the matrix in use; a larger one is
        streamed, panel by panel, at every product.
    drift_tau_s:
        Decorrelation time tau (seconds), or None for a frozen medium.
    workers:
        Threads that generate tiles in parallel.
    """

    def __init__(
        self,
        seed: int,
        tile_size: int = 512,
        cache_mb: float = 4096.0,
        drift_tau_s: float | None = None,
        workers: int = 2,
    ) -> None:
        self.seed = seed
        self.tile_size = tile_size
        self.cache_bytes = int(cache_mb * 2**20)
        self.drift_tau_s = drift_tau_s
        self._dense: np.ndarray | None = None  # G[:M, :N].T, interleaved float32 (N, 2M)
        self._dense_time_s = 0.0
        self._drift_step = 0
        self._time_s = 0.0
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medium")

    # ------------------------------------------------------------------ tiles
    def tile(self, ti: int, tj: int, stream: tuple[int, ...] = (_MEDIUM_STREAM,)) -> np.ndarray:
        """Tile (features ``ti*T:(ti+1)*T``, outputs ``tj*T:(tj+1)*T``) as interleaved float32 (T, 2T)."""
        return _complex_normal(_tile_generator(self.seed, *stream, ti, tj), (self.tile_size,) * 2)

    def _blocks(self, n: int) -> list[tuple[int, int, int]]:
        return [(t, lo, min(lo + self.tile_size, n)) for t, lo in enumerate(range(0, n, self.tile_size))]

    def panel(
        self, n_features: int, out_start: int, out_stop: int, stream: tuple[int, ...] = (_MEDIUM_STREAM,)
    ) -> np.ndarray:
        """``G[out_start:out_stop, :n_features]`` transposed, interleaved float32 (N, 2*width).

        ``out_start`` must be a multiple of the tile size. Tiles are made in parallel.
        """
        if out_start % self.tile_size:
            raise ValueError(f"out_start: expected a multiple of {self.tile_size}, got {out_start}")
        panel = np.empty((n_features, 2 * (out_stop - out_start)), dtype=np.float32)
        outs = self._blocks(out_stop)[out_start // self.tile_size :]
        jobs = [(f, o) for f in self._blocks(n_features) for o in outs]

        def fill(job: tuple[tuple[int, int, int], tuple[int, int, int]]) -> None:
            (ti, lo, hi), (tj, olo, ohi) = job
            tile = self.tile(ti, tj, stream)
            panel[lo:hi, 2 * (olo - out_start) : 2 * (ohi - out_start)] = tile[: hi - lo, : 2 * (ohi - olo)]

        list(self._pool.map(fill, jobs))
        return panel

    # ------------------------------------------------------------------ time
    @property
    def time_s(self) -> float:
        """Device time the medium has reached (seconds)."""
        return self._time_s

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of device time pass (the medium drifts if drift is on)."""
        if seconds < 0:
            raise ValueError(f"seconds: expected a non-negative duration, got {seconds}")
        self._time_s += seconds

    # ------------------------------------------------------------------ the matrix in use
    def _fits(self, n_features: int, n_outputs: int) -> bool:
        return n_features * n_outputs * 8 <= self.cache_bytes

    def _current(self, n_features: int, n_outputs: int) -> np.ndarray | None:
        """The kept matrix for (N, M) at the current time, or None when it must be streamed."""
        dense = self._dense
        if dense is None or dense.shape != (n_features, 2 * n_outputs):
            if not self._fits(n_features, n_outputs):
                if self.drift_tau_s:
                    raise ValueError(
                        f"drift_tau_s: a drifting medium must fit the memory budget; {n_features} x "
                        f"{n_outputs} needs {n_features * n_outputs * 8 / 2**20:.0f} MB, cache_mb allows "
                        f"{self.cache_bytes / 2**20:.0f} MB"
                    )
                self._dense = None
                return None
            self._dense = dense = self.panel(n_features, 0, n_outputs)
            self._dense_time_s, self._drift_step = 0.0, 0
        if self.drift_tau_s and self._time_s > self._dense_time_s:
            eps = -math.expm1(-(self._time_s - self._dense_time_s) / self.drift_tau_s)
            self._drift_step += 1
            fresh = self.panel(n_features, 0, n_outputs, (_DRIFT_STREAM, self._drift_step))
            dense *= np.float32(math.sqrt(1.0 - eps))
            fresh *= np.float32(math.sqrt(eps))
            dense += fresh
            self._dense_time_s = self._time_s
        return dense

    def prepare(self, n_features: int, n_outputs: int) -> None:
        """Make (and keep, if it fits the budget) the matrix for N features and M outputs."""
        with self._lock:
            self._current(n_features, n_outputs)

    def field(self, x: np.ndarray, n_outputs: int) -> np.ndarray:
        """Complex field ``R x`` for a batch x of shape (B, N), as complex64 (B, n_outputs).

        ``R = G[:n_outputs, :N] / sqrt(N)``. A matrix beyond the budget is streamed in panels
        of outputs, so memory is bounded by one panel plus the result.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        batch, n_features = x.shape
        out = np.empty((batch, 2 * n_outputs), dtype=np.float32)
        with self._lock:
            dense = self._current(n_features, n_outputs)
            if dense is not None:
                np.matmul(x, dense, out=out)
            else:
                width = max(1, (64 * 2**20) // (n_features * self.tile_size * 8)) * self.tile_size
                for start in range(0, n_outputs, width):
                    stop = min(start + width, n_outputs)
                    np.matmul(x, self.panel(n_features, start, stop), out=out[:, 2 * start : 2 * stop])
        out *= np.float32(1.0 / math.sqrt(2.0 * n_features))
        return out.view(np.complex64)

    def matrix(self, n_outputs: int, n_features: int) -> np.ndarray:
        """Ground truth ``R = G[:M, :N] / sqrt(N)`` as complex64 (M, N), at the current time."""
        with self._lock:
            g = self._current(n_features, n_outputs)
            if g is None:
                g = self.panel(n_features, 0, n_outputs)
            r = np.ascontiguousarray(g.view(np.complex64).T)
        r *= np.float32(1.0 / math.sqrt(2.0 * n_features))
        return r

    def close(self) -> None:
        """Release the kept matrix and the worker threads."""
        self._pool.shutdown(wait=True)
        self._dense = None
