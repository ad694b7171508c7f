"""Complex transmission-matrix retrieval from intensities (docs/physics.md section 5).

An OPU only measures intensities ``|R v|^2`` of binary inputs v, yet for one output pixel
j every input is a point ``(R v)_j`` of the complex plane and the intensity of the union of
two disjoint inputs, ``|(R (v + w))_j|^2``, is the squared distance between the points
``(R v)_j`` and ``-(R w)_j`` (Gupta et al. 2019, 2020). The scheme:

1. Split the N features at random into halves A and B; draw S random anchors on each
   half (each feature of the half in an anchor with probability 1/2).
2. Pass 1: K_B random inputs x on B, each shown alone and with every anchor of A
   (S + 1 frames): squared distances from the point ``(R x)_j`` to the origin and to the
   S anchor points. Pass 2: K_A inputs on A with the anchors of B, likewise.
3. Anchor frame: per pixel, the pass-1 distances minus the distance to the origin form a
   (K_B, S) matrix of rank 2 (after centring) whose factors are the points and the anchors;
   its leading singular vectors place the anchors up to a real-linear map of the plane.
4. Lateration places every ``(R x)_j`` against the anchors; least squares over the K_B
   inputs (with an intercept) gives the columns of R on B, and the intensities ``|R x|^2``
   fix the plane's metric, leaving a rotation and possibly a reflection per pixel: the
   frame that is frozen from here on.
5. The anchors of B are now known in that frame (``R̂_B b_s``): lateration of pass 2 gives
   the columns on A in the same frame; the anchors of A follow (``R̂_A a_s``), and both
   passes are repeated until R̂ stops changing, now placing each point by weighted
   Gauss-Newton on its squared distances, started from the current R̂'s prediction.
   No frame is acquired after step 2.

Each row of R̂ equals the true row up to a global phase and, possibly, complex
conjugation, which no intensity can reveal: ``|R̂ x|^2 = |R x|^2`` for every x.
Frames: ``(S + 1) K + 16`` (16 dark frames), about 27 N with the defaults S = 8, K = 3 N.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from opu_hal import OPU
from opu_hal.errors import NotFittedError, SaturationWarning
from opu_hal.validation import as_numpy, check_bool, check_int

from ._geometry import anchor_frame, laterate, refine_points

logger = logging.getLogger(__name__)

_DESIGN_STREAM = 0x544D  # "TM": calibration inputs
_CHECK_STREAM = 0x434B  # "CK": fresh inputs of the quality check
_DARK_FRAMES = 16  # all-off inputs: per-pixel background (stray light, dark-level error)
_MIN_FEATURES = 8  # two halves of at least 4 features: fewer give too few distinct anchors
_MAX_ROUNDS = 10
_SATURATION_WARN = 0.01  # dropping more saturated intensities than this degrades R̂ (SaturationWarning)
_IMPUTE_ROUNDS = 10  # refits that fill unplaceable points (saturated) with the fit's prediction
_ROUND_TOL = 2e-3  # stop when R̂ changes by less than this (relative, after alignment); noise floor ~3e-2


class TMResult(BaseModel):
    """A retrieved transmission matrix and how it was obtained.

    ``matrix`` is in the units of ``OPU.transform(..., output="intensity")``: its rows
    predict intensities ``|matrix @ x|^2``. Each row is determined up to a global phase and
    complex conjugation. Times are in seconds, the exposure in microseconds.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    matrix: np.ndarray = Field(description="R̂, complex64 (n_components, n_features)")
    n_anchors: int = Field(description="anchors S per half of the features")
    n_calibration: int = Field(description="calibration inputs K (both halves)")
    frames_used: int = Field(description="frames acquired for the retrieval (the quality check excluded)")
    frames_per_feature: float = Field(description="frames_used / n_features")
    exposure_us: float = Field(description="camera exposure during the retrieval (us)")
    device_time_s: float = Field(description="device time of the retrieval frames (s)")
    acquisition_seconds: float = Field(description="wall-clock time spent acquiring (s)")
    compute_seconds: float = Field(description="wall-clock time spent computing R̂ (s)")
    rounds: int = Field(description="alternating lateration rounds run")
    saturated_fraction: float = Field(description="fraction of measured intensities at the ADC maximum (dropped)")
    lateration_rms: float = Field(description="rms residual of the squared distances / mean intensity")
    fit_correlation: float = Field(description="Pearson correlation of predicted and measured calibration intensities")
    intensity_correlation: float | None = Field(
        None, description="Pearson correlation of predicted and measured intensities on fresh inputs"
    )
    check_frames: int = Field(0, description="frames spent on the fresh-input check")

    def predict_intensity(self, X: Any) -> np.ndarray:
        """Predicted ``|R̂ x|^2`` (float32, (..., n_components)) of binary inputs (..., n_features)."""
        x = _as_binary_rows(X, self.matrix.shape[1], "X")
        field = x.astype(np.float32) @ self.matrix.T
        return (np.abs(field) ** 2).astype(np.float32)


@dataclass(frozen=True)
class _Design:
    """The binary inputs the retrieval shows, in acquisition order: dark, pass 1, pass 2."""

    n: int
    half_a: np.ndarray  # feature indices of half A
    half_b: np.ndarray  # feature indices of half B
    anchors_a: np.ndarray  # (S, N) anchors on A
    anchors_b: np.ndarray  # (S, N) anchors on B
    inputs_b: np.ndarray  # (K_B, N) pass-1 inputs, on B
    inputs_a: np.ndarray  # (K_A, N) pass-2 inputs, on A

    @property
    def s(self) -> int:
        return self.anchors_a.shape[0]

    def frames(self) -> np.ndarray:
        """All inputs, uint8 (F, N)."""
        dark = np.zeros((_DARK_FRAMES, self.n), dtype=np.uint8)
        return np.concatenate(
            [dark, _with_anchors(self.inputs_b, self.anchors_a), _with_anchors(self.inputs_a, self.anchors_b)]
        )


def _with_anchors(inputs: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(K (S + 1), N): each input alone, then plus each anchor (disjoint supports)."""
    k, n = inputs.shape
    out = np.empty((k, anchors.shape[0] + 1, n), dtype=np.uint8)
    out[:, 0] = inputs
    out[:, 1:] = inputs[:, None, :] | anchors[None, :, :]
    return out.reshape(-1, n)


def _random_on(indices: np.ndarray, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, n) random binary inputs lit only on ``indices``, each feature with probability 1/2."""
    out = np.zeros((rows, n), dtype=np.uint8)
    out[:, indices] = rng.random((rows, indices.size)) < 0.5
    return out


def _make_design(n: int, n_anchors: int, n_calibration: int, seed: int) -> _Design:
    rng = np.random.default_rng([seed, _DESIGN_STREAM])
    perm = rng.permutation(n)
    half_a, half_b = np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])
    spare = n_calibration - (n + 2)  # beyond as many inputs as unknowns (columns + intercept) per half
    k_a = half_a.size + 1 + spare * half_a.size // n
    k_b = n_calibration - k_a
    return _Design(
        n,
        half_a,
        half_b,
        _random_on(half_a, n_anchors, n, rng),
        _random_on(half_b, n_anchors, n, rng),
        _random_on(half_b, k_b, n, rng),
        _random_on(half_a, k_a, n, rng),
    )


# ---------------------------------------------------------------------- validation
def _check_opu(opu: Any) -> tuple[int, tuple[int, ...]]:
    """(N, feature shape) of a fitted OPU."""
    if not isinstance(opu, OPU):
        raise TypeError(f"opu: expected an opu_hal.OPU, got {type(opu).__name__}")
    features = opu.n_features
    if features is None:
        raise NotFittedError("opu: expected a fitted OPU (call fit1d or fit2d first), got an unfitted one")
    shape = (features,) if isinstance(features, int) else tuple(features)
    return math.prod(shape), shape


def _as_binary_rows(X: Any, n: int, name: str) -> np.ndarray:
    array = as_numpy(X, name)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() > 1)):
        raise ValueError(f"{name}: expected binary inputs (bool or integer 0/1), got dtype {array.dtype}")
    if array.ndim < 1 or array.shape[-1] != n:
        raise ValueError(f"{name}: expected shape (..., {n}), got {array.shape}")
    return array


def _check_matrix(matrix: Any, name: str) -> np.ndarray:
    array = as_numpy(matrix, name)
    if array.ndim != 2 or array.dtype.kind not in "iufc":
        raise ValueError(
            f"{name}: expected a 2-D numeric matrix (n_components, n_features), got shape {array.shape} "
            f"of dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite entries, got NaN or inf")
    return array


# ---------------------------------------------------------------------- acquisition
@dataclass
class _Measured:
    intensity: np.ndarray  # (F, M) float64, dark-subtracted, in calibrated intensity units
    valid: np.ndarray  # (F, M) bool, False where the camera saturated
    exposure_us: float
    device_time_s: float
    seconds: float


def _acquire(opu: OPU, frames: np.ndarray, shape: tuple[int, ...], progress: bool) -> _Measured:
    """Show ``frames`` (F, N) and read intensities; saturated pixels are flagged, not used."""
    start = time.perf_counter()
    info = opu.info
    max_dn = (1 << info.bit_depth) - 1 if info.bit_depth else None
    chunk = max(1, min(opu.settings.max_batch_frames, info.limits.max_batch_frames, 2048))
    total = frames.shape[0]
    intensity = np.empty((total, opu.n_components), dtype=np.float64)
    valid = np.ones((total, opu.n_components), dtype=bool)
    device_time_s, exposure_us = 0.0, float("nan")
    bar = tqdm(total=total, unit="frame", desc="TM retrieval", disable=not progress, leave=False)
    with bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)  # saturated pixels are dropped and reported once
        for first in range(0, total, chunk):
            batch = frames[first : first + chunk]
            raw = opu.transform(batch.reshape(-1, *shape), output="raw")
            context = raw.context
            block = np.asarray(raw).reshape(batch.shape[0], -1)
            if max_dn is not None:
                valid[first : first + batch.shape[0]] = block < max_dn
            intensity[first : first + batch.shape[0]] = (block - context.dark_level_dn) / context.gain_dn_per_intensity
            device_time_s += context.device_time_s
            exposure_us = context.exposure_us
            bar.update(batch.shape[0])
    return _Measured(intensity, valid, exposure_us, device_time_s, time.perf_counter() - start)


# ---------------------------------------------------------------------- computation
class _HalfSolver:
    """Least squares for the columns of one half, ``R̂_h = [X_h, 1]^+ Z`` per pixel, then the
    metric of each pixel's plane fitted to the intensities of the inputs alone.

    The lateration equations ``Re(conj(a) z) = y`` are bilinear: any real-linear map T of
    the plane applied to the points, with its inverse transpose applied to the anchors,
    leaves them unchanged. Only the intensities ``|R x|^2`` pin T down to a rotation or
    reflection, so every solve fits the symmetric 2 x 2 matrix Q with
    ``[Re z, Im z] Q [Re z, Im z]^T = |R x|^2`` (a linear least-squares problem in its three
    entries) and maps the plane by ``Q^(1/2)``.
    """

    def __init__(self, inputs: np.ndarray, base: np.ndarray, base_valid: np.ndarray) -> None:
        self.inputs = inputs.astype(np.float64)  # (K, n_h)
        self.design = np.concatenate([self.inputs, np.ones((inputs.shape[0], 1))], axis=1)
        self.pinv = np.linalg.pinv(self.design)  # (n_h + 1, K)
        self.base = base  # (K, M) intensities |R x|^2
        self.base_valid = base_valid

    def solve(self, z: np.ndarray, solved: np.ndarray) -> np.ndarray:
        """Rows (M, n_h) complex128 from lateration results z (K, M).

        Points that could not be placed (``solved`` False) are treated as missing data:
        filled with the fit's own prediction and refitted until the fill settles.
        """
        missing = ~solved
        z = np.where(missing, 0.0, z)
        coef = self.pinv @ z  # (n_h + 1, M)
        for _ in range(_IMPUTE_ROUNDS if missing.any() else 0):
            z = np.where(missing, self.design @ coef, z)
            coef = self.pinv @ z
        rows = coef[:-1].T
        return _apply_plane_map(rows, self._metric(self.inputs @ rows.T, self.base_valid & solved))

    def _metric(self, field: np.ndarray, use: np.ndarray) -> np.ndarray:
        """(M, 2, 2) symmetric square roots of the per-pixel metrics Q."""
        features = np.stack([field.real**2, 2 * field.real * field.imag, field.imag**2])  # (3, K, M)
        weighted = features * use
        normal = np.einsum("akm,bkm->mab", weighted, features)
        rhs = np.einsum("akm,km->ma", weighted, self.base)
        ok = np.linalg.det(normal) > 0
        eye = np.broadcast_to(np.eye(3), normal.shape)
        rhs = np.where(ok[:, None], rhs, [1.0, 0.0, 1.0])
        q = np.linalg.solve(np.where(ok[:, None, None], normal, eye), rhs[:, :, None])[:, :, 0]
        metric = np.stack([q[:, 0], q[:, 1], q[:, 1], q[:, 2]], axis=1).reshape(-1, 2, 2)
        values, vectors = np.linalg.eigh(metric)
        root = np.sqrt(np.clip(values, 0.0, None))
        return np.einsum("mab,mb,mcb->mac", vectors, root, vectors)


def _apply_plane_map(rows: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Apply a real-linear map (M, 2, 2) of the plane to every entry of each row (M, n)."""
    re = maps[:, 0, 0, None] * rows.real + maps[:, 0, 1, None] * rows.imag
    im = maps[:, 1, 0, None] * rows.real + maps[:, 1, 1, None] * rows.imag
    return re + 1j * im


@dataclass(frozen=True)
class _Pass:
    """The intensities of one pass: K inputs alone and with each of S anchors."""

    base: np.ndarray  # (K, M)
    anchored: np.ndarray  # (K, S, M)
    valid: np.ndarray  # (K, S + 1, M): base first; False where saturated

    @classmethod
    def cut(cls, intensity: np.ndarray, valid: np.ndarray, k: int, s: int) -> "_Pass":
        cube = intensity.reshape(k, s + 1, -1)
        return cls(cube[:, 0], cube[:, 1:], valid.reshape(k, s + 1, -1))

    @property
    def pair_valid(self) -> np.ndarray:
        """(K, S, M): both intensities of a lateration equation usable."""
        return self.valid[:, 1:] & self.valid[:, :1]

    def points(self, anchors: np.ndarray, guess: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Place every input against ``anchors`` (S, M): (z, solved, rms of the squared distances).

        Without ``guess``, linear lateration alone. With a guess (K, M) of the points, e.g. the
        prediction of the current R̂, Gauss-Newton from it: near-collinear anchors (pixels
        with a strong mean field) make single-point lateration ill-conditioned across
        their line, and starting from the least-squares prediction keeps each point on
        the right side of it.
        """
        if guess is None:
            z, solved = laterate(anchors, self.base, self.anchored, self.pair_valid)
            return z, solved & self.valid[:, 0], float("nan")
        return refine_points(guess, anchors, self.base, self.anchored, self.valid)


def _retrieve(design: _Design, intensity: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(R̂ complex128 (M, N), rounds, relative rms of the squared distances)."""
    s = design.s
    background = intensity[:_DARK_FRAMES].mean(axis=0)
    intensity = intensity - background
    k_b, k_a = design.inputs_b.shape[0], design.inputs_a.shape[0]
    split = _DARK_FRAMES + k_b * (s + 1)
    pass_b = _Pass.cut(intensity[_DARK_FRAMES:split], valid[_DARK_FRAMES:split], k_b, s)
    pass_a = _Pass.cut(intensity[split:], valid[split:], k_a, s)
    solver_b = _HalfSolver(design.inputs_b[:, design.half_b], pass_b.base, pass_b.valid[:, 0])
    solver_a = _HalfSolver(design.inputs_a[:, design.half_a], pass_a.base, pass_a.valid[:, 0])
    select_a = design.anchors_a[:, design.half_a].astype(np.float64)  # (S, n_A)
    select_b = design.anchors_b[:, design.half_b].astype(np.float64)

    # the first frame: anchors of A up to a linear map, fixed by the metric fit of the solve
    z_b, solved_b, _ = pass_b.points(anchor_frame(pass_b.base, pass_b.anchored, pass_b.pair_valid))
    rows_b = solver_b.solve(z_b, solved_b)
    anchors_b = select_b @ rows_b.T
    z_a, solved_a, _ = pass_a.points(anchors_b)
    guess_a = np.where(solved_a, z_a, 0.0)
    rows = None
    rounds, rms = 0, float("nan")
    for rounds in range(1, _MAX_ROUNDS + 1):
        z_a, solved_a, rms_a = pass_a.points(anchors_b, guess_a)
        rows_a = solver_a.solve(z_a, solved_a)
        z_b, solved_b, rms_b = pass_b.points(select_a @ rows_a.T, solver_b.inputs @ rows_b.T)
        rows_b = solver_b.solve(z_b, solved_b)
        anchors_b, guess_a = select_b @ rows_b.T, solver_a.inputs @ rows_a.T
        new = np.empty((intensity.shape[1], design.n), dtype=np.complex128)
        new[:, design.half_a], new[:, design.half_b] = rows_a, rows_b
        change = math.inf if rows is None else aligned_relative_error(new, rows)
        rows, rms = new, math.hypot(rms_a, rms_b) / math.sqrt(2)
        logger.debug("round %d: relative change %.2e, rms of squared distances %.3e", rounds, change, rms)
        if change < _ROUND_TOL:
            break
    scale = float(np.mean(pass_b.base, where=pass_b.valid[:, 0]))
    return rows, rounds, rms / scale if scale > 0 else float("nan")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 0 else float("nan")


# ---------------------------------------------------------------------- public API
def retrieve_transmission_matrix(
    opu: OPU,
    *,
    n_anchors: int = 8,
    n_calibration: int | None = None,
    n_check: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> TMResult:
    """Retrieve the complex transmission matrix of a fitted OPU (docs/physics.md section 5.2).

    Parameters
    ----------
    opu:
        An :class:`opu_hal.OPU` after ``fit1d`` or ``fit2d`` (any backend). Its current
        settings are used: choose an exposure at which few pixels saturate. Saturated
        intensities are dropped (``saturated_fraction``); above 1 % of them a
        ``SaturationWarning`` says to lower the exposure.
    n_anchors:
        Anchors S per half of the features (at least 4); each calibration input costs
        S + 1 frames.
    n_calibration:
        Calibration inputs K, split between the halves; at least n_features + 2 so that
        each half's least squares is determined. Default 3 * n_features.
    n_check:
        Fresh random inputs for :func:`intensity_correlation` after the retrieval (0: skip);
        their frames are counted in ``check_frames``, not ``frames_used``.
    seed:
        Seed of the random calibration design.
    progress:
        Show a progress bar over the frames.

    Returns
    -------
    A :class:`TMResult` whose ``matrix`` predicts ``|R x|^2`` in the units of
    ``opu.transform(x, output="intensity")``.
    """
    n, shape = _check_opu(opu)
    if n < _MIN_FEATURES:
        raise ValueError(f"opu: expected an OPU fitted to at least {_MIN_FEATURES} features, got {n}")
    s = check_int(n_anchors, "n_anchors", low=4)
    k = 3 * n if n_calibration is None else check_int(n_calibration, "n_calibration", low=n + 2)
    n_check = check_int(n_check, "n_check", low=0)
    seed = check_int(seed, "seed", low=0)
    check_bool(progress, "progress")

    design = _make_design(n, s, k, seed)
    frames = design.frames()
    measured = _acquire(opu, frames, shape, progress)
    start = time.perf_counter()
    matrix, rounds, rms = _retrieve(design, measured.intensity, measured.valid)
    used = measured.valid
    predicted = np.abs(frames.astype(np.float64) @ matrix.T) ** 2
    fit = _pearson(predicted[used], measured.intensity[used])
    compute_s = time.perf_counter() - start
    saturated = 1.0 - float(used.mean())
    if saturated > _SATURATION_WARN:
        warnings.warn(
            SaturationWarning(
                "more than 1 % of the retrieval's intensities were saturated and dropped, which biases R̂; "
                "lower exposure_us (the fraction and exposure are the warning's attributes)",
                fraction=saturated,
                exposure_us=measured.exposure_us,
                frames=frames.shape[0],
            ),
            stacklevel=2,
        )
    result = TMResult(
        matrix=matrix.astype(np.complex64),
        n_anchors=s,
        n_calibration=k,
        frames_used=frames.shape[0],
        frames_per_feature=frames.shape[0] / n,
        exposure_us=measured.exposure_us,
        device_time_s=measured.device_time_s,
        acquisition_seconds=measured.seconds,
        compute_seconds=compute_s,
        rounds=rounds,
        saturated_fraction=saturated,
        lateration_rms=rms,
        fit_correlation=fit,
    )
    if n_check:
        correlation = intensity_correlation(opu, result, n_inputs=n_check, seed=seed)
        result = result.model_copy(update={"intensity_correlation": correlation, "check_frames": n_check})
    logger.info(
        "transmission matrix %s from %d frames (%.1f N) in %.2f s of computation; fit correlation %.4f",
        matrix.shape, frames.shape[0], frames.shape[0] / n, compute_s, fit,
    )
    return result


def intensity_correlation(opu: OPU, tm: TMResult | np.ndarray, *, n_inputs: int = 1000, seed: int = 0) -> float:
    """Pearson correlation of predicted ``|R̂ x|^2`` and measured intensities on fresh inputs.

    ``n_inputs`` random binary inputs (each feature lit with probability 1/2, drawn from a
    stream the retrieval's design never uses) are sent through
    ``opu.transform(x, output="intensity")`` (dark-subtracted, in calibrated units); the
    correlation runs over all inputs and output pixels. 1 means a perfect model.
    """
    n, shape = _check_opu(opu)
    matrix = tm.matrix if isinstance(tm, TMResult) else _check_matrix(tm, "tm")
    if matrix.shape != (opu.n_components, n):
        raise ValueError(
            f"tm: expected a matrix of shape (n_components, n_features) = ({opu.n_components}, {n}), got {matrix.shape}"
        )
    n_inputs = check_int(n_inputs, "n_inputs", low=2)
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng([seed, _CHECK_STREAM])
    x = (rng.random((n_inputs, n)) < 0.5).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        measured = np.asarray(opu.transform(x.reshape(-1, *shape), output="intensity"), dtype=np.float64)
    predicted = np.abs(x.astype(np.float64) @ matrix.T.astype(np.complex128)) ** 2
    return _pearson(predicted.ravel(), measured.reshape(n_inputs, -1).ravel())


def aligned_relative_error(R_hat: Any, R_true: Any) -> float:
    """Relative Frobenius error ``||A(R̂) - R|| / ||R||`` after aligning each row of R̂.

    Each row r̂ is replaced by whichever of ``e^{iφ} r̂`` and ``e^{iφ} conj(r̂)`` (φ chosen
    optimally) is closest to the true row: the per-row phase and conjugation that
    intensities cannot reveal. Both matrices are (n_components, n_features).
    """
    est = _check_matrix(R_hat, "R_hat").astype(np.complex128)
    true = _check_matrix(R_true, "R_true").astype(np.complex128)
    if est.shape != true.shape:
        raise ValueError(f"R_hat: expected the shape of R_true {true.shape}, got {est.shape}")
    norm2 = float(np.sum(np.abs(true) ** 2))
    if norm2 == 0:
        raise ValueError("R_true: expected a non-zero matrix, got all zeros")
    # the best phase for candidate u is that of <u, r>; conjugation when <conj(u), r> is larger
    direct = np.sum(np.conj(est) * true, axis=1)
    conjugate = np.sum(est * true, axis=1)
    flip = np.abs(conjugate) > np.abs(direct)
    candidate = np.where(flip[:, None], np.conj(est), est)
    overlap = np.where(flip, conjugate, direct)
    magnitude = np.abs(overlap)
    phase = np.divide(overlap, magnitude, out=np.ones_like(overlap), where=magnitude > 0)
    residual = np.abs(phase[:, None] * candidate - true) ** 2
    return math.sqrt(max(float(residual.sum()), 0.0) / norm2)
