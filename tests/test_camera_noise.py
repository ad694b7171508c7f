"""The camera's temporal noise against the EMVA 1288 model, and its determinism across threads."""

import math

import numpy as np
import pytest

from firmware_sim import timing
from firmware_sim.camera import Camera, frame_generator
from firmware_sim.params import EmulatorParams

# 16 bits, 1 DN per electron: counts resolve the noise; rounding adds 1/12 DN^2 (Sheppard).
CLEAN = dict(bit_depth=16, gain_dn_per_e=1.0, offset_dn=200.0, dark_current_e_per_s=0.0, seed=4)


def expose(params: EmulatorParams, electrons: np.ndarray, workers: int | None = None, first_frame: int = 0,
           pixels: slice | None = None) -> np.ndarray:
    camera = Camera(params, workers=workers)
    try:
        frame_ids = np.arange(first_frame, first_frame + electrons.shape[0])
        return camera.expose(electrons, 400.0, frame_ids, pixels)
    finally:
        camera.close()


@pytest.mark.parametrize("mean_e", [2.0, 20.0, 80.0, 150.0, 1_000.0, 9_000.0])
def test_counts_have_the_mean_and_variance_of_shot_plus_read_noise(mean_e):
    # At 3 e- of read noise shot noise is exact Poisson from 5.7 to 69 e-, elsewhere its normal
    # limit; both regimes must give
    # E[DN] = K mu + offset and Var[DN] = K^2 (mu + sigma_read^2) + 1/12.
    read = 3.0
    params = EmulatorParams(read_noise_e=read, **CLEAN)
    counts = expose(params, np.full((100, 4_000), mean_e, dtype=np.float32)).astype(np.float64)
    variance = mean_e + read**2 + 1 / 12
    n = counts.size
    assert abs(counts.mean() - (mean_e + 200.0)) < 5 * math.sqrt(variance / n)
    assert counts.var() == pytest.approx(variance, rel=6 * math.sqrt(2 / n) + 0.002)


def test_a_full_pixel_reads_the_full_well_with_its_read_noise():
    # The full well (12,000 e-) shows below the 16-bit ADC maximum at 1 DN/e-: a pixel far beyond
    # it reads full_well + N(0, sigma_read^2).
    params = EmulatorParams(read_noise_e=5.0, **CLEAN)
    counts = expose(params, np.full((50, 4_000), 40_000.0, dtype=np.float32)).astype(np.float64)
    assert abs(counts.mean() - (12_000 + 200)) < 0.05
    assert counts.var() == pytest.approx(25 + 1 / 12, rel=0.02)


def test_small_counts_are_exactly_poisson():
    # No read noise: the counts are Poisson(3) + offset, P(0) = exp(-3), P(3) = 4.5 exp(-3).
    params = EmulatorParams(read_noise_e=0.0, **CLEAN)
    counts = expose(params, np.full((50, 4_000), 3.0, dtype=np.float32)).astype(np.int64) - 200
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    for k, p in ((0, math.exp(-3)), (3, 4.5 * math.exp(-3))):
        assert np.mean(counts == k) == pytest.approx(p, abs=5 * math.sqrt(p / counts.size))


def exact_count_cdf(mean_e: float, read: float, counts: np.ndarray) -> np.ndarray:
    """P(DN - offset <= k) at 1 DN/e- for e = Poisson(mean_e) + N(0, read^2), rounded."""
    from scipy import stats

    n = np.arange(int(mean_e + 12 * math.sqrt(mean_e) + 20))
    pmf = stats.poisson.pmf(n, mean_e)
    return stats.norm.cdf((counts[:, None] + 0.5 - n[None, :]) / read) @ pmf


@pytest.mark.parametrize("read, mean_e", [(3.0, 20.0), (12.0, 20.0), (12.0, 3.0)])
def test_the_count_distribution_is_that_of_poisson_plus_read_noise(read, mean_e):
    # Kolmogorov-Smirnov (400,000 counts, 1 % level) against the exact law of
    # round(Poisson(mu) + N(0, sigma_read^2)). At sigma_read = 3 and 20 e- the sum is skewed (0.13)
    # and shot noise is drawn exactly: its normal limit is 0.008 off in CDF, three times the
    # critical distance. With 12 e- of read noise at 3 and 20 e- (skewness under 0.01) the normal
    # limit is used, and is as close as exact draws.
    params = EmulatorParams(read_noise_e=read, **CLEAN)
    counts = expose(params, np.full((100, 4_000), mean_e, dtype=np.float32)).astype(np.int64).ravel() - 200
    support = np.arange(counts.min(), counts.max() + 1)
    empirical = np.cumsum(np.bincount(counts - support[0], minlength=support.size)) / counts.size
    distance = np.abs(empirical - exact_count_cdf(mean_e, read, support)).max()
    assert distance < 1.63 / math.sqrt(counts.size)


def mixed_electrons(frames: int, pixels: int) -> np.ndarray:
    """Speckle-like exponential means, with dim (Poisson) and bright (normal) pixels."""
    return np.random.default_rng(7).exponential(400.0, (frames, pixels)).astype(np.float32)


@pytest.mark.parametrize("frames, pixels", [(5, 150_000), (60, 3_000)])  # several blocks; frames grouped
def test_the_same_seed_gives_the_same_frames_whatever_the_thread_count(frames, pixels):
    params = EmulatorParams(seed=9, prnu=0.01, dsnu_e=2.0)
    electrons = mixed_electrons(frames, pixels)
    one = expose(params, electrons, workers=1, first_frame=30)
    for workers in (2, 3):
        np.testing.assert_array_equal(expose(params, electrons, workers=workers, first_frame=30), one)
    other_seed = expose(params.model_copy(update={"seed": 10}), electrons, workers=1, first_frame=30)
    assert np.mean(other_seed != one) > 0.3
    assert np.mean(one[0] != one[1]) > 0.3  # every frame has its own noise


@pytest.mark.parametrize("start", [70_000, 70_003, 65_281, 66_329, 71_423])
def test_a_pixel_gets_the_same_noise_whatever_part_of_the_sensor_is_read(start):
    # Bright pixels (normal limit only): a read of pixels start to 140,000, which starts inside a
    # noise block (inside a Box-Muller chunk: among its cosines, 65,281, 70,003, or its sines,
    # 66,329, 71,423), gives the counts of the same pixels in a read of the first 140,000.
    params = EmulatorParams(seed=2)
    electrons = np.full((3, 140_000), 3_000.0, dtype=np.float32)
    whole = expose(params, electrons)
    part = expose(params, electrons[:, start:], pixels=slice(start, 140_000))
    np.testing.assert_array_equal(part, whole[:, start:])


def test_the_normals_follow_the_documented_stream_layout():
    # docs/physics.md 2.1: pixel j of block b of frame f, in chunk c = j // 2048 at q = j % 2048,
    # takes the Box-Muller pair q % 1024 of the chunk's 1,024 words of frame_generator(seed, f, b):
    # radius from 32-bit half q % 1024, angle from half 1024 + q % 1024, cosine for q < 1024 and
    # sine beyond. At 1 DN/e- and 12 e- of read noise (normal limit everywhere) the counts are
    # floor(mu + offset + 0.5 + sqrt(mu + 144) z), rebuilt here in float64 from the raw words.
    params = EmulatorParams(read_noise_e=12.0, **CLEAN)
    mean_e, frame_ids, n = 1_000.0, (5, 6), 70_000
    counts = expose(params, np.full((2, n), mean_e, dtype=np.float32), first_frame=frame_ids[0])
    block_pixels = 32 * params.camera_shape[1]
    for row, frame_id in enumerate(frame_ids):
        z = np.empty(n)
        for block in range(-(-n // block_pixels)):
            j = np.arange(block * block_pixels, min((block + 1) * block_pixels, n)) - block * block_pixels
            words = frame_generator(params.seed, frame_id, block).bit_generator.random_raw((j[-1] // 2048 + 1) * 1024)
            halves = (words.astype("<u8").view("<u4") >> 9).astype(np.float64) / 2**23  # 23-bit uniforms in [0, 1)
            chunk, q = j // 2048, j % 2048
            pair = chunk * 2048 + q % 1024
            radius = np.sqrt(-2.0 * np.log(1.0 - halves[pair]))
            angle = 2.0 * np.pi * halves[pair + 1024]
            z[j + block * block_pixels] = radius * np.where(q < 1024, np.cos(angle), np.sin(angle))
        expected = np.floor(mean_e + 200.0 + 0.5 + math.sqrt(mean_e + 144.0) * z)
        difference = counts[row].astype(np.float64) - expected
        assert np.mean(difference == 0) > 0.999  # float32 arithmetic moves a count only at a rounding edge
        assert np.max(np.abs(difference)) <= 1


def test_expose_into_writes_in_place_and_counts_the_saturated_pixels():
    params = EmulatorParams(seed=5, hot_pixel_fraction=0.01)
    electrons = mixed_electrons(6, 70_000)
    electrons[:, :500] = 1e6  # saturated
    camera = Camera(params)
    try:
        out = np.zeros((6, 70_000), dtype=np.uint8)
        saturated = camera.expose_into(electrons, 400.0, np.arange(6), out)
        np.testing.assert_array_equal(out, camera.expose(electrons, 400.0, np.arange(6)))
        assert saturated == np.count_nonzero(out == params.max_dn) >= 6 * (500 + 0.005 * 70_000)
        with pytest.raises(TypeError, match="out: expected a uint8 array, got uint16"):
            camera.expose_into(electrons, 400.0, np.arange(6), out.astype(np.uint16))
        with pytest.raises(ValueError, match=r"out: expected a writable array of shape \(6, 70000\) with contiguous rows, got .* strides \(140000, 2\)"):
            camera.expose_into(electrons, 400.0, np.arange(6), np.zeros((6, 140_000), np.uint8)[:, ::2])
    finally:
        camera.close()


def test_expose_leaves_its_input_unchanged_and_workers_are_checked():
    params = EmulatorParams(seed=1, prnu=0.02)
    electrons = mixed_electrons(4, 1_000)
    before = electrons.copy()
    expose(params, electrons)
    np.testing.assert_array_equal(electrons, before)
    with pytest.raises(ValueError, match="workers: expected a positive int"):
        Camera(params, workers=0)


def test_the_frame_rate_falls_with_the_rows_read_down_to_the_whole_sensor():
    params = EmulatorParams()  # 400 us exposure, 5 us per row, 100 us margin, 2040 x 1088 sensor
    assert timing.roi_rows(params, 1) == 1 and timing.roi_rows(params, 2_041) == 2
    assert timing.roi_rows(params, params.n_pixels) == 1_088
    frametimes = [timing.min_frametime_us(params, 400.0, timing.roi_rows(params, m))
                  for m in (2_040, 80 * 2_040, 81 * 2_040, 500 * 2_040, params.n_pixels)]
    assert frametimes == [500.0, 500.0, 505.0, 2_600.0, 5_540.0]  # exposure-limited, then readout-limited
