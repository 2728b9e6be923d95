"""The public entry point: a structure in, :class:`Dynamics` out (DESIGN.md section 6)."""

from __future__ import annotations

from .core.errors import InputError
from .core.gaussian import Dynamics
from .core.predictors import get_predictor, resolve_model
from .core.structure import ProteinChain, load_chain

__all__ = ["predict", "as_chain"]


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
    predictor = get_predictor(resolve_model(model))
    return predictor(as_chain(source, chain), **options)
