"""Dask scale-out: row-chunked dask arrays give the in-memory results, with worker-local OPUs."""

import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra (dask[array], distributed) is part of .[test]")
from dask.distributed import Client, LocalCluster  # noqa: E402

from benchmarks.randnla import dask_matrix  # noqa: E402
from opu_hal import OPU  # noqa: E402
from opu_hal.randnla import GaussianSketch, OPUSketch, WorkerOPUSketch, range_finder, rsvd  # noqa: E402

IDEAL = "emu://?fidelity=ideal"


def test_rsvd_of_a_row_chunked_dask_array_equals_the_in_memory_run():
    lazy, make = dask_matrix(3000, 60, 500, 6, seed=1)
    A = make()
    sketch = GaussianSketch(60, 16, 2)
    local = rsvd(A, 6, sketch, power_iters=1)
    with_dask = rsvd(lazy, 6, sketch, power_iters=1)
    np.testing.assert_allclose(with_dask.s, local.s, rtol=1e-10)
    np.testing.assert_allclose((with_dask.U * with_dask.s) @ with_dask.Vt, (local.U * local.s) @ local.Vt, atol=1e-9)
    adaptive = range_finder(lazy, tol=0.05, seed=3)
    assert adaptive.Q.shape[0] == 3000 and adaptive.error_estimate <= 0.05


def test_workers_open_their_own_opu_with_the_same_medium():
    lazy, make = dask_matrix(400, 32, 100, 4, seed=2)
    sketch = WorkerOPUSketch(IDEAL, 32, 10, seed=7)
    clone = pickle.loads(pickle.dumps(sketch))
    assert (clone.device, clone.seed, clone.size, clone.offset) == (IDEAL, 7, 10, 0)
    local = rsvd(make(), 4, sketch, power_iters=1)  # this process's own OPU
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        remote = rsvd(lazy, 4, sketch, power_iters=1)
    assert remote.usage.frames > 0  # frames spent by the workers' OPUs, reported back
    np.testing.assert_allclose(remote.s, local.s, rtol=1e-6)
    np.testing.assert_allclose((remote.U * remote.s) @ remote.Vt, (local.U * local.s) @ local.Vt, atol=1e-6 * local.s[0])


def test_an_open_opu_sketch_cannot_travel_to_workers():
    lazy, _ = dask_matrix(100, 16, 50, 2, seed=0)
    with OPU(IDEAL, n_components=8, seed=1, progress=False) as opu:
        with pytest.raises(TypeError, match="sketch: an OPUSketch holds an open device"):
            rsvd(lazy, 2, OPUSketch(opu, 16, 8))
