"""The facade's exclusive-session API (``OPU.session()``), on the embedded and the wire emulator."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from opu_hal import OPU

URLS = ["emu://?seed=4&dmd_shape=24x32&camera_shape=20x40", "sim://?seed=4&dmd_shape=24x32&camera_shape=20x40"]


@pytest.fixture(params=URLS, ids=["emu", "sim"])
def opu(request):
    with OPU(request.param, n_components=50, progress=False) as device:
        device.fit1d(n_features=64)
        yield device


def test_session_context_has_the_transform_context_dark_level_and_gain(opu):
    """The session once left out the dark current that transform adds to the dark level."""
    info = opu.info
    assert info.dark_current_dn_per_us > 0  # otherwise this test could not tell
    ctx = opu.transform(np.zeros((2, 64), np.uint8)).context
    with opu.session() as session:
        session.configure(64, 50, ctx.exposure_us)
        session.acquire(np.zeros((3, 64), np.uint8))
        mine = session.context(calibration_id=None)
    assert mine.exposure_us == ctx.exposure_us
    assert mine.dark_level_dn == pytest.approx(ctx.dark_level_dn)
    assert mine.dark_level_dn == pytest.approx(info.dark_level_dn + info.dark_current_dn_per_us * ctx.exposure_us)
    assert mine.gain_dn_per_intensity == pytest.approx(ctx.gain_dn_per_intensity)


def test_session_frames_match_transform_frames_at_the_same_configuration():
    """One acquisition path: ideal fidelity gives the same numbers through a session and through transform."""
    url = "emu://?seed=2&fidelity=ideal&dmd_shape=24x32&camera_shape=20x40"
    x = (np.random.default_rng(0).random((5, 64)) < 0.5).astype(np.uint8)
    with OPU(url, n_components=40, progress=False) as opu:
        opu.fit1d(n_features=64)
        y = np.asarray(opu.transform(x))
        exposure = opu.transform(x[:1]).context.exposure_us
        with opu.session() as session:
            session.configure(64, 40, exposure)
            z = session.acquire(x)
            assert session.frames == 5 and session.context(None).frame_ids.size == 5
    np.testing.assert_allclose(z, y, rtol=1e-6)


def test_session_configuration_is_undone_before_the_next_transform(opu):
    x = (np.random.default_rng(1).random((4, 64)) < 0.5).astype(np.uint8)
    before = opu.transform(x).context
    with opu.session() as session:
        applied = session.configure(10, 200, 2 * before.exposure_us)
        assert applied.exposure_us == pytest.approx(2 * before.exposure_us)
        assert session.acquire(np.ones((2, 10), np.uint8)).shape == (2, 200)
    after = opu.transform(x).context
    assert (after.exposure_us, after.output_roi, after.input_roi) == (
        before.exposure_us, before.output_roi, before.input_roi
    )


def test_session_holds_the_device_against_other_threads(opu):
    x = np.zeros((1, 64), np.uint8)
    finished: list[float] = []

    def other() -> None:
        opu.transform(x)
        finished.append(time.perf_counter())

    with opu.session() as session:
        session.configure(64, 50, 400.0)
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        assert not finished  # the other thread waits for the session to end
        left = time.perf_counter()
    thread.join(10)
    assert finished and finished[0] >= left


def test_session_refuses_acquiring_before_configuring_and_bad_shapes(opu):
    with opu.session() as session:
        with pytest.raises(RuntimeError, match="configure"):
            session.acquire(np.zeros((1, 64), np.uint8))
        session.configure(64, 50, 400.0)
        with pytest.raises(ValueError, match=r"features: expected shape \(B, 64\)"):
            session.acquire(np.zeros((1, 63), np.uint8))
        assert session.frames == 0


def test_session_clamps_the_exposure_to_the_device_limits(opu):
    limits = opu.info.limits
    with opu.session() as session:
        assert session.clamp_exposure(0.01) == limits.min_exposure_us
        assert session.clamp_exposure(1e12) == limits.max_exposure_us


def test_identity_names_the_device_and_its_seed(opu):
    identity = opu.identity()
    assert identity.serial == opu.info.serial and identity.seed == 4
