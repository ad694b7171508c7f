"""Throughput, open time and memory of the emulated OPU, next to references measured in the same run.

    python -m benchmarks.emulator            # every section at its full size (about 15 minutes)
    python -m benchmarks.emulator --quick    # small sizes, a smoke run of a minute or two
    python -m benchmarks.emulator --sections full --full-sizes 1039680x200000 --full-batch 20

(``python benchmarks/emulator.py`` works too.)

What is measured, each in a fresh Python process (so that its peak resident memory,
``ru_maxrss``, and its caches are its own):

- ``transform``: ``OPU.transform`` rows/s on ``emu://`` in ideal and physical fidelity,
  with the default medium (dense at these sizes) and with ``medium=structured``, batch of
  random binary rows, best of ``--repeats`` calls after a first one, next to
  - a bare numpy complex64 GEMM of the same shape, ``X (B, N) @ R (N, M)``, both complex64
    (the dense medium does a float32 GEMM on interleaved real and imaginary parts, half
    the arithmetic of the complex one, so it can beat this reference);
  - lightonml 1.4.3's simulated OPU, when importable (``--lightonml-python`` runs it in
    another interpreter);
  and physical over ideal fidelity of each medium measured once more with both OPUs in one
  process, their transforms alternating, as the median of the ratio within each round (the
  figure the target judges: the separate processes above run minutes apart, and on a shared
  machine their ratio swung from 0.77 to 1.34 between two runs of the same code);
- ``open``: ``OPU(...).open()`` and ``fit1d`` (the emulator makes the whole matrix in fit,
  lightonml when its OPU is created), and the first transform after it;
- ``large``: a large device (default 40,000 x 40,000, batch 100) with default settings;
  its peak RSS is the figure of interest;
- ``full``: the full-size device, the whole 1,039,680-mirror DMD (``--full-sizes``, default
  1,039,680 x 200,000, lightonml's benchmark configuration, and 1,039,680 x 2,000,000),
  ``medium=structured``, ideal and physical, batch ``--full-batch`` (100), next to the bare
  FFT stages the medium does, measured in the same process: three in-place 2-D
  ``scipy.fft.fft2`` of the L1 x L2 grid per row, rows shared among one thread per CPU as
  the medium shares them (the practical limit, and the reference of the ratio; the medium
  skips the first stage's FFTs of grid rows that hold no input and the last stage's of
  rows that hold no output, which the bare stages do not, so at 200,000 outputs the ratio
  can pass 1), and, for
  comparison, three 1-D ``scipy.fft.fft`` of length L per row (the medium's FFT until it
  took the 2-D grid, docs/physics.md section 1.7), timed in alternation with the transforms
  (``--full-repeats`` rounds, default 2; the best of each), with the peak RSS of the process
  (the bare stages' buffers included: one row of L complex64 per thread).

Figures are printed with their ratios and the targets of the project; nothing is asserted.
On a shared machine timings are noisy: compare figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent  # the repository: workers run as ``-m benchmarks.emulator`` from it
LIGHTONML_BYTES_PER_ENTRY = 16  # float32 real and imaginary parts, then their complex64 sum


# ---------------------------------------------------------------------- workers (fresh processes)
def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def work_gemm(n: int, m: int, batch: int, repeats: int) -> dict[str, Any]:
    """A bare complex64 product X (B, N) @ R (N, M)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(batch, n), dtype=np.uint8).astype(np.complex64)
    r = rng.standard_normal((n, 2 * m), dtype=np.float32).view(np.complex64)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        x @ r
        times.append(time.perf_counter() - start)
    return {"rows_per_s": batch / min(times)}


def _fitted_emulator(url: str, n: int, m: int) -> Callable[[], Any]:
    """A function that opens the emulator at ``url`` with ``m`` outputs, fitted to ``n`` features."""

    def open_fitted() -> Any:
        from opu_hal import OPU

        opu = OPU(url, n_components=m, seed=0, progress=False)
        opu.open()
        opu.fit1d(n_features=n)
        return opu

    return open_fitted


def work_ours(n: int, m: int, batch: int, repeats: int, fidelity: str, medium: str = "auto") -> dict[str, Any]:
    """OPU on ``emu://`` with default settings (and ``medium``): open + fit, first transform, best of repeats."""
    import numpy as np

    from benchmarks._lightonml_ref import time_transforms
    from firmware_sim import EmulatorParams
    from firmware_sim.medium import memory_budget_bytes, resolve_medium

    warnings.simplefilter("ignore")  # a saturation warning is not what this run is about
    x = np.random.default_rng(1).integers(0, 2, size=(batch, n), dtype=np.uint8)

    opu, times = time_transforms(_fitted_emulator(f"emu://?fidelity={fidelity}&medium={medium}", n, m), x, repeats)
    opu.close()
    cache_mb = EmulatorParams().cache_mb
    budget = memory_budget_bytes(cache_mb)
    return {
        **times,
        "budget_mb": budget / 2**20,
        "medium_used": resolve_medium(medium, n, m, cache_mb),  # (without speckle grain, the default)
        "streamed": n * m * 8 > budget,
    }


def work_fidelity(n: int, m: int, batch: int, repeats: int, medium: str = "auto") -> dict[str, Any]:
    """Ideal and physical OPUs of the same device in one process, their transforms alternating
    (at least 5 rounds, after a first transform each), so that their ratio sees one load: the
    median over rounds of the ratio within a round (rows/s: the best of each)."""
    import numpy as np

    warnings.simplefilter("ignore")
    x = np.random.default_rng(1).integers(0, 2, size=(batch, n), dtype=np.uint8)
    opus = {}
    for fidelity in ("ideal", "physical"):
        opus[fidelity] = _fitted_emulator(f"emu://?fidelity={fidelity}&medium={medium}", n, m)()
        opus[fidelity].transform(x)
    seconds: dict[str, list[float]] = {fidelity: [] for fidelity in opus}
    for _ in range(max(5, repeats)):
        for fidelity, opu in opus.items():
            start = time.perf_counter()
            opu.transform(x)
            seconds[fidelity].append(time.perf_counter() - start)
    for opu in opus.values():
        opu.close()
    ratios = np.divide(seconds["ideal"], seconds["physical"])
    return {"ideal_rows_per_s": batch / min(seconds["ideal"]), "physical_rows_per_s": batch / min(seconds["physical"]),
            "physical_over_ideal": float(np.median(ratios))}


def work_full(n: int, m: int, batch: int, repeats: int, fidelity: str) -> dict[str, Any]:
    """The structured medium through ``OPU.transform``, next to the bare FFT stages of its length.

    After a first transform, ``repeats`` rounds of one transform and both bare references,
    alternating so that all three see the same load; the best of each counts. The peak RSS
    includes the bare stages' buffers (one row of L complex64 per thread, allocated first).
    """
    import numpy as np
    import scipy.fft

    from firmware_sim.medium_structured import StructuredMedium

    warnings.simplefilter("ignore")
    shape = StructuredMedium.shape(n, m)
    length = shape[0] * shape[1]
    workers = os.cpu_count() or 1
    # Random unit phases, like the medium's rows: constant input would turn into a delta and
    # near-zero values under repeated transforms, whose denormals make the reference erratic.
    phases = np.random.default_rng(2).random((workers, length), dtype=np.float32) * np.float32(2 * np.pi)
    buffers = (np.cos(phases) + 1j * np.sin(phases)).astype(np.complex64)
    del phases

    def stages_2d() -> float:
        """What the medium does less the elementwise work: each thread three 2-D FFTs per row of its share."""
        def run(thread: int) -> None:
            for _ in range(thread, batch, workers):
                for _ in range(3):
                    scipy.fft.fft2(buffers[thread].reshape(shape), norm="ortho", overwrite_x=True, workers=1)

        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, range(workers)))
        return time.perf_counter() - start

    def stages_1d() -> float:
        """Three 1-D FFTs of length L per row, batches of ``workers`` rows on all cores (the issue's first reference)."""
        start = time.perf_counter()
        for _ in range(0, batch, workers):
            for _ in range(3):
                scipy.fft.fft(buffers, axis=1, norm="ortho", overwrite_x=True, workers=workers)
        return time.perf_counter() - start

    x = np.random.default_rng(1).integers(0, 2, size=(batch, n), dtype=np.uint8)
    start = time.perf_counter()
    opu = _fitted_emulator(f"emu://?fidelity={fidelity}&medium=structured", n, m)()
    open_s = time.perf_counter() - start
    start = time.perf_counter()
    opu.transform(x)
    first_s = time.perf_counter() - start
    ours, bare_2d, bare_1d = [], [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        opu.transform(x)
        ours.append(time.perf_counter() - start)
        bare_2d.append(stages_2d())
        bare_1d.append(stages_1d())
    opu.close()
    return {"open_s": open_s, "first_s": first_s, "rows_per_s": batch / min(ours), "peak_rss_mb": peak_rss_mb(),
            "length": length, "shape": list(shape), "bare_rows_per_s": batch / min(bare_2d),
            "bare_1d_rows_per_s": workers * -(-batch // workers) / min(bare_1d)}


def work_lightonml(n: int, m: int, batch: int, repeats: int) -> dict[str, Any]:
    """lightonml's simulated OPU (raises ImportError when it is not installed)."""
    from benchmarks._lightonml_ref import lightonml_version, measure_lightonml

    return {**measure_lightonml(n, m, batch, repeats), "version": lightonml_version()}


WORKERS = {"gemm": work_gemm, "ours": work_ours, "fidelity": work_fidelity, "full": work_full,
           "lightonml": work_lightonml}


def worker_main(spec: str) -> None:
    """Run one measurement and print it as a JSON line (with the peak RSS)."""
    job = json.loads(spec)
    kind = job.pop("kind")
    try:
        result = WORKERS[kind](**job)
    except ImportError as exc:
        result = {"error": f"not importable: {exc}"}
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps(result))


# ---------------------------------------------------------------------- the driver
def measure(kind: str, python: str, **job: Any) -> dict[str, Any]:
    """Run one worker in a fresh process; returns its figures or ``{"error": ...}``."""
    command = [python, "-m", "benchmarks.emulator", "--worker", json.dumps({"kind": kind, **job})]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"error": f"exit code {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def fmt_rate(result: dict[str, Any]) -> str:
    return f"{result['rows_per_s']:>9,.1f} rows/s" if "rows_per_s" in result else f"{'-':>9} rows/s"


def ratio(a: dict[str, Any], b: dict[str, Any] | None) -> float | None:
    if b is None or "rows_per_s" not in a or "rows_per_s" not in b:
        return None
    return a["rows_per_s"] / b["rows_per_s"]


def show(label: str, result: dict[str, Any], extra: str = "") -> None:
    if "error" in result:
        print(f"  {label:<32} {result['error']}")
        return
    print(f"  {label:<32} {fmt_rate(result)}   peak RSS {result['peak_rss_mb']:>7,.0f} MB   {extra}".rstrip())


SECTIONS = ("transform", "open", "large", "full")


def parse_size(text: str) -> tuple[int, int]:
    """``"NxM"`` -> (N, M)."""
    try:
        n, m = (int(v.replace("_", "").replace(",", "")) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NxM such as 1039680x200000, got {text!r}") from None
    return n, m


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to run")
    parser.add_argument("--sizes", type=int, nargs="+", help="N = M of the transform runs (default 4000 10000)")
    parser.add_argument("--batch", type=int, help="rows per transform (default 1000)")
    parser.add_argument("--repeats", type=int, help="timed transforms after the first; the best counts (default 3)")
    parser.add_argument("--open-size", type=int, help="N = M of the open-time comparison (default 10000)")
    parser.add_argument("--big", type=int, help="N = M of the large device (default 40000; 0 skips it)")
    parser.add_argument("--big-batch", type=int, help="rows transformed by the large device (default 100)")
    parser.add_argument("--full-sizes", type=parse_size, nargs="+",
                        help="N x M of the full-size runs (default 1039680x200000 1039680x2000000)")
    parser.add_argument("--full-batch", type=int, help="rows per full-size transform (default 100)")
    parser.add_argument("--full-repeats", type=int,
                        help="rounds of one timed full-size transform and the bare stages, after a first one (default 2)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-lightonml", action="store_true", help="skip the lightonml reference")
    parser.add_argument(
        "--lightonml-python", default=sys.executable, help="interpreter that has lightonml (default: this one)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = {"sizes": [1000, 2000], "batch": 200, "repeats": 1, "open_size": 2000, "big": 8000, "big_batch": 20,
             "full_sizes": [(20_000, 20_000), (20_000, 50_000)], "full_batch": 10, "full_repeats": 1}
    full = {"sizes": [4000, 10000], "batch": 1000, "repeats": 3, "open_size": 10000, "big": 40000, "big_batch": 100,
            "full_sizes": [(1_039_680, 200_000), (1_039_680, 2_000_000)], "full_batch": 100, "full_repeats": 2}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def bench_transforms(args: argparse.Namespace, lightonml: str | None) -> dict[tuple[str, int], dict[str, Any]]:
    """Transform rows/s of every reference and fidelity at every size; prints them with ratios."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for size in args.sizes:
        job = {"n": size, "m": size, "batch": args.batch, "repeats": args.repeats}
        print(f"\ntransform  N = M = {size:,}, batch {args.batch:,}")
        gemm = runs[("gemm", size)] = measure("gemm", sys.executable, **job)
        show("numpy complex64 GEMM", gemm)
        lml = runs[("lightonml", size)] = measure_lightonml(lightonml, **job)
        if "error" in lml:
            show("lightonml simulated OPU", lml)
        else:
            show(f"lightonml {lml['version']} simulated OPU", lml, f"open+fit {lml['open_s']:.2f} s")
        for medium in ("auto", "structured"):
            for fidelity in ("ideal", "physical"):
                key = fidelity if medium == "auto" else f"{fidelity} structured"
                ours = runs[(key, size)] = measure("ours", sys.executable, fidelity=fidelity, medium=medium, **job)
                extra = ""
                if "error" not in ours:
                    extra = f"open+fit {ours['open_s']:.2f} s, first transform {ours['first_s']:.2f} s;  "
                    references = [("lightonml", lml), ("GEMM", gemm)]
                    if fidelity == "physical":
                        references.append(("ideal", runs[(key.replace("physical", "ideal"), size)]))
                    for name, reference in references:
                        r = ratio(ours, reference)
                        extra += "" if r is None else f"ours/{name} {r:.2f}  "
                label = "dense" if medium == "auto" else "structured"
                show(f"opu-hal emu:// {fidelity} {label}", ours, extra)
            paired = runs[("fidelity " + label, size)] = measure("fidelity", sys.executable, medium=medium, **job)
            if "error" in paired:
                print(f"  physical over ideal ({label}), one process: {paired['error']}")
            else:
                print(f"  physical over ideal ({label}), alternating in one process (median of rounds): "
                      f"{paired['physical_over_ideal']:.2f} "
                      f"(ideal {paired['ideal_rows_per_s']:,.1f}, physical {paired['physical_rows_per_s']:,.1f} rows/s)")
    return runs


def measure_lightonml(lightonml: str | None, **job: Any) -> dict[str, Any]:
    return measure("lightonml", lightonml, **job) if lightonml else {"error": "skipped (--no-lightonml)"}


def bench_open(args: argparse.Namespace, lightonml: str | None, runs: dict) -> float | None:
    """Open + fit and first transform at ``--open-size``; returns lightonml's open time over ours."""
    size = args.open_size
    print(f"\nopen  N = M = {size:,}: OPU(...).open() + fit1d (opu-hal makes the matrix in fit, lightonml in OPU())")
    job = {"n": size, "m": size, "batch": args.batch, "repeats": 0}
    ours = runs.get(("ideal", size)) or measure("ours", sys.executable, fidelity="ideal", **job)
    lml = runs.get(("lightonml", size)) or measure_lightonml(lightonml, **job)
    if "error" in lml:
        print(f"  {'lightonml simulated OPU':<32} {lml['error']}")
    else:
        print(f"  {'lightonml ' + lml['version'] + ' simulated OPU':<32} open+fit {lml['open_s']:6.2f} s   "
              f"first transform {lml['first_s']:6.2f} s (batch {args.batch:,})")
    if "error" in ours:
        print(f"  {'opu-hal emu:// ideal':<32} {ours['error']}")
        return None
    line = (f"  {'opu-hal emu:// ideal':<32} open+fit {ours['open_s']:6.2f} s   "
            f"first transform {ours['first_s']:6.2f} s (batch {args.batch:,})")
    if "error" in lml:
        print(line)
        return None
    speedup = lml["open_s"] / ours["open_s"]
    both = (lml["open_s"] + lml["first_s"]) / (ours["open_s"] + ours["first_s"])
    print(f"{line}\n  {'':<32} open+fit {speedup:.1f}x faster; open+fit+first transform {both:.1f}x faster")
    return speedup


def bench_large(args: argparse.Namespace) -> float | None:
    """A large device with default settings; returns its peak RSS (MB)."""
    n = args.big
    print(f"\nlarge device  N = M = {n:,}, batch {args.big_batch:,}, physical fidelity, default settings")
    big = measure("ours", sys.executable, n=n, m=n, batch=args.big_batch, repeats=0, fidelity="physical")
    print(f"  lightonml would hold {LIGHTONML_BYTES_PER_ENTRY} bytes per entry at its peak: "
          f"{LIGHTONML_BYTES_PER_ENTRY * n * n / 1e9:.1f} GB (not run)")
    if "error" in big:
        print(f"  {'opu-hal emu:// physical':<32} {big['error']}")
        return None
    kept = "the structured medium (medium=auto, beyond the budget)" if big["medium_used"] == "structured" else \
        "dense, streamed at every product" if big["streamed"] else "dense, kept in memory"
    print(f"  matrix {n * n * 8 / 1e9:.1f} GB, cache budget {big['budget_mb']:,.0f} MB: {kept}")
    print(f"  {'opu-hal emu:// physical':<32} open+fit {big['open_s']:.2f} s   transform {big['first_s']:.1f} s "
          f"({args.big_batch / big['first_s']:.1f} rows/s)   peak RSS {big['peak_rss_mb']:,.0f} MB")
    return big["peak_rss_mb"]


def bench_full(args: argparse.Namespace) -> dict[tuple[str, int, int], dict[str, Any]]:
    """The whole DMD, structured medium, ideal and physical, next to the bare FFT stages."""
    runs: dict[tuple[str, int, int], dict[str, Any]] = {}
    for n, m in args.full_sizes:
        print(f"\nfull size  N = {n:,} x M = {m:,}, batch {args.full_batch:,}, medium=structured "
              "(bare FFT stages: the medium's three 2-D FFTs of the L1 x L2 grid per row, same process; "
              "1-D: three FFTs of length L per row, for comparison)")
        for fidelity in ("ideal", "physical"):
            run = runs[(fidelity, n, m)] = measure("full", sys.executable, n=n, m=m, batch=args.full_batch,
                                                   repeats=args.full_repeats, fidelity=fidelity)
            if "error" in run:
                show(f"opu-hal emu:// {fidelity}", run)
                continue
            limit = run["rows_per_s"] / run["bare_rows_per_s"]
            grid = " x ".join(f"{side:,}" for side in run["shape"])
            show(f"opu-hal emu:// {fidelity}", run, f"L = {grid}, bare FFT stages {run['bare_rows_per_s']:,.1f} "
                 f"rows/s (1-D {run['bare_1d_rows_per_s']:,.1f}), ours/bare {limit:.2f}, open+fit {run['open_s']:.1f} s")
    return runs


def print_targets(args: argparse.Namespace, runs: dict, open_speedup: float | None, big_rss: float | None,
                  full: dict) -> None:
    """The project's targets, judged on this run's figures."""

    def judged(fidelity: str, reference: str, goal: float) -> str:
        pairs = [(s, ratio(runs[(fidelity, s)], runs[(reference, s)])) for s in args.sizes if (fidelity, s) in runs]
        known = [(s, r) for s, r in pairs if r is not None]
        if not known:
            return "not measured"
        verdict = "met" if all(r >= goal for _, r in known) else "NOT met"
        return f"{verdict} (" + ", ".join(f"{r:.2f}x at {s:,}" for s, r in known) + ")"

    def at_least(value: float | None, goal: float, unit: str) -> str:
        if value is None:
            return "not measured"
        return f"{'met' if value >= goal else 'NOT met'} ({value:,.2f}{unit})"

    def full_figure(fidelity: str, n: int, m: int, key: str = "rows_per_s") -> float | None:
        run = full.get((fidelity, n, m), {})
        if key == "bare" and "rows_per_s" in run:
            return run["rows_per_s"] / run["bare_rows_per_s"]
        return run.get(key)

    print("\ntargets")
    if "transform" in args.sections:
        print(f"  ideal >= 1.0x lightonml:                 {judged('ideal', 'lightonml', 1.0)}")
        print(f"  physical >= 0.9x lightonml:              {judged('physical', 'lightonml', 0.9)}")
        print(f"  ideal >= 0.8x numpy complex64 GEMM:      {judged('ideal', 'gemm', 0.8)}")
        print(f"  physical >= 0.8x numpy complex64 GEMM:   {judged('physical', 'gemm', 0.8)}")
        paired = [(size, runs.get(("fidelity dense", size), {}).get("physical_over_ideal")) for size in args.sizes]
        known = [(size, r) for size, r in paired if r is not None]
        verdict = "not measured" if not known else ("met" if all(r >= 0.85 for _, r in known) else "NOT met") + \
            " (" + ", ".join(f"{r:.2f}x at {size:,}" for size, r in known) + ", alternating in one process)"
        print(f"  physical >= 0.85x ideal (dense):         {verdict}")
    if "large" in args.sections and args.big:
        rss = "not measured" if big_rss is None else f"{'met' if big_rss < 2048 else 'NOT met'} ({big_rss:,.0f} MB)"
        print(f"  large device ({args.big:,}) peak RSS < 2 GB:  {rss}")
    if "open" in args.sections:
        speed = "not measured" if open_speedup is None else f"{'met' if open_speedup >= 4 else 'NOT met'}"
        if open_speedup is not None:
            speed += f" ({open_speedup:.1f}x at {args.open_size:,})"
        print(f"  open >= 4x faster than lightonml:        {speed}")
    if "full" in args.sections:
        goals = {(1_039_680, 2_000_000): {"ideal": 8.0, "physical": 5.0}, (1_039_680, 200_000): {"physical": 12.0}}
        for n, m in args.full_sizes:
            where = f"{n:,} x {m:,}"
            for fidelity, goal in goals.get((n, m), {}).items():
                figure = at_least(full_figure(fidelity, n, m), goal, " rows/s")
                print(f"  {fidelity} >= {goal:g} rows/s at {where}: {figure}")
            for fidelity in ("ideal", "physical"):
                print(f"  {fidelity} >= 0.6x bare (2-D) FFT stages at {where}: "
                      f"{at_least(full_figure(fidelity, n, m, 'bare'), 0.6, 'x')}")
            rss = [full_figure(f, n, m, "peak_rss_mb") for f in ("ideal", "physical")]
            known = [r for r in rss if r is not None]
            verdict = "not measured" if not known else \
                f"{'met' if max(known) < 2048 else 'NOT met'} ({max(known):,.0f} MB)"
            print(f"  peak RSS < 2 GB at {where}: {verdict}")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    import numpy as np

    lightonml = None if args.no_lightonml else args.lightonml_python
    print(
        f"opu-hal emulator bench: Python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(
        f"Each line is a fresh process; rows/s is the best of {args.repeats} transforms after a first one; "
        "ratios are rows/s over rows/s."
    )
    runs = bench_transforms(args, lightonml) if "transform" in args.sections else {}
    open_speedup = bench_open(args, lightonml, runs) if "open" in args.sections else None
    big_rss = bench_large(args) if "large" in args.sections and args.big else None
    full = bench_full(args) if "full" in args.sections else {}
    print_targets(args, runs, open_speedup, big_rss, full)
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

if __name__ == "__main__":
    main(sys.argv[1:])
