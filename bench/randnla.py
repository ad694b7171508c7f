"""RandNLA with the emulated OPU against exact SVD, scikit-learn and digital sketches.

Run ``python bench/randnla.py`` (or ``opu-hal bench randnla``); ``--help`` lists the
sections and sizes. The tables print errors relative to the optimal rank-k error and to
scikit-learn's ``randomized_svd``, trace errors and biases, least-squares residuals
against ``numpy.linalg.lstsq`` with both wall times, device frames and emulated device
time, and the Dask run against the in-memory one.
"""

import sys

from opu_hal.randnla.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
