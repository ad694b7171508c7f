"""DMD layouts: macro-pixels, strategies, round trips and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opu_hal.layout import DMDLayout, layout_1d, layout_2d

DMD = (912, 1140)


def check_macro_pixels(layout: DMDLayout) -> None:
    """Every feature owns one factor x factor square of mirrors inside the DMD, and nothing else is lit."""
    f = layout.factor
    y0, x0 = layout.offset
    rows, cols = layout.roi_shape
    assert y0 >= 0 and x0 >= 0 and y0 + rows <= layout.dmd_shape[0] and x0 + cols <= layout.dmd_shape[1]
    assert layout.grid_shape[0] * layout.grid_shape[1] >= layout.n_features
    mirrors = layout.mirror_map()
    assert mirrors.shape == layout.dmd_shape
    counts = np.bincount(mirrors[mirrors >= 0], minlength=layout.n_features)
    assert counts.shape == (layout.n_features,) and np.all(counts == f * f)
    ys, xs = layout.sample_points()
    for feature in {0, layout.n_features // 2, layout.n_features - 1}:
        r, c = np.nonzero(mirrors == feature)
        assert r.max() - r.min() == f - 1 and c.max() - c.min() == f - 1  # a solid square
        assert r.min() <= ys[feature] <= r.max() and c.min() <= xs[feature] <= c.max()


@settings(max_examples=60, deadline=None)
@given(
    dmd=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    fraction=st.floats(0, 1),
    strategy=st.sampled_from(["auto", "full", "small"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_and_macro_pixels_1d(dmd, fraction, strategy, seed):
    n = max(1, round(fraction * dmd[0] * dmd[1]))
    layout = layout_1d(n, dmd, strategy)
    assert layout.n_features == n and layout.dmd_shape == dmd
    check_macro_pixels(layout)
    full = layout_1d(n, dmd, "full")
    g = full.grid_shape
    assert g[0] * (full.factor + 1) > dmd[0] or g[1] * (full.factor + 1) > dmd[1]  # largest that fits
    assert layout.factor == {"small": 1, "full": full.factor, "auto": full.factor if full.factor >= 2 else 1}[strategy]
    x = np.random.default_rng(seed).integers(0, 2, size=(3, n), dtype=np.uint8)
    frames = layout.to_mirrors(x)
    assert frames.shape == (3, *dmd) and frames.dtype == bool
    np.testing.assert_array_equal(layout.from_mirrors(frames), x)
    assert frames.sum() == x.sum() * layout.factor**2  # lit mirrors = lit features x macro-pixel area


@settings(max_examples=40, deadline=None)
@given(
    dmd=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    shape_fraction=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    strategy=st.sampled_from(["auto", "full", "small"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_and_macro_pixels_2d(dmd, shape_fraction, strategy, seed):
    shape = (max(1, round(shape_fraction[0] * dmd[0])), max(1, round(shape_fraction[1] * dmd[1])))
    layout = layout_2d(shape, dmd, strategy)
    assert layout.grid_shape == shape and layout.n_features == shape[0] * shape[1]
    check_macro_pixels(layout)
    image = np.random.default_rng(seed).integers(0, 2, size=(2, *shape), dtype=np.uint8)
    frames = layout.to_mirrors(image.reshape(2, -1))
    np.testing.assert_array_equal(layout.from_mirrors(frames).reshape(2, *shape), image)
    # the image appears upright: pixel (i, j) is macro-pixel (i, j) of the grid
    f, (y0, x0) = layout.factor, layout.offset
    np.testing.assert_array_equal(frames[:, y0 : y0 + shape[0] * f : f, x0 : x0 + shape[1] * f : f], image.astype(bool))


def test_strategies_on_the_default_dmd():
    full, small, auto = (layout_1d(1000, DMD, s) for s in ("full", "small", "auto"))
    assert small.factor == 1
    assert full.factor > 1 and auto.factor == full.factor
    # full: the biggest macro-pixel that still fits; one more mirror per side would not
    g = full.grid_shape
    assert g[0] * full.factor <= DMD[0] and g[1] * full.factor <= DMD[1]
    assert g[0] * (full.factor + 1) > DMD[0] or g[1] * (full.factor + 1) > DMD[1]
    # centred
    for layout in (full, small):
        y0, x0 = layout.offset
        rows, cols = layout.roi_shape
        assert abs((DMD[0] - rows - y0) - y0) <= 1 and abs((DMD[1] - cols - x0) - x0) <= 1


def test_full_fills_a_large_part_of_the_dmd():
    for n in (10, 100, 1000, 10_000):
        layout = layout_1d(n, DMD, "full")
        rows, cols = layout.roi_shape
        assert rows * cols >= 0.5 * DMD[0] * DMD[1], (n, layout)


def test_auto_is_small_when_features_cannot_take_2x2_mirrors():
    n = DMD[0] * DMD[1] // 2  # a 2 x 2 macro-pixel per feature would need twice the mirrors
    assert layout_1d(n, DMD, "auto").factor == 1
    assert layout_1d(DMD[0] * DMD[1], DMD, "full").factor == 1
    assert layout_2d((456, 570), DMD, "auto").factor == 2


def test_too_many_features():
    with pytest.raises(ValueError, match=r"^n_features: expected 1 to 1039680 \(DMD mirrors \(912, 1140\)\), got 1039681"):
        layout_1d(DMD[0] * DMD[1] + 1, DMD)
    with pytest.raises(ValueError, match=r"^n_features: expected 1 to 1039680 .*got 0"):
        layout_1d(0, DMD)
    with pytest.raises(ValueError, match=r"^n_features: expected a shape that fits the DMD \(912, 1140\), got \(913, 10\)"):
        layout_2d((913, 10), DMD)
    with pytest.raises(ValueError, match=r"^n_features: expected a 2-D shape .*got \(0, 5\)"):
        layout_2d((0, 5), DMD)


@pytest.mark.parametrize("strategy", ["large", "", "FULL", None])
def test_bad_strategy(strategy):
    with pytest.raises(ValueError, match=rf"^input_roi_strategy: expected one of \('auto', 'full', 'small'\), got {strategy!r}"):
        layout_1d(10, DMD, strategy)
    with pytest.raises(ValueError, match="^input_roi_strategy: expected one of"):
        layout_2d((2, 5), DMD, strategy)
