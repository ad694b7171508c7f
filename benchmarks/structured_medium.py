"""Throughput of the structured medium (docs/physics.md 1.7): rows/s, the bare FFT stages, peak RSS.

Usage: ``python benchmarks/structured_medium.py N M BATCH [REPEATS]``, one case per process
(so that the peak RSS is the case's), e.g.::

    python benchmarks/structured_medium.py 1039680 200000 20
    python benchmarks/structured_medium.py 1039680 2000000 20

Prints one JSON line: ``rows_per_s`` of ``OPUModel.acquire`` (ideal fidelity,
``medium=structured``, best of REPEATS), ``bare_3fft_rows_per_s`` of three ``scipy.fft.fft``
of the same length and batch, their ratio, and the peak RSS (MB) before the bare FFTs.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np
import scipy.fft

from firmware_sim import EmulatorParams, OPUModel
from firmware_sim.medium_structured import StructuredMedium


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n, m, batch = (int(a) for a in sys.argv[1:4])
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    x = (np.random.default_rng(0).random((batch, n)) < 0.5).astype(np.uint8)
    params = EmulatorParams(fidelity="ideal", medium="structured", dmd_shape=(912, 1140), camera_shape=(1088, 2040))
    model = OPUModel(params)
    t0 = time.perf_counter()
    model.configure(n, m)
    prepare_s = time.perf_counter() - t0
    model.acquire(x[:2])  # warm up (pocketfft plans)
    acquire_s = best(lambda: model.acquire(x), repeats)
    model_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the bare FFTs' buffers
    length = StructuredMedium.length(n, m)
    workers = os.cpu_count() or 1
    buf = np.ones((batch, length), dtype=np.complex64)

    def stages() -> None:
        out = buf
        for _ in range(3):
            out = scipy.fft.fft(out, axis=1, norm="ortho", workers=workers)

    fft_s = best(stages, repeats)
    model.close()
    print(json.dumps({
        "n": n, "m": m, "batch": batch, "L": length, "workers": workers,
        "prepare_s": round(prepare_s, 3),
        "rows_per_s": round(batch / acquire_s, 2),
        "bare_3fft_rows_per_s": round(batch / fft_s, 2),
        "overhead": round(acquire_s / fft_s, 2),
        "peak_rss_mb": round(model_rss_mb, 1),
        "load": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
