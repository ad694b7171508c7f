"""Stochastic trace estimation: Hutchinson, Hutch++, NA-Hutch++, XTrace, Nyström++ (and after a power step); triangles.

Estimators that need their test vectors (every one of them, for the Hutchinson part)
take them from ``sketch.realize()`` (the OPU's matrix realized by probing, for an optical
sketch), scaled to norm ``sqrt(n)``: the columns of a Gaussian matrix plus independent
isotropic noise point in uniformly random directions, so the estimators stay unbiased
whatever the noise level. Products with those vectors are digital. The range sketch of
Hutch++, NA-Hutch++ and Nyström++ after a power step (``A S``) goes through the sketch operator, optically
for an OPU: its noise only changes which subspace is deflated, never the expectation.

Matvec count: every product of A with a vector counts once, optical or digital. With
``matvecs = 3k``, Hutch++ and Nyström++ after a power step spend k optical products (``A S``, through the
sketch), k digital products (``A Q``) and k digital Hutchinson products (``A G``).
:func:`hutchpp` with ``power_iters=q >= 1`` spends exactly ``matvecs``: k optical, q k
digital power-step products, k digital ``A Q`` and m = matvecs - (q + 2) k Hutchinson
products (:func:`hutchpp_sizes`; 28 + 28 + 28 + 12 at 96 with q = 1).

The camera noise in the optical range sketch ``Y = A S + E`` puts noise directions into
``Q = orth(Y)``, so Hutch++'s projection deflation ``tr(Q^T A Q)`` removes less of the
top eigenspace than a Gaussian sketch would: at 96 matvecs on 1,000 x 1,000 PSD test
matrices (emulator, physical fidelity, 8-bit camera) its median error was 1.33x, 5.23x,
1.98x and 1.77x that of digital Hutch++ (spectra 1/j, 1/j^2, 0.9^j, 20 + 1 % floor; 40
OPU trials against 256 digital ones). Two fixes filter the noise through A itself:

- Any square A: ``hutchpp(..., power_iters=1)``, one digital subspace-iteration step
  ``Q = orth(A orth(Y))``, whose range ``A^2 S + A E`` damps the noise as A damps its
  tail, paid for with fewer Hutchinson vectors (28 x 3 + 12 at 96). It gave 1.53x,
  1.47x, 1.57x and 0.94x digital Hutch++ in the exploration above;
  ``opu-hal bench randnla --sections trace`` (32 trials, paired with plain OPU Hutch++,
  1,024-frame linear reference) prints 1.30x, 1.95x, 1.69x and 1.60x with signed biases
  of -0.02 %, +0.009 %, +0.01 % and -0.005 % (each within 0.4 standard errors of 0). The split 24 x 3 + 24 was worse
  (up to 2.05x): the residual after a power step is small, so range columns are worth
  more than Hutchinson vectors. Its digital twin (Gaussian S) is 1.5x-2.1x digital
  Hutch++: the power step costs a Gaussian sketch more than it gains.
- Symmetric PSD A: :func:`power_nystrompp` (Nyström++ after a power step, three blocks;
  not the published two-block Nyström++ of :func:`nystrompp`) uses the products ``Z = A Q`` that Hutch++ spends on
  ``tr(Q^T A Q)`` to form the Nyström approximation ``Z (Q^T Z)^+ Z^T`` instead, whose
  range is ``A Q = A^2 S + A E``, at no extra product and with the equal split. It gave
  0.96x, 1.24x, 0.71x and 0.67x the digital Hutch++ error with signed biases of -0.17 %,
  -0.01 %, -0.06 % and +0.002 % (each within 2 standard errors of 0); the bench prints
  0.87x, 1.18x, 0.77x and 0.93x with biases below 0.1 % (each within 1.1 standard
  errors). Its digital twin (a Gaussian S, same split) is 0.73x-0.90x digital Hutch++, so
  against the same algorithm the optical noise costs 0.97x-1.48x. The Nyström approximation needs a symmetric positive
  semi-definite A.

The figures above were measured while the linear calibration averaged 16 reference
frames: the reference's estimation error then left a fixed offset per output
(docs/physics.md section 4.4), a rank-one error of ``A S`` that accounted for much of plain
OPU Hutch++'s excess. With the 1,024 frames now averaged, on a 300 x 300 matrix with
eigenvalues 1/j^2 and 48 matvecs (device seed 0, 32 trials) OPU Hutch++ went from 2.19x
to 0.97x digital Hutch++ and power Nyström++ from 0.85x to 0.99x. Measured again at
1,000 x 1,000 and 96 matvecs (``opu-hal bench randnla --sections trace``, README), plain
OPU Hutch++ is still 1.16x, 3.61x, 1.54x and 4.24x digital Hutch++ (it was 1.12x, 4.77x,
1.65x and 2.24x with the 16-frame reference): at this size the noise floor of the
camera, not the reference's offset, limits its deflation, and the two fixes above keep
their use.

Other alternatives measured on the same optical data: using the realized OPU matrix as
test matrix and ``A S`` digitally (1.17x-1.24x, but then the OPU only supplies random
numbers); truncating Q to its top 16 or 24 Ritz vectors (up to 24x worse); NA-Hutch++
(2.6x-16x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats
from scipy.sparse.linalg import LinearOperator

from ..validation import check_int, check_number
from .linops import Matrix, as_matrix, check_square
from .lowrank import _orth
from .sketch import SketchOperator, Usage, resolve_sketch

if TYPE_CHECKING:
    from ..opu import OPU

Method = Literal["hutchinson", "hutch++", "na-hutch++", "xtrace", "nystrom++", "power-nystrom++"]


@dataclass
class TraceResult:
    """A trace estimate; ``matvecs``: products with A (columns), ``usage``: device frames and time (s).

    ``std_error``: the estimate's standard error from the sample variance of its m
    Hutchinson terms (``dof`` = m - 1 degrees of freedom), given the deflation basis, which
    the terms do not depend on; None for estimators without one (NA-Hutch++, XTrace,
    triangle counting) or with a single Hutchinson vector.
    """

    estimate: float
    matvecs: int
    usage: Usage = field(default_factory=Usage)
    std_error: float | None = None
    dof: int = 0

    def __float__(self) -> float:
        return float(self.estimate)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Student-t confidence interval ``estimate ± t_(dof) std_error`` for ``tr(A)`` at ``confidence``.

        Exact for normally distributed Hutchinson terms; with m of a few tens and a deflated
        remainder without a dominant direction its coverage is close to nominal (95 %
        intervals of digital Hutch++ at 48 matvecs covered the truth in 90-99 % of 200
        trials, ``tests/test_randnla_trace.py``).
        """
        check_number(confidence, "confidence", low=0, high=1, low_open=True, high_open=True)
        if self.std_error is None:
            raise ValueError("confidence: this estimate has no standard error (an estimator with Hutchinson terms "
                             "and at least two test vectors has one)")
        half = float(stats.t.ppf(0.5 + confidence / 2, self.dof)) * self.std_error
        return self.estimate - half, self.estimate + half


def _mean_and_error(terms: np.ndarray) -> tuple[float, float | None, int]:
    """Mean of the Hutchinson terms, its standard error (None for one term) and the degrees of freedom."""
    m = terms.size
    if m < 2:
        return float(terms.mean()), None, 0
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(m)), m - 1


def _sketch_for(sketch: Any, n: int, size: int, seed: int) -> SketchOperator:
    """The estimator's sketch of ``size`` columns: given, a Gaussian default, or ``OPUSketch(opu, n, size)``."""
    sketch = resolve_sketch(sketch, n, size, seed)
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


def hutchinson(A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """Hutchinson's estimator ``mean_j g_j^T A g_j`` with ``matvecs`` test vectors (the sketch's size)."""
    A, k = _prepare(A, matvecs, 1)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    G = _test_vectors(sketch)
    estimate, error, dof = _mean_and_error(np.einsum("ij,ij->j", G, A.matmat(G)))
    return TraceResult(estimate, k, sketch.usage() - before, error, dof)


def _hutchpp_from_range(A: Matrix, Y: np.ndarray, G: np.ndarray) -> tuple[float, float | None, int]:
    """``tr(Q^T A Q) + tr(G'^T A G') / k`` with ``Q = orth(Y)`` and ``G' = (I - Q Q^T) G``; standard error, dof."""
    Q = _orth(Y)
    head = float(np.einsum("ij,ij->", Q, A.matmat(Q)))
    G = G - Q @ (Q.T @ G)
    tail, error, dof = _mean_and_error(np.einsum("ij,ij->j", G, A.matmat(G)))
    return head + tail, error, dof


def hutchpp_sizes(matvecs: int, power_iters: int = 0) -> tuple[int, int]:
    """Range columns k (the size the sketch of :func:`hutchpp` must have) and Hutchinson vectors m.

    q = ``power_iters`` = 0: the textbook split k = m = matvecs // 3 (3k products). q >= 1:
    the q power steps and ``A Q`` spend (q + 1) k digital products beside the k of ``A S``,
    and fewer Hutchinson vectors are kept, m ~ 3k/7 (the split measured best at q = 1):
    k = floor(7 matvecs / (7 (q + 2) + 3)) and m = matvecs - (q + 2) k >= 1, which spends
    exactly ``matvecs`` (28 + 28 + 28 + 12 at 96 with q = 1).
    """
    power_iters = check_int(power_iters, "power_iters", low=0)
    if power_iters == 0:
        k = check_int(matvecs, "matvecs", low=3) // 3
        return k, k
    matvecs = check_int(matvecs, "matvecs", low=power_iters + 3)
    k = 7 * matvecs // (7 * (power_iters + 2) + 3)
    return k, matvecs - (power_iters + 2) * k


def _fresh_vectors(sketch: SketchOperator, count: int) -> np.ndarray:
    """``count`` test vectors from the blocks following ``sketch`` (``fresh()``, then its ``fresh()``, ...)."""
    blocks, have = [], 0
    while have < count:
        sketch = sketch.fresh()
        blocks.append(_test_vectors(sketch)[:, : count - have])
        have += blocks[-1].shape[1]
    return np.hstack(blocks)


def hutchpp(
    A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0, power_iters: int = 0
) -> TraceResult:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with ``matvecs`` products, any square A.

    ``A S`` (k columns, through the sketch: optically for an OPU), ``power_iters`` digital
    subspace-iteration steps ``Q <- orth(A Q)`` (k products each), ``A Q`` and Hutchinson
    on the deflated matrix with m test vectors from ``sketch.fresh()`` (and the blocks
    after it when m > k). With ``power_iters=0``, k = m = matvecs // 3; with q >= 1,
    k = floor(7 matvecs / (7 (q + 2) + 3)) and m = matvecs - (q + 2) k (exactly ``matvecs``
    products; at 96 with q = 1: 28 optical, 28 + 28 digital, 12 Hutchinson). The sketch
    must have k columns. One power step filters the camera noise of an optical ``A S``
    through A before Q is formed, which brings OPU Hutch++ within 2x of digital Hutch++
    (see the module notes). Q never depends on the test vectors, so the estimate stays
    unbiased for any square A.
    """
    A = as_matrix(A)
    check_square(A)
    k, m = hutchpp_sizes(matvecs, power_iters)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    Y, _ = A.sketch(sketch)
    for _ in range(power_iters):
        Y = A.matmat(_orth(Y))
    G = _fresh_vectors(sketch, m)
    estimate, error, dof = _hutchpp_from_range(A, Y, G)
    return TraceResult(estimate, (power_iters + 2) * k + m, sketch.usage() - before, error, dof)


def _psd_factor(Y: np.ndarray, core: np.ndarray) -> np.ndarray:
    """F with ``F F^T = Y core^+ Y^T`` for the Nyström core ``core = Omega^T A Omega``; rejects a non-PSD A."""
    asym = float(np.linalg.norm(core - core.T))
    if asym > 1e-8 * max(float(np.linalg.norm(core)), np.finfo(np.float64).tiny):
        raise ValueError(f"A: expected a symmetric positive semi-definite matrix, got |Q^T A Q - (Q^T A Q)^T|_F = "
                         f"{asym:.3g} (use hutchpp for other matrices)")
    w, V = np.linalg.eigh((core + core.T) / 2)
    top = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny)
    if w[0] < -1e-8 * top:
        raise ValueError(f"A: expected a symmetric positive semi-definite matrix, got Ritz value {w[0]:.3g} "
                         f"(largest {top:.3g}); use hutchpp for other matrices")
    keep = w > 1e-12 * top
    return Y @ (V[:, keep] / np.sqrt(w[keep]))


def _nystrom_corrected(A: Matrix, F: np.ndarray, G: np.ndarray) -> tuple[float, float | None, int]:
    """``tr(A_N) + mean_j (g_j^T A g_j - g_j^T A_N g_j)`` with ``A_N = F F^T``; standard error, dof."""
    FG = F.T @ G
    tail, error, dof = _mean_and_error(np.einsum("ij,ij->j", G, A.matmat(G)) - np.sum(FG * FG, axis=0))
    return float(np.sum(F * F)) + tail, error, dof


def nystrompp(A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
    """Nyström++ (Persson, Cortinovis, Kressner 2022) for a symmetric PSD A: two blocks of k = matvecs // 2.

    ``Y = A Omega`` with the k test vectors Omega of the sketch, the Nyström approximation
    ``A_N = Y (Omega^T Y)^+ Y^T`` and Hutchinson on ``A - A_N`` with k test vectors from
    ``sketch.fresh()``: ``tr(A_N) + mean_j (g_j^T A g_j - g_j^T A_N g_j)``. The formula
    needs ``A Omega`` consistent with Omega, so an exact sketch gives ``A S`` through the
    sketch and an inexact (optical) one is realized and multiplied digitally. Unbiased for
    any square A (A_N is independent of the g_j); an asymmetric or clearly indefinite
    ``Omega^T A Omega`` raises ValueError. With an OPU, :func:`power_nystrompp` uses the
    optical sketch for its range instead.
    """
    A, k = _prepare(A, matvecs, 2)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    start = A.products
    omega = sketch.realize()
    Y = A.sketch(sketch)[0] if sketch.exact else A.matmat(omega)
    F = _psd_factor(Y, omega.T @ Y)
    estimate, error, dof = _nystrom_corrected(A, F, _test_vectors(sketch.fresh()))
    return TraceResult(estimate, A.products - start, sketch.usage() - before, error, dof)


def power_nystrompp(
    A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0
) -> TraceResult:
    """Nyström++ after one power step, for a symmetric PSD A: three blocks of k = matvecs // 3.

    Not the published two-block Nyström++ (:func:`nystrompp`): ``A S`` (k columns, through
    the sketch: optically for an OPU), ``Q = orth(A S)``, ``Z = A Q`` (k digital products),
    the Nyström approximation ``A_N = Z (Q^T Z)^+ Z^T`` with test matrix Q (a power step:
    its range is ``A^2 S``, which filters an optical sketch's noise through A) and
    Hutchinson on ``A - A_N`` with k test vectors from ``sketch.fresh()``. Unbiased for
    any square A; an asymmetric or clearly indefinite ``Q^T A Q`` raises ValueError.
    """
    A, k = _prepare(A, matvecs, 3)
    sketch = _sketch_for(sketch, A.shape[0], k, seed)
    before = sketch.usage()
    start = A.products
    Y, _ = A.sketch(sketch)
    Q = _orth(Y)
    Z = A.matmat(Q)
    F = _psd_factor(Z, Q.T @ Z)
    estimate, error, dof = _nystrom_corrected(A, F, _test_vectors(sketch.fresh()))
    return TraceResult(estimate, A.products - start, sketch.usage() - before, error, dof)


def na_hutchpp(A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
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


def xtrace(A: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0) -> TraceResult:
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


_METHODS = {"hutchinson": hutchinson, "hutch++": hutchpp, "na-hutch++": na_hutchpp, "xtrace": xtrace,
            "nystrom++": nystrompp, "power-nystrom++": power_nystrompp}


def trace(
    A: Any, sketch: SketchOperator | OPU | None = None, *, method: Method = "hutch++", matvecs: int = 96, seed: int = 0
) -> TraceResult:
    """Estimate ``tr(A)`` of a square matrix with ``matvecs`` products, by ``method`` (``"nystrom++"``,
    ``"power-nystrom++"``: symmetric PSD A).

    For Hutch++ with digital power steps (the choice for an OPU sketch on matrices that are
    not PSD), call :func:`hutchpp` with ``power_iters``.
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {sorted(_METHODS)}, got {method!r}")
    return _METHODS[method](A, sketch, matvecs=matvecs, seed=seed)


def triangle_count(
    adjacency: Any, sketch: SketchOperator | OPU | None = None, *, matvecs: int = 96, seed: int = 0
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
    estimate = _hutchpp_from_range(cube, Y, G)[0] / 6.0
    return TraceResult(estimate, 3 * k, sketch.usage() - before)
