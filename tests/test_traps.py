"""Traps for people coming from numpy and lightonml (issue 17, point 6).

Packed input is big-endian by default, as ``np.packbits`` and lightonml; the shim's device
has lightonml's ``input_shape``; the calibration summary says which exposure is in effect.
"""

import re

import numpy as np
import pytest

from opu_hal import OPU
from opu_hal.cli import main
from opu_hal.compat.lightonml import OPU as ShimOPU
from opu_hal.encoding import pack_bits, unpack_bits

IDEAL = "emu://?fidelity=ideal&seed=2"


def _bits(shape=(4, 21), seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=shape, dtype=np.uint8)


def test_packed_input_is_big_endian_by_default_as_numpy():
    x = _bits()
    with OPU(IDEAL, n_components=30, progress=False) as opu:
        opu.fit1d(n_features=21, packed=True)
        expected = np.asarray(opu.transform(x))
        np.testing.assert_array_equal(opu.transform(np.packbits(x, axis=-1), packed=True), expected)
        little = np.packbits(x, axis=-1, bitorder="little")
        np.testing.assert_array_equal(opu.transform(little, packed=True, bitorder="little"), expected)
        with pytest.raises(ValueError, match="bitorder: expected 'big' or 'little', got 'middle'"):
            opu.transform(little, packed=True, bitorder="middle")


def test_pack_bits_defaults_to_numpy_order_and_round_trips_both_orders():
    x = _bits()
    np.testing.assert_array_equal(pack_bits(x), np.packbits(x, axis=-1))
    for order in ("big", "little"):
        np.testing.assert_array_equal(pack_bits(x, bitorder=order), np.packbits(x, axis=-1, bitorder=order))
        np.testing.assert_array_equal(unpack_bits(pack_bits(x, bitorder=order), 21, bitorder=order), x)


def test_the_shim_device_has_lightonml_input_shape():
    opu = ShimOPU(n_components=20, device="emu://?fidelity=ideal&dmd_shape=12x10")
    assert opu.device.input_shape == (12, 10)
    assert opu.device.output_shape_max == tuple(opu.device.info.camera_shape)
    raw = _bits(opu.device.input_shape)  # lightonml's example: a whole-DMD input
    assert opu.fit_transform2d(raw).shape == (20,)
    opu.close()


def test_the_calibration_summary_says_which_exposure_is_in_effect(tmp_path, capsys):
    assert main(["calibrate", "emu://?seed=3", "--out", str(tmp_path), "--n-features", "64", "--n-components", "50",
                 "--no-tm"]) == 0
    out = capsys.readouterr().out
    camera = re.search(r"camera: .* photon transfer at ([\d.,]+) to ([\d.,]+) us", out)
    auto = re.search(r"exposure: ([\d.,]+) us .*\(auto-exposure\)", out)
    linear = re.search(r"linear \(\w+\): .* at ([\d.,]+) us", out)
    effect = re.search(r"in effect: transform at ([\d.,]+) us \(auto-exposure\), linear_transform from ([\d.,]+) us "
                       r"\(linear calibration\)", out)
    assert camera and auto and linear and effect, out
    assert effect[1] == auto[1] and effect[2] == linear[1]
