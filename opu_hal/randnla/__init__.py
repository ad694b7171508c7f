"""Randomized numerical linear algebra with an OPU (or a digital sketch) as the sketching engine.

Functions take a matrix (numpy array, scipy sparse matrix, ``scipy.sparse.linalg.LinearOperator``
or dask array) and a :class:`SketchOperator`: :class:`OPUSketch` (the OPU's
``linear_transform``) or a digital reference (:class:`GaussianSketch`,
:class:`SparseSignSketch`, :class:`SRHTSketch`, :class:`CountSketch`). Only the first sketch of a matrix is
optical; accuracy-critical steps are digital. Every result reports the device frames and
emulated device time (s) it spent in ``usage``, and ``matvecs``: the products of A or
A^T with vectors, optical or digital, the sketch ``A S`` included (its k columns).
An open OPU is accepted wherever a sketch is (an ``OPUSketch`` of the entry point's
default size).
"""

from .distributed import WorkerOPUSketch
from .eigh import EighResult, randomized_eigh
from .linops import Matrix, as_matrix
from .lowrank import (
    NystromResult,
    RangeResult,
    SingleViewSketch,
    SVDResult,
    block_krylov_svd,
    nystrom,
    range_finder,
    rsvd,
    single_view,
)
from .lstsq import LstsqResult, lstsq
from .quadrature import logdet, slq
from .sketch import CountSketch, GaussianSketch, OPUSketch, SketchOperator, SparseSignSketch, SRHTSketch, Usage, make_sketch
from .trace import (
    TraceResult,
    hutchinson,
    hutchpp,
    hutchpp_sizes,
    na_hutchpp,
    nystrompp,
    power_nystrompp,
    trace,
    triangle_count,
    xtrace,
)

__all__ = [
    "CountSketch",
    "EighResult",
    "GaussianSketch",
    "LstsqResult",
    "Matrix",
    "NystromResult",
    "OPUSketch",
    "RangeResult",
    "SRHTSketch",
    "SVDResult",
    "SingleViewSketch",
    "SketchOperator",
    "SparseSignSketch",
    "TraceResult",
    "Usage",
    "WorkerOPUSketch",
    "as_matrix",
    "block_krylov_svd",
    "hutchinson",
    "hutchpp",
    "hutchpp_sizes",
    "logdet",
    "lstsq",
    "make_sketch",
    "na_hutchpp",
    "nystrom",
    "nystrompp",
    "power_nystrompp",
    "randomized_eigh",
    "range_finder",
    "rsvd",
    "single_view",
    "slq",
    "trace",
    "triangle_count",
    "xtrace",
]
