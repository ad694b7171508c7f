"""PNG plots of a calibration record, drawn with OpenCV (no plotting library needed).

:func:`write_report` writes whichever of these the record supports:

- ``photon_transfer.png``: temporal variance against mean signal (DN), with the gain fit;
- ``exposure_histogram.png``: output histograms before and after auto-exposure (log counts);
- ``linear_repeatability.png``: two passes of the sentinel projections against each other;
- ``tm_predicted_vs_measured.png``: intensities predicted by the retrieved transmission
  matrix against measured ones, when the record's ``tm`` section stored the arrays
  ``tm_predicted`` and ``tm_measured``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from opu_hal.record import CalibrationRecord

WIDTH, HEIGHT = 800, 560
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 90, 30, 50, 70
COLOURS = [(200, 80, 30), (40, 40, 220), (40, 160, 40), (0, 0, 0)]  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Series:
    """One curve: x and y values, drawn as ``"line"`` or ``"points"``, with a legend label."""

    x: np.ndarray
    y: np.ndarray
    label: str
    style: str = "line"


def _ticks(low: float, high: float, n: int = 5) -> np.ndarray:
    span = high - low
    step = 10 ** math.floor(math.log10(span / n)) if span > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= n:
            step *= mult
            break
    return np.arange(math.ceil(low / step) * step, high + step * 1e-9, step)


def plot(series: list[Series], title: str, xlabel: str, ylabel: str, path: Path, log_y: bool = False) -> Path:
    """Draw ``series`` on one set of axes and write a PNG at ``path``."""
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    xs = np.concatenate([s.x for s in series]).astype(np.float64)
    ys = np.concatenate([s.y for s in series]).astype(np.float64)
    if log_y:
        ys = np.log10(np.maximum(ys, 1.0))
    finite = np.isfinite(xs) & np.isfinite(ys)
    x0, x1 = float(xs[finite].min()), float(xs[finite].max())
    y0, y1 = float(ys[finite].min()), float(ys[finite].max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pw, ph = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = MARGIN_LEFT + (x - x0) / (x1 - x0) * pw
        py = MARGIN_TOP + ph - (y - y0) / (y1 - y0) * ph
        return np.column_stack([px, py]).round().astype(np.int32)

    cv2.rectangle(image, (MARGIN_LEFT, MARGIN_TOP), (MARGIN_LEFT + pw, MARGIN_TOP + ph), (0, 0, 0), 1)
    for t in _ticks(x0, x1):
        (px, _), = to_px(np.array([t]), np.array([y0]))
        cv2.line(image, (int(px), MARGIN_TOP + ph), (int(px), MARGIN_TOP + ph + 5), (0, 0, 0), 1)
        cv2.putText(image, f"{t:g}", (int(px) - 15, MARGIN_TOP + ph + 22), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for t in _ticks(y0, y1):
        (_, py), = to_px(np.array([x0]), np.array([t]))
        cv2.line(image, (MARGIN_LEFT - 5, int(py)), (MARGIN_LEFT, int(py)), (0, 0, 0), 1)
        label = f"1e{t:g}" if log_y else f"{t:g}"
        cv2.putText(image, label, (5, int(py) + 5), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        y = np.log10(np.maximum(s.y, 1.0)) if log_y else s.y.astype(np.float64)
        ok = np.isfinite(s.x) & np.isfinite(y)
        points = to_px(s.x[ok].astype(np.float64), y[ok])
        if s.style == "line":
            cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        else:
            for p in points[:: max(1, len(points) // 5000)]:
                cv2.circle(image, (int(p[0]), int(p[1])), 2, colour, -1, cv2.LINE_AA)
        cv2.putText(image, s.label, (MARGIN_LEFT + 10, MARGIN_TOP + 20 + 20 * i), FONT, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(image, title, (MARGIN_LEFT, 30), FONT, 0.65, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, xlabel, (MARGIN_LEFT + pw // 2 - 60, HEIGHT - 15), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, ylabel, (5, MARGIN_TOP - 10), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"path: could not write a PNG at {path}")
    return path


def write_report(record: CalibrationRecord, directory: str | Path) -> list[Path]:
    """Write the PNG plots the record supports into ``directory``; returns their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if record.camera is not None:
        cam = record.camera
        mu, var = record.array("camera_ptc_mean_dn"), record.array("camera_ptc_var_dn2")
        fit_x = np.array([0.0, cam.saturation_dn])
        intercept = record.metrics.get("camera_ptc_intercept_dn2", 0.0)
        written.append(
            plot(
                [
                    Series(mu, var, "measured (binned pixels)", "points"),
                    Series(fit_x, cam.gain_dn_per_e * fit_x + intercept, f"fit: K = {cam.gain_dn_per_e:.4f} DN/e-"),
                ],
                f"Photon transfer: read noise {cam.read_noise_e:.1f} e-, saturation {cam.saturation_capacity_e:.0f} e-",
                "mean signal - dark (DN)",
                "temporal variance (DN^2)",
                out / "photon_transfer.png",
            )
        )
    if record.exposure is not None:
        exp = record.exposure
        centres = (np.arange(len(exp.histogram_before)) + 0.5) * (exp.max_dn + 1) / len(exp.histogram_before)
        written.append(
            plot(
                [
                    Series(centres, np.array(exp.histogram_before), f"before: {exp.history[0][0]:.0f} us"),
                    Series(centres, np.array(exp.histogram_after), f"after: {exp.exposure_us:.0f} us"),
                ],
                f"Auto-exposure: p{exp.percentile:g} at {exp.target_fraction:.0%} of range in {exp.acquisitions} steps",
                "camera count (DN)",
                "pixels",
                out / "exposure_histogram.png",
                log_y=True,
            )
        )
    if record.linear is not None and "linear_sentinel_z" in record.array_names:
        z = record.array("linear_sentinel_z")
        written.append(
            plot(
                [Series(z[0].ravel(), z[1].ravel(), f"repeatability error {record.linear.noise_rel:.1%}", "points")],
                "Linear projections of the sentinels: two passes",
                "z, pass 1",
                "z, pass 2",
                out / "linear_repeatability.png",
            )
        )
    if {"tm_predicted", "tm_measured"} <= set(record.array_names):
        written.append(
            plot(
                [Series(record.array("tm_predicted").ravel(), record.array("tm_measured").ravel(), "pixels", "points")],
                "Transmission matrix: predicted vs measured intensities",
                "predicted",
                "measured",
                out / "tm_predicted_vs_measured.png",
            )
        )
    return written
