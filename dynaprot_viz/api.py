"""The public entry point: a structure in, :class:`Dynamics` out (DESIGN.md section 6)."""

from __future__ import annotations

from .core.errors import InputError
from .core.gaussian import Dynamics
from .core.predictors import get_predictor, resolve_model
from .core.structure import ProteinChain, load_chain

__all__ = ["predict", "as_chain", "MIN_RESIDUES", "WARN_RESIDUES"]

#: below this many residues a chain is refused: 3N - 6 internal degrees of freedom of a
#: handful of C-alpha atoms describe no protein motion any of the models can speak to
MIN_RESIDUES = 5
#: below this many residues a prediction is made with a warning: no model was trained or
#: validated on chains this short (ANM's network is nearly fully connected, the learned
#: models saw >= 34 residues)
WARN_RESIDUES = 20


def as_chain(source, chain: str | None = None) -> ProteinChain:
    """A :class:`ProteinChain` from a path, a gemmi.Structure or a ProteinChain."""
    if isinstance(source, ProteinChain):
        if chain is not None and chain != source.chain_id:
            raise InputError(f"chain {chain!r} requested but the given ProteinChain is chain {source.chain_id!r}")
        return source
    return load_chain(source, chain=chain)


def predict(source, model: str | None = None, chain: str | None = None, **options) -> Dynamics:
    """Predict residue-level Gaussian dynamics of one chain.

    Parameters
    ----------
    source : str, os.PathLike, gemmi.Structure or ProteinChain
        PDB or mmCIF file (gzipped or not) or a loaded structure.
    model : str, optional
        A registered predictor: ``"anm"``, ``"dynaprot"``, ``"resaxial"``, ...
        (:func:`dynaprot_viz.available_models`).  None (default): the model that wins
        the shipped held-out evaluation (:func:`dynaprot_viz.default_model`; ANM
        until a learned model beats it on every held-out set).
    chain : str, optional
        Chain name; default the first protein chain.
    **options
        Passed to the predictor (for ANM: ``cutoff``, ``gamma``, ``scale``).

    Returns
    -------
    Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å².
    """
    import warnings

    predictor = get_predictor(resolve_model(model))
    protein = as_chain(source, chain)
    n = len(protein)
    if n < MIN_RESIDUES:
        raise InputError(f"{protein.source}: chain {protein.chain_id!r} has {n} residues; dynamics need at "
                         f"least {MIN_RESIDUES} (a peptide this short has no protein-like motion to predict)")
    if n < WARN_RESIDUES:
        warnings.warn(f"{protein.source}: chain {protein.chain_id!r} has only {n} residues; predictions below "
                      f"{WARN_RESIDUES} residues are rough (no model was validated on chains this short)",
                      stacklevel=2)
    return predictor(protein, **options)
