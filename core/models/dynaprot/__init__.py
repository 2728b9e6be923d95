"""DynaProt (Bafna, Jing & Berger 2026): DynaProt-M (IPA on backbone frames -> per-residue
3x3 marginals) and DynaProt-J (Evoformer-style pair blocks -> N x N coupling).

- :mod:`.model`: the networks, featurisation and batching (DESIGN.md section 3);
- :mod:`.loss`: the log-Euclidean loss on SPD matrices;
- :mod:`.predictor`: ``predict_dynaprot`` (a ProteinChain -> Dynamics) with the shipped weights.

The shared layers (:mod:`..primitives`, :mod:`..ipa`, :mod:`..pair`) live beside this package.
"""

from .model import *  # noqa: F401,F403  (the model's public names, as before the split)
from .model import __all__ as _model_all

__all__ = list(_model_all)
