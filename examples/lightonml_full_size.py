"""lightonml's benchmark configuration on the emulator, through the lightonml shim.

    python examples/lightonml_full_size.py [--rows 1000] [--fidelity physical]

The script a lightonml user runs unchanged but for the import: ``OPU(n_components=200_000)``,
``fit1d`` on the whole 1,039,680-mirror DMD, then ``transform`` of random binary rows. The
emulator picks the structured medium at this size (a dense matrix would be 1.6 TB); the
transform shows a progress bar because it is long (lightonml's verbosity does not hide
it). The rows are bit-packed (``np.packbits``, as lightonml's ``packed=True`` takes them): the
unpacked input alone would be 1 GB for 1,000 rows. Prints the rows per second and the
process's peak resident memory (MB).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from opu_hal.compat.lightonml import OPU

N_FEATURES = 1_039_680  # the whole DMD: 912 x 1140 mirrors


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000, help="binary rows transformed")
    parser.add_argument("--n-components", type=int, default=200_000, help="camera pixels read")
    parser.add_argument("--fidelity", choices=("physical", "ideal"), default="physical", help="emulator fidelity")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    # Random bits packed 8 per byte, as np.packbits gives them: random bytes, (rows, 129,960).
    X = rng.integers(0, 256, size=(args.rows, N_FEATURES // 8), dtype=np.uint8)
    opu = OPU(n_components=args.n_components, device=f"emu://?fidelity={args.fidelity}", seed=0)
    start = time.perf_counter()
    opu.fit1d(n_features=N_FEATURES, packed=True)
    y = opu.transform(X)
    seconds = time.perf_counter() - start
    opu.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"rows": float(args.rows), "seconds": seconds, "rows_per_s": args.rows / seconds, "peak_rss_mb": peak_mb}
    print(f"{args.rows} rows of {N_FEATURES:,} features -> {y.shape[1]:,} outputs ({args.fidelity}) in {seconds:.1f} s: "
          f"{figures['rows_per_s']:.1f} rows/s, peak RSS {peak_mb:,.0f} MB")
    return figures


if __name__ == "__main__":
    main()
