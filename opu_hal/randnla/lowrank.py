"""Randomized low-rank approximation: range finder, RSVD, Nyström and single-view sketching.

Only the first sketch ``A @ S`` goes through the sketch operator (optically for an OPU);
power iterations, projections and factorizations are digital (Halko, Martinsson, Tropp
2011). The camera noise of an optical sketch acts as extra randomness in the test
matrix: it spends a few columns of the sketch, which oversampling covers, and a digital
power iteration (``A (A^T Q)``) removes what lies outside the range of A. A second
optical pass (``S^T (A S)``) would focus light on single pixels and saturate them, so it
is never made.

``matvecs`` in every result (here and in :mod:`opu_hal.randnla.trace`) counts the products
of A or A^T with vectors, optical or digital, the sketch ``A S`` included (its k columns;
a LinearOperator sketched by an inexact sketch gives up its m rows first, m products with
A^T); :attr:`Matrix.products` counts them where they happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import scipy.linalg as sla

from ..validation import check_int
from .linops import Matrix, as_matrix, check_square
from .sketch import SketchOperator, Usage, resolve_sketch

if TYPE_CHECKING:
    from ..opu import OPU

logger = logging.getLogger(__name__)


def _orth(Y: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the columns of Y (economic QR)."""
    return sla.qr(Y, mode="economic", check_finite=False)[0]


@dataclass
class RangeResult:
    """An orthonormal basis ``Q`` (m, k) of an approximate range of A.

    ``error_estimate``: posterior estimate of ``||A - Q Q^T A||_F / ||A||_F`` from
    ``posterior`` digital Gaussian test vectors (unbiased for the squared errors); None
    when it was not asked for. ``usage``: device frames and time (s); ``matvecs``:
    products with A or A^T (columns), the sketch included.
    """

    Q: np.ndarray
    error_estimate: float | None
    usage: Usage = field(default_factory=Usage)
    matvecs: int = 0


@dataclass
class SVDResult:
    """A truncated SVD ``U diag(s) Vt``; unpacks as ``U, s, Vt = result``.

    ``matvecs``: products with A or A^T (columns), the sketch included.
    """

    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray
    usage: Usage = field(default_factory=Usage)
    matvecs: int = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.U, self.s, self.Vt))


@dataclass
class NystromResult:
    """A PSD approximation ``U diag(eigenvalues) U^T``; unpacks as ``U, eigenvalues = result``.

    ``matvecs``: products with A (columns), the sketch included.
    """

    U: np.ndarray
    eigenvalues: np.ndarray
    usage: Usage = field(default_factory=Usage)
    matvecs: int = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.U, self.eigenvalues))


class _Posterior:
    """Posterior error estimate with ``r`` digital Gaussian vectors (HMT 2011, section 4.3, in Frobenius norm)."""

    def __init__(self, A: Matrix, r: int, seed: int) -> None:
        omega = np.random.default_rng([seed, 0x706F7374]).standard_normal((A.shape[1], r))
        self.E = A.matmat(omega)
        self.norm = float(np.linalg.norm(self.E))

    def relative_error(self, Q: np.ndarray) -> float:
        residual = self.E - Q @ (Q.T @ self.E)
        return float(np.linalg.norm(residual) / self.norm) if self.norm > 0 else 0.0


def _power(A: Matrix, Q: np.ndarray, iters: int, basis: np.ndarray | None = None) -> np.ndarray:
    """``iters`` digital subspace iterations ``Q <- orth(A orth(A^T Q))``, kept orthogonal to ``basis``."""
    for _ in range(iters):
        Z = _orth(A.rmatmat(Q))
        Q = A.matmat(Z)
        if basis is not None:
            Q -= basis @ (basis.T @ Q)
        Q = _orth(Q)
    return Q


def range_finder(
    A: Any,
    sketch: SketchOperator | OPU | None = None,
    *,
    rank: int | None = None,
    tol: float | None = None,
    oversampling: int = 10,
    power_iters: int = 0,
    max_rank: int | None = None,
    posterior: int | None = 10,
    seed: int = 0,
) -> RangeResult:
    """An orthonormal basis Q with ``A ~ Q Q^T A``, of fixed or adaptive rank.

    Parameters
    ----------
    A:
        (m, n) numpy array, scipy sparse matrix, LinearOperator or dask array.
    sketch:
        Sketch operator of ``n`` features; its size is the block size. Default: a digital
        Gaussian sketch of ``rank + oversampling`` columns (fixed rank) or 10 (adaptive);
        an OPU stands for ``OPUSketch(opu, n, size)`` of that default size.
    rank, oversampling:
        Fixed rank: the basis has ``sketch.size`` (default ``rank + oversampling``) columns.
    tol:
        Adaptive rank: add blocks from fresh sketches until the posterior estimate of
        ``||A - Q Q^T A||_F / ||A||_F`` is at most ``tol`` (or ``max_rank`` columns).
    power_iters:
        Digital power iterations per block.
    posterior:
        Digital Gaussian test vectors of the posterior error estimate (``posterior``
        products with A); None: no estimate (fixed rank only; ``error_estimate`` is None).
    seed:
        Seed of the default sketch and of the posterior test vectors.
    """
    A = as_matrix(A)
    m, n = A.shape
    check_int(power_iters, "power_iters", low=0)
    if posterior is not None or tol is not None:
        check_int(posterior, "posterior", low=1)
    if (rank is None) == (tol is None) and not isinstance(sketch, SketchOperator):
        raise ValueError("rank, tol: expected exactly one of a fixed rank or a tolerance, got " + (
            "both" if rank is not None else "neither"))
    if tol is not None and not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol: expected a relative Frobenius error in (0, 1), got {tol!r}")
    if isinstance(sketch, SketchOperator):
        size = sketch.size
    else:
        size = 10 if tol is not None else check_int(rank, "rank", low=1) + check_int(oversampling, "oversampling", low=0)
    sketch = resolve_sketch(sketch, n, min(size, n), seed)
    start = A.products
    post = None if posterior is None else _Posterior(A, posterior, seed)
    Y, usage = A.sketch(sketch)
    Q = _power(A, _orth(Y), power_iters)
    if tol is not None:
        limit = min(m, n) if max_rank is None else check_int(max_rank, "max_rank", low=1)
        error = post.relative_error(Q)
        while error > tol and Q.shape[1] < limit:
            sketch = sketch.fresh()
            Y, spent = A.sketch(sketch)
            usage += spent
            for _ in range(2):  # block Gram-Schmidt, twice for stability
                Y -= Q @ (Q.T @ Y)
            block = _power(A, _orth(Y), power_iters, Q)
            Q = np.hstack([Q, block])[:, :limit]
            error = post.relative_error(Q)
            logger.debug("adaptive range: %d columns, estimated error %.3e", Q.shape[1], error)
        return RangeResult(Q, error, usage, A.products - start)
    error = None if post is None else post.relative_error(Q)
    return RangeResult(Q, error, usage, A.products - start)


def rsvd(
    A: Any,
    rank: int,
    sketch: SketchOperator | OPU | None = None,
    *,
    oversampling: int = 10,
    power_iters: int = 1,
    seed: int = 0,
) -> SVDResult:
    """Randomized SVD of rank ``rank``: one sketch, digital power iterations, then ``svd(Q^T A)``.

    ``sketch`` (n features; default a digital Gaussian sketch of ``rank + oversampling``
    columns; an OPU stands for ``OPUSketch(opu, n, rank + oversampling)``) must have at
    least ``rank`` columns. ``power_iters`` digital iterations
    follow the sketch. Returns ``U`` (m, rank), ``s`` (rank,), ``Vt`` (rank, n).
    """
    A = as_matrix(A)
    rank = check_int(rank, "rank", low=1, high=min(A.shape))
    check_int(oversampling, "oversampling", low=0)
    sketch = resolve_sketch(sketch, A.shape[1], min(rank + oversampling, A.shape[1]), seed)
    if sketch.size < rank:
        raise ValueError(f"sketch: expected at least rank = {rank} columns, got size {sketch.size}")
    start = A.products
    found = range_finder(A, sketch, power_iters=power_iters, posterior=None, seed=seed)
    Q = found.Q
    Bt = A.rmatmat(Q)  # (Q^T A)^T, digital
    Ub, s, Vt = sla.svd(Bt.T, full_matrices=False, check_finite=False)
    U = Q @ Ub[:, :rank]
    return SVDResult(U, s[:rank], Vt[:rank], found.usage, A.products - start)


def block_krylov_svd(
    A: Any,
    rank: int,
    sketch: SketchOperator | OPU | None = None,
    *,
    oversampling: int = 10,
    iters: int = 1,
    seed: int = 0,
) -> SVDResult:
    """Randomized block Krylov SVD of rank ``rank`` (Musco and Musco 2015, Algorithm 2).

    The sketch ``A S`` (b columns) starts the block Krylov space
    ``K = [A S, (A A^T) A S, ..., (A A^T)^q A S]`` (q = ``iters``, each block orthonormalized
    before the next product), ``Q = orth(K)`` (b (q + 1) columns) and the rank-``rank`` SVD
    of ``Q^T A``. Passes over A: 2 + 2q, as :func:`rsvd` with ``power_iters=q``, whose range
    keeps only the last block (``(A A^T)^q A S``): the whole space reaches a given accuracy
    in fewer passes on slowly decaying spectra. Only the first sketch goes through the
    sketch operator (an OPU stands for ``OPUSketch(opu, n, rank + oversampling)``); the
    Krylov products are digital. ``matvecs``: products with A or A^T (columns),
    ``b + 2 q b + b (q + 1)``.
    """
    A = as_matrix(A)
    rank = check_int(rank, "rank", low=1, high=min(A.shape))
    check_int(oversampling, "oversampling", low=0)
    check_int(iters, "iters", low=0)
    sketch = resolve_sketch(sketch, A.shape[1], min(rank + oversampling, A.shape[1]), seed)
    if sketch.size < rank:
        raise ValueError(f"sketch: expected at least rank = {rank} columns, got size {sketch.size}")
    start = A.products
    Y, usage = A.sketch(sketch)
    block = _orth(Y)
    blocks = [block]
    for _ in range(iters):
        block = A.matmat(A.rmatmat(block))
        for _ in range(2):  # against the earlier blocks, twice for stability
            for earlier in blocks:
                block -= earlier @ (earlier.T @ block)
        block = _orth(block)
        blocks.append(block)
    Q = _orth(np.hstack(blocks))
    Bt = A.rmatmat(Q)  # (Q^T A)^T
    Ub, s, Vt = sla.svd(Bt.T, full_matrices=False, check_finite=False)
    return SVDResult(Q @ Ub[:, :rank], s[:rank], Vt[:rank], usage, A.products - start)


def nystrom(
    A: Any, rank: int, sketch: SketchOperator | OPU | None = None, *, oversampling: int = 10, seed: int = 0
) -> NystromResult:
    """Nyström approximation of a symmetric positive semi-definite A (stable shifted form).

    With an exact sketch: ``A S (S^T A S)^+ S^T A`` with a small shift (Tropp et al. 2017).
    With an inexact (optical) sketch, its only use is the range: ``Q = orth(A S)`` and
    the Nyström approximation with test matrix Q is digital (``A Q``, ``Q^T A Q``).
    ``sketch``: default a digital Gaussian sketch of ``rank + oversampling`` columns; an
    OPU stands for ``OPUSketch(opu, n, rank + oversampling)``.
    Returns ``U`` (n, rank) and the eigenvalues (rank,), largest first.
    """
    A = as_matrix(A)
    check_square(A)
    n = A.shape[0]
    rank = check_int(rank, "rank", low=1, high=n)
    check_int(oversampling, "oversampling", low=0)
    sketch = resolve_sketch(sketch, n, min(rank + oversampling, n), seed)
    if sketch.size < rank:
        raise ValueError(f"sketch: expected at least rank = {rank} columns, got size {sketch.size}")
    start = A.products
    Y, usage = A.sketch(sketch)
    if sketch.exact:
        omega = sketch.realize()
    else:
        omega = _orth(Y)
        Y = A.matmat(omega)
    shift = np.sqrt(n) * np.finfo(np.float64).eps * np.linalg.norm(Y, 2)
    Y_shift = Y + shift * omega
    core = omega.T @ Y_shift
    core = (core + core.T) / 2
    try:
        C = sla.cholesky(core, lower=False, check_finite=False)
        B = sla.solve_triangular(C, Y_shift.T, trans="T", lower=False, check_finite=False).T
    except np.linalg.LinAlgError:  # indefinite from rounding: use the PSD part of the core
        w, V = np.linalg.eigh(core)
        keep = w > w.max() * 1e-12
        B = Y_shift @ (V[:, keep] / np.sqrt(w[keep]))
    U, sigma, _ = sla.svd(B, full_matrices=False, check_finite=False)
    eigenvalues = np.maximum(sigma**2 - shift, 0.0)
    return NystromResult(U[:, :rank], eigenvalues[:rank], usage, A.products - start)


class SingleViewSketch:
    """Single-view (streaming) low-rank approximation (Tropp, Yurtsever, Udell, Cevher 2017).

    A is never stored: linear updates ``A += H`` change only the range sketch
    ``Y = A S`` (m, k) and the co-range sketch ``W = Psi A`` (l, n), with ``Psi = T^T``
    for a second sketch T of m features. ``approximation()`` gives the rank-``rank`` SVD
    from ``Q = orth(Y)``, ``X = (Psi Q)^+ W``. The range sketch goes through the sketch
    operator (optically for an OPU: its noise reaches Q, streaming leaves no digital
    second look at A). The formula needs the same Psi in ``W`` and in ``Psi Q``, so an
    inexact (optical) co-range sketch is realized once, when the streaming sketch is made
    (``corange_sketch.realize()``, counted in ``usage``), and both products use those
    numbers digitally: two optical acquisitions would carry different noise (and drift).

    Parameters
    ----------
    shape:
        (m, n) of A.
    rank:
        Rank of the approximation.
    range_sketch, corange_sketch:
        Sketches of n and m features; defaults: digital Gaussian of k = 2 rank + 1 and
        l = 2 k + 1 columns (the sizes Tropp et al. recommend). An OPU stands for
        ``OPUSketch(opu, n, k)`` (range) and ``OPUSketch(opu, m, l, offset=k)`` (co-range:
        the outputs after the range's, so that the two test matrices are independent).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        rank: int,
        range_sketch: SketchOperator | OPU | None = None,
        corange_sketch: SketchOperator | OPU | None = None,
        *,
        seed: int = 0,
    ) -> None:
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise TypeError(f"shape: expected an (m, n) tuple, got {shape!r}")
        m, n = (check_int(v, "shape", low=1) for v in shape)
        self.shape = (m, n)
        self.rank = check_int(rank, "rank", low=1, high=min(m, n))
        k = min(2 * self.rank + 1, n)
        self.range_sketch = resolve_sketch(range_sketch, n, k, seed, name="range_sketch")
        self.corange_sketch = resolve_sketch(
            corange_sketch, m, min(2 * self.range_sketch.size + 1, m), seed + 1, name="corange_sketch",
            offset=self.range_sketch.size,
        )
        if self.range_sketch.size < self.rank or self.corange_sketch.size < self.range_sketch.size:
            raise ValueError(
                f"corange_sketch: expected sizes rank <= k <= l, got rank {self.rank}, k {self.range_sketch.size}, "
                f"l {self.corange_sketch.size}"
            )
        self.Y = np.zeros((m, self.range_sketch.size))
        self.W = np.zeros((self.corange_sketch.size, n))
        self.matvecs = 0
        before = self.corange_sketch.usage()
        #: the co-range test matrix T (m, l) when realized once (inexact sketch), else None
        self._psi_t = None if self.corange_sketch.exact else self.corange_sketch.realize()
        self.usage = self.corange_sketch.usage() - before

    def update(self, H: Any) -> None:
        """Add the (m, n) matrix H (numpy, scipy sparse, LinearOperator or dask) to the sketched A."""
        H = as_matrix(H, "H")
        if H.shape != self.shape:
            raise ValueError(f"H: expected shape {self.shape}, got {H.shape}")
        start = H.products
        Y, spent_y = H.sketch(self.range_sketch)
        if self._psi_t is None:
            Wt, spent_w = H.T.sketch(self.corange_sketch)
        else:
            Wt, spent_w = H.rmatmat(self._psi_t), Usage()
        self.Y += Y
        self.W += Wt.T
        self.usage += spent_y + spent_w
        self.matvecs += H.products - start

    def approximation(self) -> SVDResult:
        """The rank-``rank`` SVD of the sketched A."""
        Q = _orth(self.Y)
        if self._psi_t is None:
            psi_q = self.corange_sketch.apply(Q.T).T  # (l, k), exact: the same Psi as in W
        else:
            psi_q = self._psi_t.T @ Q
        X = sla.lstsq(psi_q, self.W, check_finite=False)[0]  # (k, n)
        Ux, s, Vt = sla.svd(X, full_matrices=False, check_finite=False)
        return SVDResult(Q @ Ux[:, : self.rank], s[: self.rank], Vt[: self.rank], self.usage, self.matvecs)


def single_view(
    A: Any,
    rank: int,
    range_sketch: SketchOperator | OPU | None = None,
    corange_sketch: SketchOperator | OPU | None = None,
    *,
    seed: int = 0,
) -> SVDResult:
    """One-pass rank-``rank`` SVD of A from a :class:`SingleViewSketch` (A read once)."""
    A = as_matrix(A)
    sketch = SingleViewSketch(A.shape, rank, range_sketch, corange_sketch, seed=seed)
    sketch.update(A)
    return sketch.approximation()
