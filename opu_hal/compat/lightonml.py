"""lightonml 1.4's call shapes on top of opu-hal: change the import line, keep the script.

::

    # before                                          # after
    from lightonml import OPU                          from opu_hal.compat.lightonml import OPU
    from lightonml.encoding.base import (              from opu_hal.compat.lightonml import (
        BinaryThresholdEncoder)                            BinaryThresholdEncoder)
    from lightonml.projections.sklearn import OPUMap   from opu_hal.compat.lightonml import OPUMap
    from lightonml.projections.torch import OPUMap     from opu_hal.compat.lightonml import TorchOPUMap as OPUMap

Where opu-hal behaves differently, a :class:`LightonmlCompatWarning` is issued once per
process and per difference:

- ``simulated=True`` runs opu-hal's *physical* emulator (``emu://``): ``transform`` returns
  raw camera counts (uint8) with shot noise, as hardware does, where lightonml's simulation
  returned exact float ``|Rx|^2``. Pass ``device="emu://?fidelity=ideal"`` for exact intensities.
- Inputs of ``transform`` must hold only 0 and 1: anything else raises ``ValueError``
  (lightonml's simulator multiplied any values, and its hardware path lit every non-zero).
- ``linear_transform`` is opu-hal's calibrated linear projection: a real matrix with
  i.i.d. entries of variance 1, then lightonml's ``rescale`` (``variance``: divided by
  ``sqrt(n_features)``; ``norm``: by ``sqrt(n_components)``; ``none``: unchanged). With
  ``SeparatedBitPlanEncoder`` the bit-plane encoding happens inside opu-hal.
- ``config_file``, ``config_override``, ``online`` and transform ``**override`` settings
  have no effect (devices are chosen by URL and configured with ``OPUSettings``).

Without ``simulated=True`` the device URL comes from ``device=`` (an opu-hal extension) or
the ``OPU_HAL_DEVICE`` environment variable (``socket://host:port``, ``/dev/ttyUSB0``...).
The encoders return lightonml's layouts (see each class). ``ConcatenatedBitPlanEncoder``,
``ConcatenatingBitPlanDecoder``, ``Float32Encoder`` and ``ConcatenatedFloat32Encoder`` are
not provided: their names raise ``NotImplementedError`` pointing to the opu-hal way.

Importing this module loads neither torch nor scikit-learn (nor dask or scipy): ``OPUMap``
imports scikit-learn and ``TorchOPUMap`` torch when they are first named, and a star import
gives neither of them (name them in the import line).
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from opu_hal.errors import OPUNotFittedError
from opu_hal.result import OPUResult, TransformContext
from opu_hal.validation import as_numpy, is_torch_tensor

if TYPE_CHECKING:
    from opu_hal.compat._lightonml_device import LightonmlDevice

logger = logging.getLogger(__name__)

DEVICE_ENV = "OPU_HAL_DEVICE"

# OPUMap (scikit-learn) and TorchOPUMap (torch) are left out: a star import would import both
# libraries. Name them (``from opu_hal.compat.lightonml import OPUMap``), as lightonml's own
# ``from lightonml import *`` does not give them either.
__all__ = [
    "OPU", "SimulatedOpuDevice", "OutputRescaling", "InputRoiStrategy", "Context",
    "ContextArray", "LightonmlCompatWarning", "OPUNotFittedError", "BaseTransformer", "NoEncoding", "NoDecoding",
    "BinaryThresholdEncoder", "MultiThresholdEncoder", "SeparatedBitPlanEncoder", "SeparatedBitPlanDecoder",
    "SequentialBaseTwoEncoder", "ConcatenatedBitPlanEncoder", "ConcatenatingBitPlanDecoder", "Float32Encoder",
    "ConcatenatedFloat32Encoder", "set_verbose_level", "get_verbose_level",
]


class LightonmlCompatWarning(UserWarning):
    """opu-hal behaves differently from lightonml here (issued once per difference)."""


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, LightonmlCompatWarning, stacklevel=3)


# ---------------------------------------------------------------------- verbosity
_VERBOSE_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}
_verbose_level = 0


def set_verbose_level(verbose_level: int) -> None:
    """lightonml's 0-3 verbosity, mapped onto the level of the ``opu_hal`` logger."""
    global _verbose_level
    _verbose_level = int(verbose_level)
    logging.getLogger("opu_hal").setLevel(_VERBOSE_LEVELS[min(max(_verbose_level, 0), 3)])


def get_verbose_level() -> int:
    """The level last set by :func:`set_verbose_level` (0 by default)."""
    return _verbose_level


# ---------------------------------------------------------------------- types
class OutputRescaling(enum.Enum):
    """Scale of ``linear_transform`` outputs (lightonml.types.OutputRescaling)."""

    variance = 1
    norm = 2
    none = 3


class InputRoiStrategy(enum.Enum):
    """DMD layout (lightonml.internal.types.InputRoiStrategy) = ``OPUSettings.input_roi_strategy``."""

    full = 1
    small = 2
    auto = 3


class SimulatedOpuDevice:
    """Stand-in for lightonml's simulated device: ``OPU(opu_device=SimulatedOpuDevice())`` = ``simulated=True``."""

    def __init__(self, frametime_us: int = 500, exposure_us: int = 400, verbose: bool = False, linear: bool = False):
        self.frametime_us, self.exposure_us = frametime_us, exposure_us


class Context:
    """lightonml's view of a result's metadata; ``as_dict()`` gives its keys.

    Other attributes (``frame_ids``, ``device_time_s``, ...) are those of opu-hal's
    :class:`~opu_hal.TransformContext`, available as ``hal``.
    """

    def __init__(self, hal: TransformContext) -> None:
        self.hal = hal

    def __getattr__(self, name: str) -> Any:
        if name == "hal":
            raise AttributeError(name)
        return getattr(self.hal, name)

    def as_dict(self) -> dict[str, Any]:
        """exposure_us, frametime_us, output_roi and input_roi as ((offset), (shape)), fmt_factor."""
        h = self.hal
        return {
            "exposure_us": h.exposure_us,
            "frametime_us": h.frametime_us,
            "output_roi": (tuple(h.output_roi[:2]), tuple(h.output_roi[2:])),
            "input_roi": (tuple(h.input_roi[:2]), tuple(h.input_roi[2:])),
            "fmt_factor": h.macro_pixel,
            "device_time_s": h.device_time_s,
        }

    def __str__(self) -> str:
        return str(self.as_dict())


class ContextArray(OPUResult):
    """A numpy array with a lightonml :class:`Context` in ``.context``; ``np.array(y)`` drops it."""


# ---------------------------------------------------------------------- the OPU
def _resolve_device(simulated: bool, device: str | None) -> str:
    if device is not None:
        return device
    if simulated:
        return "emu://"
    from_env = os.environ.get(DEVICE_ENV)
    if from_env:
        return from_env
    raise RuntimeError(
        f"device: expected simulated=True, device='socket://HOST:PORT' (or another opu-hal URL), or the "
        f"{DEVICE_ENV} environment variable, got none of them"
    )


class OPU:
    """lightonml.OPU's constructor and methods, running on an :class:`opu_hal.OPU`.

    Parameters are lightonml's; ``device`` (a URL) and ``seed`` are opu-hal extensions.
    The opu-hal device is ``self.device``: an :class:`opu_hal.OPU` with lightonml's
    ``input_shape`` (DMD rows, columns) and ``output_shape_max`` (camera rows, columns).
    """

    def __init__(
        self,
        n_components: int = 200000,
        opu_device: SimulatedOpuDevice | None = None,
        max_n_features: int = 1000,
        config_file: str = "",
        config_override: dict[str, Any] | None = None,
        verbose_level: int = -1,
        input_roi_strategy: InputRoiStrategy = InputRoiStrategy.full,
        open_at_init: bool | None = None,
        disable_pbar: bool = False,
        simulated: bool = False,
        rescale: OutputRescaling | str = OutputRescaling.variance,
        *,
        device: str | None = None,
        seed: int | None = None,
    ) -> None:
        if simulated and opu_device is not None:
            raise ValueError("simulated, opu_device: expected one of them, got both (conflicting)")
        if opu_device is not None and not isinstance(opu_device, SimulatedOpuDevice):
            raise TypeError(f"opu_device: expected a SimulatedOpuDevice, got {type(opu_device).__name__}")
        if verbose_level != -1:
            warnings.warn("verbose_level is deprecated, use set_verbose_level", DeprecationWarning, stacklevel=2)
            set_verbose_level(verbose_level)
        if config_file or config_override:
            _warn_once("config", "config_file and config_override have no effect: opu-hal devices are chosen by "
                                 "URL (device=...) and configured with OPUSettings")
        if not isinstance(input_roi_strategy, InputRoiStrategy):
            raise TypeError(f"input_roi_strategy: expected an InputRoiStrategy, got {input_roi_strategy!r}")
        self.simulated = bool(simulated or opu_device is not None)
        self.rescale = rescale
        self._max_n_features = max_n_features
        self._feature_shape: tuple[int, ...] | None = None
        self._packed = False
        self._active_before_enter = False
        self._seed = seed
        self._disable_pbar = bool(disable_pbar)
        from opu_hal.compat._lightonml_device import LightonmlDevice  # the facade loads with the first OPU
        from opu_hal.settings import OPUSettings

        self.device = LightonmlDevice(
            _resolve_device(self.simulated, device), n_components=n_components, seed=seed,
            settings=OPUSettings(input_roi_strategy=input_roi_strategy.name), progress=False,
        )
        if open_at_init is None or open_at_init:
            self.open()

    # ------------------------------------------------------------------ pickle and copy
    def __getstate__(self) -> dict[str, Any]:
        """The device URL, settings and fit; never the connection (it is reopened on unpickling)."""
        state = self.__dict__.copy()
        hal: LightonmlDevice = state.pop("device")
        state["_hal"] = {
            "device": hal.device, "n_components": hal.n_components, "seed": self._seed,
            "settings": hal.settings, "calibration": hal.calibration, "open": hal.backend.is_open,
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild the device from its URL; a fitted OPU is opened and fitted again, an open one reopened."""
        hal = state.pop("_hal")
        self.__dict__.update(state)
        from opu_hal.compat._lightonml_device import LightonmlDevice

        self.device = LightonmlDevice(hal["device"], n_components=hal["n_components"], seed=hal["seed"],
                             settings=hal["settings"], calibration=hal["calibration"], progress=False)
        if self._feature_shape is not None:
            fit = self.device.fit1d if len(self._feature_shape) == 1 else self.device.fit2d
            fit(n_features=self._feature_shape[0] if len(self._feature_shape) == 1 else self._feature_shape)
        elif hal["open"]:
            self.open()

    # ------------------------------------------------------------------ properties
    @property
    def rescale(self) -> OutputRescaling:
        """Scale of linear_transform outputs."""
        return self._rescale

    @rescale.setter
    def rescale(self, value: OutputRescaling | str) -> None:
        if isinstance(value, str):
            if value.lower() not in OutputRescaling.__members__:
                raise ValueError(f"rescale: expected one of {list(OutputRescaling.__members__)}, got {value!r}")
            value = OutputRescaling[value.lower()]
        if not isinstance(value, OutputRescaling):
            raise TypeError(f"rescale: expected an OutputRescaling or its name, got {type(value).__name__}")
        self._rescale = value

    @property
    def n_components(self) -> int:
        """Outputs per input."""
        return self.device.n_components

    @n_components.setter
    def n_components(self, value: int) -> None:
        self.device.n_components = value

    @property
    def max_n_components(self) -> int:
        """Most outputs the camera can give."""
        return self.device.info.limits.max_n_components

    @property
    def max_n_features(self) -> int:
        """Most features: ``max_n_features`` given for a simulated OPU, else the DMD's mirrors."""
        return self._max_n_features if self.simulated else self.device.info.limits.max_n_features

    @max_n_features.setter
    def max_n_features(self, value: int) -> None:
        if not self.simulated:
            raise AttributeError("max_n_features can't be set if device is real")
        self._max_n_features = value

    # ------------------------------------------------------------------ life cycle
    def open(self) -> None:
        """Acquire the device."""
        self.device.open()

    def close(self) -> None:
        """Release the device (it can be opened again)."""
        self.device.close()

    def __enter__(self) -> "OPU":
        self._active_before_enter = self.device.backend.is_open
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active_before_enter:
            self.close()

    def version(self, devices: bool = False) -> str:
        """Name and versions of the library (and of the device with ``devices=True``)."""
        from opu_hal import __version__

        lines = [f"opu-hal version {__version__} (lightonml compatibility layer)"]
        if devices:
            info = self.device.info
            lines.append(f"{info.model} {info.serial}, firmware {info.firmware_version}, protocol {info.protocol_version}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ fit
    @staticmethod
    def _ignored(override: dict[str, Any], online: bool) -> None:
        if override:
            _warn_once("override", f"transform settings overrides {sorted(override)} have no effect in opu-hal")
        if online:
            _warn_once("online", "online=True has no effect: opu-hal sends every transform as one batch")

    def _check_size(self, n: int) -> None:
        if self.simulated and n > self._max_n_features:
            raise ValueError(f"n_features: expected at most max_n_features={self._max_n_features}, got {n}")

    def fit1d(self, X: Any = None, n_features: int | None = None, packed: bool = False, online: bool = False,
              **override: Any) -> None:
        """Configure for 1-D inputs, from X (..., n_features) or ``n_features``; packed rows hold 8 features per byte."""
        self._ignored(override, online)
        if X is not None:
            width = int(np.shape(X)[-1])
            n_features = n_features if packed and n_features else (8 * width if packed else width)
        if n_features is None:
            raise ValueError("n_features: expected X or n_features, got neither")
        self._check_size(int(n_features))
        self.device.fit1d(n_features=int(n_features))
        self._feature_shape, self._packed = (int(n_features),), bool(packed)

    def fit2d(self, X: Any = None, n_features: tuple[int, int] | None = None, packed: bool = False,
              online: bool = False, **override: Any) -> None:
        """Configure for 2-D inputs, from X (..., rows, columns) or ``n_features`` (needed when ``packed``)."""
        self._ignored(override, online)
        if X is not None and not packed:
            n_features = tuple(int(s) for s in np.shape(X)[-2:])
        if n_features is None:
            raise ValueError("n_features: expected X (unpacked) or n_features=(rows, columns), got neither")
        shape = (int(n_features[0]), int(n_features[1]))
        self._check_size(shape[0] * shape[1])
        self.device.fit2d(n_features=shape)
        self._feature_shape, self._packed = shape, bool(packed)

    def fit_transform1d(self, X: Any, packed: bool = False, **override: Any) -> Any:
        """fit1d(X) then transform(X)."""
        self.fit1d(X, None, packed, False, **override)
        return self.transform(X)

    def fit_transform2d(self, X: Any, packed: bool = False, n_2d_features: tuple[int, int] | None = None,
                        **override: Any) -> Any:
        """fit2d(X) then transform(X)."""
        self.fit2d(X, n_2d_features, packed, False, **override)
        return self.transform(X)

    def transform1d(self, *args: Any, **kwargs: Any) -> None:
        """Removed in lightonml 1.2: use fit1d and transform."""
        raise RuntimeError("transform1d is deprecated, you must now use fit1d and transform")

    def transform2d(self, *args: Any, **kwargs: Any) -> None:
        """Removed in lightonml 1.2: use fit2d and transform."""
        raise RuntimeError("transform2d is deprecated, you must now use fit2d and transform")

    # ------------------------------------------------------------------ transforms
    def _require_fit(self, what: str) -> tuple[int, ...]:
        if self._feature_shape is None:
            raise OPUNotFittedError(f"Call fit1d or fit2d before {what}")
        # lightonml's convention: bars from verbose level 1; below, a bar only for a long transform
        # (the facade decides from its time estimate); never with disable_pbar
        asked = get_verbose_level() >= 1
        self.device.progress = False if self._disable_pbar else ("always" if asked else True)
        return self._feature_shape

    def _unpack(self, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """lightonml's packed rows (np.packbits order: first feature in the high bit) to 0/1 features."""
        if array.dtype != np.uint8:
            raise TypeError(f"X: expected packed input of dtype uint8, got {array.dtype}")
        n = math.prod(shape)
        bits = np.unpackbits(array, axis=-1)[..., :n]
        return bits.reshape(*array.shape[:-1], *shape)

    def transform(self, X: Any, encoder_cls: Any = None, decoder_cls: Any = None) -> Any:
        """Non-linear random features of binary X; raw camera counts (see the module notes)."""
        shape = self._require_fit("transform")
        encoder = _instance(encoder_cls or NoEncoding)
        is_tensor = is_torch_tensor(X)
        array = as_numpy(encoder.transform(X), "X")
        if self._packed:
            array = self._unpack(array, shape)
        if array.dtype.kind not in "biu" or (array.size and (array.min() < 0 or array.max() > 1)):
            raise ValueError(
                f"X: expected only 0 and 1 (dtype bool or integer), got dtype {array.dtype}; lightonml's simulated "
                "OPU accepted other values, opu-hal does not: encode first (e.g. BinaryThresholdEncoder) or use "
                "linear_transform for real-valued data"
            )
        result = self.device.transform(array)
        if self.simulated and result.context.fidelity == "physical":
            _warn_once("raw", "simulated=True emulates hardware: transform returns raw camera counts "
                              f"({result.dtype}) with camera noise, not lightonml's float |Rx|^2; use "
                              "device='emu://?fidelity=ideal' for exact intensities")
        out = _decode(np.asarray(result), encoder, decoder_cls)
        return _wrap(out, result.context, is_tensor)

    def linear_transform(self, X: Any, encoder_cls: Any = None, decoder_cls: Any = None) -> Any:
        """Linear projection of real-valued X, with lightonml's ``rescale`` (see the module notes)."""
        shape = self._require_fit("linear_transform")
        if self._packed:
            raise RuntimeError("linear_transform: packed input is not supported (as in lightonml)")
        is_tensor = is_torch_tensor(X)
        bitplanes = encoder_cls is SeparatedBitPlanEncoder or isinstance(encoder_cls, SeparatedBitPlanEncoder)
        if bitplanes:
            _warn_once("bitplanes", "SeparatedBitPlanEncoder/Decoder: opu-hal's linear_transform encodes bit "
                                    "planes itself; the encoder only sets the precision")
            bits = _instance(encoder_cls).precision
            array = as_numpy(X, "X")
        else:
            bits = 8
            encoder = _instance(encoder_cls or NoEncoding)
            array = as_numpy(encoder.transform(X), "X")
        result = self.device.linear_transform(array, bits=bits)
        out = np.asarray(result, dtype=np.float32)
        decoder_is_bitplane = decoder_cls is SeparatedBitPlanDecoder or isinstance(decoder_cls, SeparatedBitPlanDecoder)
        if not bitplanes and not decoder_is_bitplane:
            out = _decode(out, encoder, decoder_cls)
        if self._rescale is OutputRescaling.variance:
            out = out / np.float32(math.sqrt(math.prod(shape)))
        elif self._rescale is OutputRescaling.norm:
            out = out / np.float32(math.sqrt(self.n_components))
        return _wrap(out, result.context, is_tensor)


def _instance(cls_or_instance: Any) -> Any:
    return cls_or_instance() if inspect.isclass(cls_or_instance) else cls_or_instance


def _decode(output: np.ndarray, encoder: Any, decoder_cls: Any) -> np.ndarray:
    """lightonml's rule: a decoder class is built from ``encoder.get_params()`` when the encoder has it."""
    if decoder_cls is None:
        return output
    if inspect.isclass(decoder_cls):
        decoder = decoder_cls(**encoder.get_params()) if hasattr(encoder, "get_params") else decoder_cls()
    else:
        decoder = decoder_cls
    return np.asarray(decoder.transform(output))


def _wrap(output: np.ndarray, context: TransformContext, is_tensor: bool) -> Any:
    if is_tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(output))
    return ContextArray(output, Context(context))


# ---------------------------------------------------------------------- encoders
def _to_numpy(X: Any) -> tuple[np.ndarray, bool]:
    return as_numpy(X, "X"), is_torch_tensor(X)


def _like_input(Z: np.ndarray, is_tensor: bool) -> Any:
    if is_tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(Z))
    return Z


class BaseTransformer:
    """lightonml's encoder base: ``fit`` returns self, ``fit_transform`` chains."""

    def fit(self, X: Any, y: Any = None) -> "BaseTransformer":
        """Nothing to learn by default."""
        return self

    def transform(self, X: Any) -> Any:
        """Encode or decode X (subclasses)."""
        raise NotImplementedError

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """fit(X) then transform(X)."""
        return self.fit(X, y).transform(X)


class NoEncoding(BaseTransformer):
    """Identity (input already binary)."""

    def transform(self, X: Any) -> Any:
        return X


class NoDecoding(BaseTransformer):
    """Identity."""

    def transform(self, X: Any) -> Any:
        return X


class BinaryThresholdEncoder(BaseTransformer):
    """``X > threshold_enc`` as uint8 (``X < threshold_enc`` if not ``greater_is_one``).

    ``threshold_enc='auto'``: ``fit`` replaces it by the per-feature medians, as
    :class:`opu_hal.encoding.BinaryThresholdEncoder` (``columnwise=True``) computes them.
    Values outside the training range are encoded, never refused (lightonml's behaviour).
    """

    def __init__(self, threshold_enc: float | str = "auto", greater_is_one: bool = True) -> None:
        if not (isinstance(threshold_enc, (int, float)) or threshold_enc == "auto"):
            raise ValueError(f"threshold_enc: expected a number or 'auto', got {threshold_enc!r}")
        self.threshold_enc = threshold_enc
        self.greater_is_one = greater_is_one

    def fit(self, X: Any, y: Any = None) -> "BinaryThresholdEncoder":
        from opu_hal.encoding import BinaryThresholdEncoder as HalEncoder

        array, _ = _to_numpy(X)
        if isinstance(self.threshold_enc, str):
            self.threshold_enc = HalEncoder(columnwise=True, clip=True).fit(array).threshold_
        elif not array.min() <= self.threshold_enc <= array.max():
            logger.warning("encoder threshold %s is outside the data range", self.threshold_enc)
        return self

    def transform(self, X: Any) -> Any:
        if isinstance(self.threshold_enc, str):
            raise RuntimeError("If threshold_enc is 'auto', fit must be called before transform.")
        array, is_tensor = _to_numpy(X)
        bits = array > self.threshold_enc if self.greater_is_one else array < self.threshold_enc
        return _like_input(bits.astype(np.uint8), is_tensor)


class MultiThresholdEncoder(BaseTransformer):
    """``n_bins - 1`` thresholds per feature, **threshold-major** layout (lightonml's).

    ``out[:, k * n_features + j] = X[:, j] > t_k`` (``t_jk`` when ``columnwise``).
    ``thresholds``: ``'linspace'`` (evenly over the data range), ``'quantiles'``, or an array.
    Encoding is :class:`opu_hal.encoding.MultiThresholdEncoder` (feature-major), re-ordered.
    """

    def __init__(self, thresholds: Any = "linspace", n_bins: int = 8, columnwise: bool = False) -> None:
        if isinstance(thresholds, (list, np.ndarray)):
            thresholds = np.array(thresholds, dtype=np.float64)
            if columnwise and thresholds.ndim != 2:
                raise ValueError(f"thresholds: expected a 2-D array with columnwise=True, got shape {thresholds.shape}")
            self.n_bins = thresholds.shape[-1] + 1
        elif thresholds in ("linspace", "quantiles"):
            self.n_bins = n_bins
        else:
            raise ValueError(f"thresholds: expected a list, an array, 'linspace' or 'quantiles', got {thresholds!r}")
        self.thresholds = thresholds
        self.columnwise = columnwise

    def fit(self, X: Any, y: Any = None) -> "MultiThresholdEncoder":
        if isinstance(self.thresholds, str):
            array, _ = _to_numpy(X)
            array = array.astype(np.float64)
            axis = 0 if self.columnwise else None
            if self.thresholds == "linspace":
                lo, hi = array.min(axis=axis), array.max(axis=axis)
                steps = np.arange(1, self.n_bins) / self.n_bins
                t = np.multiply.outer(hi - lo, steps) + np.asarray(lo)[..., None]
            else:
                t = np.quantile(array, np.arange(1, self.n_bins) / self.n_bins, axis=axis, method="midpoint").T
            self.thresholds = np.asarray(t, dtype=np.float64)
        return self

    def transform(self, X: Any) -> Any:
        from opu_hal.encoding import MultiThresholdEncoder as HalEncoder

        if isinstance(self.thresholds, str):
            raise RuntimeError(f"thresholds={self.thresholds!r}: fit must be called before transform")
        array, is_tensor = _to_numpy(X)
        hal = HalEncoder(thresholds=self.thresholds, clip=True).fit(array.reshape(-1, array.shape[-1]))
        bits = hal.transform(array)  # (..., n * k), feature-major
        n, k = array.shape[-1], self.n_bins - 1
        threshold_major = bits.reshape(*array.shape[:-1], n, k).swapaxes(-1, -2).reshape(*array.shape[:-1], n * k)
        return _like_input(np.ascontiguousarray(threshold_major), is_tensor)


class SeparatedBitPlanEncoder(BaseTransformer):
    """Real data (n, f) to bit planes: lightonml's layout ``(sides * n * precision, f)``.

    Sides are the positive then the negative part (one side only if X has a single sign),
    each scaled by its largest magnitude and quantised to ``precision`` bits, most
    significant plane first. ``get_params()`` feeds :class:`SeparatedBitPlanDecoder`.
    In ``OPU.linear_transform`` opu-hal encodes internally and only ``precision`` is used.
    """

    def __init__(self, precision: int = 6, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"SeparatedBitPlanEncoder: unexpected arguments {sorted(kwargs)} (use precision)")
        if not 0 < precision <= 8:
            raise ValueError(f"precision: expected 1 to 8, got {precision}")
        self.precision = precision
        self.magnitude: tuple[float | None, float | None] = (None, None)

    def transform(self, X: Any) -> Any:
        array, is_tensor = _to_numpy(X)
        array = array.astype(np.float64)
        if array.ndim != 2:
            raise ValueError(f"X: expected shape (n_samples, n_features), got {array.shape}")
        p = self.precision
        mag_p, mag_n = max(float(array.max()), 0.0), max(float(-array.min()), 0.0)
        dequantisation = (1 - 0.5**p) * 2
        self.magnitude = (mag_p / dequantisation, mag_n / dequantisation)
        sides = [(array, mag_p), (-array, mag_n)]
        if mag_n <= 0 or mag_p <= 0:
            sides = [sides[0]] if mag_n <= 0 else [sides[1]]
        planes = []
        for values, magnitude in sides:
            q = np.rint(np.clip(values / (magnitude or 1.0), 0, 1) * (2**p - 1)).astype(np.uint8)
            bits = (q[:, None, :] >> np.arange(p - 1, -1, -1, dtype=np.uint8)[None, :, None]) & 1  # (n, p, f) MSB first
            planes.append(bits.reshape(-1, array.shape[1]))
        return _like_input(np.concatenate(planes).astype(np.uint8), is_tensor)

    def get_params(self) -> dict[str, Any]:
        """precision and magnitudes of the last transform, for the decoder."""
        return {"precision": self.precision, "magnitude_p": self.magnitude[0], "magnitude_n": self.magnitude[1]}


class SeparatedBitPlanDecoder(BaseTransformer):
    """Recombine projected bit planes of :class:`SeparatedBitPlanEncoder`: plane k weighs ``decoding_decay**k``."""

    def __init__(self, precision: int, magnitude_p: float = 1, magnitude_n: float = 0, decoding_decay: float = 0.5):
        self.precision = precision
        self.magnitude_p = magnitude_p
        self.magnitude_n = magnitude_n
        self.decoding_decay = decoding_decay

    def transform(self, X: Any) -> Any:
        array, is_tensor = _to_numpy(X)
        array = array.astype(np.float64)
        sides = 2 if (self.magnitude_n > 0 and self.magnitude_p > 0) else 1
        rows, m = array.shape
        if rows % (sides * self.precision):
            raise ValueError(f"X: expected a multiple of {sides * self.precision} rows, got {rows}")
        planes = array.reshape(sides, rows // (sides * self.precision), self.precision, m)
        weights = self.decoding_decay ** np.arange(self.precision)
        parts = np.einsum("snkm,k->snm", planes, weights)
        if sides == 2:
            out = parts[0] * self.magnitude_p - parts[1] * self.magnitude_n
        elif self.magnitude_n <= 0:
            out = parts[0] * self.magnitude_p
        else:
            out = -parts[0] * self.magnitude_n
        return _like_input(out.astype(np.float32), is_tensor)


class SequentialBaseTwoEncoder(BaseTransformer):
    """Quantise to ``n_gray_levels`` (a power of 2) and repeat bit k of the level ``2**k`` times.

    Each feature becomes ``n_gray_levels - 1`` bits whose sum is the level (most significant
    bit's copies first), feature-major; ``fit`` learns the offset (min) and scale (range).
    """

    def __init__(self, n_gray_levels: int = 16) -> None:
        if not isinstance(n_gray_levels, int) or n_gray_levels < 2 or n_gray_levels & (n_gray_levels - 1):
            raise ValueError(f"n_gray_levels: expected an integer power of 2 (>= 2), got {n_gray_levels!r}")
        self.n_gray_levels = n_gray_levels
        self.n_bits = int(math.log2(n_gray_levels))
        self.offset: float | None = None
        self.scale: float | None = None

    def fit(self, X: Any, y: Any = None) -> "SequentialBaseTwoEncoder":
        array, _ = _to_numpy(X)
        self.offset = float(array.min())
        self.scale = float(array.max() - self.offset) or 1.0
        return self

    def transform(self, X: Any) -> Any:
        if self.offset is None:
            raise RuntimeError("You have to call fit on the training data before calling transform.")
        array, is_tensor = _to_numpy(X)
        levels = np.clip(np.rint((self.n_gray_levels - 1) * (array - self.offset) / self.scale), 0, self.n_gray_levels - 1)
        levels = levels.astype(np.int64)
        shifts = np.arange(self.n_bits - 1, -1, -1)
        bits = (levels[..., None] >> shifts) & 1  # (..., f, n_bits) MSB first
        out = np.repeat(bits, 2**shifts, axis=-1).reshape(*array.shape[:-1], -1)
        return _like_input(out.astype(np.uint8), is_tensor)


def _not_provided(name: str, instead: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{name} is not provided by opu-hal's lightonml layer; {instead}")

    return type(name, (BaseTransformer,), {"__init__": __init__, "__doc__": f"Not provided: {instead}."})


ConcatenatedBitPlanEncoder = _not_provided(
    "ConcatenatedBitPlanEncoder", "use opu_hal.encoding.SeparatedBitPlanEncoder, or linear_transform(X, bits=...)")
ConcatenatingBitPlanDecoder = _not_provided(
    "ConcatenatingBitPlanDecoder", "use opu_hal.encoding.SeparatedBitPlanDecoder, or linear_transform(X, bits=...)")
Float32Encoder = _not_provided("Float32Encoder", "project real values with OPU.linear_transform(X, bits=...)")
ConcatenatedFloat32Encoder = _not_provided(
    "ConcatenatedFloat32Encoder", "project real values with OPU.linear_transform(X, bits=...)")


# ---------------------------------------------------------------------- OPUMap (scikit-learn and PyTorch)
def check_map_args(ndims: int, simulated: bool, max_n_features: int | None, device: str | None) -> None:
    """lightonml's constructor checks of both OPUMap classes."""
    if ndims not in (1, 2):
        raise ValueError(f"ndims: expected 1 or 2, got {ndims}")
    if simulated and device is None and max_n_features is None:
        raise ValueError("max_n_features: expected a value with simulated=True, got None")


class MapCore:
    """What lightonml's two OPUMap classes share: fit the OPU, project, open and close.

    Subclasses hold the parameters (``ndims``, ``n_2d_features``, ``packed``, ``simulated``,
    ``max_n_features``, ``linear``, ``device``, ``seed``) and an ``opu`` attribute.
    """

    opu: OPU
    ndims: int
    n_2d_features: Any
    packed: bool
    simulated: bool
    max_n_features: int | None
    linear: bool
    device: str | None
    seed: int | None
    fitted: bool

    def _new_opu(self, n_components: int) -> OPU:
        """The OPU a map builds when none is given (opened on first fit)."""
        return OPU(n_components=n_components, simulated=self.simulated, max_n_features=self.max_n_features or 1000,
                   open_at_init=False, device=self.device, seed=self.seed)

    def _fit(self, X: Any, n_features: Any, packed: bool, online: bool) -> None:
        fit = self.opu.fit1d if self.ndims == 1 else self.opu.fit2d
        fit(X, n_features=n_features, packed=packed, online=online)
        self.fitted = True

    def _project(self, X: Any) -> Any:
        if not self.fitted:
            logger.info("OPUMap was not fit to data: fitting on the first input")
            self._fit(X, self.n_2d_features if self.ndims == 2 else None, self.packed, False)
        return (self.opu.linear_transform if self.linear else self.opu.transform)(X)

    def open(self) -> None:
        """Acquire the device."""
        self.opu.open()

    def close(self) -> None:
        """Release the device."""
        self.opu.close()

    def __enter__(self) -> Any:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LAZY = {"OPUMap": "opu_hal.compat._lightonml_sklearn", "TorchOPUMap": "opu_hal.compat._lightonml_torch"}


def __getattr__(name: str) -> Any:
    """OPUMap needs scikit-learn and TorchOPUMap needs torch: their modules are imported on first use."""
    if name in _LAZY:
        import importlib

        cls = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
