"""The uniform OPU facade: one class for every device URL (docs/api.md)."""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from .backends import AppliedConfig, Backend, DeviceConfig, Frames, make_backend
from .encoding import BitOrder, check_bitorder, unpack_bits
from .errors import DeviceClosedError, NotFittedError, SaturationWarning
from .layout import DMDLayout, layout_1d, layout_2d
from .locking import DeviceLock
from .record import CalibrationRecord, DeviceIdentity
from .result import OPUResult, TransformContext
from .session import PROGRESS_AFTER_S, PROGRESS_STEP_S, AcquisitionLog, DeviceSession
from .settings import DeviceInfo, OPUSettings
from .url import mask_url, parse_device_url
from .validation import (
    as_numpy,
    check_binary,
    check_bool,
    check_features,
    check_int,
    check_positive_seconds,
    is_torch_tensor,
)

logger = logging.getLogger(__name__)

Output = Literal["raw", "intensity"]


class OPU:
    """An optical processing unit (or its emulation) behind a device URL.

    Parameters
    ----------
    device:
        ``emu://`` (default), ``sim://``, ``socket://HOST:PORT``, ``serial:///dev/...`` or a
        device path; see docs/api.md.
    n_components:
        Outputs per input (camera pixels read), at least 1 and at most the camera's pixels.
    seed:
        Seed of an emulated device (its medium and noise); ``None`` keeps the URL's or 0.
    settings:
        :class:`OPUSettings` or a dict of its fields.
    calibration:
        A :class:`calibration.CalibrationRecord`, or the path of a saved one; it must come
        from this device (its serial is checked on open). ``output="intensity"`` then uses its
        dark level and gain, and ``linear_transform`` its linear calibration.
    progress:
        True: show a progress bar (and log the estimated time at INFO) when a transform is
        estimated to take more than ``PROGRESS_AFTER_S`` = 3 s (``Backend.estimate_seconds``);
        ``"always"``: a bar for every transform of several frames; False: never.
    timeout_s:
        Seconds to wait for the device on open and on every call.
    """

    def __init__(
        self,
        device: str = "emu://",
        *,
        n_components: int,
        seed: int | None = None,
        settings: OPUSettings | dict[str, Any] | None = None,
        calibration: CalibrationRecord | str | Path | None = None,
        progress: bool | Literal["always"] = True,
        timeout_s: float = 10.0,
    ) -> None:
        self._url = parse_device_url(device)
        self._n_components = check_int(n_components, "n_components", low=1)
        if seed is not None:
            check_int(seed, "seed", low=0)
        self._settings = self._validate_settings(settings)
        if progress != "always":
            check_bool(progress, "progress")
        self.progress = progress
        self.timeout_s = check_positive_seconds(timeout_s, "timeout_s")
        if not math.isfinite(self.timeout_s):
            raise ValueError(f"timeout_s: expected a finite number of seconds, got {timeout_s!r}")
        try:
            self._backend: Backend = make_backend(self._url, seed)
        except ValueError as exc:  # name the argument: the URL's query is where the bad value came from
            raise ValueError(f"device: {exc} (in {mask_url(device)!r})") from exc
        self._lock = threading.RLock()
        self._device_lock: DeviceLock | None = None
        self._closed = False
        self._layout: DMDLayout | None = None
        self._feature_shape: tuple[int, ...] | None = None
        self._applied: AppliedConfig | None = None
        self._config_stale = False
        self._calibration = self._load_calibration(calibration)

    # ------------------------------------------------------------------ life cycle
    @staticmethod
    def _validate_settings(settings: OPUSettings | dict[str, Any] | None) -> OPUSettings:
        if settings is None:
            return OPUSettings()
        if isinstance(settings, OPUSettings):
            return settings
        if isinstance(settings, dict):
            return OPUSettings.model_validate(settings)
        raise TypeError(f"settings: expected OPUSettings, a dict or None, got {type(settings).__name__}")

    def open(self) -> "OPU":
        """Connect to the device (taking an exclusive lock for shared devices); returns self."""
        with self._lock:
            if self._backend.is_open:
                return self
            if self._backend.exclusive:
                self._device_lock = DeviceLock(self._url.masked(), keys=self._backend.device_keys() or None)
                self._device_lock.acquire()
            try:
                info = self._backend.open(self.timeout_s)
                _check_n_components(self._n_components, info)
                self._check_calibration(self._calibration, info)
            except BaseException:
                self._release()
                raise
            self._closed = False
            if self._layout is not None:
                self._configure(self._layout, self._n_components, self._settings)
            return self

    def close(self) -> None:
        """Disconnect and release the device; the OPU can be opened again."""
        with self._lock:
            self._release()
            self._closed = True

    def _release(self) -> None:
        self._backend.close()
        if self._device_lock is not None:
            self._device_lock.release()
            self._device_lock = None

    def __enter__(self) -> "OPU":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._backend.is_open else "closed"
        return f"OPU({self._url.masked()!r}, n_components={self._n_components}, {state})"

    def _require_open(self) -> None:
        if self._closed:
            raise DeviceClosedError("this OPU was closed: call open() (or use a with-block) before using it again")
        if not self._backend.is_open:
            self.open()

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> str:
        """The device URL, as needed to open the device again: secrets included (a ``token``).

        Do not log or show it; ``repr(opu)`` and every message show it masked
        (:func:`opu_hal.url.mask_url`).
        """
        return str(self._url)

    @property
    def info(self) -> DeviceInfo:
        """What the device said about itself (opens it if needed)."""
        with self._lock:
            self._require_open()
            return self._backend.info

    @property
    def backend(self) -> Backend:
        """The backend behind the URL (an emulated one exposes ``.model``, the ground truth)."""
        return self._backend

    @property
    def settings(self) -> OPUSettings:
        """Current settings; assign an OPUSettings or a dict to change them (re-configures)."""
        return self._settings

    @settings.setter
    def settings(self, value: OPUSettings | dict[str, Any]) -> None:
        new = self._validate_settings(value)
        with self._lock:
            if self._layout is not None and self._backend.is_open:
                self._configure(self._layout, self._n_components, new)
            self._settings = new

    @property
    def calibration(self) -> CalibrationRecord | None:
        """The calibration record in use; assign a record, a path or None (checked against the device)."""
        return self._calibration

    @calibration.setter
    def calibration(self, value: CalibrationRecord | str | Path | None) -> None:
        record = self._load_calibration(value)
        with self._lock:
            if self._backend.is_open:
                self._check_calibration(record, self._backend.info)
            self._calibration = record

    @staticmethod
    def _load_calibration(value: CalibrationRecord | str | Path | None) -> CalibrationRecord | None:
        if value is None or isinstance(value, CalibrationRecord):
            return value
        if isinstance(value, (str, Path)):
            return CalibrationRecord.load(value)
        raise TypeError(f"calibration: expected a CalibrationRecord, a path or None, got {type(value).__name__}")

    @staticmethod
    def _check_calibration(record: CalibrationRecord | None, info: DeviceInfo) -> None:
        if record is not None and record.device.serial != info.serial:
            raise ValueError(
                f"calibration: expected a record of this device (serial {info.serial}), got record {record.id} "
                f"of device {record.device.serial}; calibrate this device (opu-hal calibrate) instead"
            )

    @property
    def n_components(self) -> int:
        """Outputs per input; assigning a new value after fit re-fits the camera ROI."""
        return self._n_components

    @n_components.setter
    def n_components(self, value: int) -> None:
        value = check_int(value, "n_components", low=1)
        with self._lock:
            if self._backend.is_open:
                _check_n_components(value, self._backend.info)
                if self._layout is not None:
                    self._configure(self._layout, value, self._settings)
            self._n_components = value

    @property
    def n_features(self) -> int | tuple[int, int] | None:
        """Fitted input size: an int after fit1d, (rows, columns) after fit2d, None before fit."""
        if self._feature_shape is None:
            return None
        return self._feature_shape[0] if len(self._feature_shape) == 1 else self._feature_shape

    @property
    def layout(self) -> DMDLayout | None:
        """Where the fitted features are shown on the DMD."""
        return self._layout

    # ------------------------------------------------------------------ fit
    def _configure(self, layout: DMDLayout, n_components: int, settings: OPUSettings) -> None:
        self._applied = self._backend.configure(
            DeviceConfig(layout, n_components, settings.exposure_us, settings.frametime_us)
        )
        self._config_stale = False

    def _configure_for_session(self, layout: DMDLayout, n_outputs: int, exposure_us: float) -> AppliedConfig:
        """A session's configuration (shortest frametime); this OPU's own is restored before its next transform."""
        self._config_stale = True
        return self._backend.configure(DeviceConfig(layout, n_outputs, exposure_us, None))

    @contextmanager
    def session(self) -> Iterator[DeviceSession]:
        """Exclusive, raw use of the device for a calibration or a custom acquisition scheme.

        The OPU's lock is held for the whole ``with`` block and the device is opened if
        needed. See :class:`opu_hal.session.DeviceSession`::

            with opu.session() as session:
                session.configure(n_features=64, n_outputs=200, exposure_us=300.0)
                frames = session.acquire(inputs)    # (B, 200) camera counts (DN)
        """
        with self._lock:
            self._require_open()
            yield DeviceSession(self)

    def identity(self) -> DeviceIdentity:
        """Who the device is: model, serial, firmware and protocol versions, and the seed of an emulated one."""
        info = self.info
        return DeviceIdentity(
            model=info.model,
            serial=info.serial,
            firmware_version=info.firmware_version,
            protocol_version=info.protocol_version,
            seed=self._backend.seed,
        )

    def _fit(self, layout_for: Any, feature_shape: tuple[int, ...]) -> None:
        with self._lock:
            self._require_open()
            layout = layout_for(self._backend.info.dmd_shape, self._settings.input_roi_strategy)
            self._configure(layout, self._n_components, self._settings)
            self._layout, self._feature_shape = layout, feature_shape
            logger.info(
                "fitted %s features on %s mirrors (macro-pixel %d)", feature_shape, layout.roi_shape, layout.factor
            )

    def fit1d(self, X: Any = None, n_features: int | None = None, packed: bool = False) -> "OPU":
        """Fix the layout of 1-D inputs, from data X (..., n_features) or from ``n_features``."""
        n = self._features_from(X, n_features, packed, rank=1)
        self._fit(lambda dmd, strategy: layout_1d(n[0], dmd, strategy), n)
        return self

    def fit2d(self, X: Any = None, n_features: tuple[int, int] | None = None, packed: bool = False) -> "OPU":
        """Fix the layout of 2-D inputs, from data X (..., rows, columns) or from ``n_features``."""
        shape = self._features_from(X, n_features, packed, rank=2)
        self._fit(lambda dmd, strategy: layout_2d(shape, dmd, strategy), shape)
        return self

    @staticmethod
    def _features_from(X: Any, n_features: Any, packed: bool, rank: int) -> tuple[int, ...]:
        if (X is None) == (n_features is None):
            raise ValueError("fit: expected exactly one of X or n_features, got " + ("both" if X is not None else "neither"))
        if n_features is not None:
            if rank == 1:
                return (check_int(n_features, "n_features", low=1),)
            if not isinstance(n_features, (tuple, list)) or len(n_features) != 2:
                raise TypeError(f"n_features: expected a (rows, columns) pair for fit2d, got {n_features!r}")
            return tuple(check_int(v, "n_features", low=1) for v in n_features)
        if packed:
            raise ValueError("n_features: expected with packed=True (a packed row does not say how many bits it holds)")
        array = as_numpy(X, "X")
        if array.ndim < rank:
            raise ValueError(f"X: expected at least {rank} dimension(s), got shape {array.shape}")
        return tuple(int(s) for s in array.shape[array.ndim - rank :])

    # ------------------------------------------------------------------ transform
    def transform(
        self, X: Any, *, encoder: Any = None, decoder: Any = None, output: Output = "raw", packed: bool = False,
        bitorder: BitOrder = "big",
    ) -> OPUResult:
        """Non-linear random features ``|R x|^2`` of binary inputs.

        Parameters
        ----------
        X:
            Binary inputs, (n_features,) or batched (..., n_features) after fit1d, (..., rows,
            columns) after fit2d: dtype bool or integer 0/1; uint8 bit-packed rows with
            ``packed=True``. A numpy array, a list or a torch tensor.
        bitorder:
            Bit order of packed rows: ``"big"`` (``np.packbits``'s and lightonml's: the first
            feature is the byte's high bit) or ``"little"`` (see :func:`opu_hal.encoding.pack_bits`).
        encoder, decoder:
            Fitted objects with a ``transform`` method applied before / after.
        output:
            ``"raw"``: camera counts (uint8, or uint16 above 8 bits; float32 intensities in
            ideal fidelity). ``"intensity"``: float32, dark-subtracted and divided by the
            gain, an unbiased estimate of ``|R x|^2``.

        Returns
        -------
        An :class:`OPUResult` (..., n_components) with ``.context``, or a torch tensor (on
        the input's device, ``.context`` attached) for torch input.
        """
        if output not in ("raw", "intensity"):
            raise ValueError(f"output: expected 'raw' or 'intensity', got {output!r}")
        torch_device = X.device if is_torch_tensor(X) else None
        with self._lock:
            self._require_open()
            if self._layout is None:
                raise NotFittedError("transform: call fit1d or fit2d before transform")
            array = self._binary_input(X, encoder, packed, check_bitorder(bitorder))
            batch_shape = check_features(array, "X", self._feature_shape)
            flat = array.reshape(-1, self._layout.n_features)
            frames, context = self._acquire_all(flat)
        result: Any = frames if output == "raw" else self._to_intensity(frames, context)
        result = OPUResult(result.reshape(*batch_shape, self._n_components), context)
        if decoder is not None:
            result = OPUResult(decoder.transform(result), context)
        if torch_device is not None:
            import torch

            tensor = torch.from_numpy(np.ascontiguousarray(result)).to(torch_device)
            tensor.context = context
            return tensor
        return result

    def _binary_input(self, X: Any, encoder: Any, packed: bool, bitorder: BitOrder) -> np.ndarray:
        array = as_numpy(X, "X")
        if encoder is not None:
            if not hasattr(encoder, "transform"):
                raise TypeError(f"encoder: expected an object with a transform method, got {type(encoder).__name__}")
            array = as_numpy(encoder.transform(array), "encoder output")
        if packed:
            if len(self._feature_shape) != 1:
                raise ValueError("packed: expected after fit1d (packed rows are 1-D), got a fit2d layout")
            return unpack_bits(array, self._layout.n_features, bitorder=bitorder, name="X")
        return check_binary(array, "X", given=X.dtype if is_torch_tensor(X) and encoder is None else None)

    def _acquire_all(self, flat: np.ndarray) -> tuple[np.ndarray, TransformContext]:
        """Acquire a (B, N) batch at this OPU's configuration; nothing is returned unless all succeed."""
        if self._config_stale:
            self._configure(self._layout, self._n_components, self._settings)
        frames, parts = self._acquire_frames(flat, progress=self.progress)
        log = AcquisitionLog()
        log.add(parts)
        if log.saturated_fraction > self._settings.saturation_warning_fraction:
            logger.info("%.2e of the output pixels saturated at %s us", log.saturated_fraction, self._applied.exposure_us)
            warnings.warn(
                SaturationWarning(
                    "output pixels are saturated; lower exposure_us or run auto-exposure (numbers in .fraction, "
                    ".exposure_us)", fraction=log.saturated_fraction, exposure_us=self._applied.exposure_us,
                ),
                stacklevel=3,
            )
        info, applied = self._backend.info, self._applied
        scale = self._intensity_scale(info, applied.exposure_us)
        calibration_id = None if self._calibration is None else self._calibration.id
        return frames, log.context(info, self._layout, applied, scale, calibration_id)

    def _acquire_frames(self, flat: np.ndarray, progress: bool | str) -> tuple[np.ndarray, list[Frames]]:
        """Frames of binary rows ``flat`` (B, N) in device-sized calls, at the configuration in force.

        The one acquisition path of the facade and of its sessions: returns the frames and
        the calls' metadata, or raises having returned nothing.
        """
        chunk = min(self._settings.max_batch_frames, self._backend.info.limits.max_batch_frames)
        total = flat.shape[0]
        seconds = self._backend.estimate_seconds(min(chunk, total)) * math.ceil(total / chunk)
        slow = seconds > PROGRESS_AFTER_S
        if slow and progress:
            chunk, seconds = self._progress_chunk(total, chunk)
        if slow:
            logger.info("acquiring %d frames: about %.1f s estimated (%d per device call)", total, seconds, chunk)
        parts: list[Frames] = []
        show = progress == "always" or (slow and progress)
        with tqdm(total=total, unit="frame", disable=not show or total <= 1, leave=False) as bar:
            for start in range(0, total, chunk):
                parts.append(self._backend.acquire(flat[start : start + chunk]))
                bar.update(parts[-1].frames.shape[0])
        frames = parts[0].frames if len(parts) == 1 else np.concatenate([p.frames for p in parts])
        return frames, parts

    def _progress_chunk(self, total: int, chunk: int) -> tuple[int, float]:
        """Rows per device call so that a long transform's bar moves, and the estimated time (s).

        Calls are halved while one takes longer than ``PROGRESS_STEP_S`` and halving adds
        less than 5 % to the estimate (a device that makes its matrix at every call keeps
        its large calls).
        """
        estimate = self._backend.estimate_seconds

        def whole(rows: int) -> float:
            full, rest = divmod(total, rows)
            return full * estimate(rows) + (estimate(rest) if rest else 0.0)

        chunk = max(1, min(chunk, total))
        seconds = whole(chunk)
        while chunk > 1 and estimate(chunk) > PROGRESS_STEP_S:
            half = (chunk + 1) // 2
            if whole(half) > 1.05 * seconds:
                break
            chunk = half
        return chunk, seconds

    def _intensity_scale(self, info: DeviceInfo, exposure_us: float) -> tuple[float, float]:
        """Counts per unit intensity at ``exposure_us`` (DN) and dark level (DN): from the record if it has them."""
        gain, dark = info.nominal_scale(exposure_us)
        record = self._calibration
        if record is not None and record.linear is not None:
            ratio = 1.0 if info.bit_depth == 0 else exposure_us / record.linear.exposure_us
            gain = record.linear.dn_per_intensity / record.linear.lit_fraction * ratio  # per unit of the device's |R x|^2
            dark = record.linear.dark_level_dn
        if record is not None and record.camera is not None:
            dark = record.camera.offset_dn
        return gain, dark

    # ------------------------------------------------------------------ linear projections
    def linear_transform(self, X: Any, *, bits: int = 8, calibrate: bool = True) -> OPUResult:
        """Linear random projection ``X @ M.T`` of real-valued inputs (docs/physics.md, linear projections).

        Parameters
        ----------
        X:
            Real-valued inputs of any sign, (n_features,) or (..., n_features) (2-D
            features after fit2d); numpy, list or torch.
        bits:
            Bits per input value (1 to 16): each vector is scaled by its largest
            magnitude, quantised, split into positive and negative parts and sent as bit
            planes (at most 4 * bits frames per vector; 2 for a binary vector).
        calibrate:
            Run a linear calibration when the record in use has none for this geometry
            (else raise :class:`NotCalibratedError`).

        Returns
        -------
        float32 (..., n_components): an estimate of ``X @ M.T`` where M is a fixed real
        matrix with i.i.d. N(0, 1) entries (``E|z|^2 = n_components * ||x||^2``), the same
        scale on every backend. ``.context.calibration_id`` names the calibration used.
        """
        from .linear import linear_transform

        return linear_transform(self, X, bits=bits, calibrate=calibrate)

    @staticmethod
    def _to_intensity(frames: np.ndarray, context: TransformContext) -> np.ndarray:
        out = frames.astype(np.float32)
        out -= np.float32(context.dark_level_dn)
        out /= np.float32(context.gain_dn_per_intensity)
        return out


def _check_n_components(n_components: int, info: DeviceInfo) -> None:
    """Raise ValueError unless ``n_components`` fits the camera of the device ``info`` describes."""
    limit = info.limits.max_n_components
    if n_components > limit:
        raise ValueError(f"n_components: expected at most {limit} (camera pixels of {info.serial}), got {n_components}")
