"""Stochastic trace estimation: Hutchinson, Hutch++, NA-Hutch++, XTrace; triangle counting.

Estimators that need their test vectors (every one of them, for the Hutchinson part)
take them from ``sketch.realize()`` (the OPU's matrix realized by probing, for an optical
sketch), scaled to norm ``sqrt(n)``: the columns of a Gaussian matrix plus independent
isotropic noise point in uniformly random directions, so the estimators stay unbiased
whatever the noise level. Products with those vectors are digital. The range sketch of
Hutch++ and NA-Hutch++ (``A S``) goes through the sketch operator, optically for an OPU:
its noise only changes which subspace is deflated, never the expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ..validation import check_int
from .linops import Matrix, as_matrix, check_square
from .lowrank import _check_sketch, _orth
from .sketch import GaussianSketch, SketchOperator, Usage

Method = Literal["hutchinson", "hutch++", "na-hutch++", "xtrace"]


@dataclass
class TraceResult:
    """A trace estimate; ``matvecs``: products with A (columns), ``usage``: device frames and time (s)."""

    estimate: float
    matvecs: int
    usage: Usage = field(default_factory=Usage)

    def __float__(self) -> float:
        return float(self.estimate)


def _sketch_for(sketch: SketchOperator | None, n: int, size: int, seed: int) -> SketchOperator:
    if sketch is None:
        return GaussianSketch(n, size, seed)
    _check_sketch(sketch, n)
    if sketch.size != size:
        raise ValueError(f"sketch: expected size {size} for this number of matvecs, got {sketch.size}")
    return sketch


def _test_vectors(sketch: SketchOperator) -> np.ndarray:
    """The realized columns of the sketch, each scaled to norm sqrt(n)."""
    G = sketch.realize()
    norms = np.linalg.norm(G, axis=0)
    if np.any(norms == 0):
        raise ValueError("sketch: a realized test vector is zero; use a larger sketch or another block")
    return G * (np.sqrt(G.shape[0]) / norms)


def _prepare(A: Any, matvecs: int, parts: int) -> tuple[Matrix, int]:
    A = as_matrix(A)
    check_square(A)
    matvecs = check_int(matvecs, "matvecs", low=parts)
    return A, matvecs // parts


def hutchinson(A: Any, sketch: SketchOperator | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """Hutchinson's estimator ``mean_j g_j^T A g_j`` with ``matvecs`` test vectors (the sketch's size)."""
    A, k = _prepare(A, matvecs, 1)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    G = _test_vectors(sketch)
    estimate = float(np.einsum("ij,ij->", G, A.matmat(G)) / k)
    return TraceResult(estimate, k, sketch.usage() - before)


def _hutchpp_from_range(A: Matrix, Y: np.ndarray, G: np.ndarray) -> float:
    """``tr(Q^T A Q) + tr(G'^T A G') / k`` with ``Q = orth(Y)`` and ``G' = (I - Q Q^T) G``."""
    Q = _orth(Y)
    head = float(np.einsum("ij,ij->", Q, A.matmat(Q)))
    G = G - Q @ (Q.T @ G)
    return head + float(np.einsum("ij,ij->", G, A.matmat(G)) / G.shape[1])


def hutchpp(A: Any, sketch: SketchOperator | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with ``matvecs`` products: k = matvecs // 3.

    ``A S`` (k columns) through the sketch, ``A Q`` and the Hutchinson part on the
    deflated matrix with k test vectors from ``sketch.fresh()``.
    """
    A, k = _prepare(A, matvecs, 3)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    Y, _ = A.sketch(sketch)
    G = _test_vectors(sketch.fresh())
    return TraceResult(_hutchpp_from_range(A, Y, G), 3 * k, sketch.usage() - before)


def na_hutchpp(A: Any, sketch: SketchOperator | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """Non-adaptive Hutch++: all products in one round; k = matvecs // 4.

    ``Z = A R`` (k columns, through the sketch), ``W = S^T A`` (2k realized vectors) and
    ``A G`` (k realized vectors):
    ``tr((S^T Z)^+ W R') + [tr(G^T A G) - tr(G^T Z (S^T Z)^+ W G)] / k`` where the core
    ``W Z = S^T A Z`` is exact even when Z is noisy, which keeps the estimate unbiased.
    """
    A, k = _prepare(A, matvecs, 4)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    Z, _ = A.sketch(sketch)
    s1 = sketch.fresh()
    s2 = s1.fresh()
    S = np.hstack([_test_vectors(s1), _test_vectors(s2)])
    G = _test_vectors(s2.fresh())
    W = A.rmatmat(S).T  # S^T A, (2k, n)
    core_pinv = sla.pinv(S.T @ Z, check_finite=False)  # (k, 2k)
    head = float(np.trace(core_pinv @ (W @ Z)))
    AG = A.matmat(G)
    tail = float(np.einsum("ij,ij->", G, AG) - np.trace((G.T @ Z) @ core_pinv @ (W @ G))) / k
    return TraceResult(head + tail, 4 * k, sketch.usage() - before)


def xtrace(A: Any, sketch: SketchOperator | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """XTrace (Epperly, Tropp, Webber 2024): exchangeable leave-one-out Hutch++; s = matvecs // 2 vectors.

    Every test vector both builds the deflation basis of the others and serves as the
    Hutchinson vector of its own estimate. It needs ``A Omega`` consistent with Omega, so
    with any sketch the realized vectors are multiplied digitally.
    """
    A, s = _prepare(A, matvecs, 2)
    if s < 2:
        raise ValueError(f"matvecs: expected at least 4 for XTrace, got {matvecs}")
    sketch = _sketch_for(sketch, A.shape[0], s, seed)
    before = sketch.usage()
    omega = _test_vectors(sketch)
    Y = A.matmat(omega)
    Q, R = sla.qr(Y, mode="economic", check_finite=False)
    Z = A.matmat(Q)
    H = Q.T @ Z
    W = Q.T @ omega
    # Q_(i) spans Y without column i: Q with direction s_i = R^{-T} e_i / |.| removed
    S = sla.solve_triangular(R, np.eye(s), trans="T", lower=False, check_finite=False)
    S /= np.linalg.norm(S, axis=0)
    c = np.einsum("ij,ij->j", S, W)
    head = np.trace(H) - np.einsum("ij,ij->j", S, H @ S)
    V = omega - Q @ W + Q @ (S * c)
    AV = Y - Z @ W + Z @ (S * c)
    tail = np.einsum("ij,ij->j", V, AV)
    return TraceResult(float(np.mean(head + tail)), 2 * s, sketch.usage() - before)


_METHODS = {"hutchinson": hutchinson, "hutch++": hutchpp, "na-hutch++": na_hutchpp, "xtrace": xtrace}


def trace(
    A: Any, sketch: SketchOperator | None = None, *, method: Method = "hutch++", matvecs: int = 96, seed: int = 0
) -> TraceResult:
    """Estimate ``tr(A)`` of a square matrix with ``matvecs`` products, by ``method``."""
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {sorted(_METHODS)}, got {method!r}")
    return _METHODS[method](A, sketch, matvecs=matvecs, seed=seed)


def triangle_count(
    adjacency: Any, sketch: SketchOperator | None = None, *, matvecs: int = 96, seed: int = 0
) -> TraceResult:
    """Triangles of an undirected graph, ``tr(A^3) / 6``, by Hutch++ on ``A^3``.

    The range sketch ``A^3 S = A^2 (A S)`` takes the 0/1 rows of the adjacency matrix
    through the sketch (binary inputs suit the DMD); the rest is sparse and digital.
    ``matvecs`` counts products with ``A^3``.
    """
    A = as_matrix(adjacency, "adjacency")
    check_square(A, "adjacency")
    n = A.shape[0]
    k = check_int(matvecs, "matvecs", low=3) // 3
    sketch = _sketch_for(sketch, n, k, seed)
    data = A.data if A.kind != "dense" else np.asarray(A.data, dtype=np.float64)
    if A.kind == "sparse":
        data = sp.csr_array(data, dtype=np.float64)
    if A.kind in ("sparse", "dense"):
        values = data.data if A.kind == "sparse" else data
        if np.any((values != 0) & (values != 1)) or (data != data.T).sum() != 0:
            raise ValueError("adjacency: expected a symmetric matrix of 0 and 1")
    cube = Matrix(LinearOperator((n, n), matvec=lambda x: A.matmat(A.matmat(A.matmat(x.reshape(n, -1)))).ravel(),
                                 matmat=lambda X: A.matmat(A.matmat(A.matmat(X))), dtype=np.float64))
    before = sketch.usage()
    AS, _ = A.sketch(sketch)
    Y = A.matmat(A.matmat(AS))
    G = _test_vectors(sketch.fresh())
    estimate = _hutchpp_from_range(cube, Y, G) / 6.0
    return TraceResult(estimate, 3 * k, sketch.usage() - before)
