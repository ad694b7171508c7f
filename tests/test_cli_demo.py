"""`opu-hal demo`, the README's first command: transforms on the embedded emulator and writes a camera frame."""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np


def test_demo_transforms_and_writes_a_speckle_frame(tmp_path: Path) -> None:
    out = tmp_path / "frame.png"
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "demo", "--out", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    sensor = re.search(r"camera (\d+) x (\d+) px, 8-bit, physical", run.stdout)
    shape = re.search(r"transform: 200 inputs -> \(200, (\d+)\) uint8", run.stdout)
    rows = re.search(r"wrote one camera frame \((\d+) x (\d+) px, contrast-stretched, colour bar in DN\)", run.stdout)
    assert sensor and shape and rows, run.stdout
    assert int(rows[2]) == int(sensor[2]) and int(shape[1]) == int(rows[1]) * int(rows[2])
    assert re.search(r"a real OPU would take [\d.]+ ms", run.stdout)
    figure = cv2.imread(str(out))  # a matplotlib figure of the frame, with axes and a colour bar
    assert figure is not None and figure.ndim == 3 and figure.dtype == np.uint8
    assert figure.std() > 10  # speckle, not a flat or empty image


def test_demo_on_a_bad_url_fails_with_a_clear_message(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "demo", "nosuch://x"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "nosuch" in run.stderr and "Traceback" not in run.stderr
