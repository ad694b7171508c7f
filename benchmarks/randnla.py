"""``opu-hal bench randnla``: RandNLA on the emulated OPU side by side with digital references.

Run ``python -m benchmarks.randnla`` (or ``opu-hal bench randnla``); ``--help`` lists the
sections and sizes. ``--quick`` (seconds; a smoke test whose figures are too noisy to
quote) runs rsvd, trace and lstsq at small sizes (``QUICK``); options given beside it win.

Sections (each printing ratios measured in the same run):

- ``rsvd``: test matrices with known spectra (polynomial 1/j and 1/j^2, exponential, low
  rank plus noise); Frobenius error relative to the optimal rank-k error for the exact
  SVD, scikit-learn ``randomized_svd``, the digital Gaussian sketch, the CountSketch
  baseline (one nonzero per row of S) and the OPU sketch at equal sketch size, with wall
  time and device frames; the header names the OPU's medium
  (``--device "emu://?medium=structured"`` for the structured one).
- ``trace``: Hutch++ (also with one digital power step), Nyström++ (and the other
  estimators) with digital and OPU sketches over repeated trials: median relative error
  and signed bias, against digital Hutch++.
- ``lstsq``: sketch-and-precondition against ``numpy.linalg.lstsq`` on an ill-conditioned problem.
- ``dask``: rsvd of a matrix larger than one worker's memory limit on a ``LocalCluster``
  against the in-memory run.

After the sections, a **cost model** table puts each optical sketch (rsvd's OPU q=1
sketch of every matrix, the OPU Hutch++ range sketches of the trace section, the OPU
least-squares sketches) against a GPU: the OPU's device time is ``frames x frametime``
(the frames the sketch cost, the frametime of the device's timing model: its device time
per frame, 500 us at the emulator's defaults up to 163,200 outputs), the GPU's is
``2 r n k / F`` for the same product (r input rows of n features, k outputs) at ``F`` FLOP/s
(``--gpu-tflops``, default 15). With ``f`` frames per input row (8-bit inputs: up to 32),
the OPU takes ``r f t`` and the GPU ``2 r n k / F``, so the OPU wins beyond
``n k = F f t / 2``: 1.2e11 at 15 TFLOP/s, 32 frames per row and 500 us (2 kHz), 6.2e11 at
2.56 ms (391 Hz, 1M outputs).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from functools import partial
from typing import Any, Callable

import numpy as np

from opu_hal.randnla.lowrank import rsvd, single_view
from opu_hal.randnla.lstsq import lstsq
from opu_hal.randnla.sketch import CountSketch, GaussianSketch, OPUSketch, SparseSignSketch
from opu_hal.randnla.trace import hutchinson, hutchpp, hutchpp_sizes, na_hutchpp, nystrompp, power_nystrompp, xtrace

SPECTRA: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "poly 1/j": lambda j: 1.0 / j,
    "poly 1/j^2": lambda j: 1.0 / j**2,
    "exp 0.9^j": lambda j: 0.9**j,
}


def _haar(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def test_matrices(m: int, n: int, rank: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``U diag(sigma) V^T`` with Haar U, V for each spectrum, and rank-``rank`` plus 10 % Gaussian noise."""
    rng = np.random.default_rng(seed)
    U, V = _haar(rng, m, n), _haar(rng, n, n)
    j = np.arange(1, n + 1, dtype=np.float64)
    out = {name: (U * f(j)) @ V.T for name, f in SPECTRA.items()}
    low = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    noise = rng.standard_normal((m, n))
    out["low rank + noise"] = low / np.linalg.norm(low) + 0.1 * noise / np.linalg.norm(noise)
    return out


def psd_matrices(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Symmetric PSD ``V diag(lambda) V^T`` for each spectrum, and a low-rank-plus-noise PSD matrix."""
    rng = np.random.default_rng(seed)
    V = _haar(rng, n, n)
    j = np.arange(1, n + 1, dtype=np.float64)
    out = {name: (V * f(j)) @ V.T for name, f in SPECTRA.items()}
    lam = np.where(j <= 20, 1.0, 0.01)
    out["low rank + noise"] = (V * lam) @ V.T
    return out


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def crossover_nk(frames_per_row: float, frametime_s: float, flops: float) -> float:
    """The ``n k`` beyond which the OPU beats a GPU of ``flops`` FLOP/s on ``A S``: ``F f t / 2``.

    The OPU spends ``f`` frames of ``t`` seconds per input row whatever ``n`` and ``k``; the
    GPU spends ``2 n k / F`` seconds per row.
    """
    return flops * frames_per_row * frametime_s / 2


def cost_entry(problem: str, rows: int, n: int, k: int, frames: int, device_time_s: float,
               flops: float) -> dict[str, Any]:
    """The cost model of one optical sketch: ``rows`` inputs of ``n`` features to ``k`` outputs in ``frames`` frames.

    ``frametime_s`` is the device's time per frame (its timing model: ``device_time_s / frames``).
    """
    frametime_s = device_time_s / frames if frames else float("nan")
    per_row = frames / rows
    return {"problem": problem, "rows": rows, "n": n, "k": k, "frames": frames, "frames_per_row": per_row,
            "frametime_s": frametime_s, "device_s": frames * frametime_s, "gpu_s": 2.0 * rows * n * k / flops,
            "flops": flops, "nk": float(n * k), "crossover_nk": crossover_nk(per_row, frametime_s, flops)}


def print_costs(costs: list[dict[str, Any]], flops: float) -> None:
    """The cost-model table (see the module notes)."""
    print(f"\n== cost model: OPU device time (frames x frametime) against a GPU at {flops / 1e12:g} TFLOP/s "
          f"(2 r n k / F) ==")
    print(f"{'problem':<34}{'r x n -> k':>22}{'frames':>9}{'/row':>6}{'frame us':>9}{'OPU s':>10}{'GPU s':>10}"
          f"{'n k':>9}{'crossover':>11}")
    for c in costs:
        shape = f"{c['rows']} x {c['n']} -> {c['k']}"
        print(f"{c['problem']:<34}{shape:>22}{c['frames']:>9d}{c['frames_per_row']:>6.1f}{c['frametime_s'] * 1e6:>9.0f}"
              f"{c['device_s']:>10.3g}{c['gpu_s']:>10.2e}{c['nk']:>9.1e}{c['crossover_nk']:>11.2e}")
    print("The OPU wins when n k exceeds the crossover F f t / 2 (f frames per row of t seconds each).")


def bench_rsvd(opu: Any, m: int, n: int, rank: int, oversampling: int, seed: int,
               costs: list[dict[str, Any]] | None = None, flops: float = 15e12) -> list[dict[str, Any]]:
    """Errors relative to optimal at rank ``rank`` with ``rank + oversampling`` sketch columns, one power iteration."""
    from sklearn.utils.extmath import randomized_svd

    size = rank + oversampling
    print(f"\n== rsvd: {m} x {n}, rank {rank}, sketch {size} (oversampling {oversampling}), 1 power iteration ==")
    print(f"{'matrix':<18}{'method':<28}{'err/opt':>9}{'vs sklearn':>11}{'wall s':>8}{'frames':>8}{'device s':>9}")
    rows = []
    for name, A in test_matrices(m, n, rank, seed).items():
        (U, s, Vt), t_svd = _timed(lambda: np.linalg.svd(A, full_matrices=False))
        optimal = float(np.sqrt(np.sum(s[rank:] ** 2)))

        def err(u: np.ndarray, sv: np.ndarray, vt: np.ndarray) -> float:
            return float(np.linalg.norm(A - (u * sv) @ vt) / optimal)

        sk1, t_sk1 = _timed(lambda: randomized_svd(A, rank, n_oversamples=oversampling, n_iter=1, random_state=seed))
        skd, t_skd = _timed(lambda: randomized_svd(A, rank, n_oversamples=oversampling, random_state=seed))
        gauss, t_g = _timed(lambda: rsvd(A, rank, GaussianSketch(n, size, seed), power_iters=1))
        gauss0 = rsvd(A, rank, GaussianSketch(n, size, seed), power_iters=0)
        count, t_c = _timed(lambda: rsvd(A, rank, CountSketch(n, size, seed), power_iters=1))
        sketch = OPUSketch(opu, n, size)
        optical, t_o = _timed(lambda: rsvd(A, rank, sketch, power_iters=1))
        if costs is not None:
            costs.append(cost_entry(f"rsvd {name}", m, n, size, optical.usage.frames, optical.usage.device_time_s,
                                    flops))
        naive = rsvd(A, rank, sketch, power_iters=0)  # the same optical sketch (cached): no new frames
        ref = err(*sk1)
        results = [
            ("exact SVD", err(U[:, :rank], s[:rank], Vt[:rank]), t_svd, 0, 0.0),
            ("sklearn n_iter=1", ref, t_sk1, 0, 0.0),
            ("sklearn n_iter=auto", err(*skd), t_skd, 0, 0.0),
            ("digital Gaussian, q=1", err(*gauss), t_g, 0, 0.0),
            ("digital CountSketch, q=1", err(*count), t_c, 0, 0.0),
            ("OPU, q=1", err(*optical), t_o, optical.usage.frames, optical.usage.device_time_s),
            ("digital Gaussian, q=0", err(*gauss0), float("nan"), 0, 0.0),
            ("OPU, q=0 (naive)", err(*naive), float("nan"), 0, 0.0),
        ]
        if name == "low rank + noise":  # one pass over A: no digital second look at all
            one = single_view(A, rank, GaussianSketch(n, size, seed), GaussianSketch(m, 2 * size + 1, seed + 1))
            opt1 = single_view(A, rank, OPUSketch(opu, n, size), OPUSketch(opu, m, 2 * size + 1))
            results += [("digital single-view", err(*one), float("nan"), 0, 0.0),
                        ("OPU single-view", err(*opt1), float("nan"), opt1.usage.frames, opt1.usage.device_time_s)]
        for method, e, wall, frames, dev in results:
            print(f"{name:<18}{method:<28}{e:>9.4f}{e / ref:>11.4f}{wall:>8.2f}{frames:>8d}{dev:>9.2f}")
            rows.append({"matrix": name, "method": method, "err_over_opt": e, "vs_sklearn": e / ref})
    print(f"OPU medium in use: {opu.info.medium or 'hardware'}")  # known once the sketches configured the device
    return rows


def bench_trace(opu_factory: Callable[[int], Any], n: int, matvecs: int, trials: int, seed: int,
                costs: list[dict[str, Any]] | None = None, flops: float = 15e12) -> list[dict[str, Any]]:
    """Median relative error and signed bias over ``trials`` of each estimator, digital and OPU.

    Every product with A counts as a matvec, optical or digital. OPU Hutch++ and OPU
    Nyström++ after a power step (:func:`power_nystrompp`) of a trial use the same optical sketch (one block of outputs for ``A S``, the
    next for the test vectors), so their comparison is paired. ``vs Hutch++`` is the ratio of
    median errors to digital Hutch++ (Gaussian vectors, same matvecs); ``vs same`` to the
    digital run of the same estimator. ``Hutch++ (1 digital power step)`` is :func:`hutchpp`
    with ``power_iters=1`` (k1 = floor(7 matvecs / 24) optical columns, 2 k1 digital products,
    the rest Hutchinson vectors); its OPU run takes the first k1 outputs of the Hutch++ block
    and the k1 after them, so it is paired with plain OPU Hutch++ at no extra frame. The
    published two-block Nyström++ (:func:`nystrompp`) runs digitally only.
    """
    k3, k4 = matvecs // 3, matvecs // 4
    k1 = hutchpp_sizes(matvecs, 1)[0]  # <= k3: fits in the Hutch++ blocks (S, G)
    per_trial = 2 * k3 + 4 * k4  # OPU blocks: Hutch++ and Nyström++ (S, G), NA-Hutch++ (R, S, S, G)
    powered = "Hutch++ (1 digital power step)"
    estimators = {"Hutchinson": (hutchinson, matvecs), "Hutch++": (hutchpp, k3),
                  powered: (partial(hutchpp, power_iters=1), k1), "Nystrom++ (power step)": (power_nystrompp, k3),
                  "Nystrom++": (nystrompp, matvecs // 2),
                  "NA-Hutch++": (na_hutchpp, k4), "XTrace": (xtrace, matvecs // 2)}
    print(f"\n== trace: {n} x {n} PSD, {matvecs} matvecs, {trials} trials ==")
    print(f"{'matrix':<18}{'method':<40}{'median |err|':>13}{'bias':>10}{'+- s.e.':>9}{'vs Hutch++':>11}"
          f"{'vs same':>8}{'frames':>9}")
    rows = []
    with opu_factory(trials * per_trial) as opu:
        for name, A in psd_matrices(n, seed).items():
            truth = float(np.trace(A))
            digital = {m: [fn(A, GaussianSketch(n, size, seed + 1000 * t), matvecs=matvecs).estimate
                           for t in range(trials)] for m, (fn, size) in estimators.items()}
            optical: dict[str, list[float]] = {"Hutch++": [], powered: [], "Nystrom++ (power step)": [],
                                           "NA-Hutch++": []}
            frames = 0
            for t in range(trials):
                base = t * per_trial
                range_sketch = OPUSketch(opu, n, k3, offset=base)
                before = range_sketch.usage()
                r1 = hutchpp(A, range_sketch, matvecs=matvecs)
                if costs is not None and t == 0:
                    spent = range_sketch.usage() - before
                    costs.append(cost_entry(f"trace {name} (Hutch++ A S)", n, n, k3, spent.frames,
                                            spent.device_time_s, flops))
                r2 = power_nystrompp(A, range_sketch, matvecs=matvecs)  # the same optical sketch: no new frames
                r3 = na_hutchpp(A, OPUSketch(opu, n, k4, offset=base + 2 * k3), matvecs=matvecs)
                r4 = hutchpp(A, range_sketch.block(base, k1), matvecs=matvecs, power_iters=1)  # cached: no new frames
                optical["Hutch++"].append(r1.estimate)
                optical[powered].append(r4.estimate)
                optical["Nystrom++ (power step)"].append(r2.estimate)
                optical["NA-Hutch++"].append(r3.estimate)
                frames += r1.usage.frames + r2.usage.frames + r3.usage.frames + r4.usage.frames

            def median(values: list[float]) -> float:
                return float(np.median(np.abs((np.asarray(values) - truth) / truth)))

            reference = median(digital["Hutch++"])
            table = [(f"digital {m}", v, v) for m, v in digital.items()]
            table += [(f"OPU {m}", v, digital[m]) for m, v in optical.items()]
            for method, values, same in table:
                rel = (np.asarray(values) - truth) / truth
                med = median(values)
                se = float(np.std(rel) / np.sqrt(trials))
                shown = frames if method == "OPU Hutch++" else 0
                print(f"{name:<18}{method:<40}{med:>13.2e}{np.mean(rel):>+10.2e}{se:>9.1e}{med / reference:>11.2f}"
                      f"{med / median(same):>8.2f}{shown:>9d}")
                rows.append({"matrix": name, "method": method, "median": med, "bias": float(np.mean(rel)),
                             "bias_se": se, "ratio": med / reference, "ratio_same": med / median(same)})
    return rows


def ill_conditioned(m: int, n: int, cond: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A with singular values log-spaced from 1 to 1/cond (Haar factors) and a random b."""
    rng = np.random.default_rng(seed)
    A = (_haar(rng, m, n) * np.logspace(0, -np.log10(cond), n)) @ _haar(rng, n, n).T
    return A, rng.standard_normal(m)


def bench_lstsq(m: int, n: int, cond: float, seed: int, opu_factory: Callable[[int], Any] | None,
                opu_m: int, opu_n: int, costs: list[dict[str, Any]] | None = None,
                flops: float = 15e12) -> list[dict[str, Any]]:
    """Residuals of sketch-and-precondition against numpy.linalg.lstsq, with both wall times."""
    print(f"\n== lstsq: cond {cond:.0e} ==")
    print(f"{'problem':<16}{'sketch':<22}{'|dr|/|r|':>10}{'||r|-|r*||/|r*|':>17}{'iters':>7}{'rounds':>7}"
          f"{'wall s':>8}{'numpy s':>9}{'frames':>8}")
    rows = []
    cases: list[tuple[int, int, str]] = [(m, n, "sparse sign 4n")]
    if opu_factory is not None:
        cases.append((opu_m, opu_n, "OPU 4n"))
    for rows_, cols, label in cases:
        A, b = ill_conditioned(rows_, cols, cond, seed)
        x_np, t_np = _timed(lambda: np.linalg.lstsq(A, b, rcond=None)[0])
        r_np = b - A @ x_np
        if label.startswith("OPU"):
            with opu_factory(4 * cols) as opu:
                res, t = _timed(lambda: lstsq(A, b, OPUSketch(opu, rows_, 4 * cols)))
            if costs is not None:  # each round sketches the cols columns (inputs of rows_ features)
                costs.append(cost_entry(f"lstsq ({res.rounds} rounds)", cols * res.rounds, rows_, 4 * cols,
                                        res.usage.frames, res.usage.device_time_s, flops))
        else:
            res, t = _timed(lambda: lstsq(A, b, SparseSignSketch(rows_, 4 * cols, seed)))
        r = b - A @ res.x
        diff = float(np.linalg.norm(r - r_np) / np.linalg.norm(r_np))
        norm_diff = float(abs(np.linalg.norm(r) - np.linalg.norm(r_np)) / np.linalg.norm(r_np))
        print(f"{f'{rows_} x {cols}':<16}{label:<22}{diff:>10.1e}{norm_diff:>17.1e}{res.iterations:>7d}{res.rounds:>7d}"
              f"{t:>8.2f}{t_np:>9.2f}{res.usage.frames:>8d}")
        rows.append({"problem": (rows_, cols), "sketch": label, "residual_diff": diff, "wall_s": t, "numpy_s": t_np})
    return rows


def _dask_rows(index: int, rows: int, factor: np.ndarray, seed: int) -> np.ndarray:
    """Row block ``index`` of the Dask test matrix: Gaussian rows times a fixed low-rank factor, plus noise."""
    rng = np.random.default_rng([seed, index])
    block = rng.standard_normal((rows, factor.shape[0])) @ factor
    block += 0.05 * rng.standard_normal((rows, factor.shape[1]))
    return block


def dask_matrix(m: int, n: int, chunk_rows: int, rank: int, seed: int) -> tuple[Any, Callable[[], np.ndarray]]:
    """A lazily generated (m, n) dask array chunked by rows, and a function making the same matrix in memory."""
    import dask
    import dask.array as da

    factor = np.random.default_rng(seed).standard_normal((rank, n)) * (0.8 ** np.arange(rank))[:, None]
    counts = [min(chunk_rows, m - s) for s in range(0, m, chunk_rows)]
    blocks = [da.from_delayed(dask.delayed(_dask_rows)(i, c, factor, seed), shape=(c, n), dtype=np.float64)
              for i, c in enumerate(counts)]
    return da.concatenate(blocks), lambda: np.concatenate([_dask_rows(i, c, factor, seed) for i, c in enumerate(counts)])


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_dask(m: int, n: int, chunk_rows: int, rank: int, workers: int, memory_limit: str, seed: int) -> dict[str, Any]:
    """rsvd of a row-chunked dask array on a LocalCluster against the in-memory run."""
    from dask.distributed import Client, LocalCluster

    print(f"\n== dask: rsvd of {m} x {n} ({m * n * 8 / 2**30:.2f} GiB) in chunks of {chunk_rows} rows, "
          f"{workers} workers of {memory_limit} ==")
    A_lazy, in_memory = dask_matrix(m, n, chunk_rows, rank, seed)
    sketch = GaussianSketch(n, rank + 10, seed)
    with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = set(client.scheduler_info()["workers"])
        limits = {w: info["memory_limit"] for w, info in client.scheduler_info()["workers"].items()}
        dist, t_dist = _timed(lambda: rsvd(A_lazy, rank, sketch, power_iters=1))
        peaks = client.run(_peak_rss_bytes)
        after = set(client.scheduler_info()["workers"])
    A = in_memory()
    local, t_local = _timed(lambda: rsvd(A, rank, sketch, power_iters=1))
    s_diff = float(np.max(np.abs(dist.s - local.s) / local.s))
    proj = float(np.linalg.norm(dist.Vt.T @ dist.Vt - local.Vt.T @ local.Vt, 2))
    recon = float(np.linalg.norm((dist.U * dist.s) @ dist.Vt - (local.U * local.s) @ local.Vt) /
                  np.linalg.norm((local.U * local.s) @ local.Vt))
    print(f"in memory: {t_local:.1f} s (matrix {A.nbytes / 2**30:.2f} GiB in this process); "
          f"dask: {t_dist:.1f} s")
    print(f"max relative difference of singular values {s_diff:.1e}; |V V^T - V' V'^T|_2 = {proj:.1e}; "
          f"relative difference of the rank-{rank} approximations {recon:.1e}")
    for address, peak in sorted(peaks.items()):
        limit = limits.get(address, 0)
        print(f"worker {address}: peak RSS {peak / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit "
              f"({peak / limit:.0%})" if limit else f"worker {address}: peak RSS {peak / 2**20:.0f} MiB")
    print("workers restarted: " + ("none" if before == after else f"{sorted(before ^ after)}"))
    return {"s_diff": s_diff, "recon": recon, "peaks": peaks, "limits": limits, "restarted": before != after}


SECTIONS = ("rsvd", "trace", "lstsq", "dask")
#: Defaults of ``--quick``: small problems, few trials, no Dask cluster.
QUICK: dict[str, Any] = {"sections": "rsvd,trace,lstsq", "m": 150, "n": 64, "rank": 6, "oversampling": 6,
                         "matvecs": 24, "trials": 4, "lstsq_shape": "400x20", "lstsq_opu_shape": "120x8"}


def build_parser() -> argparse.ArgumentParser:
    """Options of the RandNLA benchmark."""
    parser = argparse.ArgumentParser(prog="opu-hal bench randnla", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="emu://", help="device URL of the OPU (emu://: physical, 8-bit)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the device and the test matrices")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, some of: {', '.join(SECTIONS)}")
    parser.add_argument("--m", type=int, default=2000, help="rows of the rsvd test matrices")
    parser.add_argument("--n", type=int, default=1000, help="columns of the rsvd test matrices (and trace size)")
    parser.add_argument("--rank", type=int, default=20, help="rank of rsvd")
    parser.add_argument("--oversampling", type=int, default=10, help="extra sketch columns of rsvd")
    parser.add_argument("--matvecs", type=int, default=96, help="matrix-vector products of the trace estimators")
    parser.add_argument("--trials", type=int, default=32, help="repetitions of each trace estimator")
    parser.add_argument("--lstsq-shape", default="20000x200", help="ill-conditioned least-squares problem (digital)")
    parser.add_argument("--lstsq-opu-shape", default="4000x100", help="least-squares problem with the OPU sketch")
    parser.add_argument("--cond", type=float, default=1e8, help="condition number of the least-squares problem")
    parser.add_argument("--dask-shape", default="200000x2000", help="matrix of the Dask run")
    parser.add_argument("--dask-chunk-rows", type=int, default=10000, help="rows per Dask chunk")
    parser.add_argument("--dask-memory-limit", default="1GiB", help="memory limit of each of the 2 workers")
    parser.add_argument("--gpu-tflops", type=float, default=15.0,
                        help="GPU throughput F (TFLOP/s) of the cost model's 2 r n k / F")
    parser.add_argument("--quick", action="store_true", help="smoke test in seconds: small sizes (QUICK), no dask")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with the ``QUICK`` defaults when ``--quick`` is among them."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "--quick" in argv:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def _shape(text: str) -> tuple[int, int]:
    a, b = text.lower().split("x")
    return int(a), int(b)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected sections, print their tables and return their rows by section."""
    from opu_hal import OPU

    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: expected some of {', '.join(SECTIONS)}, got {sorted(unknown)}")

    def opu_factory(n_components: int) -> Any:
        return OPU(args.device, n_components=n_components, seed=args.seed, progress=False)

    if not args.gpu_tflops > 0:
        raise SystemExit(f"--gpu-tflops: expected a positive throughput, got {args.gpu_tflops}")
    flops = args.gpu_tflops * 1e12
    out: dict[str, Any] = {}
    costs: list[dict[str, Any]] = []
    if "rsvd" in sections:
        size = args.rank + args.oversampling
        with opu_factory(2 * size + 1) as opu:
            out["rsvd"] = bench_rsvd(opu, args.m, args.n, args.rank, args.oversampling, args.seed, costs, flops)
    if "trace" in sections:
        out["trace"] = bench_trace(opu_factory, args.n, args.matvecs, args.trials, args.seed, costs, flops)
    if "lstsq" in sections:
        m, n = _shape(args.lstsq_shape)
        om, on = _shape(args.lstsq_opu_shape)
        out["lstsq"] = bench_lstsq(m, n, args.cond, args.seed, opu_factory if on > 0 else None, om, on,
                                   costs, flops)
    if "dask" in sections:
        m, n = _shape(args.dask_shape)
        out["dask"] = bench_dask(m, n, args.dask_chunk_rows, 10, 2, args.dask_memory_limit, args.seed)
    if costs:
        print_costs(costs, flops)
        out["cost"] = costs
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and print their tables."""
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
