"""scikit-learn adapter: :class:`OPUMap`, an OPU projection as a pipeline transformer.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.linear_model import RidgeClassifier
>>> from opu_hal.encoding import MultiThresholdEncoder
>>> from opu_hal.sklearn import OPUMap
>>> model = make_pipeline(OPUMap(2000, encoder=MultiThresholdEncoder(4), seed=0), RidgeClassifier())

The map holds a device URL and settings, never a connection in its parameters: ``clone``
gives an unfitted copy that opens its own device on ``fit``; ``pickle`` stores the URL,
the settings and the fitted encoder, and the unpickled map reopens the device on its first
``transform``. On an emulated device (``emu://``) with a fixed seed the reopened device
has the same transmission matrix, so a pickled model keeps working.

Requires the ``sklearn`` extra (scikit-learn >= 1.6).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from opu_hal.opu import OPU
from opu_hal.settings import OPUSettings
from opu_hal.url import resolve_url
from opu_hal.validation import check_bool

logger = logging.getLogger(__name__)

__all__ = ["OPUMap"]


def _clone_encoder(encoder: Any) -> Any:
    """An unfitted copy of ``encoder`` (scikit-learn estimators are cloned, others deep-copied)."""
    return clone(encoder, safe=False)


class OPUMap(TransformerMixin, BaseEstimator):
    """Random features ``|R x|^2`` (or linear projections ``M x``) of an OPU, as a transformer.

    Parameters
    ----------
    n_components : int, default 1000
        Outputs per sample (camera pixels read).
    device : str, default "emu://"
        Device URL (see docs/api.md section 3): ``emu://?fidelity=ideal``, ``socket://host:port``, ...
    seed : int or None, default None
        Seed of an emulated device (its medium and noise); ignored by hardware.
    settings : OPUSettings, dict or None
        Acquisition settings (exposure_us, frametime_us, ...).
    encoder : object with ``fit``/``transform`` or None
        Applied to X before the device. For the non-linear map its output must be binary
        (e.g. :class:`opu_hal.encoding.BinaryThresholdEncoder`); without an encoder X must
        already hold only 0 and 1. A fresh copy is fitted on the data passed to ``fit``.
    linear : bool, default False
        ``True``: real-valued linear projections via ``OPU.linear_transform`` (float32,
        ``E|z|^2 = n_components * ||x||^2``); X may be any real data.
    bits : int, default 8
        Quantisation bits of ``linear_transform`` (linear map only).
    output : {"raw", "intensity"}, default "raw"
        Non-linear map only: camera counts (uint8 for 8-bit cameras) or float32 intensities
        (dark-subtracted, divided by the gain).
    progress : bool, default False
        Show a progress bar for large batches.

    Attributes
    ----------
    n_features_in_ : int
        Features of X seen by ``fit``.
    encoder_ : object or None
        The fitted copy of ``encoder``.
    n_device_features_ : int
        Features shown on the DMD per sample (after encoding).

    Notes
    -----
    A device is stateful and, except an ``ideal`` emulator, noisy: the same input gives
    slightly different counts on every call (shot and read noise). The estimator tags
    say so (``non_deterministic``) unless the URL asks for ``fidelity=ideal``. Output dtypes
    are the device's (uint8 or float32), so float64 input is not preserved.
    ``close()`` releases the device; the next ``transform`` reopens it.
    """

    def __init__(
        self,
        n_components: int = 1000,
        *,
        device: str = "emu://",
        seed: int | None = None,
        settings: OPUSettings | dict[str, Any] | None = None,
        encoder: Any = None,
        linear: bool = False,
        bits: int = 8,
        output: Literal["raw", "intensity"] = "raw",
        progress: bool = False,
    ) -> None:
        self.n_components = n_components
        self.device = device
        self.seed = seed
        self.settings = settings
        self.encoder = encoder
        self.linear = linear
        self.bits = bits
        self.output = output
        self.progress = progress

    # ------------------------------------------------------------------ scikit-learn protocol
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = not self._is_ideal_emulator()
        tags.transformer_tags.preserves_dtype = []
        tags.input_tags.allow_nan = False
        return tags

    def _is_ideal_emulator(self) -> bool:
        try:
            spec = resolve_url(self.device)
        except (TypeError, ValueError):
            return False
        return spec.value("fidelity") == "ideal"

    def _validate_params(self) -> None:
        check_bool(self.linear, "linear")
        if self.output not in ("raw", "intensity"):
            raise ValueError(f"output: expected 'raw' or 'intensity', got {self.output!r}")
        if self.encoder is not None and not (hasattr(self.encoder, "fit") and hasattr(self.encoder, "transform")):
            raise TypeError(
                f"encoder: expected None or an object with fit and transform methods, got {type(self.encoder).__name__}"
            )

    def fit(self, X: Any, y: Any = None) -> "OPUMap":
        """Fit the encoder on X and fix the input layout of the device (opens it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, reset=True, dtype="numeric")
        encoder = None if self.encoder is None else _clone_encoder(self.encoder).fit(X)
        encoded = X if encoder is None else np.asarray(encoder.transform(X[:1]))
        n_device = int(encoded.shape[-1])
        opu = OPU(self.device, n_components=self.n_components, seed=self.seed, settings=self.settings,
                  progress=self.progress)
        try:
            opu.open()
            opu.fit1d(n_features=n_device)
        except BaseException:
            opu.close()
            raise
        self.close()
        self._opu = opu
        self.encoder_ = encoder
        self.n_device_features_ = n_device
        logger.info("OPUMap fitted: %d features -> %d on the DMD -> %d outputs", X.shape[1], n_device,
                    self.n_components)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Project X through the device.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Binary (after the encoder) for the non-linear map; any real values for ``linear``.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Camera counts (uint8/uint16) or float32 intensities; float32 projections if ``linear``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype="numeric")
        if self.encoder_ is not None:
            X = np.asarray(self.encoder_.transform(X))
        opu = self.opu_
        if self.linear:
            if X.dtype.kind not in "biuf":
                raise TypeError(f"X: expected real numbers for a linear projection, got dtype {X.dtype}")
            return np.asarray(opu.linear_transform(X, bits=self.bits))
        return np.asarray(opu.transform(X, output=self.output))

    # ------------------------------------------------------------------ the device
    @property
    def opu_(self) -> OPU:
        """The fitted device, reopened (and re-fitted) if this map was unpickled or closed."""
        check_is_fitted(self)
        opu = getattr(self, "_opu", None)
        if opu is None:
            opu = OPU(self.device, n_components=self.n_components, seed=self.seed, settings=self.settings,
                      progress=self.progress)
            opu.open()
            opu.fit1d(n_features=self.n_device_features_)
            self._opu = opu
        return opu

    def close(self) -> None:
        """Release the device; a later ``transform`` reopens it."""
        opu = getattr(self, "_opu", None)
        if opu is not None:
            opu.close()
            self._opu = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_opu", None)
        return state
