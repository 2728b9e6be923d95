"""dynaprot_viz.core: structures, Gaussian maths, ANM, models, predictors, metrics.

Imports numpy, scipy and gemmi only (torch lazily, inside the model modules).
"""

from .anm import anm_covariance, anm_hessian, predict_anm
from .errors import InputError, ShapeError
from .gaussian import Dynamics, anisou_from_marginals, bfactors_from_marginals
from .predictors import available_models, get_predictor, register_predictor
from .structure import ProteinChain, Residue, load_chain, load_structure

__all__ = [
    "Dynamics",
    "InputError",
    "ProteinChain",
    "Residue",
    "ShapeError",
    "anisou_from_marginals",
    "anm_covariance",
    "anm_hessian",
    "available_models",
    "bfactors_from_marginals",
    "get_predictor",
    "load_chain",
    "load_structure",
    "predict_anm",
    "register_predictor",
]
