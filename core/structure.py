"""Reading one protein chain from a PDB or mmCIF file (plain or gzipped) with gemmi.

The result, :class:`ProteinChain`, holds what every predictor needs: residue ids,
sequence, backbone N/CA/C coordinates (Å) and the per-residue local frames.

Rules (DESIGN.md section 6, issue "core library"):

- first model only (a warning when there are several);
- chain: the one named, else the first chain with amino-acid residues;
- alternate locations: per position, the altloc with the highest mean occupancy
  (ties: the earlier letter), atoms without altloc always kept; under
  microheterogeneity (two residue names at one position) the residue carrying
  that altloc's C-alpha is used (:func:`select_conformer`);
- modified amino acids (MSE, SEP, ...) kept and mapped to their parent for the
  sequence; waters, ligands and nucleotides ignored;
- residues without a C-alpha are dropped with a warning; residues missing N or C
  keep NaN there and :meth:`ProteinChain.frames` refuses them, unless asked for
  ``approximate=True``: those residues (only those) then get frames built from
  the C-alpha trace (:func:`ca_trace_frames`, construction and accuracy in
  :mod:`dynaprot_viz.core.ca_trace`); :func:`frames_for_model` does that and warns.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .ca_trace import virtual_backbone
from .errors import InputError, ShapeError

__all__ = [
    "Residue",
    "ProteinChain",
    "BACKBONE_NPZ_ARRAYS",
    "read_backbone_npz",
    "backbone_npz_chain",
    "load_structure",
    "load_chain",
    "load_chains",
    "parse_chain_selection",
    "ALL_CHAINS",
    "protein_chain_names",
    "local_frames",
    "ca_trace_frames",
    "frames_for_model",
    "conformer_groups",
    "select_conformer",
    "conformer_atoms",
    "BACKBONE_ATOMS",
]

BACKBONE_ATOMS = ("N", "CA", "C")
#: the chain selection meaning "every protein chain of the first model"
ALL_CHAINS = "all"
_MIN_PROTEIN_RESIDUES = 2


class Residue(NamedTuple):
    """Identity of one residue: chain name, sequence number, insertion code
    (``""`` when none) and residue name as written in the file (e.g. ``"MSE"``)."""

    chain: str
    number: int
    icode: str
    name: str

    def label(self) -> str:
        """Short human label, e.g. ``A:42B MET``."""
        return f"{self.chain}:{self.number}{self.icode} {self.name}"


@dataclass(frozen=True, eq=False)
class ProteinChain:
    """One protein chain, as the predictors see it.

    Attributes
    ----------
    source : str
        File the chain was read from (or ``"<structure>"`` for an in-memory one).
    residues : tuple[Residue, ...]
        N residue ids, in chain order.
    sequence : str
        N one-letter codes of the parent amino acids (``X`` when unknown).
    backbone : ndarray, shape (N, 3, 3), float64, Å
        Coordinates of N, CA, C per residue; NaN where the atom is missing
        (never for CA).
    bfactors : ndarray, shape (N,), float64, Å²
        The C-alpha B-factors found in the file (0 where absent).
    """

    source: str
    residues: tuple
    sequence: str
    backbone: np.ndarray
    bfactors: np.ndarray
    _frames: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        n = len(self.residues)
        bb = np.asarray(self.backbone, dtype=np.float64)
        if bb.shape != (n, 3, 3):
            raise ShapeError(f"backbone must have shape ({n}, 3, 3), got {bb.shape}")
        if len(self.sequence) != n:
            raise ShapeError(f"sequence has {len(self.sequence)} letters for {n} residues")
        bf = np.asarray(self.bfactors, dtype=np.float64)
        if bf.shape != (n,):
            raise ShapeError(f"bfactors must have shape ({n},), got {bf.shape}")
        if not np.all(np.isfinite(bb[:, 1])):
            raise InputError(f"{self.source}: C-alpha coordinates are not all finite")
        object.__setattr__(self, "backbone", bb)
        object.__setattr__(self, "bfactors", bf)

    def __len__(self) -> int:
        return len(self.residues)

    @property
    def chain_id(self) -> str:
        """The first residue's chain (the only one unless :attr:`is_complex`)."""
        return self.residues[0].chain

    @property
    def chain_ids(self) -> tuple:
        """Distinct chain names in residue order, e.g. ``("A", "B")``."""
        return tuple(dict.fromkeys(r.chain for r in self.residues))

    @property
    def is_complex(self) -> bool:
        """True when the residues span more than one chain (:func:`load_chains`)."""
        return len(self.chain_ids) > 1

    def chain_slices(self) -> list:
        """``[(chain name, slice), ...]``: the consecutive residue runs of each chain,
        in order (one per chain for what :func:`load_chains` builds)."""
        out, start = [], 0
        for i in range(1, len(self.residues) + 1):
            if i == len(self.residues) or self.residues[i].chain != self.residues[start].chain:
                out.append((self.residues[start].chain, slice(start, i)))
                start = i
        return out

    def subset(self, index) -> "ProteinChain":
        """The residues ``index`` (a slice or integer indices) as a new ProteinChain."""
        idx = np.arange(len(self))[index]
        return ProteinChain(
            source=self.source,
            residues=tuple(self.residues[i] for i in idx),
            sequence="".join(self.sequence[i] for i in idx),
            backbone=self.backbone[idx],
            bfactors=self.bfactors[idx],
        )

    @property
    def ca(self) -> np.ndarray:
        """C-alpha coordinates, shape (N, 3), Å."""
        return self.backbone[:, 1]

    @property
    def has_full_backbone(self) -> bool:
        """True when every residue has N, CA and C."""
        return bool(np.all(np.isfinite(self.backbone)))

    @property
    def missing_n_or_c(self) -> np.ndarray:
        """Mask of the residues lacking backbone N or C, shape (N,), bool."""
        return ~np.isfinite(self.backbone).all(axis=(1, 2))

    def frames(self, approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Local residue frames (AlphaFold convention, see :func:`local_frames`).

        Parameters
        ----------
        approximate : bool
            False (default): exact frames from N, CA, C, and an InputError when any
            residue lacks N or C.  True: residues with N, CA and C keep their exact
            frames; each residue lacking N or C gets the frame of its virtual N and C
            placed from the C-alpha trace (:func:`ca_trace_frames`; median error about
            6 degrees inside a chain, tens of degrees at chain ends, see
            :mod:`dynaprot_viz.core.ca_trace`).  :attr:`missing_n_or_c` says which.

        Returns
        -------
        rotations : ndarray, shape (N, 3, 3)
            Columns are the frame axes in global coordinates.
        translations : ndarray, shape (N, 3), Å
            The C-alpha positions.

        Raises
        ------
        InputError
            ``approximate=False`` and a residue lacks N or C; ``approximate=True`` and
            the C-alpha trace defines no frame (see :func:`ca_trace_frames`).
        """
        if approximate:
            if "approx" not in self._frames:
                bb = self.backbone.copy()
                miss = self.missing_n_or_c
                if miss.any():
                    try:
                        bb[miss] = virtual_backbone(self.ca)[miss]
                    except InputError as exc:
                        raise InputError(f"{self.source}: {exc}") from None
                self._frames["approx"] = local_frames(bb[:, 0], bb[:, 1], bb[:, 2])
            return self._frames["approx"]
        if not self.has_full_backbone:
            missing = [self.residues[i].label() for i in np.flatnonzero(self.missing_n_or_c)]
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InputError(
                f"{self.source}: residues missing backbone N or C: {', '.join(missing[:5])}{more}"
            )
        if "rt" not in self._frames:
            self._frames["rt"] = local_frames(self.backbone[:, 0], self.backbone[:, 1], self.backbone[:, 2])
        return self._frames["rt"]


def ca_trace_frames(ca: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate residue frames from a C-alpha trace alone.

    Virtual N and C are placed from the local C-alpha geometry
    (:func:`dynaprot_viz.core.ca_trace.virtual_backbone`: coefficients fitted on
    real PDB backbones, the idea of PULCHRA-style CA-to-backbone reconstruction),
    then :func:`local_frames` is applied.  Exactly equivariant: rotating and
    translating ``ca`` rotates the frames and moves the translations.  Held-out
    error against the true N-CA-C frames: median 6.2 deg, 95th percentile 24 deg.

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
        C-alpha coordinates in chain order (breaks where consecutive C-alpha are
        farther than 4.2 Å apart).

    Returns
    -------
    rotations : ndarray, shape (N, 3, 3)
        Orthonormal, right-handed; columns are the axes (e1 ~ CA->C, e2 in the
        N-CA-C plane).
    translations : ndarray, shape (N, 3), Å
        ``ca``.

    Raises
    ------
    InputError
        Bad shape, non-finite coordinates, or no three consecutive bonded,
        non-collinear C-alpha atoms anywhere in the trace.
    """
    bb = virtual_backbone(ca)
    return local_frames(bb[:, 0], bb[:, 1], bb[:, 2])


def frames_for_model(chain: "ProteinChain", model: str = "the model") -> tuple[np.ndarray, np.ndarray]:
    """The frames a learned model reads: ``chain.frames(approximate=True)``, with one
    UserWarning when some residues lack N or C, e.g. ``"x.pdb: 76 of 76 residues have
    no backbone N/C; residue frames built from the C-alpha trace are approximate (DynaProt)"``.

    Returns rotations (N, 3, 3) and translations (N, 3) Å as :meth:`ProteinChain.frames`.
    """
    rt = chain.frames(approximate=True)
    k = int(chain.missing_n_or_c.sum())
    if k:
        warnings.warn(
            f"{chain.source}: {k} of {len(chain)} residues have no backbone N/C; residue frames built "
            f"from the C-alpha trace are approximate ({model})",
            UserWarning,
            stacklevel=2,
        )
    return rt


def local_frames(n: np.ndarray, ca: np.ndarray, c: np.ndarray, eps: float = 1e-8):
    """Residue frames from backbone atoms by Gram-Schmidt (AlphaFold Alg. 21).

    Parameters
    ----------
    n, ca, c : ndarray, shape (N, 3), Å

    Returns
    -------
    rotations : ndarray, shape (N, 3, 3)
        ``R[:, :, 0]`` along CA->C, ``R[:, :, 1]`` in the N-CA-C plane,
        ``R[:, :, 2]`` their cross product; right-handed and orthonormal.
    translations : ndarray, shape (N, 3), Å
        ``ca``.
    """
    v1 = c - ca
    v2 = n - ca
    e1 = v1 / np.maximum(np.linalg.norm(v1, axis=-1, keepdims=True), eps)
    u2 = v2 - e1 * np.sum(e1 * v2, axis=-1, keepdims=True)
    e2 = u2 / np.maximum(np.linalg.norm(u2, axis=-1, keepdims=True), eps)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], axis=-1), ca.copy()


# --------------------------------------------------------------------------- reading


def _source_name(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<structure>"


def load_structure(source):
    """Read a PDB or mmCIF file (``.gz`` allowed) into a :class:`gemmi.Structure`.

    A :class:`gemmi.Structure` is returned unchanged.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    InputError
        The file is empty, unreadable or holds no atoms.
    """
    import gemmi

    if isinstance(source, gemmi.Structure):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"source must be a path or a gemmi.Structure, got {type(source).__name__}"
        )
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a PDB or mmCIF file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except Exception as exc:  # gemmi raises RuntimeError/ValueError/OSError on bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        st = None
        if not path.name.lower().endswith((".cif", ".mmcif", ".cif.gz", ".mmcif.gz")):
            # legacy PDB files (PyMOL's 1hpv.pdb) keep an id and serial in columns 73-80,
            # where gemmi reads element and charge: read only columns 1-72, as PyMOL and
            # ProDy do (the element then comes from the atom name)
            try:
                st = gemmi.read_pdb(str(path), max_line_length=72)
                st.merge_chain_parts()
            except Exception:
                st = None
        if st is None:
            raise InputError(f"{path}: cannot be read as PDB or mmCIF ({reason})") from None
        warnings.warn(f"{path}: read as a legacy PDB file, columns 73-80 ignored ({reason}); "
                      "elements taken from the atom names", stacklevel=1)  # one location: shown once
    if len(st) == 0 or not any(len(ch) for ch in st[0]):
        raise InputError(f"{path}: no atoms found (not a PDB or mmCIF coordinate file?)")
    return st


def _parent_info(name: str, modres: dict):
    """(one-letter code, is amino acid) of a residue name; modified residues map
    to their parent's letter."""
    import gemmi

    info = gemmi.find_tabulated_residue(name)
    if info is not None and info.is_amino_acid():
        letter = info.one_letter_code.upper()
        return (letter if letter.strip() and letter != "?" else "X"), True
    if name in modres:
        parent = gemmi.find_tabulated_residue(modres[name])
        if parent is not None and parent.is_amino_acid():
            return parent.one_letter_code.upper(), True
    return "X", False


def _is_amino_acid(res, modres) -> bool:
    import gemmi

    letter, is_aa = _parent_info(res.name, modres)
    if is_aa:
        return True
    if gemmi.find_tabulated_residue(res.name) is not None:
        return False  # known and not an amino acid: water, ligand, nucleotide
    # Unknown names (not in gemmi's table) count when they carry a C-alpha in an
    # ATOM record or carry N, CA and C: a non-standard residue of the chain.
    names = {a.name for a in res}
    return "CA" in names and ("N" in names and "C" in names or res.het_flag == "A")


def protein_chain_names(structure) -> list[str]:
    """Names of the chains of the first model that hold amino-acid residues."""
    modres = {m.mod_id: m.parent_comp_id for m in structure.mod_residues} if structure.mod_residues else {}
    out = []
    for ch in structure[0]:
        if sum(_is_amino_acid(r, modres) for r in ch) >= _MIN_PROTEIN_RESIDUES:
            out.append(ch.name)
    return out


def _best_altloc(atoms) -> str:
    """The altloc letter with the highest mean occupancy among ``atoms`` ('' if none)."""
    occ: dict[str, list[float]] = {}
    for a in atoms:
        if a.altloc != "\0":
            occ.setdefault(a.altloc, []).append(a.occ)
    if not occ:
        return ""
    return max(occ, key=lambda k: (np.mean(occ[k]), -ord(k)))


def conformer_groups(chain):
    """Group residues by position (seqid); microheterogeneity gives groups of >1."""
    groups: list[list] = []
    for res in chain:
        if groups and groups[-1][0].seqid == res.seqid:
            groups[-1].append(res)
        else:
            groups.append([res])
    return groups


def select_conformer(group):
    """The conformer to use at one position.

    Parameters
    ----------
    group : list of gemmi.Residue
        The residues sharing one seqid (one, or several under microheterogeneity).

    Returns
    -------
    residue : gemmi.Residue
        The residue carrying the chosen conformer's C-alpha (else the first).
    altloc : str
        The altloc letter with the highest mean occupancy over all atoms of the
        position (ties: the earlier letter), or ``""`` when there are none.
        Atoms with this altloc or none make up the conformer.
    """
    alt = _best_altloc([a for r in group for a in r])
    for res in group:
        if any(a.name == "CA" and (a.altloc == "\0" or a.altloc == alt) for a in res):
            return res, alt
    return group[0], alt


def conformer_atoms(res, alt: str):
    """Atoms of ``res`` in the conformer ``alt`` (see :func:`select_conformer`)."""
    return [a for a in res if a.altloc == "\0" or a.altloc == alt]


def load_chain(source, chain: str | None = None) -> ProteinChain:
    """Read one protein chain.

    Parameters
    ----------
    source : str, os.PathLike or gemmi.Structure
        PDB or mmCIF file, plain or gzipped, or a structure already loaded.
    chain : str, optional
        Chain name (author chain id).  Default: the first chain with amino acids.

    Returns
    -------
    ProteinChain

    Raises
    ------
    InputError
        No protein chain, the named chain absent, no residue with a C-alpha,
        non-finite coordinates.
    """
    name = _source_name(source)
    st = load_structure(source)
    if len(st) > 1:
        warnings.warn(f"{name}: {len(st)} models, using the first", stacklevel=2)
    model = st[0]
    proteins = protein_chain_names(st)
    if chain is None:
        if not proteins:
            raise InputError(f"{name}: no protein chain found (no amino-acid residues)")
        chain = proteins[0]
    names = [ch.name for ch in model]
    if chain not in names:
        raise InputError(
            f"{name}: no chain {chain!r}; chains with protein: {', '.join(proteins) or 'none'}"
        )
    if chain not in proteins:
        raise InputError(f"{name}: chain {chain!r} holds no protein residues")

    modres = {m.mod_id: m.parent_comp_id for m in st.mod_residues} if st.mod_residues else {}
    residues, letters, backbone, bfac = [], [], [], []
    dropped = []
    for group in conformer_groups(model[chain]):
        group = [r for r in group if _is_amino_acid(r, modres)]
        if not group:
            continue
        res, alt = select_conformer(group)
        xyz = np.full((3, 3), np.nan)
        b_ca = 0.0
        for a in conformer_atoms(res, alt):
            if a.name in BACKBONE_ATOMS:
                k = BACKBONE_ATOMS.index(a.name)
                xyz[k] = (a.pos.x, a.pos.y, a.pos.z)
                if not np.all(np.isfinite(xyz[k])):
                    raise InputError(
                        f"{name}: atom {a.name} of residue {chain}:{res.seqid.num}{res.seqid.icode.strip()} "
                        f"{res.name} has non-finite coordinates"
                    )
                if k == 1:
                    b_ca = a.b_iso
        rid = Residue(chain, int(res.seqid.num), res.seqid.icode.strip(), res.name)
        if not np.all(np.isfinite(xyz[1])):
            dropped.append(rid.label())
            continue
        residues.append(rid)
        letters.append(_parent_info(res.name, modres)[0])
        backbone.append(xyz)
        bfac.append(b_ca)
    if dropped:
        more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        warnings.warn(
            f"{name}: {len(dropped)} residues without a C-alpha skipped: {', '.join(dropped[:5])}{more}",
            stacklevel=2,
        )
    if len(residues) < _MIN_PROTEIN_RESIDUES:
        raise InputError(f"{name}: chain {chain!r} has no usable backbone (fewer than 2 residues with a C-alpha)")
    return ProteinChain(
        source=name,
        residues=tuple(residues),
        sequence="".join(letters),
        backbone=np.array(backbone),
        bfactors=np.array(bfac),
    )


def parse_chain_selection(chain) -> list | None:
    """A chain selection as a list of names, or None for "the first protein chain".

    Parameters
    ----------
    chain : None, str or sequence of str
        ``None``; one name (``"A"``); names joined by commas (``"A,B"``, spaces
        ignored); ``"all"`` (:data:`ALL_CHAINS`, every protein chain, returned as
        ``["all"]``); or a list/tuple of names.

    Returns
    -------
    list of str or None
        Names in the given order.

    Raises
    ------
    InputError
        An empty name, a name given twice, or not a str / sequence of str.
    """
    if chain is None:
        return None
    if isinstance(chain, str):
        names = [c.strip() for c in chain.split(",")] if "," in chain else [chain]
    elif isinstance(chain, (list, tuple)) and all(isinstance(c, str) for c in chain):
        names = [c.strip() for c in chain]
    else:
        raise InputError(f"chain must be a name, names joined by commas or a list of names, got {chain!r}")
    if not names or any(not c for c in names):
        raise InputError(f"chain selection {chain!r} has an empty chain name")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise InputError(f"chain selection {chain!r} names chain {dup[0]!r} twice")
    if ALL_CHAINS in names and len(names) > 1:
        raise InputError(f"chain selection {chain!r}: {ALL_CHAINS!r} cannot be combined with chain names")
    return names


def load_chains(source, chains=None) -> ProteinChain:
    """Read several protein chains (a complex) as one :class:`ProteinChain`.

    The residues of the chains follow one another in the order given; each
    :class:`Residue` carries its chain, so :attr:`ProteinChain.chain_ids` and
    :meth:`ProteinChain.chain_slices` recover them.  Nothing treats the junction
    between two chains as a bond: the C-alpha-trace frames and the segment
    features cut the trace where consecutive C-alpha are more than 4.2 Å apart
    (:mod:`dynaprot_viz.core.ca_trace`), and chains of one file never touch that
    closely.

    Parameters
    ----------
    source : str, os.PathLike or gemmi.Structure
        PDB or mmCIF file, plain or gzipped, or a structure already loaded.
    chains : None, str or sequence of str
        As :func:`parse_chain_selection`: ``None`` (the first protein chain),
        ``"A"``, ``"A,B"``, ``["A", "B"]`` or ``"all"`` (every chain with protein,
        in file order).

    Returns
    -------
    ProteinChain
        N = the sum of the chains' residues; backbone (N, 3, 3) Å.

    Raises
    ------
    InputError
        A named chain absent or without protein (the message lists the protein
        chains), an empty or repeated name, or any error of :func:`load_chain`.
    """
    names = parse_chain_selection(chains)
    if names is None or (len(names) == 1 and names[0] != ALL_CHAINS):
        return load_chain(source, None if names is None else names[0])
    name = _source_name(source)
    st = load_structure(source)
    proteins = protein_chain_names(st)
    if names == [ALL_CHAINS]:
        if not proteins:
            raise InputError(f"{name}: no protein chain found (no amino-acid residues)")
        names = proteins
    missing = [c for c in names if c not in proteins]
    if missing:
        present = {ch.name for ch in st[0]}
        what = "no chain" if missing[0] not in present else "no protein residues in chain"
        raise InputError(f"{name}: {what} {missing[0]!r}; chains with protein: {', '.join(proteins) or 'none'}")
    with warnings.catch_warnings():
        if len(st) > 1:  # said once below, not once per chain
            warnings.filterwarnings("ignore", message=r".* models, using the first")
        parts = [load_chain(st, c) for c in names]
    if len(st) > 1:
        warnings.warn(f"{name}: {len(st)} models, using the first", stacklevel=2)
    return ProteinChain(
        source=name,
        residues=tuple(r for p in parts for r in p.residues),
        sequence="".join(p.sequence for p in parts),
        backbone=np.concatenate([p.backbone for p in parts]),
        bfactors=np.concatenate([p.bfactors for p in parts]),
    )


# --------------------------------------------------------------------------- backbone npz

#: arrays of the backbone npz of ``datasets/pdb_backbones/extract.py`` that a chain needs
BACKBONE_NPZ_ARRAYS = ("ids", "chain", "start_resnum", "length", "offset", "origin", "coords", "sequence",
                       "coord_unit_A")

_ONE_TO_THREE = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}


def read_backbone_npz(path) -> dict:
    """The arrays of :data:`BACKBONE_NPZ_ARRAYS` of a backbone npz
    (``datasets/pdb_backbones/extract.py``), read into memory.

    Raises
    ------
    InputError
        One line: no such file, not an npz, or arrays missing.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such backbone npz (make it with datasets/pdb_backbones/extract.py)")
    import zipfile

    if not zipfile.is_zipfile(path):  # numpy would try it as a pickle and say so
        raise InputError(f"{path}: cannot be read as an npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in BACKBONE_NPZ_ARRAYS if k not in z.files]
            if missing:
                raise InputError(f"{path}: not a backbone npz of datasets/pdb_backbones/extract.py "
                                 f"(missing arrays: {', '.join(missing)})")
            return {k: z[k] for k in BACKBONE_NPZ_ARRAYS}
    except InputError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot be read as an npz ({first})") from None


def backbone_npz_chain(arrays, index: int, source: str | None = None) -> ProteinChain:
    """Chain ``index`` of a backbone npz (``datasets/pdb_backbones/extract.py``'s layout).

    Parameters
    ----------
    arrays : mapping of str to ndarray
        At least :data:`BACKBONE_NPZ_ARRAYS` (an open ``numpy.load`` or a dict of them).
    index : int
        Chain number, 0 <= index < len(arrays["ids"]).
    source : str, optional
        What :attr:`ProteinChain.source` says (default: the chain's id, ``"1ABC_A"``).

    Returns
    -------
    ProteinChain
        N, CA, C at ``origin + coord_unit_A * coords`` (Å); residue numbers
        ``start_resnum + k``; B-factors 0.
    """
    k = int(index)
    lo, hi = int(arrays["offset"][k]), int(arrays["offset"][k + 1])
    name = str(arrays["ids"][k])
    if hi - lo != int(arrays["length"][k]):
        raise InputError(f"{name}: offsets give {hi - lo} residues but length says {int(arrays['length'][k])}")
    unit = float(arrays["coord_unit_A"])
    xyz = arrays["origin"][k].astype(np.float64) + unit * arrays["coords"][lo:hi, :3].astype(np.float64)
    seq = bytes(arrays["sequence"][lo:hi]).decode("ascii", "replace").upper()
    chain = str(arrays["chain"][k])
    start = int(arrays["start_resnum"][k])
    residues = tuple(Residue(chain, start + i, "", _ONE_TO_THREE.get(s, "UNK")) for i, s in enumerate(seq))
    return ProteinChain(source=source or name, residues=residues, sequence=seq, backbone=xyz,
                        bfactors=np.zeros(len(residues)))
