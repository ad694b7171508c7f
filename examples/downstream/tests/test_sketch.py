"""Tests of speckle_sketch; the ``opu`` fixture comes from opu-hal's pytest plugin."""

import numpy as np
import pytest

from speckle_sketch import hamming_similarity, sketch

N_FEATURES = 400
N_COMPONENTS = 2048


def flip(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    mask = rng.random(x.shape) < fraction
    return np.where(mask, 1 - x, x).astype(np.uint8)


@pytest.mark.opu(n_components=N_COMPONENTS, n_features=N_FEATURES)
def test_codes_have_one_bit_per_pixel_pair_and_are_balanced(opu):
    x = np.random.default_rng(0).integers(0, 2, size=(50, N_FEATURES), dtype=np.uint8)
    codes = sketch(opu, x)
    assert codes.shape == (50, N_COMPONENTS // 2)
    # each bit is a fair coin: the mean of 51,200 bits is within 4 standard errors of 1/2
    # (ties between equal camera counts read as 0 and pull it down a little)
    assert 0.45 < codes.mean() < 0.5 + 4 * 0.5 / np.sqrt(codes.size)


@pytest.mark.opu(n_components=N_COMPONENTS, n_features=N_FEATURES)
def test_repeated_input_gives_nearly_the_same_code(opu):
    x = np.random.default_rng(1).integers(0, 2, size=(10, N_FEATURES), dtype=np.uint8)
    first, second = sketch(opu, x), sketch(opu, x)
    # only camera noise differs between the two acquisitions
    assert hamming_similarity(first, second).min() > 0.85


@pytest.mark.opu(n_components=N_COMPONENTS, n_features=N_FEATURES)
def test_nearby_inputs_are_closer_than_unrelated_ones(opu):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, size=(20, N_FEATURES), dtype=np.uint8)
    near = flip(x, 0.05, rng)
    far = rng.integers(0, 2, size=x.shape, dtype=np.uint8)
    codes = sketch(opu, np.concatenate([x, near, far]))
    base, near_codes, far_codes = codes[:20], codes[20:40], codes[40:]
    s_near, s_far = hamming_similarity(base, near_codes), hamming_similarity(base, far_codes)
    assert s_near.mean() > 0.75
    # unrelated binary inputs still share about half their lit mirrors, hence a common part of
    # their fields: their codes agree on somewhat more than half of the bits, far fewer than nearby ones
    assert 0.5 < s_far.mean() < 0.65
    assert (s_near > s_far).all()


@pytest.mark.opu(n_components=64)
def test_mismatched_codes_are_rejected(opu):
    opu.fit1d(n_features=16)
    codes = sketch(opu, np.ones((2, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="b: expected"):
        hamming_similarity(codes, codes[:1])
