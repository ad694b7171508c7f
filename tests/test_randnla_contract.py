"""The public contract: an OPU is accepted wherever a sketch is, wrapped in an OPUSketch of a documented size.

Every public RandNLA entry point that takes a sketch is called twice on the same OPU:
with the OPU itself, and with the ``OPUSketch`` that the contract says it stands for
(offset 0, the size the entry point would give its own digital sketch). The OPU keeps
the outputs of the inputs it has seen and its realized matrix, so the two calls must
give identical results.
"""

import numpy as np
import pytest

from opu_hal import OPU
from opu_hal.randnla import (
    OPUSketch,
    SingleViewSketch,
    block_krylov_svd,
    hutchinson,
    hutchpp,
    lstsq,
    na_hutchpp,
    nystrom,
    nystrompp,
    power_nystrompp,
    range_finder,
    rsvd,
    single_view,
    trace,
    triangle_count,
    xtrace,
)

N = 32
rng = np.random.default_rng(5)
A = rng.standard_normal((60, N)) * 0.8 ** np.arange(N)
P = A.T @ A
B = rng.standard_normal((80, 12))
b = rng.standard_normal(80)
ADJ = np.triu((rng.random((N, N)) < 0.3).astype(float), 1)
ADJ = ADJ + ADJ.T

# entry point, its call with a given sketch, the explicit sketch an OPU stands for, the result to compare
CASES = {
    "range_finder": (lambda s: range_finder(A, s, rank=6), lambda o: OPUSketch(o, N, 16), lambda r: r.Q),
    "range_finder adaptive": (lambda s: range_finder(A, s, tol=0.1), lambda o: OPUSketch(o, N, 10), lambda r: r.Q),
    "rsvd": (lambda s: rsvd(A, 6, s), lambda o: OPUSketch(o, N, 16), lambda r: r.s),
    "block_krylov_svd": (lambda s: block_krylov_svd(A, 6, s), lambda o: OPUSketch(o, N, 16), lambda r: r.s),
    "nystrom": (lambda s: nystrom(P, 6, s), lambda o: OPUSketch(o, N, 16), lambda r: r.eigenvalues),
    "single_view": (lambda s: single_view(P, 3, s, s), lambda o: (OPUSketch(o, N, 7), OPUSketch(o, N, 15, offset=7)),
                    lambda r: r.s),
    "hutchinson": (lambda s: hutchinson(P, s, matvecs=12), lambda o: OPUSketch(o, N, 12), float),
    "hutchpp": (lambda s: hutchpp(P, s, matvecs=24), lambda o: OPUSketch(o, N, 8), float),
    "hutchpp power": (lambda s: hutchpp(P, s, matvecs=24, power_iters=1), lambda o: OPUSketch(o, N, 7), float),
    "nystrompp": (lambda s: nystrompp(P, s, matvecs=24), lambda o: OPUSketch(o, N, 12), float),
    "power_nystrompp": (lambda s: power_nystrompp(P, s, matvecs=24), lambda o: OPUSketch(o, N, 8), float),
    "na_hutchpp": (lambda s: na_hutchpp(P, s, matvecs=24), lambda o: OPUSketch(o, N, 6), float),
    "xtrace": (lambda s: xtrace(P, s, matvecs=24), lambda o: OPUSketch(o, N, 12), float),
    "trace": (lambda s: trace(P, s, matvecs=24), lambda o: OPUSketch(o, N, 8), float),
    "triangle_count": (lambda s: triangle_count(ADJ, s, matvecs=24), lambda o: OPUSketch(o, N, 8), float),
    "lstsq": (lambda s: lstsq(B, b, s), lambda o: OPUSketch(o, 80, 48), lambda r: r.x),
}


@pytest.fixture
def opu():  # a fresh device per case: the first call spends frames
    with OPU("emu://", n_components=64, seed=3, progress=False) as device:
        yield device


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_opu_is_accepted_wherever_a_sketch_is(name, opu):
    call, explicit, value = CASES[name]
    with_opu = call(opu)
    assert with_opu.usage.frames > 0  # the OPU did the sketching
    given = explicit(opu)
    with_sketches = single_view(P, 3, *given) if name == "single_view" else call(given)
    np.testing.assert_array_equal(value(with_opu), value(with_sketches))


def test_the_streaming_sketch_takes_an_opu_for_both_sketches(opu):
    stream = SingleViewSketch(A.shape, 3, opu, opu)
    assert (stream.range_sketch.size, stream.range_sketch.offset) == (7, 0)
    assert (stream.corange_sketch.size, stream.corange_sketch.offset) == (15, 7)


def test_an_opu_without_enough_outputs_is_refused_naming_the_argument():
    with OPU("emu://?fidelity=ideal", n_components=8, seed=0, progress=False) as small:
        with pytest.raises(ValueError, match="offset: expected offset \\+ size <= n_components = 8"):
            rsvd(A, 6, small)
    with pytest.raises(TypeError, match="sketch: expected a SketchOperator .* or an OPU, got str"):
        rsvd(A, 6, "emu://")
