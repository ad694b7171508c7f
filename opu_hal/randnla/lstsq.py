"""Least squares by sketch-and-precondition (Blendenpik, LSRN).

The sketch ``S^T A`` (d x n, d > n) only builds the preconditioner: ``S^T A = Q R`` makes
``A R^{-1}`` well conditioned, and LSQR solves ``min |A R^{-1} y - b|`` digitally to its
tolerance, so the answer is exact to solver tolerance whatever the sketch's accuracy.
A noisy (optical) sketch resolves A's conditioning only down to its noise floor, so
with an inexact sketch the preconditioner is refined: the preconditioned matrix is
sketched again until the new factor's condition number is below ``target_condition``
(each round is one more pass of the n columns of A through the sketch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator, lsqr

from ..validation import check_int, check_number
from .linops import as_matrix
from .sketch import SketchOperator, SparseSignSketch, Usage, resolve_sketch

if TYPE_CHECKING:
    from ..opu import OPU

logger = logging.getLogger(__name__)


@dataclass
class LstsqResult:
    """Solution ``x`` of ``min |A x - b|``, its ``residual_norm``, LSQR ``iterations``, the
    preconditioner ``rounds`` and the condition number of the last factor, and device ``usage``."""

    x: np.ndarray
    residual_norm: float
    iterations: int
    rounds: int
    factor_condition: float
    usage: Usage = field(default_factory=Usage)


def lstsq(
    A: Any,
    b: Any,
    sketch: SketchOperator | OPU | None = None,
    *,
    tol: float = 1e-14,
    max_iter: int | None = None,
    max_rounds: int = 10,
    target_condition: float = 10.0,
    seed: int = 0,
) -> LstsqResult:
    """Solve ``min_x |A x - b|_2`` for a tall A (m >= n) with a sketched preconditioner.

    Parameters
    ----------
    A:
        (m, n) numpy array, scipy sparse matrix, LinearOperator or dask array, full column rank.
    b:
        (m,) right-hand side.
    sketch:
        Sketch of m features with at least n + 1 columns (``A^T`` is sketched, its rows
        being the columns of A). Default: sparse sign embedding with ``min(4 n, m)`` columns;
        an OPU stands for ``OPUSketch(opu, m, min(4 n, m))``.
    tol:
        LSQR ``atol`` and ``btol``.
    max_iter:
        LSQR iteration limit (default 10 n).
    max_rounds, target_condition:
        Refinement of the preconditioner with an inexact sketch (unused with an exact one).
    """
    A = as_matrix(A)
    m, n = A.shape
    if m < n:
        raise ValueError(f"A: expected a tall matrix (rows >= columns), got shape {A.shape}")
    b = np.asarray(b, dtype=np.float64)
    if b.shape != (m,):
        raise ValueError(f"b: expected shape ({m},), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("b: expected finite values, got NaN or inf")
    check_number(tol, "tol", low=0, high=1, low_open=True, high_open=True)
    max_iter = 10 * n if max_iter is None else check_int(max_iter, "max_iter", low=1)
    check_int(max_rounds, "max_rounds", low=1)
    if sketch is None:
        sketch = SparseSignSketch(m, min(4 * n, m), seed)
    sketch = resolve_sketch(sketch, m, min(4 * n, m), seed)
    if sketch.size <= n:
        raise ValueError(f"sketch: expected more than n = {n} columns, got size {sketch.size}")

    At = A.T
    R = np.eye(n)
    usage = Usage()
    rounds, condition = 0, np.inf
    while rounds < (1 if sketch.exact else max_rounds):
        if rounds == 0:
            SAt, spent = At.sketch(sketch)  # (S^T A)^T, (n, d)
        else:
            # the same S embeds range(A R^-1) = range(A); its noise is now relative to better columns
            AR = A.matmat(sla.solve_triangular(R, np.eye(n), lower=False, check_finite=False))
            SAt, spent = as_matrix(AR.T).sketch(sketch)
        usage += spent
        step = sla.qr(SAt.T, mode="r", check_finite=False)[0][:n]
        R = step @ R
        rounds += 1
        condition = float(np.linalg.cond(step))
        logger.debug("preconditioner round %d: factor condition %.2e", rounds, condition)
        if condition < target_condition:
            break

    def forward(y: np.ndarray) -> np.ndarray:
        z = sla.solve_triangular(R, y.reshape(n, -1), lower=False, check_finite=False)
        return A.matmat(z).reshape(m, -1).squeeze(-1) if y.ndim == 1 else A.matmat(z)

    def adjoint(r: np.ndarray) -> np.ndarray:
        z = A.rmatmat(r.reshape(m, -1))
        out = sla.solve_triangular(R, z, trans="T", lower=False, check_finite=False)
        return out.squeeze(-1) if r.ndim == 1 else out

    op = LinearOperator((m, n), matvec=forward, rmatvec=adjoint, dtype=np.float64)
    y, istop, iterations, residual_norm = lsqr(op, b, atol=tol, btol=tol, iter_lim=max_iter)[:4]
    if istop == 7:
        logger.warning("lstsq: LSQR reached max_iter = %d before tol = %g", max_iter, tol)
    x = sla.solve_triangular(R, y, lower=False, check_finite=False)
    return LstsqResult(x, float(residual_norm), int(iterations), rounds, condition, usage)
