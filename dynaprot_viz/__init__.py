"""dynaprot-viz: residue-level protein dynamics as Gaussians, shown where you work.

>>> import dynaprot_viz as dv
>>> dyn = dv.predict("examples/data/1ubi.pdb", model="anm")
>>> dyn.rmsf.shape
(76,)
"""

__version__ = "0.1.0"

from .api import as_chain, predict
from .core.compare import DynamicsComparison, compare
from .core.errors import InputError
from .core.gaussian import Dynamics
from .core.pockets import Pocket, find_pockets
from .core.predictors import available_models, default_model, register_predictor
from .core.structure import ProteinChain, Residue, load_chain
from .export import write_annotated, write_ensemble
from .figure import make_figure
from .widget import view
from .compare_view import view_compare
from .batch import open_store, predict_many  # dask/zarr/pandas imported on first use (`batch` extra)

__all__ = [
    "Dynamics",
    "DynamicsComparison",
    "InputError",
    "Pocket",
    "ProteinChain",
    "Residue",
    "__version__",
    "as_chain",
    "available_models",
    "compare",
    "default_model",
    "find_pockets",
    "load_chain",
    "make_figure",
    "open_store",
    "predict",
    "predict_many",
    "register_predictor",
    "view",
    "view_compare",
    "write_annotated",
    "write_ensemble",
]
