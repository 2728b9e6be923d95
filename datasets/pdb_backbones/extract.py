#!/usr/bin/python3
"""Real PDB backbones from ProMod3's structure database -> gzipped PDB files or one npz.

Debian's ``python3-promod3`` + ``promod3-data`` ship ProMod3's structure database:
21,119 non-redundant PDB chains, each stored as the longest gap-free stretch of the
chain, with N, CA, C, O, CB coordinates at 0.01 Å precision, the SEQRES sequence,
DSSP states and per-residue solvent accessibilities.  This script runs under the
SYSTEM python (``/usr/bin/python3``, where promod3 is importable); the package
``dynaprot_viz`` never imports promod3.

    sudo apt-get install python3-promod3 promod3-data python3-tqdm
    /usr/bin/python3 datasets/pdb_backbones/extract.py --ids ids.txt --format pdb --out runs/bb/
    /usr/bin/python3 datasets/pdb_backbones/extract.py --all --format npz \\
        --out runs/pdb_backbones/promod3_backbones.npz

Ids file: one chain per line, ``1abc_A``, ``1abc A`` or ``1abcA`` (PDB id case-insensitive,
chain name case-sensitive); ``#`` starts a comment.  Ids missing from the database are
listed on stderr and in ``<out>.missing.txt`` (npz) / ``<out>/missing.txt`` (pdb).

Outputs
-------
``--format pdb``: ``<out>/<PDBID>_<chain>.pdb.gz`` per chain: ATOM records N, CA, C, O,
the chain name as chain id, residue numbers ``start_resnum + k`` (ProMod3's numbering:
the position in the chain's SEQRES, 1-based; gap-free), B-factors 0.  Each file is
written to a temporary name and renamed, so a file that exists is complete; a rerun
skips it (resume).

``--format npz``: one compressed npz (``numpy.load(path)``), chains in database order:

===================== ================ ==========================================
array                 shape, dtype     meaning
===================== ================ ==========================================
``ids``               (C,) str         ``"<PDBID>_<chain>"``
``pdb_id``, ``chain`` (C,) str         PDB id (upper case) and chain name
``db_index``          (C,) int32       index in ProMod3's StructureDB
``start_resnum``      (C,) int32       residue number of the first residue
``length``            (C,) int32       residues of the chain
``offset``            (C + 1,) int64   chain c = residues ``offset[c]:offset[c+1]``
``origin``            (C, 3) float32   Å, per-chain origin of ``coords``
``coords``            (R, 4, 3) int16  N, CA, C, O in units of 0.01 Å from ``origin``
``sequence``          (R,) S1          one-letter code per residue
``dssp``              (R,) S1          DSSP state per residue (H E C G I T S B)
``solvent_access``    (R,) uint16      Å², per residue (ProMod3's accessibility)
``atom_names``        (4,) str         ``N CA C O``
``coord_unit_A``      ()  float        0.01
===================== ================ ==========================================

Absolute position of atom a of residue r of chain c:
``origin[c] + coord_unit_A * coords[r, a]`` (Å); the sequence of chain c is
``sequence[offset[c]:offset[c+1]].tobytes().decode()``.  Work is streamed in parts of
``--part-size`` chains written atomically under ``<out>.parts/``; a rerun reads the
parts (and any existing ``<out>``) and only extracts what is missing; the final file is
written to a temporary name and renamed, then the parts are removed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

ATOM_NAMES = ("N", "CA", "C", "O")
COORD_UNIT_A = 0.01
_INT16_MAX = np.iinfo(np.int16).max

_ONE_TO_THREE = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
_ARRAYS = ("ids", "pdb_id", "chain", "db_index", "start_resnum", "length", "origin")
_PER_RESIDUE = ("coords", "solvent_access", "sequence", "dssp")


class ExtractError(Exception):
    """Bad input to the extractor: reported as one line, exit code 2."""


def _progress(iterable, total, desc):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a convenience; never fail for it
        print(f"{desc}: {total} chains (install python3-tqdm for a progress bar)", file=sys.stderr)
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="chain")


def load_db():
    """ProMod3's default StructureDB (raises ExtractError when promod3 is missing)."""
    try:
        from promod3 import loop
    except ImportError as exc:
        raise ExtractError(
            f"promod3 is not importable by {sys.executable} ({exc}); run under /usr/bin/python3 "
            "after `apt-get install python3-promod3 promod3-data`") from None
    return loop, loop.LoadStructureDB()


def parse_id(token: str) -> tuple[str, str]:
    """``"1abc_A"``, ``"1abc A"`` or ``"1abcA"`` -> ``("1ABC", "A")``."""
    token = token.strip()
    if "_" in token or " " in token or "\t" in token:
        pdb, chain = token.replace("\t", " ").replace("_", " ").split(None, 1)
    else:
        pdb, chain = token[:4], token[4:]
    chain = chain.strip()
    if len(pdb) != 4 or not pdb.isalnum() or not chain or " " in chain:
        raise ExtractError(f"bad chain id {token!r}: expected '1abc_A', '1abc A' or '1abcA'")
    return pdb.upper(), chain


def read_ids(path: Path) -> list[tuple[str, str]]:
    """Chain ids of an ids file, in file order, without duplicates."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ExtractError(f"{path}: cannot read ids file ({exc.strerror})") from None
    out, seen = [], set()
    for k, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = parse_id(line)
        except ExtractError as exc:
            raise ExtractError(f"{path}:{k}: {exc}") from None
        if key not in seen:
            seen.add(key)
            out.append(key)
    if not out:
        raise ExtractError(f"{path}: no chain ids in the file")
    return out


def index_db(db) -> dict[tuple[str, str], int]:
    """``{(PDBID, chain): db index}`` of every entry."""
    out = {}
    for i in range(db.GetNumCoords()):
        info = db.GetCoordInfo(i)
        out[(str(info.id).upper(), str(info.chain_name))] = i
    return out


def read_chain(loop, db, i: int) -> dict:
    """One database entry as arrays: coords (L, 4, 3) float64 Å, sequence, dssp, accessibility."""
    info = db.GetCoordInfo(i)
    frag = loop.FragmentInfo(i, 0, info.size)
    seq = db.GetSequence(frag)
    bb = db.GetBackboneList(frag, seq)
    n = len(bb)
    xyz = np.empty((n, 4, 3))
    getters = (bb.GetN, bb.GetCA, bb.GetC, bb.GetO)
    for k in range(n):
        for a, get in enumerate(getters):
            v = get(k)
            xyz[k, a] = (v[0], v[1], v[2])
    return {
        "pdb_id": str(info.id).upper(), "chain": str(info.chain_name), "db_index": i,
        "start_resnum": int(info.start_resnum), "coords": xyz, "sequence": str(seq),
        "dssp": str(db.GetDSSPStates(frag)),
        "solvent_access": np.asarray(db.GetSolventAccessibilities(frag), dtype=np.int64),
    }


# ----------------------------------------------------------------------------- PDB
def pdb_text(entry: dict) -> str:
    """PDB text (ATOM N, CA, C, O per residue, TER, END) of one chain."""
    chain = entry["chain"]
    if len(chain) > 1:  # PDB format has one column for the chain id; keep the full name in a REMARK
        chain_col = chain[0]
    else:
        chain_col = chain
    lines = [f"REMARK 250 ProMod3 StructureDB entry {entry['db_index']}: {entry['pdb_id']} chain {chain}"]
    serial = 1
    for k, aa in enumerate(entry["sequence"]):
        resname = _ONE_TO_THREE.get(aa, "UNK")
        resnum = entry["start_resnum"] + k
        for a, name in enumerate(ATOM_NAMES):
            x, y, z = entry["coords"][k, a]
            lines.append(
                f"ATOM  {serial:5d} {name:<4s} {resname:3s} {chain_col:1s}{resnum:4d}    "
                f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{0.0:6.2f}          {name[0]:>2s}"
            )
            serial += 1
    last = len(entry["sequence"]) - 1
    lines.append(f"TER   {serial:5d}      {_ONE_TO_THREE.get(entry['sequence'][last], 'UNK'):3s} "
                 f"{chain_col:1s}{entry['start_resnum'] + last:4d}")
    lines.append("END")
    return "\n".join(lines) + "\n"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def pdb_name(pdb_id: str, chain: str) -> str:
    return f"{pdb_id}_{chain}.pdb.gz"


def extract_pdb(loop, db, indices: list[int], out: Path) -> dict:
    """Write one gzipped PDB per entry under ``out``; skip files that exist."""
    out.mkdir(parents=True, exist_ok=True)
    todo, skipped = [], 0
    for i in indices:
        info = db.GetCoordInfo(i)
        if (out / pdb_name(str(info.id).upper(), str(info.chain_name))).exists():
            skipped += 1
        else:
            todo.append(i)
    for i in _progress(todo, len(todo), "pdb"):
        entry = read_chain(loop, db, i)
        text = pdb_text(entry).encode()
        _atomic_write_bytes(out / pdb_name(entry["pdb_id"], entry["chain"]),
                            gzip.compress(text, compresslevel=6, mtime=0))
    return {"written": len(todo), "skipped": skipped}


# ----------------------------------------------------------------------------- npz
def _pack(entries: list[dict]) -> dict:
    """Entries -> the npz arrays (module docstring), coordinates quantised to 0.01 Å."""
    lengths = np.array([len(e["sequence"]) for e in entries], dtype=np.int32)
    offset = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    origin = np.zeros((len(entries), 3), dtype=np.float32)
    coords = np.zeros((int(offset[-1]), 4, 3), dtype=np.int16)
    for c, e in enumerate(entries):
        xyz = e["coords"]
        o = np.round(0.5 * (xyz.reshape(-1, 3).min(0) + xyz.reshape(-1, 3).max(0)), 2)
        q = np.round((xyz - o) / COORD_UNIT_A)
        if np.abs(q).max() > _INT16_MAX:
            raise ExtractError(f"{e['pdb_id']}_{e['chain']}: chain spans more than "
                               f"{2 * _INT16_MAX * COORD_UNIT_A:.0f} Å; int16 storage impossible")
        origin[c] = o
        coords[offset[c]:offset[c + 1]] = q.astype(np.int16)
    return {
        "ids": np.array([f"{e['pdb_id']}_{e['chain']}" for e in entries], dtype=str),
        "pdb_id": np.array([e["pdb_id"] for e in entries], dtype=str),
        "chain": np.array([e["chain"] for e in entries], dtype=str),
        "db_index": np.array([e["db_index"] for e in entries], dtype=np.int32),
        "start_resnum": np.array([e["start_resnum"] for e in entries], dtype=np.int32),
        "length": lengths,
        "offset": offset,
        "origin": origin,
        "coords": coords,
        "sequence": np.frombuffer("".join(e["sequence"] for e in entries).encode("ascii"), dtype="S1"),
        "dssp": np.frombuffer("".join(e["dssp"] for e in entries).encode("ascii"), dtype="S1"),
        "solvent_access": np.clip(np.concatenate([e["solvent_access"] for e in entries]) if entries
                                  else np.zeros(0), 0, np.iinfo(np.uint16).max).astype(np.uint16),
    }


def _savez_atomic(path: Path, arrays: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, atom_names=np.array(ATOM_NAMES), coord_unit_A=np.float64(COORD_UNIT_A),
                            **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_packed(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in (*_ARRAYS, *_PER_RESIDUE, "offset")}
    except (OSError, ValueError, KeyError) as exc:
        raise ExtractError(f"{path}: not a readable backbone npz ({exc}); delete it and rerun") from None


def _merge(parts: list[dict], keep: set[int]) -> dict:
    """Concatenate packed parts, keep db indices in ``keep``, sort by db index."""
    rows = []  # (db_index, part, chain position)
    for p, arr in enumerate(parts):
        rows += [(int(d), p, c) for c, d in enumerate(arr["db_index"]) if int(d) in keep]
    rows.sort()
    seen, uniq = set(), []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            uniq.append(row)
    out = {k: [] for k in (*_ARRAYS, *_PER_RESIDUE)}
    lengths = []
    for _, p, c in uniq:
        arr = parts[p]
        lo, hi = arr["offset"][c], arr["offset"][c + 1]
        for k in _ARRAYS:
            out[k].append(arr[k][c])
        for k in _PER_RESIDUE:
            out[k].append(arr[k][lo:hi])
        lengths.append(hi - lo)
    merged = {k: np.array(out[k]) for k in _ARRAYS}
    merged["origin"] = np.array(out["origin"], dtype=np.float32).reshape(-1, 3)
    merged["coords"] = (np.concatenate(out["coords"]) if uniq else np.zeros((0, 4, 3))).astype(np.int16)
    merged["solvent_access"] = (np.concatenate(out["solvent_access"]) if uniq else np.zeros(0)).astype(np.uint16)
    for k in ("sequence", "dssp"):
        merged[k] = np.concatenate(out[k]) if uniq else np.zeros(0, dtype="S1")
    offset = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(np.array(lengths, dtype=np.int64), out=offset[1:])
    merged["offset"] = offset
    for k, dt in (("db_index", np.int32), ("start_resnum", np.int32), ("length", np.int32)):
        merged[k] = merged[k].astype(dt)
    for k in ("ids", "pdb_id", "chain"):
        merged[k] = merged[k].astype(str)
    return merged


def extract_npz(loop, db, indices: list[int], out: Path, part_size: int = 1000) -> dict:
    """Stream entries into parts under ``<out>.parts/``, then merge them into ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    parts_dir = out.with_name(out.name + ".parts")
    sources = sorted(parts_dir.glob("part-*.npz"))  # none when the folder does not exist
    loaded = [_load_packed(p) for p in sources]
    previous = set()
    if out.exists():  # an earlier run's file: its chains are done and stay in the file
        loaded.append(_load_packed(out))
        previous = {int(d) for d in loaded[-1]["db_index"]}
    done = {int(d) for arr in loaded for d in arr["db_index"]}
    want = sorted(set(indices))
    todo = [i for i in want if i not in done]
    if not todo and not sources and out.exists() and set(want) <= previous:  # nothing to do
        return {"written": 0, "skipped": len(want), "chains_in_file": len(previous),
                "residues_in_file": int(loaded[-1]["offset"][-1])}
    parts_dir.mkdir(exist_ok=True)
    next_part = 1 + max([int(p.stem.split("-")[1]) for p in sources], default=-1)
    batch = []
    for i in _progress(todo, len(todo), "npz"):
        batch.append(read_chain(loop, db, i))
        if len(batch) == part_size:
            packed = _pack(batch)
            _savez_atomic(parts_dir / f"part-{next_part:05d}.npz", packed)
            loaded.append(packed)
            next_part += 1
            batch = []
    if batch:
        packed = _pack(batch)
        _savez_atomic(parts_dir / f"part-{next_part:05d}.npz", packed)
        loaded.append(packed)
    merged = _merge(loaded, set(want) | previous)
    _savez_atomic(out, merged)
    for p in parts_dir.glob("part-*.npz"):
        p.unlink()
    parts_dir.rmdir()
    return {"written": len(todo), "skipped": len(want) - len(todo), "chains_in_file": len(merged["ids"]),
            "residues_in_file": int(merged["offset"][-1])}


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--ids", type=Path, help="file of chain ids (1abc_A, one a line)")
    sel.add_argument("--all", action="store_true", help="every chain of the database (21,119)")
    ap.add_argument("--format", choices=("pdb", "npz"), default="npz",
                    help="pdb: one <ID>_<chain>.pdb.gz per chain in --out (a folder); "
                         "npz: one compact file --out (default)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (pdb) or .npz file (npz)")
    ap.add_argument("--limit", type=int, default=None,
                    help="only the first LIMIT selected chains (for timing a subset)")
    ap.add_argument("--part-size", type=int, default=1000, help="npz: chains per resumable part (default 1000)")
    args = ap.parse_args(argv)
    try:
        if args.format == "npz" and args.out.suffix != ".npz":
            raise ExtractError(f"--out {args.out}: --format npz needs a file name ending in .npz")
        if args.part_size < 1 or (args.limit is not None and args.limit < 1):
            raise ExtractError("--part-size and --limit must be positive")
        requested = read_ids(args.ids) if args.ids else None
        loop, db = load_db()
        t0 = time.perf_counter()
        if requested is None:
            indices = list(range(db.GetNumCoords()))
            missing = []
        else:
            table = index_db(db)
            indices = [table[k] for k in requested if k in table]
            missing = [k for k in requested if k not in table]
        if args.limit is not None:
            indices = indices[: args.limit]
        if missing:
            shown = ", ".join(f"{p}_{c}" for p, c in missing[:10])
            print(f"{len(missing)} of {len(requested)} ids are not in the ProMod3 database: {shown}"
                  f"{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
        if not indices:
            raise ExtractError("none of the requested chains is in the ProMod3 database")
        if args.format == "pdb":
            stats = extract_pdb(loop, db, indices, args.out)
            missing_path = args.out / "missing.txt"
        else:
            stats = extract_npz(loop, db, indices, args.out, args.part_size)
            missing_path = args.out.with_name(args.out.name + ".missing.txt")
        if missing:
            _atomic_write_bytes(missing_path, "".join(f"{p}_{c}\n" for p, c in missing).encode())
        size = (args.out.stat().st_size if args.format == "npz"
                else sum(p.stat().st_size for p in args.out.glob("*.pdb.gz")))
        print(f"{stats['written']} chains extracted, {stats['skipped']} already done, "
              f"{len(missing)} missing; {time.perf_counter() - t0:.1f} s; output {args.out} "
              f"({size / 1e6:.1f} MB)")
        return 0
    except ExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
