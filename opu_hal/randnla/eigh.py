"""Randomized eigendecomposition of a symmetric matrix, with the rank chosen for a tolerance.

:func:`randomized_eigh` finds the range with the adaptive range finder of Halko,
Martinsson and Tropp (2011, Algorithm 4.2 in block form: :func:`~opu_hal.randnla.range_finder`
with ``tol``): blocks of the sketch are added until a posterior estimate of
``||A - Q Q^T A||_F / ||A||_F`` is at most ``tol``. Rayleigh-Ritz on that range,
``Q^T A Q = W diag(lambda) W^T`` and ``U = Q W`` (HMT 2011, Algorithm 5.3), gives the
eigenpairs, for positive semi-definite and indefinite matrices alike. For symmetric A,
``||A - P A P||_F^2 = ||(I - P) A||_F^2 + ||P A (I - P)||_F^2 <= 2 ||(I - P) A||_F^2`` with
``P = Q Q^T``, so the approximation ``U diag(lambda) U^T`` is within ``sqrt(2) tol`` of A
(relative Frobenius error, up to the sampling error of the estimate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..validation import check_int
from .linops import Matrix, as_matrix, check_square
from .lowrank import range_finder
from .sketch import SketchOperator, Usage

if TYPE_CHECKING:
    from ..opu import OPU


@dataclass
class EighResult:
    """Eigenpairs ``A ~ U diag(eigenvalues) U^T``; unpacks as ``U, eigenvalues = result``.

    ``eigenvalues`` (k,) by decreasing magnitude, ``U`` (n, k) orthonormal; k is the rank the
    tolerance chose. ``error_estimate``: posterior estimate of ``||A - Q Q^T A||_F / ||A||_F``
    for the range Q = span(U). ``usage``: device frames and time (s); ``matvecs``: products
    with A (columns), the sketch and the posterior test vectors included.
    """

    U: np.ndarray
    eigenvalues: np.ndarray
    error_estimate: float
    usage: Usage = field(default_factory=Usage)
    matvecs: int = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.U, self.eigenvalues))


def _check_symmetric(A: Matrix) -> None:
    """Reject an explicit (numpy or sparse) matrix that is not symmetric to rounding."""
    check_square(A)
    if A.kind not in ("dense", "sparse"):
        return  # an operator or a dask array is taken at its word
    data = A.data
    diff = data - data.T
    size = spla.norm(diff) if A.kind == "sparse" else np.linalg.norm(diff)
    scale = spla.norm(data) if A.kind == "sparse" else np.linalg.norm(data)
    if size > 1e-10 * scale:
        raise ValueError(f"A: expected a symmetric matrix, got ||A - A^T||_F / ||A||_F = {size / scale:.1e}")


def randomized_eigh(
    A: Any,
    sketch: SketchOperator | OPU | None = None,
    *,
    tol: float,
    power_iters: int = 1,
    max_rank: int | None = None,
    posterior: int = 10,
    seed: int = 0,
) -> EighResult:
    """Eigenpairs of a symmetric (n, n) A, PSD or indefinite, of the rank that ``tol`` needs.

    Parameters
    ----------
    A:
        Symmetric (n, n) numpy array, scipy sparse matrix, LinearOperator or dask array.
    sketch:
        Sketch of n features; its size is the block added per step, and ``fresh()`` gives
        each further block (an :class:`OPUSketch` takes the next outputs: open the OPU with
        enough ``n_components``). Default: a digital Gaussian sketch of 10 columns; an OPU
        stands for ``OPUSketch(opu, n, 10)``. Only the sketches go through it; the power
        iterations and Rayleigh-Ritz are digital.
    tol:
        Target relative Frobenius error of the range, ``||A - Q Q^T A||_F / ||A||_F``, in (0, 1).
    power_iters:
        Digital power iterations per block (sharper eigenvectors on slow spectra).
    max_rank:
        Most columns of the range (default n).
    posterior:
        Digital Gaussian test vectors of the error estimate.
    seed:
        Seed of the default sketch and of the posterior vectors.
    """
    A = as_matrix(A)
    _check_symmetric(A)
    check_int(power_iters, "power_iters", low=0)
    start = A.products
    found = range_finder(
        A, sketch, tol=tol, power_iters=power_iters, max_rank=max_rank, posterior=posterior, seed=seed
    )
    Q = found.Q
    AQ = A.matmat(Q)
    T = Q.T @ AQ
    w, W = np.linalg.eigh((T + T.T) / 2)
    order = np.argsort(-np.abs(w), kind="stable")
    return EighResult(Q @ W[:, order], w[order], float(found.error_estimate), found.usage, A.products - start)
