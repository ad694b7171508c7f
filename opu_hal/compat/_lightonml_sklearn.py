"""The lightonml shim's scikit-learn ``OPUMap`` (``opu_hal.compat.lightonml.OPUMap``; imports scikit-learn).

The class is defined here, at module level, so that it pickles; its public name, and the
name pickles record, is ``opu_hal.compat.lightonml.OPUMap``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from opu_hal.compat.lightonml import OPU, MapCore, check_map_args, set_verbose_level


class OPUMap(MapCore, TransformerMixin, BaseEstimator):
    """lightonml.projections.sklearn.OPUMap's call shapes, clone- and pickle-safe.

    Parameters are lightonml's; ``device`` (a URL) and ``seed`` are opu-hal extensions, as
    in the shim's :class:`~opu_hal.compat.lightonml.OPU`. Without ``opu`` the map builds its
    own OPU on first use (``self.opu``); ``get_params()["opu"]`` stays what was passed, so
    ``clone`` gives a map with a device of its own. ``pickle`` stores the URL, the settings
    and the fit; the unpickled map reopens its device. See :class:`opu_hal.sklearn.OPUMap`
    for the native transformer (encoders inside, tags).
    """

    def __init__(self, n_components: int, opu: OPU | None = None, ndims: int = 1, n_2d_features: Any = None,
                 packed: bool = False, simulated: bool = False, max_n_features: int | None = None,
                 verbose_level: int = -1, linear: bool = False, *, device: str | None = None,
                 seed: int | None = None) -> None:
        check_map_args(ndims, simulated, max_n_features, device)
        if verbose_level >= 0:
            set_verbose_level(verbose_level)
        self.n_components = n_components
        self.opu = opu
        self.ndims, self.n_2d_features, self.packed = ndims, n_2d_features, packed
        self.simulated, self.max_n_features, self.verbose_level = simulated, max_n_features, verbose_level
        self.linear, self.device, self.seed = linear, device, seed
        self.fitted = False

    @property
    def opu(self) -> OPU:
        """The OPU in use: the one given, else one built from the parameters on first use."""
        if self._opu is None:
            self._opu = self._new_opu(self.n_components)
        elif self._opu.n_components != self.n_components:
            self._opu.n_components = self.n_components
        return self._opu

    @opu.setter
    def opu(self, value: OPU | None) -> None:
        if value is not None and not isinstance(value, OPU):
            raise TypeError(f"opu: expected an opu_hal.compat.lightonml.OPU or None, got {type(value).__name__}")
        self._opu_param = value
        self._opu = value

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; ``opu`` is the OPU passed (None when the map builds its own)."""
        return {name: self._opu_param if name == "opu" else getattr(self, name) for name in self._get_param_names()}

    def fit(self, X: Any = None, y: Any = None, n_features: Any = None, packed: bool = False,
            online: bool = False) -> "OPUMap":
        """Fit the OPU to X (..., n_features) or to ``n_features``."""
        self._fit(X, n_features, packed, online)
        return self

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Random features of binary X (fits on X first if ``fit`` was not called)."""
        return np.array(self._project(X))


OPUMap.__module__ = "opu_hal.compat.lightonml"
