"""Annotated structure files: B-factors, ANISOU, ensembles (PDB and mmCIF, via gemmi).

- B-factor of every atom of residue i: (8 pi^2 / 3) tr(Sigma_i) in Å².
- Anisotropic U of the C-alpha (optionally every atom of the residue): Sigma_i in
  Å²; gemmi writes PDB ANISOU as U x 10^4 in the order U11 U22 U33 U12 U13 U23,
  and mmCIF as ``_atom_site_anisotrop``.  PyMOL (``show ellipsoids``) and
  ChimeraX (``aniso``) draw these.
- A REMARK 250 block (PDB) or a ``_dynaprot_viz`` category (mmCIF) names the model.
- Ensembles: one MODEL per sample, C-alpha atoms only (the samples are C-alpha
  positions; moving side chains rigidly would invent geometry).

All writers are atomic: the file appears whole or not at all.
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import numpy as np

from .core.errors import InputError
from .core.gaussian import ANISOU_SCALE, Dynamics, anisou_from_marginals
from .core.structure import load_structure
from ._io import atomic_write_text

__all__ = [
    "annotated_structure",
    "ensemble_structure",
    "pdb_chain_name_map",
    "pdb_string",
    "remark_lines",
    "write_annotated",
    "write_ensemble",
]

_PDB_CHAIN_MAX = 2  # columns 21-22 of a PDB ATOM record (gemmi writes up to two characters)
_SPARE_CHAIN_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def pdb_chain_name_map(names) -> dict:
    """PDB-safe chain ids for chain names (e.g. MD segids like ``"4AKE"``).

    Names of at most two characters are kept; longer ones get the first unused
    single character.  Returns {name: written id} for every distinct name.
    """
    names = list(dict.fromkeys(names))
    used = {n for n in names if len(n) <= _PDB_CHAIN_MAX}
    spare = (c for c in _SPARE_CHAIN_IDS if c not in used)
    out = {}
    for n in names:
        if len(n) <= _PDB_CHAIN_MAX:
            out[n] = n
        else:
            try:
                out[n] = next(spare)
            except StopIteration:
                raise InputError("too many chains with long names for the PDB format; write mmCIF (.cif)") from None
    return out


def pdb_string(st) -> str:
    """PDB text of a gemmi.Structure, long chain names shortened by :func:`pdb_chain_name_map`
    (a REMARK 250 line records each renaming)."""
    mapping = pdb_chain_name_map(ch.name for model in st for ch in model)
    renamed = {k: v for k, v in mapping.items() if k != v}
    if renamed:
        st = st.clone()
        for old, new in renamed.items():
            st.rename_chain(old, new)
        st.raw_remarks = list(st.raw_remarks) + [
            f"REMARK 250 chain {old} written as {new} (PDB chain ids have at most 2 characters)"[:80]
            for old, new in renamed.items()
        ]
    return st.make_pdb_string()

_PDB_BFACTOR_MAX = 999.99  # the PDB B-factor column is %6.2f
_PDB_ANISOU_MAX = 9_999_999  # 7 columns of integers (U x 10^4)
_PDB_ANISOU_MIN_ABS = 999_999  # a negative value spends one column on the sign


def remark_lines(dynamics: Dynamics, extra: str = "", anisou_on: str = "C-alpha atoms") -> list[str]:
    """PDB REMARK 250 lines saying which model produced the annotations."""
    from . import __version__

    today = datetime.date.today().isoformat()
    text = [
        f"dynaprot-viz {__version__} annotations, {today}",
        f"model: {dynamics.model_name}{' (isotropic)' if dynamics.isotropic else ''}",
        "B-factor = 8 pi^2/3 tr(Sigma_i) (A^2) on every atom of residue i",
        f"ANISOU = Sigma_i (A^2 x 10^4) on {anisou_on}",
    ]
    if extra:
        text.append(extra)
    return [f"REMARK 250 {t[:68]}" for t in text]


def _residue_key(chain: str, res) -> tuple:
    return (chain, int(res.seqid.num), res.seqid.icode.strip())


def _annotated_residue(res, alt: str, b: float, u6, whole_residue_anisou: bool):
    """A copy of residue ``res`` (conformer ``alt`` only) with B-factor ``b`` (Å²) on
    every atom and U ``u6`` (PDB order, Å²) on its C-alpha (or every atom)."""
    import gemmi

    from .core.structure import conformer_atoms

    new_res = gemmi.Residue()
    new_res.name, new_res.seqid, new_res.het_flag = res.name, res.seqid, res.het_flag
    new_res.entity_type = gemmi.EntityType.Polymer
    new_res.subchain, new_res.label_seq = res.subchain, res.label_seq
    for atom in conformer_atoms(res, alt):
        a = gemmi.Atom()
        a.name, a.element, a.pos, a.occ = atom.name, atom.element, atom.pos, atom.occ
        a.charge, a.serial = atom.charge, atom.serial
        a.b_iso = float(b)
        if atom.name == "CA" or whole_residue_anisou:
            a.aniso = gemmi.SMat33f(*map(float, u6))
        new_res.add_atom(a)
    return new_res


def annotated_structure(dynamics: Dynamics, source, whole_residue_anisou: bool = False,
                        whole_input: bool = False):
    """A gemmi.Structure with the predicted residues' B-factors and U tensors.

    Parameters
    ----------
    dynamics : Dynamics
    source : path or gemmi.Structure
        The structure the dynamics were predicted from.
    whole_residue_anisou : bool
        Put Sigma_i on every atom of residue i, not only on the C-alpha.
    whole_input : bool
        False (default, what the views draw): the predicted residues only.  True
        (what :func:`write_annotated` writes): the whole first model of ``source``,
        every chain, ligand, nucleic acid and water in its place, the atoms of
        residues that were not predicted left as they were (B, ANISOU, altlocs).

    Returns
    -------
    gemmi.Structure
        First model.  Each predicted residue i holds one conformer (the one the
        prediction used), every atom with B = (8 pi^2/3) tr(Sigma_i) Å² and the
        C-alpha (or every atom) with U = Sigma_i Å²; its other U tensors are cleared.

    Raises
    ------
    InputError
        A residue of ``dynamics`` is absent from ``source``.
    """
    import gemmi

    from .core.structure import conformer_groups, select_conformer

    st = load_structure(source)
    wanted = {(r.chain, r.number, r.icode): i for i, r in enumerate(dynamics.residues)}
    bfac = dynamics.bfactors
    u6 = anisou_from_marginals(dynamics.marginals)
    if whole_input:
        out = st.clone()
        while len(out) > 1:
            del out[len(out) - 1]
    else:
        out = gemmi.Structure()
        out.cell = st.cell
        out.spacegroup_hm = st.spacegroup_hm
    model = gemmi.Model("1")
    found = set()
    for chain in st[0]:
        new_chain = None
        for group in conformer_groups(chain):
            key = _residue_key(chain.name, group[0])
            predicted = key in wanted and key not in found
            if not predicted and not whole_input:
                continue
            if new_chain is None:
                new_chain = gemmi.Chain(chain.name)
            if not predicted:  # whole_input: kept as it was
                for res in group:
                    new_chain.add_residue(res)
                continue
            i = wanted[key]
            res, alt = select_conformer(group)
            new_chain.add_residue(_annotated_residue(res, alt, bfac[i], u6[i], whole_residue_anisou))
            found.add(key)
        if new_chain is not None:
            model.add_chain(new_chain)
    missing = [dynamics.residues[i].label() for k, i in wanted.items() if k not in found]
    if missing:
        raise InputError(
            f"{getattr(source, 'name', source)}: {len(missing)} predicted residues are not in the structure "
            f"(first: {missing[0]}); was it predicted from another file?"
        )
    if whole_input:  # the clone keeps the input's cell, entities and metadata; its chains are replaced
        first = out[0]
        while len(first):
            del first[0]
        for ch in model:
            first.add_chain(ch)
        out.setup_entities()
        return out
    out.add_model(model)
    out.setup_entities()
    return out


def _pdb_limits(dynamics: Dynamics):
    """What the PDB columns cannot hold: B-factors above 999.99 Å² (``%6.2f``) and U
    tensors with a component outside the 7-character ANISOU field (U x 10^4 as an
    integer in ``-999999 .. 9999999``).

    Returns
    -------
    b_over : ndarray of int
        Indices of residues whose B-factor is capped at 999.99 Å².
    u_scale : ndarray, shape (N,)
        Factor (<= 1) applied to each residue's U tensor so that every component fits;
        1 where it already does.  A uniform factor keeps the tensor positive definite
        and the ellipsoid's shape and orientation (only its size shrinks).
    """
    b_over = np.flatnonzero(dynamics.bfactors > _PDB_BFACTOR_MAX)
    u = anisou_from_marginals(dynamics.marginals) * ANISOU_SCALE  # (N, 6), Å² x 10^4
    top = np.max(u, axis=1) / _PDB_ANISOU_MAX
    bottom = -np.min(u, axis=1) / _PDB_ANISOU_MIN_ABS
    need = np.maximum(np.maximum(top, bottom), 1.0)
    return b_over, 1.0 / need


def _labels(dynamics: Dynamics, idx, first: int = 3) -> str:
    names = ", ".join(dynamics.residues[i].label().lstrip(":") for i in idx[:first])
    return names + (f" and {len(idx) - first} more" if len(idx) > first else "")


def _cap_for_pdb(st, dynamics: Dynamics) -> None:
    """Cap what the PDB columns cannot hold in ``st`` (see :func:`_pdb_limits`), in place,
    with one warning naming the residues; warn about U values that round to 0."""
    b_over, u_scale = _pdb_limits(dynamics)
    u_over = np.flatnonzero(u_scale < 1.0)
    if len(b_over) or len(u_over):
        for chain in st[0]:
            for res in chain:
                for a in res:
                    if a.b_iso > _PDB_BFACTOR_MAX:
                        a.b_iso = _PDB_BFACTOR_MAX
                    if a.aniso.nonzero():
                        u6 = np.array(a.aniso.elements_pdb(), dtype=np.float64) * ANISOU_SCALE
                        f = min(1.0, _PDB_ANISOU_MAX / max(u6.max(), 1e-300),
                                _PDB_ANISOU_MIN_ABS / max(-u6.min(), 1e-300))
                        if f < 1.0:
                            # rounds to integers of U x 10^4: shrink a hair more so rounding stays inside
                            f *= 1.0 - 1e-6
                            a.aniso = _smat(u6 * f / ANISOU_SCALE)
        parts = []
        if len(b_over):
            parts.append(f"B-factors of {len(b_over)} residue(s) capped at {_PDB_BFACTOR_MAX} Å² "
                         f"({_labels(dynamics, b_over)}; largest {dynamics.bfactors.max():.0f} Å²)")
        if len(u_over):
            parts.append(f"U tensors of {len(u_over)} residue(s) scaled down to fit ANISOU records "
                         f"({_labels(dynamics, u_over)})")
        warnings.warn("PDB output: " + " and ".join(parts) + "; the PDB columns cannot hold more: the "
                      "uncapped values are in the .dynamics.npz and in mmCIF output (.cif; predict --cif)",
                      stacklevel=3)
    diag = np.diagonal(dynamics.marginals, axis1=1, axis2=2) * ANISOU_SCALE
    if np.any(diag < 0.5):
        warnings.warn(
            "some U values are below 1e-4 Å² and round to 0 in PDB ANISOU records; "
            "ellipsoids of those residues will not be drawn", stacklevel=3,
        )


def _smat(u6):
    """A gemmi.SMat33f from U in PDB order U11 U22 U33 U12 U13 U23 (Å²)."""
    import gemmi

    return gemmi.SMat33f(*map(float, u6))


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".cif", ".mmcif", ".cif.gz", ".mmcif.gz")):
        return "cif"
    if name.endswith((".pdb", ".ent", ".pdb.gz")):
        return "pdb"
    raise InputError(f"{path}: unknown output format; use a .pdb or .cif name")


def _structure_text(st, fmt: str, remarks: list[str], dynamics: Dynamics) -> str:
    if fmt == "pdb":
        st.raw_remarks = remarks
        return pdb_string(st)
    doc = st.make_mmcif_document()
    block = doc.sole_block()
    block.set_pair("_dynaprot_viz.model_name", dynamics.model_name)
    block.set_pair("_dynaprot_viz.isotropic", "yes" if dynamics.isotropic else "no")
    block.set_pair("_dynaprot_viz.bfactor_definition", "'8 pi^2/3 tr(Sigma_i), A^2'")
    block.set_pair("_dynaprot_viz.anisou_definition", "'Sigma_i in A^2 on C-alpha atoms'")
    return doc.as_string()


def write_annotated(dynamics: Dynamics, source, path, whole_residue_anisou: bool = False) -> Path:
    """Write the annotated structure (see :func:`annotated_structure`) to ``path``.

    The whole input is kept (``whole_input=True``): every chain, ligand, nucleic acid
    and water of the first model, with B and ANISOU set on the predicted residues and
    left as they were elsewhere.  The format follows the name: ``.pdb`` or ``.cif`` (``.gz`` not supported
    for output).  Returns the path.

    mmCIF holds every value as predicted.  PDB's fixed columns cannot: B-factors
    above 999.99 Å² are written as 999.99 and U tensors with a component outside
    the ANISOU field (U x 10^4 in 7 characters) are scaled down to fit, with one
    warning naming the residues; the true values stay in the ``.npz`` and in mmCIF.
    """
    path = Path(path)
    fmt = _format_of(path)
    if path.name.lower().endswith(".gz"):
        raise InputError(f"{path}: gzipped output is not supported; drop the .gz")
    st = annotated_structure(dynamics, source, whole_residue_anisou, whole_input=True)
    if fmt == "pdb":
        _cap_for_pdb(st, dynamics)
    scope = "all atoms of residue i" if whole_residue_anisou else "C-alpha atoms"
    return atomic_write_text(path, _structure_text(st, fmt, remark_lines(dynamics, anisou_on=scope), dynamics))


def ensemble_structure(dynamics: Dynamics, samples: np.ndarray):
    """A multi-model gemmi.Structure of C-alpha atoms, one model per sample.

    Parameters
    ----------
    dynamics : Dynamics
        Supplies the residue ids.
    samples : ndarray, shape (K, N, 3), Å
    """
    import gemmi

    samples = np.asarray(samples, dtype=np.float64)
    n = dynamics.n_residues
    if samples.ndim != 3 or samples.shape[1:] != (n, 3):
        raise InputError(f"samples must have shape (K, {n}, 3), got {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise InputError("samples contain NaN or infinite coordinates")
    st = gemmi.Structure()
    for k, xyz in enumerate(samples):
        model = gemmi.Model(str(k + 1))
        chains: dict[str, gemmi.Chain] = {}
        for r, pos in zip(dynamics.residues, xyz):
            if r.chain not in chains:
                chains[r.chain] = gemmi.Chain(r.chain)
            res = gemmi.Residue()
            res.name = r.name
            res.seqid = gemmi.SeqId(r.number, r.icode or " ")
            res.entity_type = gemmi.EntityType.Polymer
            a = gemmi.Atom()
            a.name, a.element, a.occ = "CA", gemmi.Element("C"), 1.0
            a.pos = gemmi.Position(*pos)
            res.add_atom(a)
            chains[r.chain].add_residue(res)
        for ch in chains.values():
            model.add_chain(ch)
        st.add_model(model)
    st.setup_entities()
    return st


def write_ensemble(dynamics: Dynamics, samples: np.ndarray, path) -> Path:
    """Write samples as a multi-model file (``.pdb`` or ``.cif``); returns the path."""
    path = Path(path)
    fmt = _format_of(path)
    st = ensemble_structure(dynamics, samples)
    extra = f"ensemble: {len(samples)} samples of X ~ N(mean, Sigma_joint), C-alpha only"
    remarks = [line for line in remark_lines(dynamics, extra) if "B-factor" not in line and "ANISOU" not in line]
    return atomic_write_text(path, _structure_text(st, fmt, remarks, dynamics))
