"""Stochastic Lanczos quadrature (SLQ): ``tr f(A)`` for symmetric A, e.g. ``log det A``.

For a test vector v (``||v||^2 = n``), ``v^T f(A) v`` is a Riemann-Stieltjes integral of f
against the spectral measure of A seen from v; ``s`` Lanczos steps from ``v / ||v||`` give
the tridiagonal ``T = S diag(theta) S^T``, and the Gauss quadrature
``||v||^2 sum_k S[0, k]^2 f(theta_k)`` is exact for polynomials of degree below ``2 s``
(Golub and Meurant 2010; Ubaru, Chen and Saad 2017). The average over ``probes`` test
vectors is a Hutchinson estimate of ``tr f(A)``, with the standard error of its terms
(:class:`~opu_hal.randnla.TraceResult`, ``interval()``). Its quadrature error falls
exponentially with the steps for f analytic on the spectrum (``log`` on [lambda_min,
lambda_max] with lambda_min > 0); the standard error does not include it, so take enough
steps (about ``sqrt(condition number)`` times a few).

The test vectors come from ``sketch.realize()`` (the OPU's matrix realized by probing, for
an optical sketch), scaled to norm ``sqrt(n)`` as in :mod:`opu_hal.randnla.trace`; the
Lanczos products are digital, one block product per step for all probes, with full
reorthogonalization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy.linalg import eigh_tridiagonal

from ..validation import check_int
from .linops import as_matrix, check_square
from .sketch import SketchOperator
from .trace import TraceResult, _mean_and_error, _sketch_for, _test_vectors

if TYPE_CHECKING:
    from ..opu import OPU


def _lanczos(A: Any, V: np.ndarray, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column of V, the Lanczos coefficients ``(alpha, beta)`` of up to ``steps`` steps from ``v / ||v||``."""
    n, p = V.shape
    basis = np.zeros((steps, n, p))
    q = V / np.linalg.norm(V, axis=0)
    alpha = np.zeros((steps, p))
    beta = np.zeros((steps, p))
    length = np.full(p, steps)
    live = np.ones(p, dtype=bool)
    for j in range(steps):
        basis[j] = q
        w = A.matmat(q)
        alpha[j] = np.einsum("ij,ij->j", q, w)
        for _ in range(2):  # full reorthogonalization, twice for stability
            w -= np.einsum("kip,kp->ip", basis[: j + 1], np.einsum("kip,ip->kp", basis[: j + 1], w))
        beta[j] = np.linalg.norm(w, axis=0)
        if j == steps - 1:
            break
        scale = np.maximum(np.abs(alpha[: j + 1]).max(axis=0), np.finfo(np.float64).tiny)
        broken = live & (beta[j] <= 1e-12 * scale)  # an invariant subspace: the quadrature is exact
        length[broken] = j + 1
        live &= ~broken
        q = np.where(live, w / np.where(beta[j] > 0, beta[j], 1.0), 0.0)
    return [(alpha[: length[i], i], beta[: length[i] - 1, i]) for i in range(p)]


def slq(
    A: Any,
    f: Callable[[np.ndarray], np.ndarray],
    sketch: SketchOperator | OPU | None = None,
    *,
    probes: int = 30,
    steps: int = 20,
    seed: int = 0,
) -> TraceResult:
    """Stochastic Lanczos quadrature estimate of ``tr f(A)`` for a symmetric (n, n) A.

    Parameters
    ----------
    A:
        Symmetric (n, n) numpy array, scipy sparse matrix, LinearOperator or dask array
        (positive semi-definite when f needs it, e.g. ``sqrt``).
    f:
        Vectorized function of the eigenvalues (``np.log``, ``np.sqrt``, ``lambda x: ...``).
    sketch:
        Source of the test vectors (its ``size`` columns, realized, each scaled to norm
        sqrt(n)); default a digital Gaussian sketch of ``probes`` columns; an OPU stands for
        ``OPUSketch(opu, n, probes)``.
    probes:
        Test vectors (the sketch's size when one is given).
    steps:
        Lanczos steps per test vector (exact quadrature for polynomials of degree below 2 steps).
    seed:
        Seed of the default sketch.

    Returns a :class:`TraceResult`: ``estimate``, ``std_error`` and ``dof`` from the spread of
    the per-vector quadratures (``interval()``), ``matvecs`` = probes x steps, ``usage``.
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable of the eigenvalues (e.g. np.log), got {type(f).__name__}")
    A = as_matrix(A)
    check_square(A)
    steps = check_int(steps, "steps", low=1, high=A.shape[0])
    if isinstance(sketch, SketchOperator):
        probes = sketch.size
    probes = check_int(probes, "probes", low=1)
    sketch = _sketch_for(sketch, A.shape[0], probes, seed)
    before = sketch.usage()
    V = _test_vectors(sketch)
    start = A.products
    terms = np.empty(probes)
    for i, (alpha, beta) in enumerate(_lanczos(A, V, steps)):
        theta, S = eigh_tridiagonal(alpha, beta)
        values = np.asarray(f(theta), dtype=np.float64)
        if values.shape != theta.shape or not np.all(np.isfinite(values)):
            raise ValueError(
                f"f: expected finite values of shape {theta.shape} at the Ritz values "
                f"[{theta.min():.3g}, {theta.max():.3g}] of A, got {values!r}"
            )
        terms[i] = A.shape[0] * float(np.sum(S[0] ** 2 * values))
    estimate, error, dof = _mean_and_error(terms)
    return TraceResult(estimate, A.products - start, sketch.usage() - before, error, dof)


def logdet(
    A: Any, sketch: SketchOperator | OPU | None = None, *, probes: int = 30, steps: int = 20, seed: int = 0
) -> TraceResult:
    """``log det A = tr log(A)`` of a symmetric positive definite A by :func:`slq` (same parameters).

    Raises ``ValueError`` when a Ritz value is not positive (A is not positive definite).
    """

    def log(theta: np.ndarray) -> np.ndarray:
        if np.any(theta <= 0):
            raise ValueError(
                f"A: expected a positive definite matrix, got a Ritz value {theta.min():.3g} <= 0"
            )
        return np.log(theta)

    return slq(A, log, sketch, probes=probes, steps=steps, seed=seed)
