"""pytest plugin: an ``opu`` fixture for testing code that uses an OPU, without hardware.

Installed with opu-hal (entry point ``pytest11``), so any project that depends on opu-hal
gets it::

    import pytest

    @pytest.mark.opu(n_components=500, n_features=100, fidelity="ideal")
    def test_my_features(opu):
        y = opu.transform(x)            # an open OPU, fitted to 100 features

By default every test gets a fresh emulated device (``emu://``) seeded from the test's id,
so a test sees the same transmission matrix and noise on every run and different tests see
independent devices. Sizes and fidelity come from the ``opu`` marker, else from the
command line, else the defaults (1000 components, unfitted, ``physical`` fidelity):

``--opu-url URL``
    Run the same tests against another device: ``socket://host:port`` (a device or a
    ``python -m firmware_sim`` server), ``sim://``, a serial port, or an ``emu://?...`` URL.
    Emulated URLs (``emu://``, ``sim://``) still get the per-test seed and the fidelity
    unless the URL sets them; other devices are used as they are, and a test whose marker
    asks for a fidelity the device does not have is skipped.
``--opu-fidelity {physical,ideal}``, ``--opu-n-components N``, ``--opu-n-features N``
    Defaults for tests without a marker value.
``--opu-seed S``
    Base of the per-test seeds (default 0).

At the end of the session the plugin reports the frames the tests acquired through the
fixture and the device time they took (on an emulator, the time a real OPU would need).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opu_hal.opu import OPU

DEFAULT_N_COMPONENTS = 1000
MARKER_KEYS = ("n_components", "n_features", "fidelity", "seed")


@dataclasses.dataclass
class _Usage:
    """What the tests did with the fixture (frames, device time in s)."""

    tests: int = 0
    frames: int = 0
    device_time_s: float = 0.0
    devices: set[str] = dataclasses.field(default_factory=set)

    def record(self, result: Any) -> None:
        context = getattr(result, "context", None)
        if context is not None:
            self.frames += int(context.frame_ids.size)
            self.device_time_s += float(context.device_time_s)


_USAGE = pytest.StashKey[_Usage]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opu-hal", "opu fixture (opu-hal)")
    group.addoption("--opu-url", default=None, metavar="URL",
                    help="device URL for the opu fixture (default: a fresh seeded emu:// per test)")
    group.addoption("--opu-fidelity", default=None, choices=("physical", "ideal"),
                    help="emulator fidelity for tests whose opu marker does not set one (default physical)")
    group.addoption("--opu-n-components", type=int, default=None, metavar="N",
                    help=f"n_components for tests whose opu marker does not set it (default {DEFAULT_N_COMPONENTS})")
    group.addoption("--opu-n-features", type=int, default=None, metavar="N",
                    help="fit1d(n_features=N) for tests whose opu marker does not set it (default: not fitted)")
    group.addoption("--opu-seed", type=int, default=0, metavar="S",
                    help="base of the per-test emulator seeds (default 0)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "opu(n_components=None, n_features=None, fidelity=None, seed=None): sizes, emulator fidelity "
        "('physical' or 'ideal') and seed of the opu fixture",
    )
    config.stash[_USAGE] = _Usage()


def _settings_for(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Marker values over command-line options over defaults."""
    marker = request.node.get_closest_marker("opu")
    given = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise TypeError(f"opu marker: expected keyword arguments {MARKER_KEYS}, got positional {marker.args}")
    unknown = sorted(set(given) - set(MARKER_KEYS))
    if unknown:
        raise TypeError(f"opu marker: expected keywords among {MARKER_KEYS}, got {unknown}")
    option = request.config.getoption
    base_seed = option("--opu-seed")
    node_seed = (base_seed + zlib.crc32(request.node.nodeid.encode())) % 2**31
    return {
        "n_components": given.get("n_components") or option("--opu-n-components") or DEFAULT_N_COMPONENTS,
        "n_features": given.get("n_features") or option("--opu-n-features"),
        "fidelity": given.get("fidelity") or option("--opu-fidelity"),
        "seed": given["seed"] if given.get("seed") is not None else node_seed,
    }


def _device_for(url: str | None, fidelity: str | None, seed: int) -> tuple[str, int | None]:
    """The URL and seed argument of the fixture's OPU."""
    from opu_hal.url import parse_device_url, scheme_info

    parsed = parse_device_url(url or "emu://")
    if "seed" not in scheme_info(parsed.scheme).documented_keys():  # not an emulated device
        return str(parsed), None
    query = dict(parsed.query)
    if fidelity is not None:
        query.setdefault("fidelity", fidelity)
    device = str(dataclasses.replace(parsed, query=query))
    return device, (None if "seed" in query else seed)


def _counting_opu_class() -> type:
    """An OPU that reports the frames and device time of its results to the session."""
    from opu_hal.opu import OPU

    class FixtureOPU(OPU):
        """:class:`opu_hal.OPU` whose transforms are counted in the session summary."""

        _usage: _Usage

        def transform(self, *args: Any, **kwargs: Any) -> Any:
            result = super().transform(*args, **kwargs)
            self._usage.record(result)
            return result

        def linear_transform(self, *args: Any, **kwargs: Any) -> Any:
            result = super().linear_transform(*args, **kwargs)
            self._usage.record(result)
            return result

    return FixtureOPU


@pytest.fixture
def opu(request: pytest.FixtureRequest) -> Iterator["OPU"]:
    """An open :class:`opu_hal.OPU` (seeded ``emu://`` unless ``--opu-url``), closed after the test."""
    wanted = _settings_for(request)
    device, seed = _device_for(request.config.getoption("--opu-url"), wanted["fidelity"], wanted["seed"])
    usage = request.config.stash[_USAGE]
    instance = _counting_opu_class()(device, n_components=wanted["n_components"], seed=seed, progress=False)
    instance._usage = usage
    with instance:
        if wanted["fidelity"] is not None and instance.info.fidelity != wanted["fidelity"]:
            pytest.skip(f"needs an OPU of fidelity {wanted['fidelity']!r}; {device} is {instance.info.fidelity!r}")
        if wanted["n_features"] is not None:
            instance.fit1d(n_features=wanted["n_features"])
        usage.tests += 1
        usage.devices.add(device.split("?")[0])
        yield instance


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    usage = config.stash.get(_USAGE, None)
    if usage is None or usage.tests == 0:
        return
    terminalreporter.write_sep("-", "opu-hal")
    terminalreporter.write_line(
        f"opu fixture: {usage.tests} test(s) on {', '.join(sorted(usage.devices))}: {usage.frames:,} frames, "
        f"{usage.device_time_s:.4g} s of device time"
    )
