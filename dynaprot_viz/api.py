"""The public entry point: a structure in, :class:`Dynamics` out (DESIGN.md section 6)."""

from __future__ import annotations

from .core.errors import InputError
from .core.gaussian import Dynamics, stack_dynamics
from .core.predictors import get_predictor, resolve_model
from .core.structure import ProteinChain, load_chain, load_chains, parse_chain_selection

__all__ = ["predict", "as_chain", "MIN_RESIDUES", "WARN_RESIDUES", "ONE_NETWORK_MODELS", "PER_CHAIN_SUFFIX"]

#: models that take a complex (residues of several chains) as one network, inter-chain
#: coupling included: ANM (one Hessian on every selected C-alpha) and ANM-GBM (that ANM,
#: its per-residue features computed per chain).  Every other model is run chain by chain
#: and the chains stacked, with a warning that inter-chain coupling is absent (0).
ONE_NETWORK_MODELS = frozenset({"anm", "anm-gbm"})
#: appended to the model_name of a complex predicted chain by chain (no inter-chain coupling)
PER_CHAIN_SUFFIX = "+per-chain"

#: below this many residues a chain is refused: 3N - 6 internal degrees of freedom of a
#: handful of C-alpha atoms describe no protein motion any of the models can speak to
MIN_RESIDUES = 5
#: below this many residues a prediction is made with a warning: no model was trained or
#: validated on chains this short (ANM's network is nearly fully connected, the learned
#: models saw >= 34 residues)
WARN_RESIDUES = 20


def as_chain(source, chain=None) -> ProteinChain:
    """A :class:`ProteinChain` from a path, a gemmi.Structure or a ProteinChain.

    ``chain`` as :func:`dynaprot_viz.core.structure.load_chains`: one name, ``"A,B"``,
    ``["A", "B"]`` or ``"all"`` (several chains give one ProteinChain spanning them)."""
    names = parse_chain_selection(chain)
    if isinstance(source, ProteinChain):
        if names is not None and names != ["all"] and tuple(names) != source.chain_ids:
            raise InputError(f"chain {chain!r} requested but the given ProteinChain holds chain(s) "
                             f"{','.join(source.chain_ids)!r}")
        return source
    if names is None or (len(names) == 1 and names[0] != "all"):
        return load_chain(source, chain=None if names is None else names[0])
    return load_chains(source, names)


def _stack_chains(protein: ProteinChain, predictor, model: str, **options) -> Dynamics:
    """Predict each chain of ``protein`` alone and stack them: marginals (N, 3, 3) Å² per
    chain, coupling (N, N) Å² block-diagonal (0 between chains), with one warning."""
    import warnings

    parts = [predictor(protein.subset(sl), **options) for _, sl in protein.chain_slices()]
    warnings.warn(f"{protein.source}: {model} runs on one chain at a time; the chains "
                  f"{','.join(protein.chain_ids)} were predicted separately and their inter-chain "
                  "coupling is absent (0); --model anm couples the whole complex", UserWarning, stacklevel=3)
    names = {d.model_name for d in parts}
    # the output's own record of it (saved in the .npz, shown in every legend and title)
    return stack_dynamics(parts, f"{names.pop() if len(names) == 1 else model}{PER_CHAIN_SUFFIX}")


def predict(source, model: str | None = None, chain=None, **options) -> Dynamics:
    """Predict residue-level Gaussian dynamics of one chain or of a complex.

    Parameters
    ----------
    source : str, os.PathLike, gemmi.Structure or ProteinChain
        PDB or mmCIF file (gzipped or not) or a loaded structure.
    model : str, optional
        A registered predictor: ``"anm"``, ``"dynaprot"``, ``"resaxial"``, ...
        (:func:`dynaprot_viz.available_models`).  None (default): the model that wins
        the shipped held-out evaluation (:func:`dynaprot_viz.default_model`; ANM
        until a learned model beats it on every held-out set).
    chain : str or list of str, optional
        Chain name; default the first protein chain.  Several chains (a complex):
        ``"A,B"``, ``["A", "B"]`` or ``"all"`` (every protein chain).  ANM (and
        ANM-GBM) then treat the complex as one network, inter-chain coupling
        included (:data:`ONE_NETWORK_MODELS`); other models run chain by chain with
        a warning that the inter-chain coupling is absent (0).  Residue ids carry
        their chain.
    **options
        Passed to the predictor (for ANM: ``cutoff``, ``gamma``, ``scale``).

    Returns
    -------
    Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å²; N = all
        selected residues, chains in the order selected.
    """
    import warnings

    model = resolve_model(model)
    predictor = get_predictor(model)
    protein = as_chain(source, chain)
    n = len(protein)
    if protein.is_complex:
        small = [(c, sl.stop - sl.start) for c, sl in protein.chain_slices() if sl.stop - sl.start < MIN_RESIDUES]
        if small and model not in ONE_NETWORK_MODELS:
            c, k = small[0]
            raise InputError(f"{protein.source}: chain {c!r} has {k} residues; {model} runs chain by chain and "
                             f"needs at least {MIN_RESIDUES} per chain (leave it out of the selection)")
        if model not in ONE_NETWORK_MODELS:
            return _stack_chains(protein, predictor, model, **options)
        return predictor(protein, **options)
    if n < MIN_RESIDUES:
        raise InputError(f"{protein.source}: chain {protein.chain_id!r} has {n} residues; dynamics need at "
                         f"least {MIN_RESIDUES} (a peptide this short has no protein-like motion to predict)")
    if n < WARN_RESIDUES:
        warnings.warn(f"{protein.source}: chain {protein.chain_id!r} has only {n} residues; predictions below "
                      f"{WARN_RESIDUES} residues are rough (no model was validated on chains this short)",
                      stacklevel=2)
    return predictor(protein, **options)
