"""The calibration report: matplotlib figures with provenance and a self-contained HTML page (issue 17, point 5)."""

import base64
import html.parser
import subprocess
import sys

import cv2
import numpy as np
import pytest

from calibration.pipeline import calibrate_all
from calibration.report import footer, write_report
from opu_hal import OPU


@pytest.fixture(scope="module")
def record():
    with OPU("emu://?seed=5", n_components=50, progress=False) as opu:
        opu.fit1d(n_features=64)
        return calibrate_all(opu, tm=False, progress=False)


def _not_blank(image: np.ndarray) -> bool:
    return image is not None and image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500 and image.std() > 5


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.title, self.cells, self._in = [], "", [], None

    def handle_starttag(self, tag, attrs):
        self._in = tag
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in in ("td", "th"):
            self.cells.append(data)


def test_every_figure_is_a_png_with_content_and_the_html_embeds_them(record, tmp_path):
    figures = write_report(record, tmp_path)
    assert {p.name for p in figures} == {"photon_transfer.png", "exposure_histogram.png", "linear_repeatability.png"}
    for path in figures:
        assert _not_blank(cv2.imread(str(path))), path
    page = _Page()
    page.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert record.id in page.title and record.device.serial in page.title
    assert len(page.images) == len(figures)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")  # self-contained: no file next to it is needed
        png = np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8)
        assert _not_blank(cv2.imdecode(png, cv2.IMREAD_COLOR))
    text = " ".join(page.cells)
    assert "auto-exposure; transform runs at it" in text and "linear_transform starts at it" in text


def test_every_figure_names_the_device_the_calibration_and_its_date(record, monkeypatch, tmp_path):
    import matplotlib.figure

    texts = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        texts.append([t.get_text() for t in fig.texts] + [ax.get_xlabel() + "|" + ax.get_ylabel() for ax in fig.axes])
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    write_report(record, tmp_path)
    assert footer(record) in texts[0] and record.device.serial in footer(record) and record.created in footer(record)
    for figure_texts in texts:
        assert footer(record) in figure_texts
        labels = [t for t in figure_texts if "|" in t][0]
        assert "(" in labels.split("|")[0] and "(" in labels.split("|")[1]  # units on both axes


def test_the_demo_frame_is_a_contrast_stretched_figure_with_a_colour_bar(tmp_path):
    out = tmp_path / "frame.png"
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "demo", "emu://?seed=2", "--n-features", "64",
                          "--rows", "8", "--batch", "2", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "colour bar in DN" in run.stdout
    image = cv2.imread(str(out))
    assert _not_blank(image)
