"""Direct Feedback Alignment for PyTorch models, the feedback projected by an OPU (or digitally).

>>> from opu_hal import OPU
>>> from opu_hal.dfa import DFA, DFALayer
>>> markers = [DFALayer(), DFALayer()]
>>> dfa = DFA(markers, mode="optical", opu=OPU("emu://", n_components=1, seed=0))
>>> # in the model's forward: h1 = markers[0](act(fc1(x))); ...; out = dfa(fc3(h2))
>>> dfa.mode = "bp"   # or "digital", "output": no change to the model code

See :mod:`opu_hal.dfa.layers` for the API, :mod:`opu_hal.dfa.encoding` for the error
encodings of the optical feedback, ``benchmarks/dfa.py`` (``opu-hal bench dfa``) and
``examples/dfa_*.py`` for training runs. Requires the ``torch`` extra.
"""

from .alignment import alignment
from .encoding import BitPlanes, ErrorEncoder, StochasticRounding, ThresholdTernary, make_encoder
from .feedback import DigitalFeedback, Feedback, FeedbackStats, OpticalFeedback
from .layers import DFA, MODES, DFALayer, Mode

__all__ = [
    "DFA",
    "MODES",
    "BitPlanes",
    "DFALayer",
    "DigitalFeedback",
    "ErrorEncoder",
    "Feedback",
    "FeedbackStats",
    "Mode",
    "OpticalFeedback",
    "StochasticRounding",
    "ThresholdTernary",
    "alignment",
    "make_encoder",
]
