"""opu_hal.compat.lightonml: lightonml 1.4 scripts run with only their import lines changed."""

import sys
import warnings

import numpy as np
import pytest
import torch

import opu_hal.compat.lightonml as shim
from opu_hal.compat.lightonml import (
    OPU,
    BinaryThresholdEncoder,
    ConcatenatedBitPlanEncoder,
    Float32Encoder,
    LightonmlCompatWarning,
    MultiThresholdEncoder,
    OutputRescaling,
    SeparatedBitPlanDecoder,
    SeparatedBitPlanEncoder,
    SequentialBaseTwoEncoder,
)

IDEAL = "emu://?fidelity=ideal"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warnings afresh."""
    monkeypatch.setattr(shim, "_warned", set())


def get_started_flow() -> dict:
    """lightonml's documented get-started flow (its notebook), at emulator-friendly sizes.

    Only the import lines differ from a lightonml script: ``from lightonml import OPU``,
    ``from lightonml.projections.sklearn import OPUMap`` and
    ``from lightonml.projections.torch import OPUMap``.
    """
    from opu_hal.compat.lightonml import OPU

    seen = {}
    numpy_data = np.random.randint(0, 2, size=(300, 1000), dtype=np.uint8)
    torch_data = torch.randint(0, 2, size=(300, 1000), dtype=torch.uint8)

    opu = OPU(n_components=1000, max_n_features=1000, simulated=True)
    try:
        opu.transform(numpy_data)
    except AssertionError as e:
        seen["not fitted"] = str(e)
    opu.fit1d(numpy_data)
    y_np = opu.transform(numpy_data)
    seen["context"] = y_np.context.as_dict()
    seen["numpy"] = np.array(y_np)
    seen["torch"] = opu.fit_transform1d(torch_data)
    data_2d = np.random.randint(0, 2, size=(30, 30, 30), dtype=np.uint8)
    opu.fit2d(data_2d)
    seen["2d"] = opu.transform(data_2d)
    opu.close()

    from opu_hal.compat.lightonml import OPUMap

    opumap_np = OPUMap(n_components=1000, simulated=True, max_n_features=1000)
    seen["sklearn"] = opumap_np.fit_transform(numpy_data)
    opumap_np.close()

    from opu_hal.compat.lightonml import TorchOPUMap as OPUMap

    opumap_torch = OPUMap(n_components=1000, simulated=True, max_n_features=1000)
    seen["torch map"] = opumap_torch(torch_data)
    opumap_torch.close()
    return seen


def test_get_started_flow_runs_unchanged_except_imports():
    with pytest.warns(LightonmlCompatWarning, match="raw camera counts"):
        seen = get_started_flow()
    assert seen["not fitted"] == "Call fit1d or fit2d before transform"
    assert type(seen["numpy"]) is np.ndarray and seen["numpy"].shape == (300, 1000)
    assert seen["numpy"].dtype == np.uint8
    assert {"exposure_us", "frametime_us", "output_roi", "input_roi"} <= set(seen["context"])
    assert seen["context"]["exposure_us"] == 400 and seen["context"]["frametime_us"] == 500
    assert isinstance(seen["torch"], torch.Tensor) and seen["torch"].shape == (300, 1000)
    assert seen["2d"].shape == (30, 1000)
    assert seen["sklearn"].shape == (300, 1000) and seen["sklearn"].mean() > 1
    assert isinstance(seen["torch map"], torch.Tensor) and not seen["torch map"].requires_grad
    assert "lightonml" not in sys.modules  # the shim never needs lightonml itself


def test_behaviour_differences_warn_once():
    opu = OPU(n_components=50, max_n_features=100, simulated=True)
    opu.fit1d(n_features=100)
    x = np.random.default_rng(0).integers(0, 2, size=(3, 100))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opu.transform(x)
        opu.transform(x)
    assert [w.category for w in caught].count(LightonmlCompatWarning) == 1
    # an exact-intensity emulator has nothing to warn about
    exact = OPU(n_components=50, max_n_features=100, simulated=True, device=IDEAL)
    exact.fit1d(n_features=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LightonmlCompatWarning)
        assert exact.transform(x).dtype == np.float32


def test_non_binary_input_is_refused_where_lightonml_accepted_it():
    opu = OPU(n_components=10, simulated=True)
    opu.fit1d(n_features=8)
    with pytest.raises(ValueError, match="X: expected only 0 and 1.*lightonml's simulated OPU accepted"):
        opu.transform(np.full((2, 8), 0.5))


def test_simulated_opu_enforces_max_n_features():
    opu = OPU(n_components=10, max_n_features=64, simulated=True)
    with pytest.raises(ValueError, match="n_features: expected at most max_n_features=64, got 65"):
        opu.fit1d(n_features=65)


def test_a_real_opu_needs_a_device_url(monkeypatch):
    monkeypatch.delenv("OPU_HAL_DEVICE", raising=False)
    with pytest.raises(RuntimeError, match="device: expected simulated=True"):
        OPU(n_components=10)
    monkeypatch.setenv("OPU_HAL_DEVICE", "emu://?seed=9")
    assert OPU(n_components=10).device.backend.params.seed == 9


def test_packed_input_uses_numpy_packbits_order():
    x = np.random.default_rng(1).integers(0, 2, size=(4, 24), dtype=np.uint8)
    opu = OPU(n_components=20, simulated=True, device=IDEAL)
    opu.fit1d(np.packbits(x, axis=-1), packed=True)
    packed = opu.transform(np.packbits(x, axis=-1))
    opu.fit1d(x)
    np.testing.assert_array_equal(packed, opu.transform(x))


def test_encoders_keep_lightonml_layouts():
    X = np.array([[0.0, 10.0], [5.0, 2.0], [10.0, 6.0]])
    auto = BinaryThresholdEncoder().fit(X)
    np.testing.assert_array_equal(auto.threshold_enc, [5.0, 6.0])  # per-feature medians
    np.testing.assert_array_equal(auto.transform(X), [[0, 1], [0, 0], [1, 0]])
    np.testing.assert_array_equal(BinaryThresholdEncoder(4, greater_is_one=False).transform(X), [[1, 0], [0, 1], [0, 0]])
    # 'linspace': thresholds 2.5, 5, 7.5 over the range [0, 10]; threshold-major columns
    multi = MultiThresholdEncoder(n_bins=4).fit(X)
    np.testing.assert_allclose(multi.thresholds, [2.5, 5.0, 7.5])
    np.testing.assert_array_equal(multi.transform(X)[1], [1, 0, 0, 0, 0, 0])  # 5 > 2.5 only; 2 > nothing
    np.testing.assert_array_equal(multi.transform(X)[0], [0, 1, 0, 1, 0, 1])
    levels = SequentialBaseTwoEncoder(n_gray_levels=8).fit(X).transform(X)
    assert levels.shape == (3, 14)
    np.testing.assert_array_equal(levels.reshape(3, 2, 7).sum(-1), np.rint(7 * X / 10))


def test_bitplane_encoder_and_decoder_invert_each_other_up_to_quantisation():
    X = np.random.default_rng(2).normal(size=(5, 7))
    encoder = SeparatedBitPlanEncoder(precision=6)
    planes = encoder.transform(X)
    assert planes.shape == (2 * 5 * 6, 7) and set(np.unique(planes)) <= {0, 1}
    decoded = SeparatedBitPlanDecoder(**encoder.get_params()).transform(planes)
    # a quantisation step of each part is magnitude / 63: the error is at most half of it
    step = max(X.max(), -X.min()) / 63
    assert np.max(np.abs(decoded - X)) <= step / 2 + 1e-6


def test_linear_transform_applies_lightonml_rescaling():
    x = np.random.default_rng(3).normal(size=(12, 100))
    scales = {}
    with pytest.warns(LightonmlCompatWarning, match="encodes bit planes itself"):
        for rescale in ("none", "variance", "norm"):
            opu = OPU(n_components=300, simulated=True, rescale=rescale)
            opu.fit1d(n_features=100)
            z = opu.linear_transform(x, encoder_cls=SeparatedBitPlanEncoder, decoder_cls=SeparatedBitPlanDecoder)
            scales[rescale] = float(np.sum(np.asarray(z, dtype=float) ** 2) / np.sum(x**2))
    assert opu.rescale is OutputRescaling.norm
    # E|z|^2 = n_components |x|^2 unscaled (docs/api.md section 7); variance divides by n_features, norm by n_components.
    # 3600 outputs: sampling error of the ratio ~2.4 %, plus ~1 % of power from the ~8 % per-vector noise
    assert 0.9 < scales["none"] / 300 < 1.12
    assert scales["variance"] == pytest.approx(scales["none"] / 100, rel=0.15)
    assert scales["norm"] == pytest.approx(scales["none"] / 300, rel=0.15)


@pytest.mark.parametrize("name", ["ConcatenatedBitPlanEncoder", "Float32Encoder"])
def test_encoders_without_an_equivalent_say_what_to_use(name):
    cls = {"ConcatenatedBitPlanEncoder": ConcatenatedBitPlanEncoder, "Float32Encoder": Float32Encoder}[name]
    with pytest.raises(NotImplementedError, match=f"{name} is not provided.*linear_transform"):
        cls()


@pytest.mark.parametrize("verbose_level", [0, 3])
def test_long_transform_shows_a_progress_bar_whatever_the_verbosity(verbose_level, capfd, monkeypatch):
    shim.set_verbose_level(verbose_level)
    try:
        opu = OPU(n_components=50, device=IDEAL)  # lightonml's default: progress bar enabled
        opu.fit1d(n_features=30)
        monkeypatch.setattr(opu.device.backend, "estimate_seconds", lambda batch: 0.5 * batch)  # a slow device
        capfd.readouterr()
        opu.transform(np.ones((12, 30), dtype=np.uint8))
        opu.close()
    finally:
        shim.set_verbose_level(0)
    err = capfd.readouterr().err
    assert "/12" in err and "frame" in err  # tqdm's bar, counting the 12 frames


def test_the_full_size_example_runs_on_the_whole_dmd():
    # examples/lightonml_full_size.py, lightonml's benchmark configuration, at a few rows and a
    # small camera read-out: it fits the whole 1,039,680-mirror DMD and transforms packed rows.
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "lightonml_full_size.py"))
    figures = example["main"](["--rows", "3", "--n-components", "2040", "--fidelity", "ideal"])
    assert figures["rows"] == 3 and figures["rows_per_s"] > 0 and 0 < figures["peak_rss_mb"] < 2048
