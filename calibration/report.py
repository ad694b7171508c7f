"""The report of a calibration record: PNG figures drawn with matplotlib (Agg, no pyplot) and one HTML page.

:func:`write_report` writes whichever of these the record supports, each figure with
labelled axes (units), its legend outside the data, and a footer naming the device
serial, the calibration id and its date:

- ``photon_transfer.png``: temporal variance (DN²) against mean signal (DN), with the gain fit;
- ``exposure_histogram.png``: output histograms before and after auto-exposure (log pixels);
- ``linear_repeatability.png``: two passes of the sentinel projections against each other;
- ``tm_predicted_vs_measured.png``: intensities predicted by the retrieved transmission
  matrix against measured ones, when the record stored ``tm_predicted`` and ``tm_measured``;

and ``report.html``, a self-contained page (figures embedded as base64 PNG, the record's
figures in a table) that a lab can attach to its notebook.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from opu_hal.record import CalibrationRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

FIGURE_SIZE_IN = (8.0, 5.0)
DPI = 110
MAX_POINTS = 5000


def footer(record: CalibrationRecord) -> str:
    """The provenance line of every figure: device model and serial, calibration id, date (UTC)."""
    return f"{record.device.model} {record.device.serial} · calibration {record.id} · {record.created}"


def new_figure(record: CalibrationRecord | str, title: str) -> tuple[Figure, Any]:
    """A figure with one axes, its title, and the provenance in the footer (a record's, or the text given)."""
    from matplotlib.figure import Figure  # imported on first use (start-up time)

    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")  # no pyplot: no global backend state
    ax = fig.subplots()
    ax.set_title(title)
    text = record if isinstance(record, str) else footer(record)
    fig.text(0.01, 0.005, text, fontsize=7, color="0.35", ha="left", va="bottom")
    return fig, ax


def frame_figure(frame: np.ndarray, title: str, provenance: str, path: str | Path) -> Path:
    """One camera frame (DN), contrast-stretched between its 1st and 99th percentiles, with a colour bar in DN."""
    fig, ax = new_figure(provenance, title)
    low, high = np.percentile(frame, [1, 99])
    image = ax.imshow(frame, cmap="gray", vmin=float(low), vmax=float(max(high, low + 1)), aspect="auto",
                      interpolation="nearest")
    ax.set_xlabel("camera column (px)")
    ax.set_ylabel("camera row (px)")
    fig.colorbar(image, ax=ax, label=f"camera count (DN), stretched {low:.0f} to {high:.0f}")
    return save(fig, Path(path))


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (rendered by Agg)."""
    fig.get_layout_engine().set(h_pad=0.15)
    fig.savefig(path, format="png")
    return path


def _legend_outside(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, x.size // MAX_POINTS)
    return x[::step], y[::step]


def _photon_transfer(record: CalibrationRecord, path: Path) -> Path:
    cam = record.camera
    mu, var = record.array("camera_ptc_mean_dn"), record.array("camera_ptc_var_dn2")
    fit_x = np.array([0.0, cam.saturation_dn])
    intercept = record.metrics.get("camera_ptc_intercept_dn2", 0.0)
    fig, ax = new_figure(record, f"Photon transfer: read noise {cam.read_noise_e:.1f} e⁻, "
                                 f"saturation {cam.saturation_capacity_e:,.0f} e⁻")
    ax.plot(mu, var, ".", ms=3, alpha=0.6, label="measured (binned pixels)")
    ax.plot(fit_x, cam.gain_dn_per_e * fit_x + intercept, "-", lw=2, label=f"fit: K = {cam.gain_dn_per_e:.4f} DN/e⁻")
    ax.set_xlabel("mean signal − dark (DN)")
    ax.set_ylabel("temporal variance (DN²)")
    _legend_outside(ax)
    return save(fig, path)


def _exposure_histogram(record: CalibrationRecord, path: Path) -> Path:
    exp = record.exposure
    edges = np.linspace(0.0, exp.max_dn + 1, len(exp.histogram_before) + 1)
    fig, ax = new_figure(record, f"Auto-exposure: p{exp.percentile:g} at {exp.target_fraction:.0%} of range "
                                 f"in {exp.acquisitions} steps")
    ax.stairs(np.array(exp.histogram_before), edges, label=f"before: {exp.history[0][0]:,.0f} µs")
    ax.stairs(np.array(exp.histogram_after), edges, label=f"after: {exp.exposure_us:,.0f} µs (in effect)")
    ax.set_yscale("log")
    ax.set_xlabel("camera count (DN)")
    ax.set_ylabel("pixels per bin (count)")
    _legend_outside(ax)
    return save(fig, path)


def _scatter(record: CalibrationRecord, path: Path, x: np.ndarray, y: np.ndarray, title: str, xlabel: str,
             ylabel: str, label: str) -> Path:
    fig, ax = new_figure(record, title)
    x, y = _thin(x.ravel(), y.ravel())
    ax.plot(x, y, ".", ms=2, alpha=0.5, label=label)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([low, high], [low, high], "k--", lw=1, label="y = x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend_outside(ax)
    return save(fig, path)


def write_report(record: CalibrationRecord, directory: str | Path) -> list[Path]:
    """Write the PNG figures the record supports and ``report.html`` into ``directory``.

    Returns the paths of the PNG figures (the HTML page is ``directory / "report.html"``).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if record.camera is not None:
        written.append(_photon_transfer(record, out / "photon_transfer.png"))
    if record.exposure is not None:
        written.append(_exposure_histogram(record, out / "exposure_histogram.png"))
    if record.linear is not None and "linear_sentinel_z" in record.array_names:
        z = record.array("linear_sentinel_z")
        written.append(_scatter(
            record, out / "linear_repeatability.png", z[0], z[1], "Linear projections of the sentinels: two passes",
            "z, pass 1 (units of the matrix M, variance 1 entries)", "z, pass 2 (same units)",
            f"sentinels: repeatability error {record.linear.noise_rel:.1%}",
        ))
    if {"tm_predicted", "tm_measured"} <= set(record.array_names):
        written.append(_scatter(
            record, out / "tm_predicted_vs_measured.png", record.array("tm_predicted"), record.array("tm_measured"),
            "Transmission matrix: predicted vs measured intensities", "predicted |R̂x|² (intensity units)",
            "measured (dark-subtracted, divided by the gain)", "pixels of fresh inputs",
        ))
    write_html(record, written, out / "report.html")
    logger.info("calibration report: %d figures and %s", len(written), out / "report.html")
    return written


def _figures_table(record: CalibrationRecord) -> list[tuple[str, str]]:
    rows = [("device", f"{record.device.model} {record.device.serial}, firmware {record.device.firmware_version}"),
            ("calibration", f"{record.id}, {record.created}"),
            ("frames spent", ", ".join(f"{k} {v:,}" for k, v in record.frames_spent.items()))]
    if record.camera is not None:
        cam = record.camera
        rows.append(("camera", f"K = {cam.gain_dn_per_e:.4f} DN/e⁻, read noise {cam.read_noise_e:.1f} e⁻, "
                               f"saturation {cam.saturation_capacity_e:,.0f} e⁻, photon transfer at "
                               f"{min(cam.exposures_us):,.4g} to {max(cam.exposures_us):,.4g} µs"))
    if record.exposure is not None:
        rows.append(("exposure", f"{record.exposure.exposure_us:,.4g} µs (auto-exposure; transform runs at it)"))
    if record.linear is not None:
        rows.append(("linear", f"{record.linear.scheme}, {record.linear.n_components} pixels at "
                               f"{record.linear.exposure_us:,.4g} µs (linear_transform starts at it), "
                               f"repeatability error {record.linear.noise_rel:.2%}"))
    return rows


def write_html(record: CalibrationRecord, figures: list[Path], path: Path) -> Path:
    """A self-contained HTML page: the record's figures in a table, every PNG embedded (base64)."""
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _figures_table(record))
    images = "\n".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode("ascii")}"><figcaption>{html.escape(p.name)}</figcaption></figure>'
        for p in figures
    )
    title = html.escape(f"Calibration {record.id} of {record.device.serial}")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}th{text-align:left;padding-right:1em}"
        "img{max-width:100%}</style></head>\n"
        f"<body><h1>{title}</h1>\n<table>\n{rows}\n</table>\n{images}\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
