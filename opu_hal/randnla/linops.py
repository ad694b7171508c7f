"""One interface for the matrices the algorithms take.

:func:`as_matrix` wraps a numpy array, a scipy sparse matrix, a
``scipy.sparse.linalg.LinearOperator`` or a dask array in a :class:`Matrix` with the
products the algorithms need: ``A @ X``, ``A^T @ X`` and the sketch ``A @ S`` computed
from the rows of A (the OPU needs the rows themselves as its inputs). Dask arrays are
computed block by block on the cluster (see :mod:`opu_hal.randnla.distributed`).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .sketch import SketchOperator, Usage

ROW_BLOCK = 4096


def is_dask(A: Any) -> bool:
    """True for a dask array (without importing dask)."""
    return type(A).__module__.startswith("dask.array") and hasattr(A, "chunks")


class Matrix:
    """A real matrix of shape (m, n) behind numpy, scipy sparse, a LinearOperator or dask."""

    def __init__(self, A: Any, name: str = "A") -> None:
        if isinstance(A, Matrix):
            A = A.data
        if is_dask(A):
            kind = "dask"
        elif sp.issparse(A):
            kind = "sparse"
            A = sp.csr_array(A)
        elif isinstance(A, LinearOperator):
            kind = "operator"
        elif isinstance(A, np.ndarray):
            kind = "dense"
        else:
            raise TypeError(
                f"{name}: expected a numpy array, a scipy sparse matrix, a scipy LinearOperator or a dask array, "
                f"got {type(A).__name__}"
            )
        if len(A.shape) != 2 or min(A.shape) < 1:
            raise ValueError(f"{name}: expected a non-empty 2-D matrix, got shape {A.shape}")
        if np.dtype(A.dtype).kind not in "biuf":
            raise TypeError(f"{name}: expected real numbers, got dtype {A.dtype}")
        if kind == "dense" and not np.all(np.isfinite(A)):
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
        if kind == "sparse" and not np.all(np.isfinite(A.data)):
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
        self.data = A
        self.kind = kind
        self.shape: tuple[int, int] = (int(A.shape[0]), int(A.shape[1]))
        self._count = [0]  # products with A or A^T, shared with the transpose

    @property
    def products(self) -> int:
        """Products of A or A^T with vectors so far (the ``matvecs`` of the results; see the package notes)."""
        return self._count[0]

    # ------------------------------------------------------------------ products
    def matmat(self, X: np.ndarray) -> np.ndarray:
        """``A @ X`` for dense X (n, k); float64 (m, k)."""
        self._count[0] += X.shape[1]
        if self.kind == "dask":
            from . import distributed

            return distributed.matmat(self.data, X)
        out = self.data @ X if self.kind != "operator" else self.data.matmat(X)
        return np.asarray(out, dtype=np.float64)

    def rmatmat(self, X: np.ndarray) -> np.ndarray:
        """``A^T @ X`` for dense X (m, k); float64 (n, k)."""
        self._count[0] += X.shape[1]
        if self.kind == "dask":
            from . import distributed

            return distributed.rmatmat(self.data, X)
        out = self.data.T @ X if self.kind != "operator" else self.data.rmatmat(X)
        return np.asarray(out, dtype=np.float64)

    def row_blocks(self, block: int = ROW_BLOCK) -> Iterator[np.ndarray | sp.sparray]:
        """The rows of A in blocks of at most ``block`` rows (a LinearOperator's rows cost matvecs)."""
        m, n = self.shape
        for start in range(0, m, block):
            stop = min(start + block, m)
            if self.kind == "operator":
                picks = np.zeros((m, stop - start))
                picks[np.arange(start, stop), np.arange(stop - start)] = 1.0
                self._count[0] += stop - start
                yield np.asarray(self.data.rmatmat(picks), dtype=np.float64).T
            elif self.kind == "dask":
                yield np.asarray(self.data[start:stop].compute(), dtype=np.float64)
            else:
                yield self.data[start:stop]

    def sketch(self, sketch: SketchOperator) -> tuple[np.ndarray, Usage]:
        """``A @ S`` from the rows of A, and the device usage it cost.

        Counts ``sketch.size`` products (a LinearOperator sketched by an inexact sketch
        counts the m products with A^T that give its rows instead).
        """
        if sketch.n_features != self.shape[1]:
            raise ValueError(
                f"sketch: expected a sketch of {self.shape[1]} features (columns of A), got {sketch.n_features}"
            )
        before = sketch.usage()
        if self.kind == "dask":
            from . import distributed

            self._count[0] += sketch.size
            return distributed.sketch_rows(self.data, sketch)
        if self.kind == "operator" and sketch.exact:
            out = self.matmat(sketch.realize())
        else:
            out = np.concatenate([sketch.apply(block) for block in self.row_blocks()])
            if self.kind != "operator":
                self._count[0] += sketch.size
        return out, sketch.usage() - before

    @property
    def T(self) -> "Matrix":
        """The transpose (its products count with A's)."""
        transpose = Matrix(self.data.T)
        transpose._count = self._count
        return transpose

    def dense(self) -> np.ndarray:
        """A as a dense float64 array (a LinearOperator is applied to the identity)."""
        if self.kind == "operator":
            return self.matmat(np.eye(self.shape[1]))
        if self.kind == "sparse":
            return self.data.toarray().astype(np.float64)
        if self.kind == "dask":
            return np.asarray(self.data.compute(), dtype=np.float64)
        return np.asarray(self.data, dtype=np.float64)


def as_matrix(A: Any, name: str = "A") -> Matrix:
    """Wrap A (numpy, scipy sparse, LinearOperator or dask) in a :class:`Matrix`."""
    return A if isinstance(A, Matrix) else Matrix(A, name)


def check_square(A: Matrix, name: str = "A") -> None:
    """Reject a non-square matrix."""
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {A.shape}")
