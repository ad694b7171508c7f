"""The medium's memory policy: a matrix beyond the budget is streamed, and gives the same products."""

from __future__ import annotations

import os

import numpy as np
import pytest

from firmware_sim.camera import Camera, frame_generator
from firmware_sim.medium import memory_budget_bytes
from firmware_sim.medium_dense import DenseMedium
from firmware_sim.params import EmulatorParams


@pytest.mark.parametrize("unit_mb", [64.0, 0.02, 0.005, 0.0004])
def test_streamed_products_equal_the_kept_matrix_however_the_units_split_it(unit_mb):
    # Tiles of 16: 70 features x 50 outputs span 5 x 4 tiles; a tile column of all features
    # takes 8,960 bytes. Units of 64 MB hold the whole matrix; 0.02 MB, two tile columns of
    # all features; 0.005 MB, two tiles (features split 32 + 32 + 6); 0.0004 MB, one tile.
    n, m = 70, 50
    x = (np.random.default_rng(0).random((6, n)) < 0.5).astype(np.uint8)
    kept = DenseMedium(seed=4, tile_size=16)
    streamed = DenseMedium(seed=4, tile_size=16, cache_mb=0, unit_mb=unit_mb)
    try:
        expected = kept.field(x, m)
        got = streamed.field(x, m)
        # The same G (bitwise), multiplied in other blockings: float32 rounding only.
        np.testing.assert_array_equal(streamed.matrix(m, n), kept.matrix(m, n))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
        np.testing.assert_allclose(got, x @ kept.matrix(m, n).T, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    finally:
        kept.close()
        streamed.close()


def test_nothing_is_kept_beyond_the_budget_and_a_drifting_medium_must_fit():
    medium = DenseMedium(seed=1, tile_size=16, cache_mb=0.01)  # 10,485 bytes: 1,310 entries
    try:
        medium.prepare(30, 40)  # 1,200 entries: kept
        assert medium._dense is not None
        medium.prepare(40, 40)  # 1,600 entries: streamed, the old matrix released
        assert medium._dense is None
    finally:
        medium.close()
    drifting = DenseMedium(seed=1, tile_size=16, cache_mb=0.01, drift_tau_s=10.0)
    try:
        with pytest.raises(ValueError, match="drift_tau_s"):
            drifting.prepare(40, 40)
    finally:
        drifting.close()


def test_the_budget_is_the_setting_capped_at_a_quarter_of_physical_memory():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory_budget_bytes(1.0) == 2**20
    assert memory_budget_bytes(1e12) == physical // 4
    with pytest.raises(ValueError, match="unit_mb"):
        DenseMedium(seed=0, unit_mb=0)


def test_each_frame_gets_the_stream_of_frame_generator():
    # The camera re-keys one generator per thread instead of making one per frame: the
    # streams must be those frame_generator documents, for any frame id and order.
    camera = Camera(EmulatorParams(seed=11))
    try:
        for frame_id in (5, 0, 2**40 + 3, 5):
            expected = frame_generator(11, frame_id)
            got = camera._frame_stream(frame_id)
            np.testing.assert_array_equal(
                got.standard_normal(100, dtype=np.float32), expected.standard_normal(100, dtype=np.float32)
            )
            np.testing.assert_array_equal(got.poisson(30.0, 50), expected.poisson(30.0, 50))
        assert not np.array_equal(
            frame_generator(11, 1).standard_normal(10), frame_generator(11, 2).standard_normal(10)
        )
        assert not np.array_equal(
            frame_generator(11, 1).standard_normal(10), frame_generator(12, 1).standard_normal(10)
        )
    finally:
        camera.close()
