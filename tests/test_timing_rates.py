"""Frame rates against output count: the timing model, the facade and docs/physics.md section 3.3 agree.

Reference: frametime = max(exposure, 5 us x ceil(outputs / 2040) rows) + 100 us (whole
sensor rows of 2,040 pixels, readout overlapped with the next exposure), computed here
independently of ``firmware_sim/timing.py``.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.timing import min_frametime_us, roi_rows
from opu_hal import OPU

ROOT = Path(__file__).resolve().parents[1]
EXPOSURE_US = 400.0


def formula_frametime_us(outputs: int) -> float:
    rows = math.ceil(outputs / 2040)
    return max(EXPOSURE_US, 5.0 * rows) + 100.0


@pytest.mark.parametrize("outputs, rate_hz", [(2040, 2000.0), (100_000, 2000.0), (163_200, 2000.0),
                                              (163_201, 1980.2), (1_000_000, 391.4), (2_000_000, 199.8),
                                              (2_219_520, 180.5)])
def test_the_timing_model_gives_the_formulas_rates(outputs, rate_hz):
    params = EmulatorParams()
    frametime = min_frametime_us(params, EXPOSURE_US, roi_rows(params, outputs))
    assert frametime == formula_frametime_us(outputs)
    assert 1e6 / frametime == pytest.approx(rate_hz, abs=0.05)


def test_the_physics_doc_table_is_the_models():
    text = (ROOT / "docs" / "physics.md").read_text()
    section = text[text.index("### 3.3 Frame timing"):text.index("## 4.")]
    rows = re.findall(r"^\| ([\d,]+)[^|]*\| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", section, re.M)
    assert len(rows) == 7
    params = EmulatorParams()
    for outputs, r, readout, frametime, rate in ([int(v.replace(",", "")) for v in row] for row in rows):
        assert r == roi_rows(params, outputs) and readout == 5 * r
        assert frametime == min_frametime_us(params, EXPOSURE_US, r) == formula_frametime_us(outputs)
        assert rate == round(1e6 / frametime)


@pytest.mark.parametrize("outputs", [100_000, 1_000_000])
def test_the_device_reports_the_models_frametime(outputs):
    with OPU("emu://?fidelity=ideal", n_components=outputs, seed=0, progress=False) as opu:
        opu.fit1d(n_features=8)
        result = opu.transform(np.ones((3, 8), dtype=bool))
    assert result.context.frametime_us == formula_frametime_us(outputs)
    assert result.context.device_time_s == pytest.approx(3 * formula_frametime_us(outputs) * 1e-6)
