"""Experimental conformer ensembles (DANCE collections) -> labels of kind ``"experimental-ensemble"``.

A collection holds the C-alpha coordinates of every PDB conformer of one protein
(crystal, NMR, cryo-EM entries of the same sequence family), aligned column by
column (``/work/shared/data/dance``, see its README):

* ``coords/<ID>_raw_coords_ca.bin``: three little-endian int64 (K, P, 3), then
  K * P * 3 float64 (Å), conformer-major; absent positions hold zeros;
* ``coords/<ID>_raw_coords_ca_mask.bin``: two int64 (K, P), then K * P uint8
  (1 where that conformer has a C-alpha at that position);
* ``alignments/<ID>_aln.fa``: one FASTA record per conformer, same order, ids name
  the PDB chain (``<PDB id><chain>``), gaps ``-``; the first record is the reference;
* ``training_list.txt`` / ``val_list.txt`` / ``test_list.txt``: the split.

The conformers come already superposed; they are used as they are.

Residues of a record
--------------------
The alignment positions where the reference conformer has a C-alpha **and** at
least ``min_conformers`` (3) conformers are present.  ``mean`` (the backbone's CA)
is the reference conformer's C-alpha; backbone N and C are NaN (C-alpha only).
Residue names come from the reference's aligned sequence (one-letter expanded,
``X`` -> ``UNK``), residue numbers are the 1-based index along the reference's
ungapped sequence (every non-``-`` letter counts, ``X`` included, so numbers skip
residues the reference lacks coordinates for), the chain name is the reference's
PDB chain (the FASTA id after its 4-character PDB code).

Covariance with missing positions (PSD by construction)
--------------------------------------------------------
K conformers, positions i, presence m_ci in {0, 1}, n_i = sum_c m_ci (>= 3).  The
pairwise-complete covariance (each pair (i, j) over the conformers present at both)
is not positive semi-definite in general.  Instead::

    mu_i  = sum_c m_ci x_ci / n_i                     mean over the conformers present at i
    y_ci  = m_ci (x_ci - mu_i) / sqrt(n_i - 1)        zero where absent, shape (K, N, 3)
    Σ_ij  = sum_c y_ci y_cj^T                         Σ_joint = Y^T Y, Y of shape (K, 3N)

Σ_joint is a Gram matrix, hence PSD by construction, and so are the coupling
C_ij = tr(Σ_ij) / 3 and the DCCM derived from it.  Each marginal Σ_ii is exactly the
unbiased sample covariance of the n_i conformers present at residue i, so marginals
and RMSF = sqrt(tr Σ_ii) carry no bias from the missing data.  Bias: the cross
blocks sum only over the n_ij conformers present at both residues but are divided
by sqrt((n_i - 1)(n_j - 1)) rather than n_ij - 1, and use each residue's own mean:
when residues are observed in different conformer subsets, the coupling and the
DCCM are shrunk towards zero (by about (n_ij - 1) / sqrt((n_i - 1)(n_j - 1)); 0 for
residues never observed together).  With no missing positions it is exactly the
sample covariance of the conformers.  A marginal of a residue present in exactly 3
conformers has rank <= 2 (three points span a plane): such records are valid labels
but :meth:`ChainLabels.to_dynamics` (which needs positive definite marginals)
refuses them.

ResAxial's cosine correlation is kept too: cos_ij = sum_c m_ci m_cj u_ci . u_cj / n_ij,
u_ci the unit displacement from mu_i, averaged over the n_ij conformers present at
both residues (0 when none), unit diagonal.

These labels are a different quantity from thermal MD covariance (functional motions
across crystal forms, ligands, mutants): keep the kind apart and never mix its
absolute scale with MD.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import Dynamics
from dynaprot_viz.core.structure import ProteinChain, Residue
from dynaprot_viz.core.superpose import superpose

from .ingest import IngestResult, _tool_version, correlation_from_coupling, ingest_labels
from .store import ChainLabels

__all__ = [
    "dance_rmsf_cases",
    "ModeOverlapCase",
    "ensemble_top_pc",
    "mode_overlap_case",
    "dance_mode_overlap_cases",
    "top_mode_overlap",
    "random_overlap_expectation",
    "ConformerCollection",
    "read_collection",
    "list_collections",
    "ensemble_labels",
    "ensemble_covariance",
    "ingest_ensembles",
    "ENSEMBLE_SPLITS",
    "MIN_CONFORMERS",
]

#: split name -> list file of the DANCE folder
ENSEMBLE_SPLITS = {"train": "training_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
#: a position needs this many conformers to enter the labels (and a collection this many conformers)
MIN_CONFORMERS = 3

DATASET = "DANCE (SeaMoon data_test collections)"
LICENCE = "MIT"
_COORDS = "{}_raw_coords_ca.bin"
_MASK = "{}_raw_coords_ca_mask.bin"
_ALN = "{}_aln.fa"
_INT = np.dtype("<i8")


@dataclass(frozen=True, eq=False)
class ConformerCollection:
    """One DANCE collection as read from disk.

    Attributes
    ----------
    id : str
        The collection id (file stem, e.g. ``"1A2NA_4E7BD"``).
    coords : ndarray, shape (K, P, 3), float64, Å
        C-alpha of each conformer at each alignment position (0 where absent).
    mask : ndarray, shape (K, P), bool
        True where the conformer has a C-alpha at that position.
    conformer_ids : tuple of str
        K FASTA record ids (``<PDB id><chain>``), first = reference.
    alignment : tuple of str
        K aligned sequences of P columns (gaps ``-``).
    split : str or None
        ``"train"``, ``"val"``, ``"test"`` or None when not listed.
    """

    id: str
    coords: np.ndarray
    mask: np.ndarray
    conformer_ids: tuple
    alignment: tuple
    split: str | None = None

    @property
    def n_conformers(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.coords.shape[1])


def _read_header(path: Path, n_ints: int) -> tuple[tuple, int]:
    """The int64 header of a DANCE .bin file and the file size; one-line errors."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: empty file")
    hdr = n_ints * _INT.itemsize
    if size < hdr:
        raise InputError(f"{path}: truncated: {size} bytes, shorter than its {hdr}-byte header")
    dims = tuple(int(v) for v in np.fromfile(path, dtype=_INT, count=n_ints))
    return dims, size


def _size_problem(size: int, need: int) -> str:
    if size < need:
        return "file truncated, or its header disagrees with the file size"
    return "header disagrees with the file size (the file is longer than its header says)"


def _read_coords(path: Path) -> np.ndarray:
    (k, p, three), size = _read_header(path, 3)
    if k < 1 or p < 1 or three != 3 or k * p > 2**34:
        raise InputError(f"{path}: header (n_conformers, n_positions, 3) = ({k}, {p}, {three}) is not valid")
    need = 24 + k * p * 3 * 8
    if size != need:
        raise InputError(f"{path}: {size - 24} bytes of coordinates, the header ({k}, {p}, 3) needs "
                         f"{need - 24}: {_size_problem(size, need)}")
    x = np.fromfile(path, dtype="<f8", offset=24).reshape(k, p, 3)
    return x.astype(np.float64, copy=False)


def _read_mask(path: Path, shape: tuple, coords_path: Path) -> np.ndarray:
    (k, p), size = _read_header(path, 2)
    if (k, p) != tuple(shape):
        raise InputError(f"{path}: mask dimensions ({k}, {p}) disagree with the coordinates "
                         f"{tuple(shape)} of {coords_path.name}")
    need = 16 + k * p
    if size != need:
        raise InputError(f"{path}: {size - 16} bytes of mask, the header ({k}, {p}) needs {need - 16}: "
                         f"{_size_problem(size, need)}")
    m = np.fromfile(path, dtype=np.uint8, offset=16).reshape(k, p)
    if m.max(initial=0) > 1:
        raise InputError(f"{path}: mask values must be 0 or 1, found {int(m.max())}")
    return m.astype(bool)


def _read_fasta(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    records: list = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                records.append([line[1:].split()[0] if line[1:].split() else "", []])
            elif not records:
                raise InputError(f"{path}: not FASTA (sequence before the first '>' line)")
            else:
                records[-1][1].append(line)
    if not records:
        raise InputError(f"{path}: no FASTA records")
    return [(rid, "".join(parts)) for rid, parts in records]


def read_collection(folder, collection_id: str, split: str | None = None) -> ConformerCollection:
    """Read and validate one DANCE collection.

    Parameters
    ----------
    folder : path
        The DANCE folder (holding ``coords/`` and ``alignments/``).
    collection_id : str
        File stem, e.g. ``"1A2NA_4E7BD"``.
    split : str, optional
        Recorded as :attr:`ConformerCollection.split`.

    Raises
    ------
    InputError
        One line naming the file: missing or empty file, truncated file, header sizes
        that disagree with the file size, mask dimensions that disagree with the
        coordinates, fewer than 3 conformers, NaN coordinates, an alignment whose
        record count differs from the conformers or whose length differs from the
        positions, a gap where the mask says a C-alpha is present.
    """
    folder = Path(folder)
    cpath = folder / "coords" / _COORDS.format(collection_id)
    mpath = folder / "coords" / _MASK.format(collection_id)
    apath = folder / "alignments" / _ALN.format(collection_id)
    x = _read_coords(cpath)
    k, p = x.shape[:2]
    if k < MIN_CONFORMERS:
        raise InputError(f"{cpath}: {k} conformer(s), at least {MIN_CONFORMERS} needed for a covariance")
    mask = _read_mask(mpath, (k, p), cpath)
    bad = ~np.isfinite(x)
    if bad.any():
        c, i, _ = np.argwhere(bad)[0]
        raise InputError(f"{cpath}: NaN or infinite coordinates ({int(bad.sum())} values; first: conformer "
                         f"{int(c)}, position {int(i)})")
    recs = _read_fasta(apath)
    if len(recs) != k:
        raise InputError(f"{apath}: {len(recs)} FASTA records for {k} conformers in {cpath.name}")
    for c, (rid, seq) in enumerate(recs):
        if len(seq) != p:
            raise InputError(f"{apath}: record {c} ({rid}) has {len(seq)} columns, the coordinates have "
                             f"{p} positions")
        gaps = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8) == ord("-")
        clash = gaps & mask[c]
        if clash.any():
            raise InputError(f"{apath}: record {c} ({rid}) has a gap at position {int(np.argmax(clash))} "
                             "where the mask says a C-alpha is present")
    return ConformerCollection(id=str(collection_id), coords=x, mask=mask,
                               conformer_ids=tuple(r for r, _ in recs), alignment=tuple(s for _, s in recs),
                               split=split)


def list_collections(folder, splits=None) -> list[tuple[str, str | None]]:
    """``[(collection id, split)]`` of a DANCE folder.

    The ids of the split lists (train, val, test order, as listed), then any other
    collection with a coordinates file in ``coords/`` (split None).  ``splits``
    (iterable of ``"train"``, ``"val"``, ``"test"``) keeps only those splits.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (expected a DANCE folder with coords/ and alignments/)")
    wanted = None
    if splits is not None:
        wanted = [s.strip() for s in ([splits] if isinstance(splits, str) else splits) if s.strip()]
        unknown = [s for s in wanted if s not in ENSEMBLE_SPLITS]
        if unknown or not wanted:
            raise InputError(f"split {', '.join(unknown) or '(none)'} is not known: use "
                             f"{', '.join(ENSEMBLE_SPLITS)}")
    out: dict = {}
    for name, fname in ENSEMBLE_SPLITS.items():
        lst = folder / fname
        if not lst.is_file():
            continue
        for line in lst.read_text(encoding="ascii", errors="replace").splitlines():
            cid = line.strip()
            if cid and cid not in out:
                out[cid] = name
    if wanted is not None:
        if not out:
            raise InputError(f"{folder}: no split lists ({', '.join(ENSEMBLE_SPLITS.values())}) to filter by")
        return [(c, s) for c, s in out.items() if s in wanted]
    coords = folder / "coords"
    if coords.is_dir():
        suffix = _COORDS.format("")
        for f in sorted(coords.iterdir()):
            if f.name.endswith(suffix) and f.name[:-len(suffix)] not in out:
                out[f.name[:-len(suffix)]] = None
    if not out:
        raise InputError(f"{folder}: no DANCE collections (no split lists and no coords/*{_COORDS.format('')})")
    return list(out.items())


def _residue_name(letter: str) -> str:
    import gemmi

    name = gemmi.expand_one_letter(letter.upper(), gemmi.ResidueKind.AA) if letter.isalpha() else None
    return name or "UNK"


def _chain_name(conformer_id: str) -> str:
    chain = conformer_id[4:] if len(conformer_id) > 4 else ""
    return chain if chain and chain.isascii() and chain.isalnum() else "A"


def ensemble_covariance(coords: np.ndarray, mask: np.ndarray) -> dict:
    """Marginals, coupling, DCCM, cosine correlation and RMSF of conformers with missing
    positions (the PSD construction of the module docstring).

    Parameters
    ----------
    coords : ndarray, shape (K, N, 3), Å
        Superposed conformers (values where ``mask`` is False are ignored).
    mask : ndarray, shape (K, N), bool
        Presence; every position needs at least 2 conformers.

    Returns
    -------
    dict with ``marginals`` (N, 3, 3) Å², ``coupling`` (N, N) Å², ``correlation``
    (N, N), ``cosine_correlation`` (N, N), ``rmsf`` (N,) Å, ``counts`` (N,) int.
    """
    m = np.asarray(mask, dtype=bool)
    x = np.where(m[..., None], np.asarray(coords, dtype=np.float64), 0.0)  # [K, N, 3]
    n = m.sum(axis=0)  # [N]
    if np.any(n < 2):
        raise InputError(f"position {int(np.argmin(n))} has {int(n.min())} conformer(s); a covariance needs 2")
    mu = x.sum(axis=0) / n[:, None]  # [N, 3]
    d = np.where(m[..., None], x - mu, 0.0)  # [K, N, 3] displacements, zero where absent
    y = d / np.sqrt(n - 1.0)[None, :, None]  # [K, N, 3]
    marg = np.einsum("cia,cib->iab", y, y)  # [N, 3, 3] = unbiased covariance of the present conformers
    marg = 0.5 * (marg + np.swapaxes(marg, 1, 2))
    # coupling = tr(Σ_ij)/3: stack the three axes as extra "conformers": [3K, N]
    ya = np.transpose(y, (0, 2, 1)).reshape(-1, y.shape[1])
    coup = ya.T @ ya / 3.0
    coup = 0.5 * (coup + coup.T)
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    u = np.where(norm > 1e-12, d / np.maximum(norm, 1e-12), 0.0)  # [K, N, 3] unit displacements
    ua = np.transpose(u, (0, 2, 1)).reshape(-1, u.shape[1])
    both = m.T.astype(np.float64) @ m.astype(np.float64)  # [N, N] n_ij
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(both > 0, (ua.T @ ua) / np.maximum(both, 1.0), 0.0)
    cos = np.clip(0.5 * (cos + cos.T), -1.0, 1.0)
    np.fill_diagonal(cos, 1.0)
    return {
        "marginals": marg,
        "coupling": coup,
        "correlation": correlation_from_coupling(coup),
        "cosine_correlation": cos,
        "rmsf": np.sqrt(np.clip(np.trace(marg, axis1=1, axis2=2), 0.0, None)),
        "counts": n.astype(np.int64),
    }


def ensemble_labels(collection: ConformerCollection, min_conformers: int = MIN_CONFORMERS,
                    key: str | None = None, source_path=None) -> ChainLabels:
    """Labels of kind ``"experimental-ensemble"`` of one collection (module docstring).

    Parameters
    ----------
    collection : ConformerCollection
    min_conformers : int
        Positions present in fewer conformers are left out (default 3, the minimum).
    key : str, optional
        Store key (default: the collection id).
    source_path : path, optional
        Recorded in the provenance as ``path``.

    Returns
    -------
    ChainLabels
        N residues (see the module docstring); ``n_conformers`` = K,
        ``position_counts`` (N,) conformers present at each residue.
    """
    min_conformers = int(min_conformers)
    if min_conformers < MIN_CONFORMERS:
        raise InputError(f"min_conformers must be >= {MIN_CONFORMERS}, got {min_conformers}")
    c = collection
    if c.n_conformers < MIN_CONFORMERS:
        raise InputError(f"{c.id}: {c.n_conformers} conformer(s), at least {MIN_CONFORMERS} needed")
    counts = c.mask.sum(axis=0)  # [P]
    keep = c.mask[0] & (counts >= min_conformers)  # reference present and enough conformers
    idx = np.flatnonzero(keep)
    if idx.size < 3:
        raise InputError(f"{c.id}: only {idx.size} position(s) where the reference and >= {min_conformers} "
                         "conformers have a C-alpha; at least 3 needed")
    ref_seq = c.alignment[0]
    ungapped = np.cumsum([ch != "-" for ch in ref_seq])  # 1-based index along the ungapped reference
    chain = _chain_name(c.conformer_ids[0])
    letters = [ref_seq[i].upper() if ref_seq[i].isalpha() else "X" for i in idx]
    residues = tuple(Residue(chain, int(ungapped[i]), "", _residue_name(ref_seq[i])) for i in idx)
    cov = ensemble_covariance(c.coords[:, idx], c.mask[:, idx])
    ca = c.coords[0, idx]
    backbone = np.full((idx.size, 3, 3), np.nan)
    backbone[:, 1] = ca
    prov = {
        "source": "experimental-ensemble",
        "dataset": DATASET,
        "licence": LICENCE,
        "collection": c.id,
        "split": c.split,
        "path": os.fspath(source_path) if source_path is not None else None,
        "n_conformers": c.n_conformers,
        "conformers": list(c.conformer_ids),
        "conformer_id_format": "<PDB id><chain id>, as the FASTA record ids",
        "reference_conformer": c.conformer_ids[0],
        "n_alignment_positions": c.n_positions,
        "min_conformers": min_conformers,
        "residue_numbering": "1-based index along the reference conformer's ungapped sequence",
        "mean": "reference conformer's C-alpha (backbone N and C are NaN: C-alpha only)",
        "covariance": "Gram matrix of displacements from each position's mean over present conformers, "
                      "zero where absent, scaled by 1/sqrt(n_i - 1): PSD; marginals = unbiased covariance "
                      "of the conformers present at each residue; cross terms shrunk where residues are "
                      "observed in different conformers",
        "superposition": "as provided (conformers already superposed)",
        "force_field": None,
        "temperature_K": None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool_version": _tool_version(),
    }
    return ChainLabels(
        key=key or c.id, sequence="".join(letters), residues=residues, backbone=backbone,
        marginals=cov["marginals"], coupling=cov["coupling"], correlation=cov["correlation"],
        cosine_correlation=cov["cosine_correlation"], rmsf=cov["rmsf"], provenance=prov,
        kind="experimental-ensemble", n_conformers=c.n_conformers, position_counts=cov["counts"],
    )


def ingest_ensembles(folder, store_path, *, splits=None, ids=None, overwrite: bool = False,
                     min_conformers: int = MIN_CONFORMERS, progress: bool = True) -> IngestResult:
    """Every DANCE collection of ``folder`` -> records of kind ``"experimental-ensemble"``.

    Streaming (one collection in memory at a time) and resumable (keys already in the
    store are skipped unless ``overwrite``); a collection that fails validation is
    reported in :attr:`IngestResult.failed` with one line and nothing is written for
    it.  Key = the collection id.

    Parameters
    ----------
    folder : path
        The DANCE folder (``coords/``, ``alignments/``, split lists).
    store_path : path
        The label store (created when missing).
    splits : iterable of str, optional
        Only collections of these splits (``"train"``, ``"val"``, ``"test"``).
    ids : iterable of str, optional
        Only these collection ids.
    """
    folder = Path(folder)
    found = list_collections(folder, splits)
    if ids is not None:
        ids = list(ids)
        known = dict(found)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"{folder}: no collection(s) {', '.join(unknown[:5])}")
        found = [(i, known[i]) for i in ids]

    def builder(cid, split):
        return lambda: ensemble_labels(read_collection(folder, cid, split), min_conformers=min_conformers,
                                       source_path=folder)

    return ingest_labels([(cid, builder(cid, split)) for cid, split in found], store_path,
                         overwrite=overwrite, progress=progress, desc="ensembles", unit="collection")


def dance_rmsf_cases(folder, split: str = "test"):
    """``(collection id, reference ProteinChain, ensemble RMSF (N,) Å)`` for every
    collection of one split: what a predictor is scored on (the reference conformer as
    input, C-alpha only).  A collection that cannot be read is skipped with a warning."""
    for cid, labels in _readable_collections(folder, split, ensemble_labels):
        yield cid, labels.to_chain(), np.asarray(labels.rmsf)


def _readable_collections(folder, split: str, build):
    """``(collection id, build(collection))`` for every collection of one split whose
    reading and ``build`` succeed; the others are skipped with a one-line warning."""
    import warnings

    for cid, sp in list_collections(folder, splits=[split]):
        try:
            built = build(read_collection(folder, cid, sp))
        except InputError as exc:
            warnings.warn(f"DANCE {cid} skipped: {exc}", stacklevel=3)
            continue
        yield cid, built



# --------------------------------------------------------------------------- top-mode overlap
#
# Does a predictor's dominant motion point the way the experimental ensemble moves most?
# The ensemble side is the first principal component of the conformers (re-superposed on
# the reference); the predicted side is the top eigenvector of Dynamics.joint().


class ModeOverlapCase(NamedTuple):
    """One collection, ready to score any predictor's top mode (:func:`top_mode_overlap`).

    Attributes
    ----------
    key : str
        The collection id.
    chain : ProteinChain
        The reference conformer, C-alpha only: the same chain as :func:`dance_rmsf_cases`
        yields (positions where the reference and >= ``min_conformers`` conformers are present).
    pc : ndarray, shape (n, 3), dimensionless
        The ensemble's first principal component on the n positions present in every
        conformer, unit norm as a 3n vector; sign fixed so that its largest-magnitude
        component is positive (the sign carries no meaning).
    index : ndarray, shape (n,), int64
        Row of ``chain.residues`` (and of a predictor's Dynamics) of each pc row.
    variance_fraction : float
        Share of the ensemble's total variance on those positions carried by ``pc``, in (0, 1].
    n_conformers : int
        K, the conformers of the collection.
    """

    key: str
    chain: ProteinChain
    pc: np.ndarray
    index: np.ndarray
    variance_fraction: float
    n_conformers: int

    def overlap(self, dynamics: Dynamics) -> float:
        """:func:`top_mode_overlap` of ``dynamics`` (predicted on :attr:`chain`) with :attr:`pc`."""
        return top_mode_overlap(dynamics, self.pc, self.index)


def ensemble_top_pc(collection: ConformerCollection) -> tuple[np.ndarray, np.ndarray, float]:
    """First principal component of a collection's C-alpha displacements.

    Each conformer is superposed on the reference conformer (Kabsch,
    :func:`dynaprot_viz.core.superpose.superpose`) on the positions both have; the
    provided pre-superposition is not relied on.  The PCA then uses only the positions
    present in **every** conformer, so each conformer is a full 3n vector and the PC is
    that of an ordinary sample covariance (no imputation, no pairwise-complete bias);
    on the DANCE test split these are 59-100 % of the positions the labels use.
    Displacements are taken from the mean over conformers (the reference included).

    Parameters
    ----------
    collection : ConformerCollection
        K >= 3 conformers of P positions.

    Returns
    -------
    positions : ndarray, shape (n,), int64
        Alignment columns present in every conformer.
    pc : ndarray, shape (n, 3), dimensionless
        Top right singular vector of the centred (K, 3n) displacement matrix, reshaped;
        unit norm, largest-magnitude component positive.
    variance_fraction : float
        s_1^2 / sum_k s_k^2 of that matrix's singular values.

    Raises
    ------
    InputError
        A conformer shares fewer than 3 positions with the reference, fewer than 3
        positions are present in every conformer, or the conformers do not differ there.
    """
    c = collection
    if c.n_conformers < MIN_CONFORMERS:
        raise InputError(f"{c.id}: {c.n_conformers} conformer(s), at least {MIN_CONFORMERS} needed")
    shared = c.mask & c.mask[0]  # [K, P] positions each conformer shares with the reference
    few = np.flatnonzero(shared.sum(axis=1) < 3)
    if few.size:
        raise InputError(f"{c.id}: conformer {int(few[0])} ({c.conformer_ids[few[0]]}) shares "
                         f"{int(shared[few[0]].sum())} position(s) with the reference; 3 needed to superpose it")
    x = np.stack([superpose(c.coords[k], c.coords[0], mask=shared[k]) for k in range(c.n_conformers)])  # [K, P, 3]
    positions = np.flatnonzero(c.mask.all(axis=0))
    if positions.size < 3:
        raise InputError(f"{c.id}: only {positions.size} position(s) present in all {c.n_conformers} conformers; "
                         "at least 3 needed for a principal component")
    d = x[:, positions] - x[:, positions].mean(axis=0)  # [K, n, 3] displacements from the mean
    y = d.reshape(c.n_conformers, -1)  # [K, 3n]
    _, s, vt = np.linalg.svd(y, full_matrices=False)
    total = float(np.sum(s**2))
    if not total > 0 or s[0] <= 1e-12 * np.sqrt(y.shape[1]):
        raise InputError(f"{c.id}: the conformers are identical on the {positions.size} shared positions "
                         "(no variance, no principal component)")
    pc = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))])
    return positions.astype(np.int64), pc.reshape(-1, 3), float(s[0] ** 2 / total)


def mode_overlap_case(collection: ConformerCollection, min_conformers: int = MIN_CONFORMERS,
                      key: str | None = None) -> ModeOverlapCase:
    """The :class:`ModeOverlapCase` of one collection.

    The chain is :meth:`ChainLabels.to_chain` of :func:`ensemble_labels` (so a
    predictor sees exactly the input :func:`dance_rmsf_cases` gives it); the PC is
    :func:`ensemble_top_pc`, whose positions are all chain residues (present in the
    reference and in K >= ``min_conformers`` conformers).
    """
    labels = ensemble_labels(collection, min_conformers=min_conformers, key=key)
    c = collection
    chain_positions = np.flatnonzero(c.mask[0] & (c.mask.sum(axis=0) >= int(min_conformers)))  # as ensemble_labels
    positions, pc, frac = ensemble_top_pc(c)
    index = np.searchsorted(chain_positions, positions)
    if np.any(index >= chain_positions.size) or np.any(chain_positions[np.minimum(index, chain_positions.size - 1)]
                                                       != positions):
        # only when min_conformers exceeds K: every position present in all K conformers is a label position
        raise InputError(f"{c.id}: positions present in every conformer are not all label positions "
                         f"(min_conformers {min_conformers} > {c.n_conformers} conformers?)")
    return ModeOverlapCase(key=labels.key, chain=labels.to_chain(), pc=pc, index=index.astype(np.int64),
                           variance_fraction=frac, n_conformers=c.n_conformers)


def dance_mode_overlap_cases(folder, split: str = "test"):
    """:class:`ModeOverlapCase` (a named tuple: key, chain, pc (n, 3), index (n,), ...)
    of every collection of one split, in the split list's order.

    Score a predictor with ``case.overlap(get_predictor(name)(case.chain))``.  A
    collection that cannot be read is skipped with a warning, as in :func:`dance_rmsf_cases`.
    """
    for _, case in _readable_collections(folder, split, mode_overlap_case):
        yield case


#: eigenvalues within this relative distance of the largest form the top eigenspace
_DEGENERATE_RTOL = 1e-6


def _top_eigenspace(joint: np.ndarray) -> np.ndarray:
    """Orthonormal basis (3N, m) of the eigenspace of ``joint``'s largest eigenvalue
    (m > 1 when it is degenerate within ``_DEGENERATE_RTOL``)."""
    import scipy.linalg

    dim = joint.shape[0]
    k = min(dim, 7)
    while True:
        w, v = scipy.linalg.eigh(joint, subset_by_index=[dim - k, dim - 1])  # ascending
        top = w[-1]
        m = int(np.sum(w >= top - _DEGENERATE_RTOL * max(abs(top), np.finfo(float).tiny)))
        if m < k or k == dim:
            return v[:, k - m:]
        k = min(dim, 2 * k)


def top_mode_overlap(dynamics: Dynamics, pc, index=None) -> float:
    """|<u_pred, u_ens>|: overlap of the predicted top mode with an ensemble's top PC.

    u_pred is the eigenvector of the largest eigenvalue of ``dynamics.joint()``
    (3N x 3N, Å², rows ordered (residue, axis)); both it and ``pc`` are restricted to
    the residues ``index`` (3 coordinates each) and renormalised to unit length, so the
    overlap is |cos| of the angle between them, in [0, 1], invariant to either sign and
    to a rotation applied to both the structure (hence the Dynamics) and the ensemble.
    For scale, a random direction scores :func:`random_overlap_expectation` (n) on average.

    When the largest eigenvalue is degenerate (within a relative 1e-6; an isotropic
    predictor with marginals s_i^2 I gives joint = (S C~ S) kron I_3, every eigenvalue
    three-fold), "the" top eigenvector is arbitrary within its eigenspace; the overlap is
    then the best one over that eigenspace: the length of u_ens's projection on the
    span of the restricted eigenvectors.  With a single top eigenvector this is exactly
    |<u_pred, u_ens>| after renormalisation.  A top mode with no amplitude on these
    residues scores 0.

    Parameters
    ----------
    dynamics : Dynamics
        N residues, predicted on the chain that ``index`` refers to.
    pc : array, shape (n, 3)
        The ensemble direction (any non-zero length, any sign).
    index : array of int, shape (n,), optional
        Distinct rows of ``dynamics`` (0 <= index < N) of the pc rows; default
        ``arange(N)`` (then n must equal N).

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    InputError
        One line: ``dynamics`` is not a Dynamics, ``pc`` is not a finite non-zero (n, 3)
        array, ``index`` has the wrong length, repeats a row or points outside the chain.
    """
    if not isinstance(dynamics, Dynamics):
        raise InputError(f"dynamics: expected a Dynamics, got {type(dynamics).__name__}")
    n_res = dynamics.n_residues
    u = np.asarray(pc, dtype=np.float64) if np.ndim(pc) else np.empty(0)
    if u.ndim != 2 or u.shape[1] != 3 or u.shape[0] < 1:
        raise InputError(f"pc: expected shape (n, 3) with n >= 1, got {np.shape(pc)}")
    if not np.all(np.isfinite(u)):
        raise InputError("pc: values must be finite (found NaN or inf)")
    norm = float(np.linalg.norm(u))
    if norm == 0.0:
        raise InputError("pc: is all zeros; a direction is needed")
    if index is None:
        if u.shape[0] != n_res:
            raise InputError(f"pc: {u.shape[0]} rows for a Dynamics of {n_res} residues; pass index to map them")
        idx = np.arange(n_res)
    else:
        idx = np.asarray(index)
        if idx.shape != (u.shape[0],) or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise InputError(f"index: expected {u.shape[0]} integers (one per pc row), got {idx.dtype} {idx.shape}")
        if idx.min() < 0 or idx.max() >= n_res:
            raise InputError(f"index: rows must lie in [0, {n_res}) for a Dynamics of {n_res} residues, "
                             f"got {int(idx.min())}..{int(idx.max())}")
        if np.unique(idx).size != idx.size:
            raise InputError("index: rows must be distinct (a residue appears twice)")
    rows = (3 * idx[:, None] + np.arange(3)).ravel()  # [3n] joint rows of the selected residues
    basis = _top_eigenspace(dynamics.joint())[rows]  # [3n, m]
    q, s, _ = np.linalg.svd(basis, full_matrices=False)
    q = q[:, s > 1e-9]  # orthonormal basis of the restricted top eigenspace
    if q.shape[1] == 0:
        return 0.0
    return float(min(1.0, np.linalg.norm(q.T @ (u.ravel() / norm))))


def random_overlap_expectation(n_residues: int, n_modes: int = 1) -> float:
    """E|<u, v>| for a fixed unit u and v uniform on the unit sphere of dimension d = 3n.

    The chance level of :func:`top_mode_overlap` on n residues:
    Γ(d/2) / (sqrt(π) Γ((d+1)/2)) ≈ sqrt(2 / (π d)) for large d (0.5 for d = 3).
    With ``n_modes`` = m > 1 (a degenerate top eigenspace), the expected length of the
    projection of a random unit vector on an m-dimensional subspace,
    B((m+1)/2, (d-m)/2) / B(m/2, (d-m)/2) (1 when m = d).
    """
    from scipy.special import betaln, gammaln

    if int(n_residues) != n_residues or n_residues < 1:
        raise InputError(f"n_residues must be a positive integer, got {n_residues!r}")
    d = 3 * int(n_residues)
    if int(n_modes) != n_modes or not 1 <= n_modes <= d:
        raise InputError(f"n_modes must be an integer in [1, {d}], got {n_modes!r}")
    m = int(n_modes)
    if m == d:
        return 1.0
    if m == 1:
        return float(np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi))
    return float(np.exp(betaln((m + 1) / 2, (d - m) / 2) - betaln(m / 2, (d - m) / 2)))
