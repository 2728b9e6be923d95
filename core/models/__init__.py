"""dynaprot_viz.core.models: DynaProt-M and DynaProt-J (torch), their loss and predictor.

Importing this package imports torch; ``dynaprot_viz.core`` itself does not.
"""

from .dynaprot import DynaProt, DynaProtConfig, DynaProtJ, DynaProtM, collate, count_parameters, featurize, featurize_arrays
from .loss import dynaprot_loss, log_euclidean_loss, mse_loss, spd_logm

__all__ = [
    "DynaProt",
    "DynaProtConfig",
    "DynaProtJ",
    "DynaProtM",
    "collate",
    "count_parameters",
    "dynaprot_loss",
    "featurize",
    "featurize_arrays",
    "log_euclidean_loss",
    "mse_loss",
    "spd_logm",
]
