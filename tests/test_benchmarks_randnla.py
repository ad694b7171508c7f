"""`opu-hal bench randnla --quick`: every section it runs gives finite figures in their possible ranges.

The suite runs once on the ideal emulator (about 10 s under load; the physical camera
model takes 4x longer), and once through the CLI on the default physical ``emu://``
with its least-squares section.
"""

import math

import pytest

from benchmarks import randnla
from opu_hal import cli


@pytest.fixture(scope="module")
def quick():
    return randnla.run(randnla.parse_args(["--quick", "--device", "emu://?fidelity=ideal"]))


def test_quick_runs_the_rsvd_trace_and_lstsq_sections(quick):
    assert set(quick) == {"rsvd", "trace", "lstsq", "cost"}


def test_the_cost_model_is_finite_and_consistent(quick):
    costs = quick["cost"]
    assert {c["problem"].split()[0] for c in costs} == {"rsvd", "trace", "lstsq"}
    for c in costs:
        for key in ("frames_per_row", "frametime_s", "device_s", "gpu_s", "crossover_nk"):
            assert math.isfinite(c[key]) and c[key] > 0, (c["problem"], key)
        assert c["flops"] == 15e12  # the default F
        assert c["frametime_s"] == pytest.approx(500e-6)  # the emulator's 2 kHz at these few outputs
        assert c["device_s"] == pytest.approx(c["frames"] * c["frametime_s"])
        assert c["gpu_s"] == pytest.approx(2 * c["rows"] * c["n"] * c["k"] / 15e12)
        # independently: both times are linear in the work, the GPU's in n k, so they meet at
        # n k x (OPU time / GPU time)
        assert c["crossover_nk"] == pytest.approx(c["nk"] * c["device_s"] / c["gpu_s"])
        # the hand estimate F f t / 2 at 15 TFLOP/s and 500 us: 3.75e9 per frame per row
        assert c["crossover_nk"] == pytest.approx(3.75e9 * c["frames_per_row"])


def test_rsvd_errors_are_at_least_optimal_and_near_it_with_a_power_iteration(quick):
    rows = {(r["matrix"], r["method"]): r for r in quick["rsvd"]}
    assert len({m for m, _ in rows}) == 4
    assert {m for _, m in rows} >= {"digital Gaussian, q=1", "digital CountSketch, q=1", "OPU, q=1"}
    for (matrix, method), row in rows.items():
        assert math.isfinite(row["err_over_opt"]) and math.isfinite(row["vs_sklearn"])
        assert row["err_over_opt"] >= 1 - 1e-9, (matrix, method)  # nothing beats the truncated SVD
        if method == "exact SVD":
            assert row["err_over_opt"] == pytest.approx(1.0, abs=1e-9)
        elif "q=1" in method or "sklearn" in method:
            # HMT 2011 (Thm 10.7 with one power step) and the noise budget of the oversampling
            assert row["err_over_opt"] < 2.0, (matrix, method)
        else:
            assert row["err_over_opt"] < 20.0, (matrix, method)


def test_trace_errors_and_biases_are_finite_fractions(quick):
    rows = quick["trace"]
    methods = {r["method"] for r in rows}
    assert {"digital Hutch++", "OPU Hutch++", "digital Nystrom++", "OPU Nystrom++ (power step)"} <= methods
    for row in rows:
        for key in ("median", "bias", "bias_se", "ratio", "ratio_same"):
            assert math.isfinite(row[key]), (row["method"], key)
        assert 0 <= row["median"] < 0.5 and abs(row["bias"]) < 0.5 and row["bias_se"] >= 0
        assert row["ratio"] > 0 and row["ratio_same"] > 0


def test_lstsq_matches_numpy_to_solver_tolerance(quick):
    assert {r["sketch"] for r in quick["lstsq"]} == {"sparse sign 4n", "OPU 4n"}
    for row in quick["lstsq"]:
        assert 0 <= row["residual_diff"] < 1e-6, row
        assert row["wall_s"] > 0 and row["numpy_s"] > 0


def test_the_cli_runs_the_quick_suite(capsys):
    assert cli.main(["bench", "randnla", "--quick", "--sections", "lstsq"]) == 0
    out = capsys.readouterr().out
    assert "== lstsq: cond 1e+08 ==" in out and "400 x 20" in out and "120 x 8" in out and "OPU 4n" in out
    assert "== cost model: OPU device time (frames x frametime) against a GPU at 15 TFLOP/s" in out
