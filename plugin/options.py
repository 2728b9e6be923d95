"""Shared by the PyMOL and ChimeraX adapters: option checking and the prediction job.

Viewer commands receive their arguments as strings (PyMOL) or loosely typed
values (ChimeraX); :func:`parse_options` turns them into one checked
:class:`ViewerOptions`.  :func:`compute` is the viewer-free part of a run
(structure file -> Dynamics, sampled ensemble, pocket patches); it touches no
viewer state, so a dialog can run it on a worker thread.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError

__all__ = [
    "ViewerOptions",
    "PredictionResult",
    "parse_options",
    "default_model",
    "ellipsoid_scale",
    "residue_index",
    "compute",
    "MAX_SAMPLES",
]

#: upper bound on --samples in the viewers (K x N x 3 floats are loaded as states)
MAX_SAMPLES = 1000


def default_model() -> str:
    """The package's default model (:func:`dynaprot_viz.core.predictors.default_model`:
    the winner of the shipped held-out evaluation, ANM until a learned model beats it)."""
    from ..core.predictors import default_model as _default

    return _default()


def ellipsoid_scale(probability: float) -> float:
    """Mahalanobis radius sqrt(chi2_3.ppf(p)) of the ellipsoid enclosing probability p.

    Radii of the drawn ellipsoid are this factor times the RMS displacements
    (square roots of the eigenvalues of Sigma_i, Å).  p = 0.5 gives 1.5382,
    ChimeraX's documented ``aniso`` scale for 50 %; PyMOL applies the same rule
    through its ``ellipsoid_probability`` setting.
    """
    from ..geometry import mahalanobis_radius

    return mahalanobis_radius(probability)


@dataclass(frozen=True)
class ViewerOptions:
    """Checked options of the ``dynaprot`` viewer command.

    model : str
        A registered predictor name.
    probability : float in (0, 1)
        Probability enclosed by each drawn ellipsoid.
    samples : int >= 0
        Size K of the sampled ensemble (0: none).
    palette : str
        Viewer colour palette for RMSF (checked by the viewer adapter).
    chain : str or None
        Chain(s) to predict (``"A"``, ``"A,B"``, ``"all"``); None: every protein chain
        of the selection, as one complex when there are several.
    seed : int
        Random seed of the ensemble.
    weights : str or None
        Learned models only: a weights file from ``dynaprot-viz train --export``
        instead of the shipped weights.
    """

    model: str
    probability: float = 0.5
    samples: int = 0
    palette: str = ""
    chain: str | None = None
    seed: int = 0
    weights: str | None = None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def parse_options(model=None, probability=0.5, samples=0, palette="", chain=None, seed=0,
                  weights=None) -> ViewerOptions:
    """Check the command's options; strings are accepted for every argument.

    Raises
    ------
    InputError
        With a one-line message naming the argument, what was expected and what came.
    """
    from ..core.predictors import available_models

    name = _text(model) or default_model()
    if name not in available_models():
        raise InputError(f"model must be one of {', '.join(available_models())}; got {name!r}")
    try:
        p = float(_text(probability) or 0.5)
    except ValueError:
        raise InputError(f"probability must be a number between 0 and 1, got {probability!r}") from None
    if not (math.isfinite(p) and 0.0 < p < 1.0):
        raise InputError(f"probability must be between 0 and 1 (exclusive), got {probability!r}")
    text = _text(samples) or "0"
    try:
        k = int(float(text)) if float(text).is_integer() else None
    except ValueError:
        k = None
    if k is None or k < 0 or k > MAX_SAMPLES:
        raise InputError(f"samples must be a whole number from 0 to {MAX_SAMPLES}, got {samples!r}")
    try:
        s = int(_text(seed) or 0)
    except ValueError:
        raise InputError(f"seed must be an integer, got {seed!r}") from None
    ch = _text(chain) or None
    w = _text(weights) or None
    if w is not None:
        from ..core.predictors import accepts_option

        if not accepts_option(name, "weights"):
            raise InputError(f"weights apply only to the learned models (dynaprot, resaxial), not to {name}")
        if not os.path.isfile(w):
            raise InputError(f"weights file {w!r} not found")
    return ViewerOptions(model=name, probability=p, samples=k, palette=_text(palette), chain=ch, seed=s, weights=w)


def residue_index(dynamics) -> dict:
    """``{(chain, number, icode): i}`` for the residues of a Dynamics (icode ``""`` when none)."""
    return {(r.chain, int(r.number), r.icode.strip()): i for i, r in enumerate(dynamics.residues)}


@dataclass(frozen=True, eq=False)
class PredictionResult:
    """What a viewer needs to show one prediction.

    dynamics : Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å².
    ensemble : ndarray, shape (K, N, 3), Å, or None
        Sampled C-alpha conformations.
    pockets : list[Pocket]
        Candidate pocket patches, best first (indices into ``dynamics.residues``).
    annotated_pdb : str
        PDB text of the predicted residues with B = (8 pi^2/3) tr Sigma_i and
        ANISOU = Sigma_i on C-alpha atoms (:func:`dynaprot_viz.export.write_annotated`).
    ensemble_pdb : str
        Multi-model PDB text of ``ensemble`` (empty when K = 0).
    options : ViewerOptions
    """

    dynamics: object
    ensemble: np.ndarray | None
    pockets: list
    annotated_pdb: str
    ensemble_pdb: str
    options: ViewerOptions
    warnings: list = field(default_factory=list)


def compute(pdb_text: str, options: ViewerOptions) -> PredictionResult:
    """Predict from PDB text exported by a viewer; no viewer state is touched.

    Parameters
    ----------
    pdb_text : str
        A PDB file's text (what ``cmd.get_pdbstr`` or the ChimeraX adapter writes).
    options : ViewerOptions

    Returns
    -------
    PredictionResult
    """
    import warnings

    from ..api import predict
    from ..core.pockets import find_pockets
    from ..export import write_annotated, write_ensemble

    if not pdb_text.strip():
        raise InputError("the selection holds no atoms")
    with tempfile.TemporaryDirectory(prefix="dynaprot-") as tmp:
        src = os.path.join(tmp, "selection.pdb")
        with open(src, "w", encoding="utf-8") as fh:
            fh.write(pdb_text)
        extra = {}
        if options.weights:
            extra["weights"] = options.weights
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chain = options.chain
            if chain is None:
                # a selection spanning several protein chains is one complex (issue 14)
                from ..core.structure import load_structure, protein_chain_names

                if len(protein_chain_names(load_structure(src))) > 1:
                    chain = "all"
            dyn = predict(src, model=options.model, chain=chain, **extra)
            ann = os.path.join(tmp, "annotated.pdb")
            write_annotated(dyn, src, ann)
            with open(ann, encoding="utf-8") as fh:
                annotated = fh.read()
            ensemble, ens_text = None, ""
            if options.samples:
                ensemble = dyn.sample(options.samples, seed=options.seed)
                ens = os.path.join(tmp, "ensemble.pdb")
                write_ensemble(dyn, ensemble, ens)
                with open(ens, encoding="utf-8") as fh:
                    ens_text = fh.read()
            pockets = find_pockets(dyn)
    return PredictionResult(
        dynamics=dyn, ensemble=ensemble, pockets=list(pockets), annotated_pdb=annotated,
        ensemble_pdb=ens_text, options=options, warnings=[str(w.message) for w in caught],
    )
