"""Marker layers and the output module of Direct Feedback Alignment (Nøkland 2016).

Put a :class:`DFALayer` after each hidden layer that should receive feedback (after its
activation) and pass the model's output through the :class:`DFA` module built from those
markers::

    markers = [DFALayer(), DFALayer()]
    dfa = DFA(markers, mode="digital")
    h1 = markers[0](torch.tanh(fc1(x)))
    h2 = markers[1](torch.tanh(fc2(h1)))
    out = dfa(fc3(h2))            # then loss(out, y).backward() and optimiser.step() as usual

Put markers on bounded tensors: after a saturating activation, or a LayerNorm. The feedback
pushes each marked tensor along ``-B e``, and the error of a noisy task never vanishes, so
an unbounded marked tensor grows with training (in a pre-norm Transformer, markers on the
residual stream made its RMS reach 46 after 5 epochs, against 1.2 with BP, and learning
stalled; post-norm blocks, a marker after each block's final LayerNorm, train well).

In the backward pass the DFA module takes the batch of output errors ``e = dL/d(out)``,
projects it once through a fixed random matrix B, slices the projection to each marker's
shape and hands each slice to its marker as that layer's incoming gradient
``dL/d(h_k)``; the output layer itself receives e (its true gradient). In DFA modes a
marker's output is detached, so no gradient travels through the transposed weights of the
layers above it (that computation is skipped, not discarded). Modes, one switch apart
(``dfa.mode = ...``), with no change to the model code:

- ``"bp"``: markers and module are identities: plain backpropagation;
- ``"digital"``: B is a seeded Gaussian matrix (:class:`DigitalFeedback`);
- ``"optical"``: B is the OPU's linear map (:class:`OpticalFeedback`);
- ``"output"``: only the output layer learns (hidden layers get no gradient): the baseline.

In training code:

- the marked tensors of a pass are held only until its backward pass has run
  (``dfa.last_hidden``), and copies and pickles leave them out: ``copy.deepcopy(model)`` (EMA,
  best-model copies) and ``torch.save(model)`` work after any step (a copy shares the
  optical feedback, whose OPU cannot be pickled: save the ``state_dict`` of an optical model);
- under autocast (bf16, fp16) the projection is computed in float32 and cast to each marked
  tensor's dtype; the master B stays float32;
- a marked tensor that does not require grad (a frozen layer) receives no feedback, with a
  one-time warning; its slice of B is kept;
- a marker that runs again before the output starts a new pass: an exception between a
  marker and the output leaves nothing behind;
- the markers of a ``torch.nn.DataParallel`` replica (a shallow copy) raise a RuntimeError:
  use ``torch.nn.parallel.DistributedDataParallel`` (one process per device; its processes
  make the update of one process on their concatenated batches);
- at the first DFA step, autograd's graph is checked once: a marked layer whose parameters
  the output also reaches around its marker (a skip connection) gets a warning naming it, as
  those parameters receive BP gradient on top of the feedback.

Shapes: with ``token_dims=0`` each sample's whole error (``out.shape[1:]``) is projected to
all its markers' features (``h.shape[1:]``, flattened: widths, conv feature maps). With
``token_dims=k`` the first k dimensions after the batch are rows too (e.g. the tokens of a
Transformer, ``out`` (N, T, V), markers (N, T, D)): every token's error is projected to its
own token's features through the same B.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..opu import OPU
from ..validation import check_int, check_number
from .encoding import ErrorEncoder
from .feedback import DigitalFeedback, Feedback, OpticalFeedback

__all__ = ["DFA", "DFALayer", "MODES", "Mode"]

logger = logging.getLogger(__name__)

Mode = Literal["bp", "digital", "optical", "output"]
MODES: tuple[str, ...] = ("bp", "digital", "optical", "output")


class DFALayer(nn.Module):
    """Marks a hidden layer's output (after its activation) as a receiver of DFA feedback.

    Parameters
    ----------
    name:
        Label in alignment reports (default ``layer<k>``, k its position in the DFA's list).
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str or None, got {type(name).__name__}")
        self.name = name
        self._owner: list[DFA] = []  # a list keeps the DFA module out of this module's children

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` unchanged in value; in DFA modes detached and recorded for the feedback."""
        if not self._owner:
            raise RuntimeError("DFALayer: not attached to a DFA module; pass it in DFA(layers=[...]) first")
        if not isinstance(h, torch.Tensor):
            raise TypeError(f"h: expected a torch.Tensor, got {type(h).__name__}")
        return self._owner[0]._mark(self, h)

    def extra_repr(self) -> str:
        return "" if self.name is None else f"name={self.name!r}"


class _DFAOutput(torch.autograd.Function):
    """Identity on the output; backward: the error to the output, B e sliced to the markers."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, dfa: "DFA", feedback: Feedback, token: object,
                *hidden: torch.Tensor) -> torch.Tensor:
        ctx.dfa, ctx.feedback, ctx.token = dfa, feedback, token
        ctx.shapes = [h.shape for h in hidden]
        ctx.dtypes = [h.dtype for h in hidden]
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, error: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        slices = ctx.dfa._feedback(ctx.feedback, error, ctx.shapes, ctx.dtypes)
        state = ctx.dfa._state
        if state.token is ctx.token:  # the latest pass: its activations are no longer needed, released
            state.hidden = []
        grads = [s if ctx.needs_input_grad[4 + k] else None for k, s in enumerate(slices)]
        return (error, None, None, None, *grads)


class _PassState:
    """What one forward pass leaves between the markers and the output (never copied nor pickled)."""

    __slots__ = ("hidden", "ids", "pending", "token")

    def __init__(self) -> None:
        self.pending: dict[int, torch.Tensor] = {}  # id(marker) -> its tensor, until the output runs
        self.hidden: list[torch.Tensor] = []  # the marked tensors of the latest pass, until its backward
        self.token = object()  # identifies the latest pass
        self.ids: frozenset[int] | None = None  # ids of the DFA's own markers (a replica's are not among them)


class DFA(nn.Module):
    """The output module of DFA: apply it to the model's output, before the loss.

    Parameters
    ----------
    layers:
        The :class:`DFALayer` markers, in order; each must run once per forward pass (a marker
        that runs again before the output starts a new pass).
    mode:
        ``"bp"``, ``"digital"`` (default), ``"optical"`` or ``"output"`` (see the module doc).
    opu:
        An :class:`OPU` for ``"optical"`` mode (or pass ``optical=``).
    encoding:
        Error encoding of the optical feedback: an :class:`ErrorEncoder` or ``"stochastic"``
        (default, stochastic ternarisation), ``"threshold"``, ``"planes"``.
    seed:
        Seed of the digital B and of the stochastic rounding.
    scale:
        The factor on the projection ``e @ B.T`` (B i.i.d. N(0, 1), digital or optical), the
        same in both feedback modes, a documented choice since learning rates depend on it:

        - None (default): ``1 / sqrt(d)``, d the error features per row: each feedback entry
          has the variance of one error entry;
        - ``"tinydfa"``: ``1 / sqrt(3 * H)``, H the widest marked layer (features per row):
          the standard deviation of TinyDFA's feedback, uniform(-1, 1) entries over
          ``sqrt(H)``, so that hyper-parameters published with TinyDFA carry over (B stays
          Gaussian; only its second moment is matched). At H = 256, d = 10 it is
          ``sqrt(3 * 256 / 10)`` = 8.8 times smaller than the default;
        - a positive number: that factor for every layer;
        - a sequence of positive numbers, one per marker: each layer's slice scaled by its own.

        ``layer_scales`` gives the factors in use. With ``digital=`` or ``optical=`` their own
        scale applies and ``scale`` must be None.
    token_dims:
        Dimensions after the batch dimension that are rows (tokens), not features.
    digital, optical:
        :class:`Feedback` objects to use instead of the ones built from the arguments above.
    """

    def __init__(
        self,
        layers: Sequence[DFALayer],
        *,
        mode: Mode = "digital",
        opu: OPU | None = None,
        encoding: ErrorEncoder | str = "stochastic",
        seed: int = 0,
        scale: float | str | Sequence[float] | None = None,
        token_dims: int = 0,
        digital: Feedback | None = None,
        optical: Feedback | None = None,
    ) -> None:
        super().__init__()
        if isinstance(layers, DFALayer) or not isinstance(layers, Sequence) or not layers:
            raise TypeError(f"layers: expected a non-empty sequence of DFALayer, got {type(layers).__name__}")
        for k, layer in enumerate(layers):
            if not isinstance(layer, DFALayer):
                raise TypeError(f"layers[{k}]: expected a DFALayer, got {type(layer).__name__}")
            if layer._owner:
                raise ValueError(f"layers[{k}]: expected a DFALayer of no other DFA module, got one already attached")
        if len(set(map(id, layers))) != len(layers):
            raise ValueError("layers: expected distinct DFALayer objects, got one listed twice")
        for feedback, name in ((digital, "digital"), (optical, "optical")):
            if feedback is not None and not isinstance(feedback, Feedback):
                raise TypeError(f"{name}: expected a Feedback or None, got {type(feedback).__name__}")
        if opu is not None and optical is not None:
            raise ValueError("opu, optical: expected at most one of them, got both")
        self.token_dims = check_int(token_dims, "token_dims", low=0)
        self._layers = tuple(layers)
        self.names = [layer.name or f"layer{k}" for k, layer in enumerate(layers)]
        self._scale = _check_scale(scale, len(layers))
        if scale is not None and (digital is not None or optical is not None):
            raise ValueError(f"scale: expected None when digital= or optical= is given (their own scale applies), "
                             f"got {scale!r}")
        # per-layer scales are applied to the slices here, on an unscaled projection
        whole = self._scale if isinstance(self._scale, float) or self._scale is None else 1.0
        self.digital = digital if digital is not None else DigitalFeedback(seed=seed, scale=whole)
        if optical is None and opu is not None:
            optical = OpticalFeedback(opu, encoding=encoding, seed=seed, scale=whole)
        self.optical = optical
        self._state = _PassState()
        self._mode: str = "digital"
        self.mode = mode
        self._sizes: list[int] | None = None
        self._error_features = 0
        self._warned: set[str] = set()  # layers already warned about (frozen, bypassed)
        self._checked = False  # the one-time check for gradient paths around the markers
        for layer in layers:
            layer._owner.append(self)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (``copy.deepcopy``, ``torch.save``) leave out the activations of a pass."""
        state = dict(super().__getstate__())
        state["_state"] = _PassState()
        return state

    @property
    def layer_scales(self) -> list[float] | None:
        """The factor on each marker's slice of ``e @ B.T`` (see ``scale``); None before the first DFA step."""
        if self._sizes is None:
            return None
        if self._scale == "tinydfa":
            return [1.0 / math.sqrt(3 * max(self._sizes))] * len(self._sizes)
        if isinstance(self._scale, tuple):
            return list(self._scale)
        feedback = self.feedback or self.digital
        return [feedback.scale_for(self._error_features)] * len(self._sizes)

    @property
    def last_hidden(self) -> list[torch.Tensor]:
        """The marked tensors of the latest DFA forward pass, in marker order; empty once its backward pass ran."""
        return self._state.hidden

    # ------------------------------------------------------------------ mode
    @property
    def layers(self) -> tuple[DFALayer, ...]:
        """The markers, in order."""
        return self._layers

    @property
    def mode(self) -> str:
        """``"bp"``, ``"digital"``, ``"optical"`` or ``"output"``; assign to switch."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {value!r}")
        if value == "optical" and self.optical is None:
            raise ValueError("mode: 'optical' needs an OPU; got none (pass DFA(..., opu=OPU(...)) or optical=)")
        self._mode = value
        self._state.pending.clear()

    @contextlib.contextmanager
    def using(self, mode: Mode) -> Iterator["DFA"]:
        """Switch to ``mode`` for the duration of a with-block."""
        previous = self.mode
        self.mode = mode
        try:
            yield self
        finally:
            self.mode = previous

    @property
    def feedback(self) -> Feedback | None:
        """The feedback projection of the current mode (None in ``"bp"`` and ``"output"``)."""
        return {"digital": self.digital, "optical": self.optical}.get(self._mode)

    # ------------------------------------------------------------------ forward
    def _mark(self, layer: DFALayer, h: torch.Tensor) -> torch.Tensor:
        if self._mode == "bp":
            return h
        if self._mode == "output":
            return h.detach()
        if not torch.is_grad_enabled():
            return h
        state = self._state
        if state.ids is None:
            state.ids = frozenset(map(id, self._layers))
        if id(layer) not in state.ids:
            raise RuntimeError(
                f"DFALayer {layer.name or ''}: expected a marker of this DFA module, got a replica of one (a shallow "
                "copy, as torch.nn.DataParallel makes); DFA supports torch.nn.parallel.DistributedDataParallel (one "
                "process per device, each with its own model) and copies made with copy.deepcopy"
            )
        pending = state.pending
        if id(layer) in pending:
            # a new forward pass: the previous one never reached the output (an exception between a marker and
            # the output, or a pass that stopped early); its state is discarded
            logger.debug("DFA: marker %r ran again before the output: starting a new pass", layer.name)
            pending.clear()
        pending[id(layer)] = h
        return h.detach()

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` unchanged in value; in DFA modes its backward pass sends the feedback to the markers."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out: expected a torch.Tensor, got {type(out).__name__}")
        state = self._state
        pending = state.pending.copy()
        state.pending.clear()
        if self.feedback is None or not pending:
            return out
        missing = [name for layer, name in zip(self._layers, self.names) if id(layer) not in pending]
        if missing:
            raise RuntimeError(
                f"DFA: expected every marked layer to run in this forward pass before the output, got none from {missing}"
            )
        hidden = [pending[id(layer)] for layer in self._layers]
        frozen = [name for name, h in zip(self.names, hidden) if not h.requires_grad]
        if len(frozen) == len(hidden):  # nothing to train through the feedback (a frozen copy)
            return out
        self._check_shapes(out, hidden)
        for name in frozen:
            self._warn(name, "its tensor does not require grad (a frozen layer, requires_grad=False?): it receives "
                             "no feedback; its slice of B is kept, so unfreezing it later gives it feedback")
        if not self._checked:
            self._check_bypass(out, hidden)
        state.hidden = hidden
        state.token = object()
        return _DFAOutput.apply(out, self, self.feedback, state.token, *hidden)

    def _warn(self, name: str, message: str) -> None:
        """A UserWarning about marked layer ``name``, once per layer and kind (the message's first words)."""
        key = f"{name}:{message[:20]}"
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"DFA: marked layer {name!r}: {message}", UserWarning, stacklevel=4)

    def _check_bypass(self, out: torch.Tensor, hidden: list[torch.Tensor]) -> None:
        """Warn, once per DFA module, if backpropagation reaches a marked layer's parameters around its marker.

        In DFA modes the markers cut the graph, so any parameter that both the output and a
        marked tensor depend on is reached by a path around the marker (a skip connection):
        those parameters receive BP gradient on top of the feedback.
        """
        self._checked = True
        reached = _leaves(out)
        for name, h in zip(self.names, hidden):
            if h.requires_grad and _leaves(h) & reached:
                self._warn(name, "backpropagation reaches its parameters through a path around its marker (a skip "
                                 "connection?): they receive BP gradient on top of the DFA feedback; put the marker "
                                 "after the join, or detach the bypass")

    def _check_shapes(self, out: torch.Tensor, hidden: list[torch.Tensor]) -> None:
        lead = 1 + self.token_dims
        if out.ndim <= lead:
            raise ValueError(
                f"out: expected more than {lead} dimension(s) (batch, {self.token_dims} token dim(s), features), "
                f"got shape {tuple(out.shape)}"
            )
        self._error_features = math.prod(out.shape[lead:])
        sizes = []
        for name, h in zip(self.names, hidden):
            if h.shape[:lead] != out.shape[:lead]:
                raise ValueError(
                    f"{name}: expected leading (batch, token) dimensions {tuple(out.shape[:lead])} like the output, "
                    f"got shape {tuple(h.shape)}"
                )
            sizes.append(math.prod(h.shape[lead:]))
        if self._sizes is None:
            self._sizes = sizes
        elif sizes != self._sizes:
            bad = next(k for k in range(len(sizes)) if sizes[k] != self._sizes[k])
            raise ValueError(
                f"{self.names[bad]}: expected {self._sizes[bad]} features per row (fixed by the first step, "
                f"as B is), got {sizes[bad]}"
            )

    def _feedback(self, feedback: Feedback, error: torch.Tensor, shapes: list[torch.Size],
                  dtypes: list[torch.dtype]) -> list[torch.Tensor]:
        """B e of the error batch, sliced and shaped like each marker's tensor (and of its dtype)."""
        lead = 1 + self.token_dims
        rows = error.reshape(math.prod(error.shape[:lead]), -1)
        sizes = [math.prod(shape[lead:]) for shape in shapes]
        projected = feedback.project(rows, sum(sizes))
        parts = torch.split(projected, sizes, dim=1)
        if isinstance(self._scale, (str, tuple)):
            parts = [part * factor for part, factor in zip(parts, self.layer_scales)]
        return [part.reshape(shape) if part.dtype == dtype else part.reshape(shape).to(dtype)
                for part, shape, dtype in zip(parts, shapes, dtypes)]

    def extra_repr(self) -> str:
        return f"mode={self._mode!r}, layers={self.names}, token_dims={self.token_dims}"


def _check_scale(scale: Any, n_layers: int) -> float | str | tuple[float, ...] | None:
    """``scale`` of :class:`DFA` validated: None, a positive float, ``"tinydfa"`` or one positive float per layer."""
    if scale is None or (isinstance(scale, str) and scale == "tinydfa"):
        return scale
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return check_number(scale, "scale", low=0, low_open=True)
    if isinstance(scale, Sequence) and not isinstance(scale, str) and len(scale) == n_layers:
        return tuple(check_number(v, f"scale[{k}]", low=0, low_open=True) for k, v in enumerate(scale))
    raise ValueError(f"scale: expected None, a positive number, 'tinydfa' or one positive number per marked layer "
                     f"({n_layers}), got {scale!r}")


def _leaves(t: torch.Tensor) -> set[int]:
    """ids of the leaf tensors (parameters) that autograd reaches from ``t``."""
    seen: set[Any] = set()
    leaves: set[int] = set()
    stack = [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: the leaf it accumulates into
        if variable is not None:
            leaves.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves
