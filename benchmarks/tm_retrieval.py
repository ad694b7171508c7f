"""Transmission-matrix retrieval on the emulator (issue 5, scheme D), next to references of the same run.

    python -m benchmarks.tm_retrieval                    # N = M = 256, physical fidelity, 8-bit camera
    python -m benchmarks.tm_retrieval --seeds 0 1 2      # several devices (media and noise)
    python -m benchmarks.tm_retrieval --exposure-us 300  # another exposure (default: the device's, 400 us)

(``python benchmarks/tm_retrieval.py`` works too.)

For each seed, an ``emu://?seed=...`` OPU (physical fidelity, default 8-bit camera) is
fitted to N features and M = N outputs, and ``retrieve_transmission_matrix`` runs with
S anchors and K = factor x N calibration inputs. Printed: the intensity correlation on
fresh inputs, the relative error to the emulator's true matrix after per-row phase and
conjugation alignment, the frames used (and per feature), the seconds of computation and
of acquisition, and the device time the frames take at the configured frametime.

References measured in the same run: one plain least-squares solve of the same shape
(``numpy.linalg.lstsq`` of a (K/2, N/2) binary design with M complex right-hand sides,
twice, one per half), the least any retrieval of this design must compute; and the
device time. The issue's targets (correlation >= 0.99, error <= 0.10, <= 30 N frames) and
the original specification's quoted emulation (docs/physics.md section 9) (S = 8, K = 3N: error 0.09, correlation 0.993, ~30 N
frames) are printed alongside. Nothing is asserted; timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from calibration.tm import aligned_relative_error, retrieve_transmission_matrix  # noqa: E402
from opu_hal import OPU  # noqa: E402


def lstsq_reference_s(n: int, m: int, k: int, seed: int) -> float:
    """Seconds of the two plain least-squares solves (one per half) of the retrieval's shape."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for half in (n // 2, n - n // 2):
        rows = k * half // n
        design = (rng.random((rows, half)) < 0.5).astype(np.float64)
        rhs = rng.standard_normal((rows, m)) + 1j * rng.standard_normal((rows, m))
        start = time.perf_counter()
        np.linalg.lstsq(design, rhs, rcond=None)
        total += time.perf_counter() - start
    return total


def run(n: int, seed: int, anchors: int, factor: int, exposure_us: float | None) -> dict[str, float]:
    opu = OPU(f"emu://?seed={seed}", n_components=n, progress=False)
    opu.fit1d(n_features=n)
    if exposure_us is not None:
        opu.settings = {"exposure_us": exposure_us}
    result = retrieve_transmission_matrix(opu, n_anchors=anchors, n_calibration=factor * n, seed=seed, progress=False)
    truth = opu.backend.model.transmission_matrix()
    reference = lstsq_reference_s(n, n, factor * n, seed)
    opu.close()
    return {
        "correlation": result.intensity_correlation,
        "fit_correlation": result.fit_correlation,
        "error": aligned_relative_error(result.matrix, truth),
        "frames": result.frames_used,
        "frames_per_n": result.frames_per_feature,
        "check_frames": result.check_frames,
        "compute_s": result.compute_seconds,
        "acquire_s": result.acquisition_seconds,
        "device_s": result.device_time_s,
        "lstsq_s": reference,
        "exposure_us": result.exposure_us,
        "saturated": result.saturated_fraction,
        "rounds": result.rounds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="features N = outputs M (default 256)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="emulator seeds (default 0)")
    parser.add_argument("--anchors", type=int, default=8, help="anchors S (default 8)")
    parser.add_argument("--factor", type=int, default=3, help="calibration inputs K = factor x N (default 3)")
    parser.add_argument("--exposure-us", type=float, default=None, help="camera exposure (us; default the device's)")
    args = parser.parse_args(argv)

    print(f"transmission-matrix retrieval, emu:// physical fidelity, 8-bit camera, N = M = {args.n}, "
          f"S = {args.anchors}, K = {args.factor} N")
    print("targets (issue 5): correlation >= 0.99, relative error <= 0.10, frames <= 30 N; "
          "the original specification (docs/physics.md section 9) quotes 0.993 / 0.09 at ~30 N")
    header = (f"{'seed':>4} {'exp us':>6} {'corr':>7} {'fit':>7} {'error':>6} {'frames':>6} {'/N':>5} {'sat':>8} "
              f"{'rounds':>6} {'compute s':>9} {'acquire s':>9} {'device s':>8} {'x lstsq':>7} {'x device':>8}")
    print(header)
    rows = []
    for seed in args.seeds:
        r = run(args.n, seed, args.anchors, args.factor, args.exposure_us)
        rows.append(r)
        print(f"{seed:>4} {r['exposure_us']:>6.0f} {r['correlation']:>7.4f} {r['fit_correlation']:>7.4f} "
              f"{r['error']:>6.3f} {r['frames']:>6d} {r['frames_per_n']:>5.1f} {r['saturated']:>8.1e} "
              f"{r['rounds']:>6d} {r['compute_s']:>9.2f} {r['acquire_s']:>9.2f} {r['device_s']:>8.2f} "
              f"{r['compute_s'] / r['lstsq_s']:>7.1f} {r['compute_s'] / r['device_s']:>8.2f}")
    worst_corr = min(r["correlation"] for r in rows)
    worst_err = max(r["error"] for r in rows)
    worst_frames = max(r["frames_per_n"] for r in rows)
    print(f"worst of {len(rows)}: correlation {worst_corr:.4f} (target >= 0.99), error {worst_err:.3f} "
          f"(target <= 0.10), frames {worst_frames:.1f} N (+ {rows[0]['check_frames']} check frames; target <= 30 N)")
    print("x lstsq: compute time / two plain least-squares solves of the same shape; "
          "x device: compute time / device time of the frames")


if __name__ == "__main__":
    main()
