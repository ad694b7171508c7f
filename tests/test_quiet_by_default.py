"""Progress and warnings that fit the convention (issue 17, point 2).

The lightonml shim is silent unless ``verbose_level >= 1`` (as lightonml); a
``SaturationWarning`` has a constant message and carries its numbers as attributes, so
Python's default filter shows it once per place however often it happens.
"""

import warnings

import numpy as np
import pytest

import opu_hal.compat.lightonml as shim
from opu_hal import OPU, SaturationWarning


@pytest.fixture(autouse=True)
def quiet_shim():
    yield
    shim.set_verbose_level(0)


def _long_calls(opu: "shim.OPU") -> None:
    """A transform over three device calls and a linear_transform over two rounds."""
    opu.device.settings = {"max_batch_frames": 8}
    opu.fit1d(n_features=16)
    rng = np.random.default_rng(0)
    opu.transform(rng.integers(0, 2, size=(24, 16), dtype=np.uint8))
    opu.linear_transform(rng.normal(size=(300, 16)))


def test_the_shim_shows_no_progress_bar_at_the_default_verbosity(capfd):
    _long_calls(shim.OPU(n_components=20, device="emu://?fidelity=ideal"))
    err = capfd.readouterr().err
    assert "frame" not in err and "round" not in err, err


def test_the_shim_shows_progress_bars_from_verbose_level_1(capfd):
    shim.set_verbose_level(1)
    _long_calls(shim.OPU(n_components=20, device="emu://?fidelity=ideal"))
    err = capfd.readouterr().err
    assert "frame" in err and "round" in err


def test_disable_pbar_silences_the_bars_at_any_verbosity(capfd):
    shim.set_verbose_level(1)
    _long_calls(shim.OPU(n_components=20, device="emu://?fidelity=ideal", disable_pbar=True))
    assert "frame" not in capfd.readouterr().err


def test_saturation_warning_is_shown_once_in_a_long_loop_and_carries_its_numbers():
    opu = OPU("emu://?seed=1", n_components=30, progress=False)
    opu.fit1d(n_features=16)
    opu.settings = {"exposure_us": 20 * opu.info.default_exposure_us}
    inputs = np.random.default_rng(2).integers(0, 2, size=(1000, 1, 16), dtype=np.uint8)  # a new fraction each step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's default: once per message and place
        for x in inputs:
            y = opu.transform(x)
    saturation = [w.message for w in caught if issubclass(w.category, SaturationWarning)]
    assert len(saturation) == 1, [str(m) for m in saturation[:3]]
    assert saturation[0].fraction > 0.05 and saturation[0].exposure_us == opu.settings.exposure_us
    assert "saturated; lower exposure_us" in str(saturation[0])
    assert y.context.saturated_fraction > 0.05
    opu.close()
