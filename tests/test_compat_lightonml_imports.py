"""The lightonml shim imports torch, scikit-learn, dask and scipy only when a class needs them (issue 17, point 3)."""

import subprocess
import sys

HEAVY = ("torch", "sklearn", "dask", "scipy")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.split()


def test_star_import_loads_no_heavy_library():
    assert _loaded_after("from opu_hal.compat.lightonml import *\nassert OPU and BinaryThresholdEncoder") == []


def test_an_emulated_transform_loads_neither_torch_nor_sklearn_nor_dask():
    # scipy comes with the emulator (firmware_sim.model imports the structured medium's scipy.fft)
    code = (
        "import numpy as np\nfrom opu_hal.compat.lightonml import OPU\n"
        "opu = OPU(n_components=10, simulated=True)\nopu.fit1d(n_features=8)\n"
        "opu.transform(np.ones((2, 8), dtype=np.uint8))\n"
    )
    assert set(_loaded_after(code)) <= {"scipy"}


def test_the_maps_load_their_library_when_named():
    assert _loaded_after("from opu_hal.compat.lightonml import OPUMap") == ["sklearn", "scipy"]
    assert "torch" in _loaded_after("from opu_hal.compat.lightonml import TorchOPUMap")
