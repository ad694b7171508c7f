"""The ALP driver against a simulated ALP library: data, timing, triggers, and every return code checked."""

from __future__ import annotations

import numpy as np
import pytest
from alp_sim import SimulatedAlpLibrary

from opu_hal.devices import TriggerType
from opu_hal.devices import alp
from opu_hal.devices.alp import AlpDMD, AlpError


@pytest.fixture
def lib() -> SimulatedAlpLibrary:
    return SimulatedAlpLibrary(shape=(16, 32), memory=10)


def test_sequences_reach_the_device_bit_exact_with_their_timing(lib) -> None:
    frames = np.random.default_rng(1).integers(0, 2, (4, 16, 32)).astype(bool)
    with AlpDMD(lib, settings={"picture_time_us": 250}) as dmd:
        dmd.upload(frames)
        dmd.run()
        seq = lib.sequences[lib.running]
        assert np.array_equal(np.unpackbits(seq["data"], axis=2).astype(bool), frames)
        assert seq["timing"] == 250 and seq["control"][alp.ALP_DATA_FORMAT] == alp.ALP_DATA_BINARY_TOPDOWN
        dmd.stop()
        dmd.upload(frames[:2])  # replaces (and frees) the previous sequence
        assert len(lib.sequences) == 1
    assert not lib.allocated and lib.calls[-2:] == ["AlpDevHalt", "AlpDevFree"]


def test_hardware_trigger_makes_the_dmd_a_slave(lib) -> None:
    with AlpDMD(lib, settings={"trigger_type": TriggerType.FALLING_EDGE}):
        assert lib.proj_control[alp.ALP_PROJ_MODE] == alp.ALP_SLAVE
        assert lib.dev_control[alp.ALP_TRIGGER_EDGE] == alp.ALP_EDGE_FALLING


@pytest.mark.parametrize(
    "function, code, name",
    [("AlpSeqAlloc", 1007, "ALP_MEMORY_FULL"), ("AlpSeqPut", 1011, "ALP_ERROR_COMM"), ("AlpSeqTiming", 1005, "ALP_PARM_INVALID")],
)
def test_upload_errors_raise_naming_function_and_code(lib, function, code, name) -> None:
    with AlpDMD(lib) as dmd:
        lib.fail(function, code)
        with pytest.raises(AlpError, match=rf"{function} returned {code} \({name}\)") as info:
            dmd.upload(np.zeros((2, 16, 32), dtype=bool))
        assert info.value.code == code


def test_start_halt_and_open_errors_are_raised(lib) -> None:
    with AlpDMD(lib) as dmd:
        dmd.upload(np.zeros((2, 16, 32), dtype=bool))
        lib.fail("AlpProjStart", 1004)
        with pytest.raises(AlpError, match="AlpProjStart returned 1004 \\(ALP_NOT_READY\\)"):
            dmd.run()
        assert not dmd.running
        dmd.run()
        lib.fail("AlpProjHalt", 1012)
        with pytest.raises(AlpError, match="ALP_DEVICE_REMOVED"):
            dmd.stop()
    lib.fail("AlpDevAlloc", 1003)
    with pytest.raises(AlpError, match="AlpDevAlloc returned 1003 \\(ALP_NOT_AVAILABLE\\)"):
        AlpDMD(lib).open()


def test_a_library_missing_functions_is_refused() -> None:
    with pytest.raises(TypeError, match="lib: expected an ALP library"):
        AlpDMD(object())
