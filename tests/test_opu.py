"""The OPU facade on emu://: input checks, transform semantics, metadata, torch, threads."""

from __future__ import annotations

import logging
import re
import threading
import warnings

import numpy as np
import pytest

from opu_hal import OPU, DeviceClosedError, NotFittedError, OPUError, OPUResult, SaturationWarning
from opu_hal.encoding import BinaryThresholdEncoder, pack_bits
from opu_hal.opu import PROGRESS_AFTER_S

N_FEATURES = 120
N_COMPONENTS = 200


def binary(shape: tuple[int, ...], density: float = 0.5, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < density).astype(np.uint8)


def ideal_expected(opu: OPU, x: np.ndarray) -> np.ndarray:
    """|R x|^2 from the emulator's ground-truth matrix, for (..., n_features) inputs."""
    R = opu.backend.model.transmission_matrix().astype(np.complex128)
    flat = x.reshape(-1, R.shape[1]).astype(np.float64)
    return (np.abs(flat @ R.T) ** 2).reshape(*x.shape[:-1], R.shape[0])


def assert_ideal(y: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(y, expected, rtol=2e-5, atol=2e-5 * float(np.max(expected)))


@pytest.fixture
def ideal():
    with OPU("emu://?fidelity=ideal", n_components=N_COMPONENTS, seed=3, progress=False) as opu:
        opu.fit1d(n_features=N_FEATURES)
        yield opu


@pytest.fixture
def physical():
    with OPU("emu://", n_components=N_COMPONENTS, seed=3, progress=False) as opu:
        opu.fit1d(n_features=N_FEATURES)
        yield opu


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, received",
    [
        (np.full(N_FEATURES, 0.5), "float64"),
        (np.ones(N_FEATURES, dtype=np.float32), "float32"),
        (np.full(N_FEATURES, 2), "2"),
        (np.full(N_FEATURES, -1), "-1"),
    ],
    ids=["float-0.5", "float-ones", "int-2", "int-minus-1"],
)
def test_non_binary_input_without_encoder_is_refused(ideal, x, received):
    with pytest.raises(ValueError) as info:
        ideal.transform(x)
    message = str(info.value)
    assert message.startswith("X:") and "0 and 1" in message and received in message
    assert "encoder" in message  # tells the user how to fix it


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(ideal, bad):
    x = np.zeros(N_FEATURES)
    x[5] = bad
    with pytest.raises(ValueError, match=r"^X: expected finite values, got 1 NaN or inf"):
        ideal.transform(x)


def test_wrong_feature_count_names_expected_and_received(ideal):
    with pytest.raises(ValueError, match=rf"^X: expected shape \(\.\.\., {N_FEATURES}\).*got \(3, {N_FEATURES - 1}\)"):
        ideal.transform(np.zeros((3, N_FEATURES - 1), dtype=np.uint8))


def test_wrong_rank_after_fit2d():
    with OPU("emu://?fidelity=ideal", n_components=50, seed=0, progress=False) as opu:
        opu.fit2d(n_features=(8, 9))
        with pytest.raises(ValueError, match=r"^X: expected shape \(\.\.\., 8, 9\).*got \(72,\)"):
            opu.transform(np.zeros(72, dtype=np.uint8))


def test_empty_batch_is_refused(ideal):
    with pytest.raises(ValueError, match=rf"^X: expected at least one input.*\(0, {N_FEATURES}\)"):
        ideal.transform(np.zeros((0, N_FEATURES), dtype=np.uint8))


def test_transform_before_fit():
    with OPU("emu://?fidelity=ideal", n_components=50, progress=False) as opu:
        with pytest.raises(NotFittedError, match="fit1d or fit2d"):
            opu.transform(np.zeros(10, dtype=np.uint8))


def test_transform_after_close(ideal):
    ideal.close()
    with pytest.raises(DeviceClosedError, match="closed"):
        ideal.transform(np.zeros(N_FEATURES, dtype=np.uint8))
    assert isinstance(DeviceClosedError("x"), OPUError)


def test_reopen_after_close_keeps_the_fit(ideal):
    x = binary((2, N_FEATURES))
    before = np.array(ideal.transform(x))
    ideal.close()
    ideal.open()
    assert_ideal(ideal.transform(x), before)


@pytest.mark.parametrize("n", [0, -5])
def test_n_components_must_be_positive(n):
    with pytest.raises(ValueError, match=rf"^n_components: expected an integer from 1 .*got {n}"):
        OPU(n_components=n)


@pytest.mark.parametrize("n", [3.0, "5", True, np.float64(4.0)])
def test_sizes_must_be_integers(ideal, n):
    with pytest.raises(TypeError, match=rf"^n_components: expected an integer, got {type(n).__name__}"):
        OPU(n_components=n)
    with pytest.raises(TypeError, match=rf"^n_features: expected an integer, got {type(n).__name__}"):
        ideal.fit1d(n_features=n)
    with pytest.raises(TypeError, match="^n_components: expected an integer"):
        ideal.n_components = n
    assert ideal.n_components == N_COMPONENTS


def test_fit2d_needs_a_pair_of_integers(ideal):
    with pytest.raises(TypeError, match=r"^n_features: expected a \(rows, columns\) pair.*got 10"):
        ideal.fit2d(n_features=10)
    with pytest.raises(TypeError, match="^n_features: expected an integer, got float"):
        ideal.fit2d(n_features=(4, 2.5))


def test_fit_needs_exactly_one_of_x_and_n_features(ideal):
    with pytest.raises(ValueError, match="exactly one of X or n_features, got neither"):
        ideal.fit1d()
    with pytest.raises(ValueError, match="exactly one of X or n_features, got both"):
        ideal.fit1d(np.zeros((2, 5)), n_features=5)


def test_n_components_above_the_camera_is_refused():
    opu = OPU("emu://?camera_shape=10x10", n_components=101, progress=False)
    with pytest.raises(ValueError, match=r"^n_components: expected at most 100 \(camera pixels.*got 101"):
        opu.open()
    assert not opu.backend.is_open  # a failed open leaves nothing half-open
    with OPU("emu://?camera_shape=10x10&fidelity=ideal", n_components=100, progress=False) as opu:
        opu.fit1d(n_features=20)
        with pytest.raises(ValueError, match=r"^n_components: expected at most 100 .*got 101"):
            opu.n_components = 101
        assert opu.n_components == 100
        assert opu.transform(np.ones(20, dtype=np.uint8)).shape == (100,)


def test_packed_input_of_wrong_dtype_or_length(ideal):
    n_bytes = -(-N_FEATURES // 8)
    with pytest.raises(TypeError, match="^X: expected packed data of dtype uint8, got dtype int64"):
        ideal.transform(np.zeros(n_bytes, dtype=np.int64), packed=True)
    with pytest.raises(ValueError, match=rf"^X: expected a last axis of length .* = {n_bytes} .*got shape \(2, {n_bytes - 1}\)"):
        ideal.transform(np.zeros((2, n_bytes - 1), dtype=np.uint8), packed=True)
    # 13 features in 2 bytes: a set padding bit means the rows were packed for another n_features.
    with OPU("emu://?fidelity=ideal", n_components=10, progress=False) as opu:
        opu.fit1d(n_features=13)
        with pytest.raises(ValueError, match="^X: expected zero padding bits beyond n_features=13"):
            opu.transform(np.full((2, 2), 255, dtype=np.uint8), packed=True)


def test_unknown_url_scheme():
    with pytest.raises(ValueError, match=r"^device: expected a URL with scheme one of .*'emu'.*got 'ftp://x'"):
        OPU("ftp://x", n_components=5)
    with pytest.raises(TypeError, match="^device: expected a URL string.*got int"):
        OPU(5, n_components=5)


def test_unknown_url_query_parameter():
    with pytest.raises(ValueError, match=r"^device: unknown query key\(s\) \['expsure_us'\] for emu://; documented keys: .*'exposure_us'"):
        OPU("emu://?expsure_us=3", n_components=5)


@pytest.mark.parametrize("query, name", [("fidelity=perfect", "fidelity"), ("camera_shape=10y10", "10y10"), ("seed=-1", "seed")])
def test_bad_url_values_name_the_parameter(query, name):
    with pytest.raises(ValueError, match=rf"^device: (.|\n)*{name}"):
        OPU(f"emu://?{query}", n_components=5)


def test_url_seed_conflicting_with_seed_argument():
    with pytest.raises(ValueError, match="seed: the URL says seed=3 but the seed argument is 4"):
        OPU("emu://?seed=3", n_components=5, seed=4)
    opu = OPU("emu://?seed=3&fidelity=ideal", n_components=5, seed=3)  # agreeing is fine
    assert opu.backend.params.seed == 3


@pytest.mark.parametrize(
    "settings, field",
    [({"exposure_us": -1.0}, "exposure_us"), ({"exposur_us": 100.0}, "exposur_us"), ({"max_batch_frames": 0}, "max_batch_frames")],
)
def test_bad_settings_values(settings, field):
    with pytest.raises(ValueError, match=field):
        OPU(n_components=5, settings=settings)
    with pytest.raises(TypeError, match="^settings: expected OPUSettings, a dict or None, got int"):
        OPU(n_components=5, settings=5)


def test_bad_settings_assignment_keeps_the_old_settings(ideal):
    with pytest.raises(ValueError, match="exposure_us"):
        ideal.settings = {"exposure_us": -3}
    assert ideal.settings.exposure_us is None
    # a frametime shorter than the exposure is refused by the device, and nothing changes
    with pytest.raises(ValueError, match=r"^frametime_us: expected at least"):
        ideal.settings = {"exposure_us": 400.0, "frametime_us": 100.0}
    assert ideal.settings.frametime_us is None
    assert ideal.transform(np.ones(N_FEATURES, dtype=np.uint8)).context.frametime_us >= 400.0


@pytest.mark.parametrize("output", ["counts", "RAW", None])
def test_output_must_be_raw_or_intensity(ideal, output):
    with pytest.raises(ValueError, match=rf"^output: expected 'raw' or 'intensity', got {re.escape(repr(output))}"):
        ideal.transform(np.ones(N_FEATURES, dtype=np.uint8), output=output)


def test_failed_transform_consumes_no_frames(ideal):
    first = ideal.transform(np.ones(N_FEATURES, dtype=np.uint8)).context.frame_ids[0]
    with pytest.raises(ValueError):
        ideal.transform(np.concatenate([np.ones((5, N_FEATURES)), np.full((1, N_FEATURES), 2)]).astype(int))
    assert ideal.transform(np.ones(N_FEATURES, dtype=np.uint8)).context.frame_ids[0] == first + 1


# ---------------------------------------------------------------------------- re-fit


def test_changing_n_components_after_fit_refits(ideal):
    x = binary((4, N_FEATURES), seed=1)
    before = np.array(ideal.transform(x))
    ideal.n_components = 80
    smaller = ideal.transform(x)
    assert smaller.shape == (4, 80)
    assert_ideal(smaller, before[:, :80])
    ideal.n_components = 300
    larger = ideal.transform(x)
    assert larger.shape == (4, 300)
    assert_ideal(larger[:, :N_COMPONENTS], before)
    assert_ideal(larger, ideal_expected(ideal, x))


def test_refit_with_other_n_features(ideal):
    ideal.fit1d(n_features=50)
    assert ideal.n_features == 50
    x = binary((3, 50))
    assert_ideal(ideal.transform(x), ideal_expected(ideal, x))


# ---------------------------------------------------------------------------- semantics


def test_ideal_transform_is_exact_intensity(ideal):
    x = binary((10, N_FEATURES), seed=2)
    y = ideal.transform(x)
    assert isinstance(y, OPUResult) and y.dtype == np.float32 and y.shape == (10, N_COMPONENTS)
    assert_ideal(y, ideal_expected(ideal, x))


def test_one_dimensional_input_gives_one_row(ideal):
    x = binary((N_FEATURES,), seed=4)
    y = ideal.transform(x)
    assert y.shape == (N_COMPONENTS,)
    assert_ideal(y, ideal_expected(ideal, x))


def test_batch_dimensions_are_kept(ideal):
    x = binary((2, 3, N_FEATURES), seed=5)
    y = ideal.transform(x)
    assert y.shape == (2, 3, N_COMPONENTS)
    assert_ideal(y[1, 2], ideal.transform(x[1, 2]))
    assert_ideal(y, ideal_expected(ideal, x))


def test_bool_and_list_inputs_match_uint8(ideal):
    x = binary((3, N_FEATURES), seed=6)
    expected = np.array(ideal.transform(x))
    assert_ideal(ideal.transform(x.astype(bool)), expected)
    assert_ideal(ideal.transform(x.astype(np.int64).tolist()), expected)


def test_fit2d_with_image_inputs():
    with OPU("emu://?fidelity=ideal", n_components=60, seed=1, progress=False) as opu:
        opu.fit2d(n_features=(8, 9))
        assert opu.n_features == (8, 9) and opu.layout.grid_shape == (8, 9)
        x = binary((4, 8, 9), seed=7)
        y = opu.transform(x)
        assert y.shape == (4, 60)
        # features enter the matrix in row-major order of the image
        assert_ideal(y, ideal_expected(opu, x.reshape(4, 72)))
        assert opu.transform(x[0]).shape == (60,)


def test_fit_from_data():
    with OPU("emu://?fidelity=ideal", n_components=40, seed=1, progress=False) as opu:
        opu.fit1d(np.zeros((7, 33)))
        assert opu.n_features == 33 and opu.layout.n_features == 33
        opu.fit2d(np.zeros((7, 5, 6)))
        assert opu.n_features == (5, 6) and opu.layout.n_features == 30


def test_packed_input_equals_unpacked(ideal):
    x = binary((5, N_FEATURES), seed=8)
    packed = pack_bits(x)
    assert packed.shape == (5, -(-N_FEATURES // 8))
    unpacked = ideal.transform(x)
    from_packed = ideal.transform(packed, packed=True)
    assert from_packed.shape == (5, N_COMPONENTS)
    np.testing.assert_array_equal(from_packed, unpacked)
    ideal.fit1d(n_features=N_FEATURES, packed=True)
    assert_ideal(ideal.transform(packed[0], packed=True), ideal_expected(ideal, x[0]))


def test_encoder_and_decoder_are_applied(ideal):
    rng = np.random.default_rng(9)
    data = rng.normal(size=(6, N_FEATURES))
    encoder = BinaryThresholdEncoder().fit(data)
    bits = encoder.transform(data)
    expected = ideal_expected(ideal, bits)
    assert_ideal(ideal.transform(data, encoder=encoder), expected)

    class Halve:
        def transform(self, y):
            return np.asarray(y) / 2

    y = ideal.transform(data, encoder=encoder, decoder=Halve())
    assert_ideal(y, expected / 2)
    assert y.context is not None and len(y.context.frame_ids) == 6


def test_encoder_without_transform_is_refused(ideal):
    with pytest.raises(TypeError, match="^encoder: expected an object with a transform method, got int"):
        ideal.transform(np.zeros(N_FEATURES), encoder=3)


def test_raw_output_is_8_bit_counts(physical):
    y = physical.transform(binary((4, N_FEATURES), density=0.3))
    assert y.dtype == np.uint8 and physical.info.bit_depth == 8
    assert y.max() > y.context.dark_level_dn  # light reached the camera


@pytest.mark.parametrize("bits", [10, 12])
def test_raw_output_above_8_bits_is_uint16(bits):
    with OPU(f"emu://?bit_depth={bits}", n_components=100, seed=0, progress=False) as opu:
        assert opu.info.bit_depth == bits
        opu.fit1d(n_features=64)
        y = opu.transform(binary((20, 64), density=0.3))
        assert y.dtype == np.uint16
        assert y.max() < 2**bits and y.max() > 255  # uses the range beyond 8 bits


def test_intensity_output_estimates_the_ideal_intensity(physical):
    x = binary((30, N_FEATURES), density=0.3, seed=10)
    y = physical.transform(x, output="intensity")
    assert y.dtype == np.float32 and y.shape == (30, N_COMPONENTS)
    truth = ideal_expected(physical, x)
    # ~700 photo-electrons per output: ~4 % shot noise per output, ~0.05 % on the mean of
    # 6000 outputs; 1 % leaves room for the 1-DN quantisation and laser jitter
    assert abs(float(y.mean()) / float(truth.mean()) - 1) < 0.01
    assert np.corrcoef(y.ravel(), truth.ravel())[0, 1] > 0.99


def test_intensity_in_ideal_fidelity_is_the_raw_intensity(ideal):
    x = binary((3, N_FEATURES), seed=11)
    y = ideal.transform(x, output="intensity")
    assert y.dtype == np.float32
    assert_ideal(y, ideal.transform(x, output="raw"))


# ---------------------------------------------------------------------------- metadata


def test_context_metadata(physical):
    physical.transform(binary((3, N_FEATURES)))  # frame ids continue across calls
    y = physical.transform(binary((25, N_FEATURES), density=0.3))
    ctx = y.context
    assert ctx.exposure_us == physical.info.default_exposure_us
    assert ctx.frametime_us >= ctx.exposure_us
    np.testing.assert_array_equal(ctx.frame_ids, np.arange(3, 28))
    np.testing.assert_allclose(np.diff(ctx.timestamps_us), ctx.frametime_us)
    assert ctx.device_time_s == pytest.approx(25 * ctx.frametime_us * 1e-6)
    layout = physical.layout
    assert ctx.input_roi == (*layout.offset, *layout.roi_shape)
    assert ctx.macro_pixel == layout.factor
    y0, x0, rows, cols = ctx.input_roi
    assert y0 >= 0 and x0 >= 0 and y0 + rows <= layout.dmd_shape[0] and x0 + cols <= layout.dmd_shape[1]
    oy, ox, orows, ocols = ctx.output_roi
    cam = physical.info.camera_shape
    assert orows * ocols >= N_COMPONENTS and oy + orows <= cam[0] and ox + ocols <= cam[1]
    assert 0.0 <= ctx.saturated_fraction <= 1.0
    assert ctx.fidelity == "physical"
    assert ctx.gain_dn_per_intensity > 0


def test_settings_change_reconfigures(physical):
    physical.settings = {"exposure_us": 200.0, "frametime_us": 1000.0}
    ctx = physical.transform(binary((4, N_FEATURES))).context
    assert (ctx.exposure_us, ctx.frametime_us) == (200.0, 1000.0)
    assert ctx.device_time_s == pytest.approx(4 * 1000.0e-6)


def test_saturation_warning_when_exposure_is_far_too_long(physical):
    x = binary((10, N_FEATURES), density=0.3, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        y = physical.transform(x)  # default settings: no warning
    assert y.context.saturated_fraction <= physical.settings.saturation_warning_fraction
    physical.settings = {"exposure_us": 20 * physical.info.default_exposure_us}
    with pytest.warns(SaturationWarning, match="saturated; lower exposure_us"):
        y = physical.transform(x)
    assert y.context.saturated_fraction > 0.05
    assert np.count_nonzero(y == 255) / y.size == pytest.approx(y.context.saturated_fraction)


# ---------------------------------------------------------------------------- batching


def test_large_batches_are_split_with_the_same_result_ideal():
    x = binary((23, N_FEATURES), seed=13)
    with OPU("emu://?fidelity=ideal", n_components=N_COMPONENTS, seed=3, progress=False,
             settings={"max_batch_frames": 5}) as opu:
        opu.fit1d(n_features=N_FEATURES)
        y = opu.transform(x)
        assert_ideal(y, ideal_expected(opu, x))
        np.testing.assert_array_equal(y.context.frame_ids, np.arange(23))


def test_large_batches_are_split_with_the_same_result_physical():
    x = binary((23, N_FEATURES), density=0.3, seed=14)
    results = []
    for chunk in (5, 1000):
        with OPU("emu://", n_components=N_COMPONENTS, seed=3, progress=False,
                 settings={"max_batch_frames": chunk}) as opu:
            opu.fit1d(n_features=N_FEATURES)
            results.append(opu.transform(x))
    np.testing.assert_array_equal(results[0], results[1])  # noise is keyed by frame id
    np.testing.assert_array_equal(results[0].context.frame_ids, results[1].context.frame_ids)
    assert results[0].context.device_time_s == pytest.approx(results[1].context.device_time_s)


def test_progress_bar_can_be_disabled(capfd):
    with OPU("emu://?fidelity=ideal", n_components=50, progress=False, settings={"max_batch_frames": 4}) as opu:
        opu.fit1d(n_features=30)
        opu.transform(binary((20, 30)))
    assert capfd.readouterr().err == ""


def test_fast_multi_chunk_transform_shows_no_bar(capfd):
    with OPU("emu://?fidelity=ideal", n_components=50, progress=True, settings={"max_batch_frames": 4}) as opu:
        opu.fit1d(n_features=30)
        opu.transform(binary((20, 30)))  # five device calls of microseconds each
    assert capfd.readouterr().err == ""


def test_long_transform_logs_its_estimate_and_shows_a_moving_bar(capfd, caplog, monkeypatch):
    x = binary((20, 30), seed=4)
    with OPU("emu://?fidelity=ideal", n_components=50, seed=1, progress=False) as quiet:
        quiet.fit1d(n_features=30)
        expected = quiet.transform(x)
    with OPU("emu://?fidelity=ideal", n_components=50, seed=1, progress=True) as opu:
        opu.fit1d(n_features=30)
        monkeypatch.setattr(opu.backend, "estimate_seconds", lambda batch: 0.5 * batch)  # a slow device
        calls = []
        acquire = opu.backend.acquire
        monkeypatch.setattr(opu.backend, "acquire", lambda rows: calls.append(len(rows)) or acquire(rows))
        with caplog.at_level(logging.INFO, logger="opu_hal.opu"):
            result = opu.transform(x)
    err = capfd.readouterr().err
    assert "/20" in err and "frame" in err  # a tqdm bar counting the 20 frames
    assert any(r.levelno == logging.INFO and "about 10.0 s estimated" in r.getMessage() for r in caplog.records)
    assert calls == [3] * 6 + [2]  # calls of at most PROGRESS_STEP_S = 2 s (1.5 s), so that the bar moves
    np.testing.assert_array_equal(result, expected)


def test_dense_medium_that_would_take_minutes_per_row_says_so(caplog):
    # lightonml's benchmark size: a 1.7 TB dense matrix regenerated at every call
    with caplog.at_level(logging.WARNING, logger="firmware_sim.model"):
        with OPU("emu://?medium=dense", n_components=200_000, progress=False) as opu:
            opu.fit1d(n_features=1_039_680)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "medium=structured" in warned[0] and "min per device call" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="firmware_sim.model"):
        with OPU("emu://", n_components=200_000, progress=False) as opu:  # auto: the structured medium
            opu.fit1d(n_features=1_039_680)
            assert opu.backend.model.medium.kind == "structured"
            assert opu.backend.estimate_seconds(1000) > PROGRESS_AFTER_S  # lightonml's benchmark gets a bar
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------------------- torch


def test_torch_in_torch_out(ideal):
    torch = pytest.importorskip("torch")
    x = binary((4, N_FEATURES), seed=15)
    expected = ideal_expected(ideal, x)
    for tensor in (torch.from_numpy(x), torch.from_numpy(x).bool(), torch.from_numpy(x).long()):
        y = ideal.transform(tensor)
        assert isinstance(y, torch.Tensor) and y.device == tensor.device and y.dtype == torch.float32
        assert tuple(y.shape) == (4, N_COMPONENTS)
        assert_ideal(y.numpy(), expected)
        assert len(y.context.frame_ids) == 4
    y = ideal.transform(torch.from_numpy(x[0]), output="intensity")
    assert tuple(y.shape) == (N_COMPONENTS,)
    assert_ideal(y.numpy(), expected[0])


def test_torch_raw_counts_match_numpy():
    torch = pytest.importorskip("torch")
    x = binary((5, 64), density=0.3, seed=16)
    out = []
    for make in (lambda a: a, torch.from_numpy):
        with OPU("emu://", n_components=100, seed=2, progress=False) as opu:
            opu.fit1d(n_features=64)
            out.append(opu.transform(make(x)))
    assert out[1].dtype == torch.uint8
    np.testing.assert_array_equal(out[1].numpy(), out[0])


def test_torch_non_binary_is_refused(ideal):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="^X: expected binary data"):
        ideal.transform(torch.full((N_FEATURES,), 0.5))


# ---------------------------------------------------------------------------- threads


def test_concurrent_transforms_are_serialised_and_correct(ideal):
    n_threads, calls, batch = 4, 5, 7
    inputs = {t: [binary((batch, N_FEATURES), seed=100 * t + c) for c in range(calls)] for t in range(n_threads)}
    results: dict[int, list] = {t: [] for t in range(n_threads)}
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for x in inputs[t]:
                results[t].append(ideal.transform(x))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    ids = []
    for t in range(n_threads):
        assert len(results[t]) == calls
        for x, y in zip(inputs[t], results[t]):
            assert_ideal(y, ideal_expected(ideal, x))
            ids.append(y.context.frame_ids)
            np.testing.assert_array_equal(np.diff(y.context.frame_ids), 1)  # each call is one block
    ids = np.sort(np.concatenate(ids))
    np.testing.assert_array_equal(ids, np.arange(ids[0], ids[0] + n_threads * calls * batch))
