"""Dask scale-out: the algorithms take dask arrays chunked by rows.

A dask array is never gathered: every product runs on the workers, one block of rows per
task (``A_i @ X``, ``A_i^T @ X_i`` summed, ``A_i @ S``), and only the thin results
(m x k or n x k) come back. Sketches travel as recipes, not matrices: a digital sketch
is rebuilt from its seed on the worker, and a :class:`WorkerOPUSketch` opens the
worker's own OPU (``emu://`` with the same seed gives the same medium, hence the same
matrix), so results match the in-memory run. Each row block gets its own noise stream
(``noise_seed`` derived from the seed and the block index), so blocks sketched by different
workers do not share noise, and a rerun on fresh workers reproduces. Any ``dask`` scheduler works; with a
``distributed.Client`` active, its cluster does the work.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..url import DeviceURL, parse_device_url, resolve_url, scheme_info
from ..validation import check_int
from .sketch import OPUSketch, SketchOperator, Usage

#: Spawn key of the noise streams of row blocks (apart from any other use of the seed).
_NOISE_STREAMS = 0x6E6F
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
    blocks = _row_blocks(A)
    if isinstance(sketch, WorkerOPUSketch):
        per_block = [sketch.for_block(i) for i in range(len(blocks))]
    else:
        per_block = [sketch] * len(blocks)
    results = _compute([delayed(_sketch_block)(block, s) for block, s in zip(blocks, per_block)])
    usage = Usage()
    for _, spent in results:
        usage += spent
    return np.concatenate([y for y, _ in results]), usage


class WorkerOPUSketch(SketchOperator):
    """An OPU sketch described by its device URL: each process that uses it opens its own OPU.

    Pickles as its recipe (URL, seed, sizes, noise stream), so it can travel to dask
    workers. With ``emu://`` and a fixed ``seed`` every process sees the same medium,
    hence the same matrix. Row block i of a dask array is sketched with
    :meth:`for_block` ``(i)``: a device of the same medium and its own noise stream
    (``noise_seed`` of the emulator, derived from the seed and i), so that workers, whose
    frame ids all start at 0, do not repeat each other's noise, and the result does not
    depend on which worker takes which block. A process opens one OPU per noise stream it
    is given (one per row block it sketches). Usage counts the frames of this process's OPU.

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
    noise_stream:
        Index of the noise stream (the row block); None: the device's own noise.
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
        noise_stream: int | None = None,
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
        self.noise_stream = None if noise_stream is None else check_int(noise_stream, "noise_stream", low=0)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self.device, self.n_features, self.size, self.seed, self.n_components, self.offset, self.bits,
             self.noise_stream),
        )

    def for_block(self, index: int) -> "WorkerOPUSketch":
        """The same sketch with noise stream ``index`` (row block ``index`` of a dask array)."""
        return self._with(offset=self.offset, noise_stream=check_int(index, "index", low=0))

    def _with(self, *, offset: int, noise_stream: int | None) -> "WorkerOPUSketch":
        return WorkerOPUSketch(
            self.device,
            self.n_features,
            self.size,
            seed=self.seed,
            n_components=self.n_components,
            offset=offset,
            bits=self.bits,
            noise_stream=noise_stream,
        )

    def _device_url(self) -> str:
        """The device URL, with the ``noise_seed`` of this noise stream on a device that has one."""
        if self.noise_stream is None:
            return self.device
        url = parse_device_url(self.device)
        if "noise_seed" not in scheme_info(url.scheme).documented_keys():
            return self.device  # a real device: its noise is its own
        spec = resolve_url(url, {"seed": self.seed} if self.seed is not None else {})
        base = spec.value("noise_seed")
        base = spec.value("seed") if base is None else base
        stream = int(np.random.SeedSequence(base, spawn_key=(_NOISE_STREAMS, self.noise_stream)).generate_state(1)[0])
        return str(DeviceURL(url.scheme, url.location, {**url.query, "noise_seed": str(stream)}))

    def _local(self) -> OPUSketch:
        from ..opu import OPU

        device = self._device_url()
        key = (device, self.seed, self.n_components, self.n_features, self.bits)
        with _LOCAL_LOCK:
            base = _LOCAL.get(key)
            if base is None:
                opu = OPU(device, n_components=self.n_components, seed=self.seed, progress=False).open()
                base = _LOCAL[key] = OPUSketch(opu, self.n_features, self.size, bits=self.bits)
        return base.block(self.offset, self.size)

    def usage(self) -> Usage:
        return self._local().usage()

    def _do_apply(self, X: Any) -> np.ndarray:
        return self._local().apply(X)

    def _do_realize(self) -> np.ndarray:
        return self._local().realize()

    def _do_fresh(self) -> "WorkerOPUSketch":
        return self._with(offset=self.offset + self.size, noise_stream=self.noise_stream)


def _rebuild(
    device: str, n_features: int, size: int, seed: int | None, n_components: int, offset: int, bits: int,
    noise_stream: int | None = None,
) -> WorkerOPUSketch:
    return WorkerOPUSketch(
        device, n_features, size, seed=seed, n_components=n_components, offset=offset, bits=bits,
        noise_stream=noise_stream,
    )
