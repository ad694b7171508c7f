"""Light follows the lit DMD mirrors, as on hardware (docs/physics.md sections 1.1-1.2).

A feature shown as an s x s macro-pixel sends s^2 mirrors of light: E|R_ji|^2 = s^2 / N_dmd,
so a binary input x gives a mean intensity |x| s^2 / N_dmd per pixel, whatever the strategy,
the macro-pixel size or the medium model, and the all-on DMD gives 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from opu_hal import OPU

M = 4080  # two full sensor rows
BATCH = 8
N_DMD = 912 * 1140


def mean_over_theory(url: str, n_features: int, strategy: str, density: float = 0.5) -> tuple[float, int]:
    """Mean intensity over pixels and inputs divided by its theory |x| s^2 / N_dmd; and s."""
    rng = np.random.default_rng(n_features)
    x = (rng.random((BATCH, n_features)) < density).astype(np.uint8)
    settings = {"input_roi_strategy": strategy}
    with OPU(url, n_components=M, settings=settings, progress=False) as opu:
        opu.fit1d(n_features=n_features)
        factor = opu.layout.factor  # the fitted macro-pixel
        y = np.asarray(opu.transform(x, output="intensity"), dtype=np.float64)
    theory = x.sum(axis=1) * factor**2 / N_DMD
    return float(y.mean() / theory.mean()), factor


@pytest.mark.parametrize("medium", ["dense", "structured"])
@pytest.mark.parametrize(("n_features", "strategy"), [(37, "full"), (1000, "full"), (1000, "small"), (20_000, "auto")])
def test_mean_intensity_follows_lit_mirrors(medium, n_features, strategy):
    ratio, factor = mean_over_theory(f"emu://?fidelity=ideal&medium={medium}&seed=3", n_features, strategy)
    # mean of BATCH x M exponential intensities (std = mean each, pixels independent for the
    # dense medium, nearly so for the structured one): relative standard error 1/sqrt(32,640)
    # = 0.55 %, so 2 % is 3.6 standard errors
    assert abs(ratio - 1) < 0.02, (medium, n_features, strategy, factor, ratio)


def test_small_strategy_is_not_brighter_per_mirror_than_full():
    full, f_full = mean_over_theory("emu://?fidelity=ideal&seed=5", 1000, "full")
    small, f_small = mean_over_theory("emu://?fidelity=ideal&seed=5", 1000, "small")
    assert f_full > 20 and f_small == 1  # 1000 features: 28 x 28 mirrors each, or one
    assert abs(full / small - 1) < 0.03  # the same light per lit mirror (two 0.55 % estimates)


def test_all_on_full_dmd_gives_unit_mean():
    # every mirror lit: the structured medium at its natural size (the input is the whole DMD)
    with OPU("emu://?fidelity=ideal&medium=structured", n_components=M, progress=False) as opu:
        opu.fit1d(n_features=N_DMD)
        y = np.asarray(opu.transform(np.ones((2, N_DMD), dtype=np.uint8), output="intensity"), dtype=np.float64)
    assert abs(y.mean() - 1) < 5 / math.sqrt(y.size)  # 2 x 4,080 exponential intensities of mean 1


def test_light_follows_lit_mirrors_through_the_wire():
    # the firmware reads the macro-pixel size from the layout of CONFIGURE (small DMD: fast)
    url = "sim://?fidelity=ideal&seed=2&dmd_shape=48x60&camera_shape=40x2040"
    rng = np.random.default_rng(0)
    for strategy, factor in (("full", 4), ("small", 1)):
        x = (rng.random((BATCH, 120)) < 0.5).astype(np.uint8)
        with OPU(url, n_components=M, settings={"input_roi_strategy": strategy}, progress=False) as opu:
            opu.fit1d(n_features=120)
            assert opu.layout.factor == factor
            y = np.asarray(opu.transform(x, output="intensity"), dtype=np.float64)
        theory = x.sum() * factor**2 / (48 * 60) / BATCH
        assert abs(y.mean() / theory - 1) < 0.02
