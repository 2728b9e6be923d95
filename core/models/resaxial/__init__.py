"""ResAxial (Monnier, Guo, Correia & Vandergheynst): min-max normalised C-alpha distance
map -> residual U-Net with attention gates -> axial attention -> RMSF + correlation map.

- :mod:`.model`: the network and batching;
- :mod:`.loss`: the joint / single-target MSE losses;
- :mod:`.predictor`: ``predict_resaxial`` (a ProteinChain -> isotropic Dynamics).
"""

from .model import *  # noqa: F401,F403  (the model's public names, as before the split)
from .model import __all__ as _model_all

__all__ = list(_model_all)
