"""mdCATH per-residue RMSF -> labels of kind ``"md-rmsf"`` (RMSF only), at scale.

Input: the folder of ``/work/shared/data/mdcath_train`` (see its README):

* ``rmsf_320K.csv``: ``domain_id, resid, resname, rmsf_320_nm, has_coordinates``;
  ``resid`` is the 0-based index along the mdCATH domain sequence, the RMSF is the
  C-alpha RMSF at 320 K, mean of the five replicas, in **nm**;
* ``pdbs/<domain>.pdb.gz``: backbone N, CA, C, O of the residues that have
  coordinates, chain A, residue number = ``resid``.

A record holds the residues with coordinates (``has_coordinates = 1``), in the PDB's
order, with their backbone from the PDB (:func:`~dynaprot_viz.core.structure.load_chain`)
and their RMSF converted to Å (x :data:`NM_TO_ANGSTROM`, the one unit conversion,
done here at input).  No marginals, no coupling, no correlation maps.  Every
residue's name in the table must match the PDB's, and the residues with
coordinates must be exactly the PDB's residues; a domain that disagrees is refused
with one line and nothing is written for it.

The RMSF values are mdCATH's (Mirarchi et al., Sci Data 2024; CHARMM22*/TIP3P
explicit solvent, 5 replicas; CC BY 4.0) as published in the Flexpert-v2
repository's ``data/rmsf_mdCATH_data.txt`` (MIT licence).  The backbone is the
experimental structure of the parent PDB chain (ProMod3 structure database), not
mdCATH's own minimised simulation start: close, not identical.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import warnings
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.structure import load_chain

from .ingest import IngestResult, _tool_version, ingest_labels
from .store import ChainLabels

__all__ = ["read_rmsf_table", "mdcath_rmsf_labels", "ingest_mdcath_rmsf", "NM_TO_ANGSTROM", "RMSF_TABLE"]

#: the table's RMSF is in nm; labels are in Å
NM_TO_ANGSTROM = 10.0
#: the table's file name in the mdcath_train folder
RMSF_TABLE = "rmsf_320K.csv"
_COLUMNS = ("domain_id", "resid", "resname", "rmsf_320_nm", "has_coordinates")

PROVENANCE = {
    "source": "md-rmsf",
    "dataset": "mdCATH",
    "temperature_K": 320,
    "replicas": "mean of 5 replicas",
    "force_field": "CHARMM22*/TIP3P",
    "via": "Flexpert-v2 data/rmsf_mdCATH_data.txt (MIT licence)",
    "licence": "mdCATH CC BY 4.0; Flexpert-v2 MIT",
    "rmsf_units": "Å (table value in nm x 10)",
    "structure": "experimental backbone of the parent PDB chain (ProMod3 structure database), "
                 "not mdCATH's simulation start",
}


def read_rmsf_table(path) -> dict:
    """The RMSF table grouped by domain, values still as text (checked per domain).

    Returns
    -------
    dict
        ``{domain_id: [(line number, resid, resname, rmsf_nm, has_coordinates), ...]}``
        in file order.

    Raises
    ------
    InputError
        Missing file, or not the expected columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected the mdCATH RMSF table {RMSF_TABLE})")
    out: dict = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        head = next(reader, None)
        if head is None:
            raise InputError(f"{path}: empty file")
        head = [h.strip() for h in head]
        missing = [c for c in _COLUMNS if c not in head]
        if missing:
            raise InputError(f"{path}: expected columns {', '.join(_COLUMNS)}; missing {', '.join(missing)}")
        cols = [head.index(c) for c in _COLUMNS]
        width = max(cols) + 1
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise InputError(f"{path}: line {line} has {len(row)} fields, expected {len(head)}")
            dom, resid, name, rmsf, has = (row[c].strip() for c in cols)
            out.setdefault(dom, []).append((line, resid, name, rmsf, has))
    if not out:
        raise InputError(f"{path}: no rows")
    return out


def _parse_rows(domain: str, rows, table: Path) -> tuple[dict, int]:
    """``{resid: (resname, rmsf Å)}`` of the residues with coordinates, and the domain length."""
    kept: dict = {}
    seen = set()
    for line, resid, name, rmsf, has in rows:
        where = f"{table}: line {line} ({domain})"
        try:
            rid, value = int(resid), float(rmsf)
        except ValueError:
            raise InputError(f"{where}: resid {resid!r} / rmsf {rmsf!r} are not numbers") from None
        if rid in seen:
            raise InputError(f"{where}: resid {rid} appears twice")
        seen.add(rid)
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{where}: RMSF {rmsf!r} nm is not a finite non-negative number")
        if has not in ("0", "1"):
            raise InputError(f"{where}: has_coordinates must be 0 or 1, got {has!r}")
        if has == "1":
            kept[rid] = (name.upper(), value * NM_TO_ANGSTROM)
    return kept, len(seen)


def mdcath_rmsf_labels(domain: str, rows, pdb_path, table_path="rmsf_320K.csv") -> ChainLabels:
    """Labels of kind ``"md-rmsf"`` of one mdCATH domain.

    Parameters
    ----------
    domain : str
        The domain id (store key), e.g. ``"1ac5A00"``.
    rows : list
        The domain's rows from :func:`read_rmsf_table`.
    pdb_path : path
        ``pdbs/<domain>.pdb.gz``.
    table_path : path
        For messages and provenance.

    Returns
    -------
    ChainLabels
        N residues = those with coordinates; ``rmsf`` (N,) Å; backbone (N, 3, 3) Å.

    Raises
    ------
    InputError
        One line: unreadable rows, a PDB residue missing from the table or a table
        residue with coordinates missing from the PDB, a residue name that differs.
    """
    table = Path(table_path)
    pdb_path = Path(pdb_path)
    kept, n_domain = _parse_rows(domain, rows, table)
    if not kept:
        raise InputError(f"{table}: domain {domain} has no residue with coordinates")
    if not pdb_path.is_file():
        raise InputError(f"{pdb_path}: no such file (domain {domain})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chain = load_chain(pdb_path)
    pdb_ids = [(r.number, r.icode) for r in chain.residues]
    if any(ic for _, ic in pdb_ids):
        raise InputError(f"{pdb_path}: residue numbers with insertion codes; expected number = resid")
    numbers = [n for n, _ in pdb_ids]
    extra = [n for n in numbers if n not in kept]
    lacking = sorted(set(kept) - set(numbers))
    if extra or lacking:
        what = (f"PDB residue(s) {extra[:5]} have no table row with has_coordinates=1" if extra else
                f"table residue(s) {lacking[:5]} with has_coordinates=1 are not in the PDB")
        hint = f" ({'; '.join(str(w.message) for w in caught[:1])})" if caught else ""
        raise InputError(f"{domain}: {what}{hint}")
    for r in chain.residues:
        if kept[r.number][0] != r.name:
            raise InputError(f"{domain}: residue {r.number} is {kept[r.number][0]} in {table.name} "
                             f"but {r.name} in {pdb_path.name}")
    rmsf = np.array([kept[n][1] for n in numbers])
    prov = {**PROVENANCE, "domain": domain, "n_domain_residues": n_domain,
            "n_residues": len(numbers), "table": os.fspath(table), "path": os.fspath(pdb_path),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "tool_version": _tool_version()}
    return ChainLabels(key=domain, sequence=chain.sequence, residues=chain.residues, backbone=chain.backbone,
                       rmsf=rmsf, provenance=prov, kind="md-rmsf")


def ingest_mdcath_rmsf(folder, store_path, *, domains=None, overwrite: bool = False,
                       progress: bool = True) -> IngestResult:
    """Every domain of an mdCATH RMSF folder -> records of kind ``"md-rmsf"``.

    Streaming (one domain's structure in memory at a time; the table, about 150 000
    rows, is read once) and resumable (keys already in the store are skipped unless
    ``overwrite``); a domain that fails its checks is reported in
    :attr:`IngestResult.failed` with one line and nothing is written for it.
    Key = the domain id.

    Parameters
    ----------
    folder : path
        Holds ``rmsf_320K.csv`` and ``pdbs/<domain>.pdb.gz``.
    store_path : path
        The label store (created when missing).
    domains : iterable of str, optional
        Only these domains (default: every domain of the table).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (expected {RMSF_TABLE} and pdbs/)")
    table_path = folder / RMSF_TABLE
    table = read_rmsf_table(table_path)
    names = list(table)
    if domains is not None:
        names = list(domains)
        unknown = [d for d in names if d not in table]
        if unknown:
            raise InputError(f"{table_path}: no domain(s) {', '.join(unknown[:5])}")

    def builder(dom):
        def build():
            pdb = folder / "pdbs" / f"{dom}.pdb.gz"
            if not pdb.exists() and (folder / "pdbs" / f"{dom}.pdb").exists():
                pdb = folder / "pdbs" / f"{dom}.pdb"
            return mdcath_rmsf_labels(dom, table[dom], pdb, table_path)
        return build

    return ingest_labels([(d, builder(d)) for d in names], store_path, overwrite=overwrite,
                         progress=progress, desc="mdCATH RMSF", unit="domain")
