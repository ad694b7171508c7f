"""The reference the emulator is measured against: lightonml 1.4.3's simulated OPU.

lightonml is never a dependency of opu-hal; the bench uses it when it is importable
(``pip install --no-deps lightonml==1.4.3 numexpr requests attrs``). Its simulated OPU
draws a complex random matrix (float64 normals cast to float32, combined into complex64)
when it is created, and computes ``|X @ R|^2`` with one complex64 product per batch.

This module imports nothing from opu-hal, so it runs in any interpreter that has numpy
and lightonml (``benchmarks/emulator.py --lightonml-python``).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any


def _provide_pkg_resources() -> None:
    """lightonml imports ``pkg_resources``, which recent setuptools no longer ship.

    When it is missing, a stand-in module offers the three names lightonml uses:
    ``get_distribution(name).version``, ``ResolutionError`` and ``require`` (called only
    for real hardware).
    """
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return
    stand_in = types.ModuleType("pkg_resources")
    stand_in.ResolutionError = metadata.PackageNotFoundError
    stand_in.get_distribution = lambda name: types.SimpleNamespace(version=metadata.version(name))
    stand_in.require = lambda *requirements: None
    sys.modules["pkg_resources"] = stand_in


def lightonml_version() -> str | None:
    """The installed lightonml version, or None."""
    try:
        return metadata.version("lightonml")
    except metadata.PackageNotFoundError:
        return None


def measure_lightonml(n_features: int, n_components: int, batch: int, repeats: int) -> dict[str, float]:
    """Time lightonml's simulated OPU on a random binary batch.

    Returns ``open_s`` (construction and fit1d: the random matrix is drawn then, seconds),
    ``first_s`` (first transform, seconds) and ``rows_per_s`` (best of ``repeats`` further
    transforms, or of the first when ``repeats`` is 0). Raises ImportError without lightonml.
    """
    import numpy as np

    _provide_pkg_resources()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lightonml import OPU

    x = np.random.default_rng(1).integers(0, 2, size=(batch, n_features), dtype=np.uint8)

    def open_fitted() -> Any:
        opu = OPU(n_components=n_components, max_n_features=n_features, simulated=True, disable_pbar=True)
        opu.fit1d(n_features=n_features)
        return opu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opu, times = time_transforms(open_fitted, x, repeats)
        opu.close()
    return times


def time_transforms(open_fitted: Callable[[], Any], x: Any, repeats: int) -> tuple[Any, dict[str, float]]:
    """Time ``open_fitted()`` (an OPU of either library, opened and fitted), a first
    ``transform(x)`` and ``repeats`` more. Returns the OPU, still open, and ``open_s``,
    ``first_s`` (seconds) and ``rows_per_s`` (best repeat, or the first without repeats)."""
    start = time.perf_counter()
    opu = open_fitted()
    open_s = time.perf_counter() - start
    start = time.perf_counter()
    opu.transform(x)
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opu.transform(x)
        times.append(time.perf_counter() - start)
    return opu, {"open_s": open_s, "first_s": first_s, "rows_per_s": len(x) / min(times or [first_s])}
