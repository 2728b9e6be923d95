"""dynaprot_viz.core.models: the learned models, one sub-package each, and shared layers.

::

    dynaprot/      DynaProt-M + J: model.py, loss.py, predictor.py
    resaxial/      ResAxial: model.py, loss.py, predictor.py
    anm_gbm.py     ANM corrected per residue by gradient-boosted trees (numpy only)
    primitives.py, ipa.py, pair.py    shared torch layers (Linear, frames, IPA, pair blocks)
    inference.py   shared by the torch predictors: device, length limit, preview warning

Importing this package imports nothing heavy; the names below (DynaProt's, as before the
split) load torch on first use.
"""

import importlib

_LAZY = {
    "DynaProt": ".dynaprot.model", "DynaProtConfig": ".dynaprot.model", "DynaProtJ": ".dynaprot.model",
    "DynaProtM": ".dynaprot.model", "collate": ".dynaprot.model", "count_parameters": ".dynaprot.model",
    "featurize": ".dynaprot.model", "featurize_arrays": ".dynaprot.model",
    "dynaprot_loss": ".dynaprot.loss", "log_euclidean_loss": ".dynaprot.loss", "mse_loss": ".dynaprot.loss",
    "spd_logm": ".dynaprot.loss",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
