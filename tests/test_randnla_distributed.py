"""Dask scale-out: row-chunked dask arrays give the in-memory results, with worker-local OPUs."""

import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra (dask[array], distributed) is part of .[test]")
from dask.distributed import Client, LocalCluster  # noqa: E402

from benchmarks.randnla import dask_matrix  # noqa: E402
from opu_hal import OPU  # noqa: E402
from opu_hal.randnla.linops import as_matrix  # noqa: E402
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


# Each worker process starts with an empty cache of OPUs: a pre-task callback that clears it
# makes every task of the synchronous scheduler run as on a fresh worker (deterministic, fast).
def _as_on_fresh_workers(run):
    import dask
    from dask.callbacks import Callback

    from opu_hal.randnla import distributed

    with Callback(pretask=lambda *args: distributed._LOCAL.clear()), dask.config.set(scheduler="synchronous"):
        return run()


def test_row_blocks_sketched_on_different_workers_get_distinct_noise_and_reproduce():
    rows = np.random.default_rng(0).integers(0, 2, (20, 32)).astype(np.float64)
    lazy = da.concatenate([da.from_array(rows, chunks=(20, 32))] * 2)  # two identical row blocks
    sketch = WorkerOPUSketch("emu://?fidelity=physical&laser_jitter=0", 32, 64, seed=3)
    first = _as_on_fresh_workers(lambda: as_matrix(lazy).sketch(sketch)[0])
    again = _as_on_fresh_workers(lambda: as_matrix(lazy).sketch(sketch)[0])
    top, bottom = first[:20], first[20:]
    noise = np.linalg.norm(top - bottom) / np.linalg.norm(top)
    assert noise > 1e-3, "two row blocks got the same noise stream"
    assert noise < 0.1  # the same medium: only the noise differs
    np.testing.assert_array_equal(first, again)  # the same seeds reproduce


def test_worker_blocks_see_the_same_medium():
    rows = np.random.default_rng(1).integers(0, 2, (10, 32)).astype(np.float64)
    lazy = da.concatenate([da.from_array(rows, chunks=(10, 32))] * 3)
    sketch = WorkerOPUSketch(IDEAL, 32, 16, seed=5)
    out = _as_on_fresh_workers(lambda: as_matrix(lazy).sketch(sketch)[0])
    np.testing.assert_allclose(out[10:20], out[:10], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out[20:], out[:10], rtol=1e-6, atol=1e-9)


def test_noise_seed_changes_the_noise_not_the_medium():
    x = np.random.default_rng(2).integers(0, 2, (4, 32)).astype(np.uint8)

    def transform(query):
        with OPU(f"emu://?{query}", n_components=64, seed=1, progress=False) as opu:
            opu.fit1d(n_features=32)
            return opu.linear_transform(x)

    ideal = [transform(f"fidelity=ideal&noise_seed={k}") for k in (1, 2)]
    np.testing.assert_array_equal(ideal[0], ideal[1])  # the same medium
    noisy = [transform(f"noise_seed={k}") for k in (1, 2, 1)]
    np.testing.assert_array_equal(noisy[0], noisy[2])  # reproducible
    diff = np.linalg.norm(noisy[0] - noisy[1]) / np.linalg.norm(noisy[0])
    assert 1e-3 < diff < 0.2  # independent noise around the same signal
