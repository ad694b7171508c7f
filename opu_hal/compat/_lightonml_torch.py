"""The lightonml shim's PyTorch ``OPUMap`` (``opu_hal.compat.lightonml.TorchOPUMap``; imports torch).

Defined here, at module level, so that it pickles under its public name
``opu_hal.compat.lightonml.TorchOPUMap``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from opu_hal.compat.lightonml import OPU, MapCore, check_map_args, set_verbose_level


class TorchOPUMap(MapCore, nn.Module):
    """lightonml.projections.torch.OPUMap's call shapes: output detached (not differentiable).

    ``device`` (a URL) and ``seed`` are opu-hal extensions. ``pickle`` stores the URL, the
    settings and the fit; the unpickled layer reopens its device. See
    :class:`opu_hal.torch.OPUMap` for the opu-hal layer (dtype and device preserved).
    """

    def __init__(self, n_components: int, opu: OPU | None = None, ndims: int = 1, n_2d_features: Any = None,
                 packed: bool = False, simulated: bool = False, max_n_features: int | None = None,
                 verbose_level: int = -1, linear: bool = False, *, device: str | None = None,
                 seed: int | None = None) -> None:
        nn.Module.__init__(self)
        check_map_args(ndims, simulated, max_n_features, device)
        if verbose_level >= 0:
            set_verbose_level(verbose_level)
        self.ndims, self.n_2d_features, self.packed = ndims, n_2d_features, packed
        self.simulated, self.max_n_features, self.verbose_level = simulated, max_n_features, verbose_level
        self.linear, self.device, self.seed = linear, device, seed
        if opu is None:
            opu = self._new_opu(n_components)
        else:
            opu.n_components = n_components
        self.opu = opu
        self.fitted = False
        self.online = False

    @property
    def n_components(self) -> int:
        """Outputs per input."""
        return self.opu.n_components

    def fit(self, X: Any = None, y: Any = None, n_features: Any = None, packed: bool = False,
            online: bool = False) -> None:
        """Fit the OPU to X (..., n_features) or to ``n_features``."""
        self.online = online
        self._fit(X, n_features, packed, online)

    def forward(self, input: Any) -> Any:  # noqa: A002 - lightonml's argument name
        """Random features of binary ``input``, detached from the autograd graph."""
        return self._project(input).detach()


TorchOPUMap.__module__ = "opu_hal.compat.lightonml"
