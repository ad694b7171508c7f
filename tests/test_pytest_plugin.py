"""opu_hal.pytest_plugin: the opu fixture, its marker and options, --opu-url and the summary."""

import re
import shutil
import subprocess
import sys
import zlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import opu_hal.opu  # noqa: F401 - imported once here, not again by every in-process pytest run below

pytest_plugins = ["pytester"]

DOWNSTREAM = Path(__file__).resolve().parents[1] / "examples" / "downstream"

SEED_PROBE = """
    def test_a(opu):
        print("SEED", "a", opu.backend.params.seed)

    def test_b(opu):
        print("SEED", "b", opu.backend.params.seed)
"""


def _run(pytester, *args):
    """In-process pytest run without the cache and hypothesis plugins (their start-up is slow)."""
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def _seeds(result) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for line in result.outlines if (m := re.search(r"SEED (\w) (\d+)", line))}


def test_plugin_is_registered_as_a_pytest11_entry_point():
    assert "opu_hal.pytest_plugin" in {ep.value for ep in entry_points(group="pytest11")}


def test_downstream_project_passes_against_the_emulator(pytester):
    shutil.copytree(DOWNSTREAM, pytester.path / "downstream")
    result = _run(pytester, "downstream")
    result.assert_outcomes(passed=4)
    # 50 + 10 + 10 + 60 + 2 frames at the default 500 us frametime
    result.stdout.fnmatch_lines(["*opu fixture: 4 test(s) on emu://: 132 frames, 0.066 s of device time*"])


def test_marker_sets_sizes_and_fidelity(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.opu(n_components=123, n_features=45, fidelity="ideal")
        def test_marked(opu):
            assert opu.n_components == 123 and opu.n_features == 45
            assert opu.info.fidelity == "ideal" and opu.info.bit_depth == 0

        def test_defaults(opu):
            assert opu.n_components == 1000 and opu.n_features is None
            assert opu.info.fidelity == "physical"
        """
    )
    _run(pytester).assert_outcomes(passed=2)


def test_command_line_sets_defaults_and_the_marker_wins(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_unmarked(opu):
            assert (opu.n_components, opu.n_features, opu.info.fidelity) == (77, 12, "ideal")

        @pytest.mark.opu(n_components=5, fidelity="physical")
        def test_marked(opu):
            assert (opu.n_components, opu.n_features, opu.info.fidelity) == (5, 12, "physical")
        """
    )
    result = _run(pytester, "--opu-n-components", "77", "--opu-n-features", "12",
                                "--opu-fidelity", "ideal")
    result.assert_outcomes(passed=2)


def test_each_test_gets_its_own_reproducible_seed(pytester):
    pytester.makepyfile(test_probe=SEED_PROBE)
    first = _seeds(_run(pytester, "-s"))
    again = _seeds(_run(pytester, "-s"))
    shifted = _seeds(_run(pytester, "-s", "--opu-seed", "5"))
    assert first == again
    assert first["a"] != first["b"]
    assert first["a"] == zlib.crc32(b"test_probe.py::test_a") % 2**31
    assert shifted["a"] == (first["a"] + 5) % 2**31


def test_seed_in_the_marker_or_the_url_wins(pytester):
    pytester.makepyfile(
        test_probe="""
        import pytest

        @pytest.mark.opu(seed=11)
        def test_a(opu):
            print("SEED", "a", opu.backend.params.seed)

        def test_b(opu):
            print("SEED", "b", opu.backend.params.seed)
        """
    )
    assert _seeds(_run(pytester, "-s"))["a"] == 11
    assert _seeds(_run(pytester, "-s", "--opu-url", "emu://?seed=3")) == {"a": 3, "b": 3}


def test_summary_counts_frames_and_device_time_of_every_transform(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        import pytest

        @pytest.mark.opu(n_components=50, n_features=20)
        def test_transforms(opu):
            x = np.random.default_rng(0).integers(0, 2, size=(10, 20))
            opu.transform(x)
            opu.transform(x[0])
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*opu fixture: 1 test(s) on emu://: 11 frames, 0.0055 s of device time*"])


def test_tests_without_the_fixture_print_no_summary(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "opu fixture" not in result.stdout.str()


def test_unknown_marker_keyword_is_an_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.opu(n_component=10)
        def test_typo(opu):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*opu marker: expected keywords among*got*'n_component'*"])


@pytest.fixture
def firmware_server():
    """A ``python -m firmware_sim`` TCP server on a free port; yields its URL."""
    process = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--listen", "127.0.0.1:0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("socket://"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_downstream_project_passes_against_a_firmware_sim_server(pytester, firmware_server):
    shutil.copytree(DOWNSTREAM, pytester.path / "downstream")
    result = _run(pytester, "downstream", "--opu-url", firmware_server)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"*opu fixture: 4 test(s) on {firmware_server}: 132 frames*"])


def test_fidelity_a_device_does_not_have_skips_the_test(pytester, firmware_server):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.opu(fidelity="ideal")
        def test_needs_exact_intensities(opu):
            pass
        """
    )
    result = _run(pytester, "-rs", "--opu-url", firmware_server)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs an OPU of fidelity 'ideal'*is 'physical'*"])
