"""Dask scale-out: the algorithms take dask arrays chunked by rows.

A dask array is never gathered: every product runs on the workers, one block of rows per
task (``A_i @ X``, ``A_i^T @ X_i`` summed, ``A_i @ S``), and only the thin results
(m x k or n x k) come back. Sketches travel as recipes, not matrices: a digital sketch
is rebuilt from its seed on the worker, and a :class:`WorkerOPUSketch` opens the
worker's own OPU (``emu://`` with the same seed gives the same medium, hence the same
matrix), so results match the in-memory run. Any ``dask`` scheduler works; with a
``distributed.Client`` active, its cluster does the work.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..validation import check_int
from .sketch import OPUSketch, SketchOperator, Usage

_LOCAL: dict[tuple[Any, ...], OPUSketch] = {}
_LOCAL_LOCK = threading.Lock()


def _row_blocks(A: Any) -> list[Any]:
    """Delayed row blocks of A (columns merged into one chunk)."""
    if A.numblocks[1] != 1:
        A = A.rechunk({1: -1})
    return list(A.to_delayed().ravel())


def _compute(tasks: list[Any]) -> list[Any]:
    import dask

    return list(dask.compute(*tasks))


def matmat(A: Any, X: np.ndarray) -> np.ndarray:
    """``A @ X`` on the workers, float64 (m, k)."""
    from dask import delayed

    X = np.asarray(X, dtype=np.float64)
    shared = delayed(X, pure=True)
    parts = _compute([delayed(np.dot)(block, shared) for block in _row_blocks(A)])
    return np.concatenate(parts).astype(np.float64, copy=False)


def _block_rmatmat(block: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.asarray(block, dtype=np.float64).T @ X


def rmatmat(A: Any, X: np.ndarray) -> np.ndarray:
    """``A^T @ X`` on the workers (a sum over row blocks), float64 (n, k)."""
    from dask import delayed

    X = np.asarray(X, dtype=np.float64)
    starts = np.cumsum((0,) + A.chunks[0])
    tasks = [
        delayed(_block_rmatmat)(block, X[starts[i] : starts[i + 1]]) for i, block in enumerate(_row_blocks(A))
    ]
    return np.sum(_compute(tasks), axis=0)


def _sketch_block(block: np.ndarray, sketch: SketchOperator) -> tuple[np.ndarray, Usage]:
    before = sketch.usage()
    out = sketch.apply(np.asarray(block, dtype=np.float64))
    return out, sketch.usage() - before


def sketch_rows(A: Any, sketch: SketchOperator) -> tuple[np.ndarray, Usage]:
    """``A @ S`` with each row block sketched on a worker; the usage sums the workers' frames and time (s)."""
    from dask import delayed

    if isinstance(sketch, OPUSketch):
        raise TypeError(
            "sketch: an OPUSketch holds an open device and cannot travel to workers; "
            "use WorkerOPUSketch(device, ...) so each worker opens its own OPU"
        )
    results = _compute([delayed(_sketch_block)(block, sketch) for block in _row_blocks(A)])
    usage = Usage()
    for _, spent in results:
        usage += spent
    return np.concatenate([y for y, _ in results]), usage


class WorkerOPUSketch(SketchOperator):
    """An OPU sketch described by its device URL: each process that uses it opens its own OPU.

    Pickles as its recipe (URL, seed, sizes), so it can travel to dask workers. With
    ``emu://`` and a fixed ``seed`` every process sees the same medium, hence the same
    matrix. Usage counts the frames of this process's OPU.

    Parameters
    ----------
    device:
        Device URL, e.g. ``"emu://?fidelity=ideal"``.
    n_features, size, offset, bits:
        As for :class:`OPUSketch`.
    seed:
        Seed of an emulated device.
    n_components:
        Outputs the OPU is opened with (default ``offset + size``).
    """

    exact = False

    def __init__(
        self,
        device: str,
        n_features: int,
        size: int,
        *,
        seed: int | None = None,
        n_components: int | None = None,
        offset: int = 0,
        bits: int = 8,
    ) -> None:
        super().__init__(n_features, size)
        if not isinstance(device, str):
            raise TypeError(f"device: expected a device URL string, got {type(device).__name__}")
        self.device = device
        self.seed = seed
        self.offset = check_int(offset, "offset", low=0)
        self.bits = check_int(bits, "bits", low=1, high=16)
        total = self.offset + self.size if n_components is None else check_int(n_components, "n_components", low=1)
        if self.offset + self.size > total:
            raise ValueError(f"n_components: expected at least offset + size = {self.offset + self.size}, got {total}")
        self.n_components = total

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self.device, self.n_features, self.size, self.seed, self.n_components, self.offset, self.bits),
        )

    def _local(self) -> OPUSketch:
        from ..opu import OPU

        key = (self.device, self.seed, self.n_components, self.n_features, self.bits)
        with _LOCAL_LOCK:
            base = _LOCAL.get(key)
            if base is None:
                opu = OPU(self.device, n_components=self.n_components, seed=self.seed, progress=False).open()
                base = _LOCAL[key] = OPUSketch(opu, self.n_features, self.size, bits=self.bits)
        return base.block(self.offset, self.size)

    def usage(self) -> Usage:
        return self._local().usage()

    def _do_apply(self, X: Any) -> np.ndarray:
        return self._local().apply(X)

    def _do_realize(self) -> np.ndarray:
        return self._local().realize()

    def _do_fresh(self) -> "WorkerOPUSketch":
        return WorkerOPUSketch(
            self.device,
            self.n_features,
            self.size,
            seed=self.seed,
            n_components=self.n_components,
            offset=self.offset + self.size,
            bits=self.bits,
        )


def _rebuild(
    device: str, n_features: int, size: int, seed: int | None, n_components: int, offset: int, bits: int
) -> WorkerOPUSketch:
    return WorkerOPUSketch(device, n_features, size, seed=seed, n_components=n_components, offset=offset, bits=bits)
