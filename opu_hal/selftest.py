"""``opu-hal selftest URL``: the checks a lab runs after switching a device on.

Each check returns a :class:`CheckResult` (pass, fail or skip, what was measured and what
was expected); :func:`run_selftest` runs them all on one device and never stops at the
first failure (only a failed handshake makes the others fail as "not run").

Checks, in order:

``handshake``
    the device opens within the timeout and describes itself (model, serial, versions).
``frame rate``
    a batch of frames is acquired; the device timestamps must advance by the frametime
    the device reports (within 1 %), so the frame rate is ``1e6 / frametime_us`` (Hz).
``dark level``
    frames of an all-off DMD: their mean count must be within 1 DN of a reference that does
    not come from the device's description of itself: the camera offset (or else the
    linear calibration's dark level) of a calibration record when one is given, otherwise
    the datasheet level of the device model (for the emulator: its default offset at the
    device's bit depth, docs/physics.md section 2.2). A model without a datasheet and no
    record is skipped. Without a camera (``ideal`` fidelity) frames must read exactly 0.
``saturation``
    at the default exposure a half-lit random input saturates less than the warning
    fraction of pixels; at an exposure long enough to exceed full scale the counts reach
    ``2**bit_depth - 1`` and the device flags most pixels as saturated.
``repeatability``
    a fixed, known input pattern (seeded) acquired twice: the two frames of every input
    must correlate at >= 0.95 (only camera noise differs).
``linear mode``
    ``linear_transform`` of random real vectors: additive within 25 % relative error and
    with the documented scale ``E|z|^2 = n_components * ||x||^2`` within [0.75, 1.33].
"""

from __future__ import annotations

import dataclasses
import logging
import textwrap
import time
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np

from firmware_sim.identity import datasheet_dark_level_dn as _emulator_dark_level_dn
from firmware_sim.model import MODEL_NAME as _EMULATOR_MODEL

from .errors import SaturationWarning
from .opu import OPU
from .record import CalibrationRecord
from .validation import check_int

logger = logging.getLogger(__name__)

Status = Literal["pass", "fail", "skip"]

FRAME_RATE_TOLERANCE = 0.01
DARK_TOLERANCE_DN = 1.0
MIN_REPEAT_CORRELATION = 0.95
MAX_LINEAR_ERROR = 0.25
LINEAR_SCALE_RANGE = (0.75, 1.33)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``status``, what was ``measured`` and what was ``expected``."""

    name: str
    status: Status
    measured: str
    expected: str


@dataclasses.dataclass(frozen=True)
class SelftestConfig:
    """Sizes of the test acquisitions: outputs per frame, features per input, frames per batch."""

    n_components: int = 1000
    n_features: int = 1000
    batch: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_components", "n_features", "batch"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.seed, "seed", low=0)


#: Datasheet dark level (DN) of each known device model, as a function of (bit depth, exposure in us).
DATASHEET_DARK_LEVEL_DN: dict[str, Callable[[int, float], float]] = {_EMULATOR_MODEL: _emulator_dark_level_dn}


def _reference_dark_level(opu: OPU, exposure_us: float) -> tuple[float, str] | None:
    """(dark level in DN, where it comes from) for the dark-level check; None without a reference.

    A loaded calibration record's camera offset, or else its linear calibration's dark level,
    comes first (measured on this device); then the datasheet of the device model. The
    device's self-reported ``dark_level_dn`` is never the reference: a shifted offset would
    shift it too.
    """
    record = opu.calibration
    if record is not None and record.camera is not None:
        return record.camera.offset_dn, "calibration record's camera offset"
    if record is not None and record.linear is not None:
        return record.linear.dark_level_dn, "calibration record's linear dark level"
    datasheet = DATASHEET_DARK_LEVEL_DN.get(opu.info.model)
    if datasheet is None:
        return None
    return datasheet(opu.info.bit_depth, exposure_us), f"datasheet of {opu.info.model!r}"


def _check_frame_rate(opu: OPU, cfg: SelftestConfig) -> CheckResult:
    x = np.random.default_rng(cfg.seed).integers(0, 2, size=(cfg.batch, cfg.n_features), dtype=np.uint8)
    start = time.perf_counter()
    ctx = opu.transform(x).context
    wall_s = time.perf_counter() - start
    steps_us = np.diff(ctx.timestamps_us)
    measured_hz = 1e6 / float(np.mean(steps_us))
    expected_hz = 1e6 / ctx.frametime_us
    ok = abs(measured_hz / expected_hz - 1) <= FRAME_RATE_TOLERANCE and np.all(steps_us > 0)
    return CheckResult(
        "frame rate", "pass" if ok else "fail",
        f"{measured_hz:,.0f} frames/s on the device clock ({cfg.batch / wall_s:,.0f}/s on this host)",
        f"{expected_hz:,.0f} frames/s (frametime {ctx.frametime_us:.0f} us) +/- {FRAME_RATE_TOLERANCE:.0%}",
    )


def _check_dark_level(opu: OPU, cfg: SelftestConfig) -> CheckResult:
    result = opu.transform(np.zeros((cfg.batch, cfg.n_features), dtype=np.uint8))
    frames = np.asarray(result, dtype=np.float64)
    info = opu.info
    mean = float(frames.mean())
    if info.bit_depth == 0:
        ok = float(np.abs(frames).max()) == 0.0
        return CheckResult("dark level", "pass" if ok else "fail", f"{mean:.3g} (no camera)", "exactly 0")
    measured = f"{mean:.2f} DN (temporal std {frames.std():.2f} DN; device reports {info.dark_level_dn:.2f} DN)"
    reference = _reference_dark_level(opu, result.context.exposure_us)
    if reference is None:
        return CheckResult(
            "dark level", "skip", measured, f"no datasheet for model {info.model!r} and no calibration record"
        )
    level, source = reference
    ok = abs(mean - level) <= DARK_TOLERANCE_DN
    return CheckResult(
        "dark level", "pass" if ok else "fail", measured, f"{level:.2f} +/- {DARK_TOLERANCE_DN:g} DN ({source})"
    )


def _check_saturation(opu: OPU, cfg: SelftestConfig) -> CheckResult:
    info = opu.info
    if info.bit_depth == 0:
        return CheckResult("saturation", "skip", "no camera (ideal fidelity)", "n/a")
    full_scale = 2**info.bit_depth - 1
    rng = np.random.default_rng(cfg.seed + 1)
    x = rng.integers(0, 2, size=(cfg.batch, cfg.n_features), dtype=np.uint8)
    settings = opu.settings
    normal = opu.transform(x)
    signal_dn = max(float(np.mean(normal)) - info.dark_level_dn, 1e-3)
    long_exposure = min(normal.context.exposure_us * 3 * full_scale / signal_dn, info.limits.max_exposure_us)
    try:
        opu.settings = settings.model_copy(update={"exposure_us": long_exposure, "frametime_us": None})
        bright = opu.transform(x)
    finally:
        opu.settings = settings
    normal_ok = normal.context.saturated_fraction <= settings.saturation_warning_fraction
    bright_ok = int(np.max(bright)) == full_scale and bright.context.saturated_fraction > 0.5
    return CheckResult(
        "saturation", "pass" if normal_ok and bright_ok else "fail",
        f"{normal.context.saturated_fraction:.1e} saturated at {normal.context.exposure_us:.0f} us; "
        f"max {int(np.max(bright))} DN, {bright.context.saturated_fraction:.0%} flagged at {long_exposure:.0f} us",
        f"<= {settings.saturation_warning_fraction:.0e}; max {full_scale} DN and > 50 % flagged",
    )


def _check_repeatability(opu: OPU, cfg: SelftestConfig) -> CheckResult:
    x = np.random.default_rng(cfg.seed + 2).integers(0, 2, size=(cfg.batch // 5 or 1, cfg.n_features), dtype=np.uint8)
    first = np.asarray(opu.transform(x), dtype=np.float64)
    second = np.asarray(opu.transform(x), dtype=np.float64)
    a = first - first.mean(axis=1, keepdims=True)
    b = second - second.mean(axis=1, keepdims=True)
    corr = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    worst = float(np.min(corr))
    return CheckResult(
        "repeatability", "pass" if worst >= MIN_REPEAT_CORRELATION else "fail",
        f"correlation of repeated frames: min {worst:.4f}, mean {float(np.mean(corr)):.4f} ({len(corr)} inputs)",
        f">= {MIN_REPEAT_CORRELATION}",
    )


def _check_linear(opu: OPU, cfg: SelftestConfig) -> CheckResult:
    if not hasattr(opu, "linear_transform"):
        return CheckResult("linear mode", "fail", "linear_transform is not available", "a linear projection")
    rng = np.random.default_rng(cfg.seed + 3)
    x1, x2 = rng.standard_normal((2, 4, cfg.n_features))
    z = np.asarray(opu.linear_transform(np.concatenate([x1, x2, x1 + x2])), dtype=np.float64)
    z1, z2, z12 = z[:4], z[4:8], z[8:]
    error = float(np.linalg.norm(z12 - z1 - z2) / np.linalg.norm(z12))
    scale = float(np.mean(np.sum(z**2, axis=1) / (opu.n_components * np.sum(np.concatenate([x1, x2, x1 + x2]) ** 2, axis=1))))
    low, high = LINEAR_SCALE_RANGE
    ok = error <= MAX_LINEAR_ERROR and low <= scale <= high
    return CheckResult(
        "linear mode", "pass" if ok else "fail",
        f"additivity error {error:.1%}; |z|^2 / (n_components |x|^2) = {scale:.3f}",
        f"<= {MAX_LINEAR_ERROR:.0%}; scale in [{low}, {high}]",
    )


CHECKS: tuple[Callable[[OPU, SelftestConfig], CheckResult], ...] = (
    _check_frame_rate,
    _check_dark_level,
    _check_saturation,
    _check_repeatability,
    _check_linear,
)
CHECK_NAMES = ("handshake", "frame rate", "dark level", "saturation", "repeatability", "linear mode")


def run_selftest(
    device: str,
    config: SelftestConfig | None = None,
    *,
    timeout_s: float = 10.0,
    record: CalibrationRecord | None = None,
) -> list[CheckResult]:
    """Run every check on ``device`` (a URL); returns one :class:`CheckResult` per check.

    ``record``: a calibration record of this device, whose camera offset becomes the
    dark-level reference (and which the linear-mode check uses when it fits). A check that
    raises fails with the error as its measurement; the device is closed at the end.
    """
    if record is not None and not isinstance(record, CalibrationRecord):
        raise TypeError(f"record: expected an opu_hal.record.CalibrationRecord or None, got {type(record).__name__}")
    cfg = config or SelftestConfig()
    start = time.perf_counter()
    opu: OPU | None = None
    try:
        opu = OPU(device, n_components=cfg.n_components, progress=False, timeout_s=timeout_s)
        info = opu.open().info
        opu.fit1d(n_features=cfg.n_features)
        opu.calibration = record
    except Exception as exc:  # noqa: BLE001 - any failure to open is the handshake's verdict
        if opu is not None:
            opu.close()
        failed = [CheckResult("handshake", "fail", f"{type(exc).__name__}: {exc}", f"an answer within {timeout_s:g} s")]
        return failed + [CheckResult(name, "fail", "not run (no handshake)", "-") for name in CHECK_NAMES[1:]]
    results = [CheckResult(
        "handshake", "pass",
        f"{info.model} {info.serial}, firmware {info.firmware_version}, protocol {info.protocol_version}, "
        f"{info.fidelity}, in {time.perf_counter() - start:.2f} s",
        f"an answer within {timeout_s:g} s",
    )]
    try:
        for check, name in zip(CHECKS, CHECK_NAMES[1:], strict=True):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SaturationWarning)  # the table reports saturation
                    results.append(check(opu, cfg))
            except Exception as exc:  # noqa: BLE001 - a failing check is reported, the others still run
                logger.debug("check %s raised", name, exc_info=True)
                results.append(CheckResult(name, "fail", f"{type(exc).__name__}: {exc}", "no error"))
    finally:
        opu.close()
    return results


def format_table(results: list[CheckResult], width: int = 100) -> str:
    """A table of the results within ``width`` columns, and a verdict line.

    One row per check: its name, PASS/FAIL/SKIP and what was measured, then an indented
    ``expected:`` line; long texts wrap under the measurement column.
    """
    name_w = max(len("check"), *(len(r.name) for r in results))
    status_w = len("result")
    indent = " " * (name_w + status_w + 4)
    text_w = max(width - len(indent), 20)
    lines = [f"{'check':<{name_w}}  {'result':<{status_w}}  measured / expected", "-" * min(width, len(indent) + text_w)]
    for r in results:
        measured = textwrap.wrap(r.measured, text_w) or [""]
        expected = textwrap.wrap("expected: " + r.expected, text_w)
        lines.append(f"{r.name:<{name_w}}  {r.status.upper():<{status_w}}  {measured[0]}")
        lines += [indent + part for part in measured[1:] + expected]
    failed = [r.name for r in results if r.status == "fail"]
    lines.append("selftest " + ("FAILED: " + ", ".join(failed) if failed else "passed"))
    return "\n".join(lines)
