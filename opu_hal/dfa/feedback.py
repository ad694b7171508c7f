"""The fixed random feedback projection of DFA: digital (a Gaussian matrix) or optical (an OPU).

Both compute ``scale * e @ B.T`` for error rows e (R, d): B (n_outputs, d) has i.i.d.
N(0, 1) entries, ``scale = 1 / sqrt(d)`` by default (each output then has the variance of
one error entry), so switching between the two changes the random matrix, never the scale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..opu import OPU
from ..validation import check_int, check_number
from .encoding import ErrorEncoder, make_encoder

logger = logging.getLogger(__name__)

__all__ = ["DigitalFeedback", "Feedback", "FeedbackStats", "OpticalFeedback"]


@dataclass
class FeedbackStats:
    """What the projections cost. Times in seconds (s).

    ``frames`` and ``device_time_s`` count OPU frames and emulated (or real) device time of
    the training projections (``last_*``: the latest step); ``calibration_frames`` the one-off
    linear calibration; ``wall_s`` host time spent in training projections; ``frametime_us``
    the frametime of the latest projection (microseconds, from its result's context; 0 in
    digital feedback). Projections made
    inside :meth:`Feedback.probing` (by :func:`opu_hal.dfa.alignment`) are counted apart, in
    ``alignment_steps``, ``alignment_frames`` and ``alignment_device_time_s``.
    """

    steps: int = 0
    rows: int = 0
    frames: int = 0
    device_time_s: float = 0.0
    wall_s: float = 0.0
    last_frames: int = 0
    last_device_time_s: float = 0.0
    calibration_frames: int = 0
    frametime_us: float = 0.0
    alignment_steps: int = 0
    alignment_frames: int = 0
    alignment_device_time_s: float = 0.0


class Feedback(ABC):
    """A fixed random projection of error rows; ``project`` validates then calls ``_do_project``."""

    def __init__(self, scale: float | None) -> None:
        # scale None: 1/sqrt(error features)
        self._scale = None if scale is None else check_number(scale, "scale", low=0, low_open=True)
        self.stats = FeedbackStats()
        self._shape: tuple[int, int] | None = None

    def scale_for(self, n_errors: int) -> float:
        """The fixed scale applied to the projection of ``n_errors`` error features."""
        return self._scale if self._scale is not None else 1.0 / math.sqrt(n_errors)

    def project(self, e: torch.Tensor, n_outputs: int) -> torch.Tensor:
        """``scale * e @ B.T`` (R, n_outputs), same dtype and device as ``e`` (R, d).

        B is drawn (or calibrated) on the first call; later calls must use the same shape. The
        projection is computed in float32 (float64 for float64 errors), outside any autocast
        region, so half-precision errors (bf16, fp16) never round B.
        """
        if not isinstance(e, torch.Tensor) or e.ndim != 2:
            raise ValueError(f"e: expected a 2-D torch.Tensor (rows, error features), got {getattr(e, 'shape', type(e))}")
        n_outputs = check_int(n_outputs, "n_outputs", low=1)
        shape = (n_outputs, int(e.shape[1]))
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(
                f"e, n_outputs: expected the feedback shape fixed on the first call, (outputs, error features) = "
                f"{self._shape}, got {shape}"
            )
        start = time.perf_counter()
        work = e.detach()
        if work.dtype not in (torch.float32, torch.float64):
            work = work.float()  # half precision (bf16, fp16): never round B
        # outside autocast (a backward pass run inside an autocast region would compute in half precision)
        precise = (torch.autocast(device_type=e.device.type, enabled=False)
                   if torch.is_autocast_enabled(e.device.type) else contextlib.nullcontext())
        with torch.no_grad(), precise:
            out = self._do_project(work, n_outputs)
        self.stats.wall_s += time.perf_counter() - start
        self.stats.steps += 1
        self.stats.rows += int(e.shape[0])
        return out if out.dtype == e.dtype else out.to(e.dtype)

    @contextlib.contextmanager
    def probing(self) -> Iterator["Feedback"]:
        """Projections inside the with-block are probes (alignment measurements), not training steps.

        They are counted in ``stats.alignment_*`` and leave the training counters as they were;
        any random draw they need comes from a fixed seed and leaves the training draws as they were.
        """
        saved = dataclasses.replace(self.stats)
        restore = self._begin_probe()
        try:
            yield self
        finally:
            restore()
            stats = self.stats
            stats.alignment_steps += stats.steps - saved.steps
            stats.alignment_frames += stats.frames - saved.frames
            stats.alignment_device_time_s += stats.device_time_s - saved.device_time_s
            for name in ("steps", "rows", "frames", "device_time_s", "wall_s", "last_frames", "last_device_time_s"):
                setattr(stats, name, getattr(saved, name))

    def _begin_probe(self) -> Any:
        """Prepare a probe; returns the callable that undoes it. No randomness here: nothing to do."""
        return lambda: None

    @abstractmethod
    def _do_project(self, e: torch.Tensor, n_outputs: int) -> torch.Tensor:
        """The projection of validated error rows."""


class DigitalFeedback(Feedback):
    """B drawn once from a seeded torch generator (i.i.d. N(0, 1)), kept on the error's device.

    Parameters
    ----------
    seed:
        Seed of B.
    scale:
        Factor on ``e @ B.T``; None: ``1 / sqrt(error features)``.
    """

    def __init__(self, seed: int = 0, scale: float | None = None) -> None:
        super().__init__(scale)
        self.seed = check_int(seed, "seed", low=0)
        self._matrix: torch.Tensor | None = None

    @property
    def matrix(self) -> torch.Tensor | None:
        """B (n_outputs, error features) float32, None before the first projection."""
        return self._matrix

    def _do_project(self, e: torch.Tensor, n_outputs: int) -> torch.Tensor:
        if self._matrix is None:
            generator = torch.Generator().manual_seed(self.seed)
            b = torch.randn(n_outputs, e.shape[1], generator=generator)
            self._matrix = b * self.scale_for(e.shape[1])  # the scale folded in once
        if self._matrix.device != e.device:
            self._matrix = self._matrix.to(device=e.device)  # the master copy stays float32
        b = self._matrix if self._matrix.dtype == e.dtype else self._matrix.to(e.dtype)  # float64 errors: a float64 copy
        return e @ b.T


class OpticalFeedback(Feedback):
    """B is the OPU's linear map M (i.i.d. N(0, 1) entries, docs/physics.md section 4), through ``OPU.linear_transform``.

    The error rows are encoded for the binary DMD (see :mod:`opu_hal.dfa.encoding`) and
    projected in one batched device call per step. A projection wider than
    ``max_components`` is tiled: with T tiles, the OPU is fitted to ``T * d`` features and
    tile t shows the error in the t-th block of d features (zeros elsewhere), so each tile
    meets its own independent columns of M; the T outputs of ``n_components =
    ceil(n_outputs / T)`` each are concatenated. The OPU is fitted and calibrated (linear
    calibration, once) on the first projection and must not be used for anything else
    meanwhile.

    Parameters
    ----------
    opu:
        An :class:`OPU` (opened if needed).
    encoding:
        An :class:`ErrorEncoder` or ``"stochastic"`` (default: stochastic ternarisation),
        ``"threshold"``, ``"planes"``.
    seed:
        Seed of the stochastic rounding.
    scale:
        Factor on ``e @ M.T``; None: ``1 / sqrt(error features)``.
    max_components:
        Outputs per device call (camera pixels used per tile); None: half the camera's pixels
        (the linear calibration selects the brightest half of the pixels it reads).
    """

    def __init__(
        self,
        opu: OPU,
        *,
        encoding: ErrorEncoder | str = "stochastic",
        seed: int = 0,
        scale: float | None = None,
        max_components: int | None = None,
    ) -> None:
        super().__init__(scale)
        if not isinstance(opu, OPU):
            raise TypeError(f"opu: expected an opu_hal.OPU, got {type(opu).__name__}")
        self.opu = opu
        self.encoder = make_encoder(encoding)
        self.seed = check_int(seed, "seed", low=0)
        self._rng = np.random.default_rng(self.seed)
        self.max_components = None if max_components is None else check_int(max_components, "max_components", low=1)
        self.tiles = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> "OpticalFeedback":
        """A copy of a model shares its optical feedback: one device, one calibration, one B."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "OpticalFeedback: expected no pickling (an open OPU cannot be saved); save model.state_dict(), or "
            "switch the DFA module to mode 'digital' and set dfa.optical = None before torch.save(model)"
        )

    def _begin_probe(self) -> Any:
        training_rng = self._rng
        self._rng = np.random.default_rng([self.seed, 1])  # the same stochastic rounding for every probe

        def restore() -> None:
            self._rng = training_rng

        return restore

    def _setup(self, n_errors: int, n_outputs: int) -> None:
        limit = self.max_components or self.opu.info.limits.max_n_components // 2
        self.tiles = math.ceil(n_outputs / limit)
        self.opu.n_components = math.ceil(n_outputs / self.tiles)
        self.opu.fit1d(n_features=self.tiles * n_errors)
        logger.info(
            "optical feedback: %d error features -> %d outputs in %d tile(s) of %d", n_errors, n_outputs, self.tiles,
            self.opu.n_components,
        )

    def _do_project(self, e: torch.Tensor, n_outputs: int) -> torch.Tensor:
        rows, n_errors = e.shape
        if self.tiles == 0:
            self._setup(n_errors, n_outputs)
        encoded = self.encoder.encode(e.cpu().numpy().astype(np.float64), self._rng)  # e: float32 or float64
        if self.tiles > 1:
            blocks = np.zeros((rows, self.tiles, self.tiles * n_errors))
            for t in range(self.tiles):
                blocks[:, t, t * n_errors : (t + 1) * n_errors] = encoded
            encoded = blocks.reshape(rows * self.tiles, -1)
        before = self.opu.calibration
        z = self.opu.linear_transform(encoded, bits=self.encoder.bits)
        if self.opu.calibration is not before and self.opu.calibration.linear is not None:
            self.stats.calibration_frames += self.opu.calibration.linear.frames
        context = z.context
        frames = int(context.frame_ids.size)
        self.stats.last_frames, self.stats.last_device_time_s = frames, float(context.device_time_s)
        self.stats.frametime_us = float(context.frametime_us)
        self.stats.frames += frames
        self.stats.device_time_s += float(context.device_time_s)
        out = np.asarray(z, dtype=np.float32).reshape(rows, -1)[:, :n_outputs] * np.float32(self.scale_for(n_errors))
        return torch.from_numpy(out).to(device=e.device, dtype=e.dtype)
