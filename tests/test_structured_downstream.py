"""Downstream algorithms on the structured medium against the dense one (issue 14, "Done when").

rsvd (last test) has an absolute target instead: within 1.02x optimal with one power iteration.

Each figure is measured on ``emu://?medium=dense`` and ``emu://?medium=structured`` with the
same seed and settings (physical fidelity, default 8-bit camera), and the structured figure
must lie within 10 % of the dense one on either side: |err_structured - err_dense| <= 0.1
err_dense. Two-sided, because the claim is that the structured medium *emulates* the dense
one: a markedly smaller error would be as much a departure from the Gaussian medium's
statistics as a larger one. The two media are different random matrices, so the figures
differ by their seed-to-seed spread; measured over seeds 0-3 and 7 at N = M = 256 (issue 14
item "within 10 %"): TM error 0.040-0.042 on both media (spread ~2 %), median linear error of
binary inputs 0.030-0.033 and of 8-bit real inputs 0.042-0.045 (spread up to ~6 % between
media at one seed), so the bound has about twice the spread as margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import randnla
from calibration.linear import calibrate_linear, true_linear_map
from calibration.tm import aligned_relative_error, retrieve_transmission_matrix
from opu_hal import OPU
from test_calibration_linear import measured_errors

N = M = 256
MEDIA = ("dense", "structured")


def within_ten_percent(structured: float, dense: float) -> bool:
    return abs(structured - dense) <= 0.1 * dense


@pytest.fixture(scope="module")
def tm_errors() -> dict[str, float]:
    errors = {}
    for medium in MEDIA:
        opu = OPU(f"emu://?seed=7&medium={medium}", n_components=M, progress=False).fit1d(n_features=N)
        assert opu.backend.model.medium.kind == medium
        result = retrieve_transmission_matrix(opu, n_check=0, seed=7, progress=False)
        errors[medium] = aligned_relative_error(result.matrix, opu.backend.model.transmission_matrix())
    return errors


def test_tm_retrieval_error_on_the_structured_medium_is_within_ten_percent_of_dense(tm_errors):
    # scheme D, S = 8, K = 3N (tests/test_tm.py): 0.0406 dense, 0.0404 structured at seed 7
    assert tm_errors["dense"] <= 0.10
    assert within_ten_percent(tm_errors["structured"], tm_errors["dense"]), tm_errors


@pytest.fixture(scope="module")
def linear_errors() -> dict[str, dict[str, float]]:
    """Median relative errors of the measured part (the completion term removed, tests/test_calibration_linear.py)."""
    rng = np.random.default_rng(1)
    x_binary = (rng.random((100, N)) < 0.5).astype(np.uint8)
    x_real = rng.standard_normal((40, N)) * 3.0
    errors = {}
    for medium in MEDIA:
        with OPU(f"emu://?medium={medium}", n_components=M, seed=11, progress=False) as device:
            device.fit1d(n_features=N)
            device.calibration = calibrate_linear(device)
            assert device.backend.model.medium.kind == medium
            z_binary = device.linear_transform(x_binary)
            z_real = device.linear_transform(x_real, bits=8)
            m = true_linear_map(device.backend.model.transmission_matrix(), device.calibration)
            errors[medium] = {
                "binary": float(np.median(measured_errors(z_binary, x_binary, m, device.calibration))),
                "real": float(np.median(measured_errors(z_real, x_real, m, device.calibration))),
            }
    return errors


@pytest.mark.parametrize("inputs", ["binary", "real"])
def test_linear_calibration_error_on_the_structured_medium_is_within_ten_percent_of_dense(linear_errors, inputs):
    dense, structured = linear_errors["dense"][inputs], linear_errors["structured"][inputs]
    # measured: binary 0.0309 dense, 0.0307 structured; 8-bit real 0.0448 dense, 0.0445 structured
    assert dense <= {"binary": 0.045, "real": 0.06}[inputs]  # the dense bounds of tests/test_calibration_linear.py
    assert within_ten_percent(structured, dense), linear_errors


def test_rsvd_with_one_power_iteration_and_an_opu_sketch_on_the_structured_medium_is_within_2_percent_of_optimal(capsys):
    # The RandNLA bench's matrices and optimum (benchmarks/randnla.py) at its --quick sizes.
    # Measured: 1.0001-1.0034 here; 1.0003-1.0077 at the bench's 2,000 x 1,000, rank 20
    # (dense: 1.0000-1.0096), and HMT 2011 Thm 10.7 gives this order with one power step.
    with OPU("emu://?medium=structured", n_components=25, seed=0, progress=False) as opu:
        rows = randnla.bench_rsvd(opu, m=150, n=64, rank=6, oversampling=6, seed=0)
        assert opu.backend.model.medium.kind == "structured"
    assert "OPU medium in use: structured" in capsys.readouterr().out
    optical = {r["matrix"]: r["err_over_opt"] for r in rows if r["method"] == "OPU, q=1"}
    assert set(optical) == {"poly 1/j", "poly 1/j^2", "exp 0.9^j", "low rank + noise"}
    assert all(1 - 1e-9 <= e <= 1.02 for e in optical.values()), optical


def test_the_rsvd_bench_names_the_medium_in_use_not_the_one_requested(capsys):
    # With the default medium=auto, the header used to print "auto"; the device says which
    # medium it chose once configured (dense at this size).
    with OPU("emu://?fidelity=ideal", n_components=25, seed=0, progress=False) as opu:
        randnla.bench_rsvd(opu, m=40, n=16, rank=2, oversampling=2, seed=0)
    out = capsys.readouterr().out
    assert "OPU medium in use: dense" in out and "medium auto" not in out and "in use: auto" not in out
