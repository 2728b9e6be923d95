"""What ``dynaprot-viz batch`` reads: INPUTS -> work items -> protein chains.

An INPUT is one of

- a structure file: PDB or mmCIF, plain or ``.gz`` (``1abc.pdb``, ``pdb1abc.ent.gz``,
  ``AF-P69905-F1-model_v4.cif.gz``, ...); every protein chain of its first model is
  predicted;
- a directory: searched recursively for such files (by suffix, sorted);
- a text file of paths (``.txt``, ``.list`` or ``.lst``): one path per line (a file, a
  directory or a backbone npz; relative paths are relative to the list's folder;
  ``#`` starts a comment); a listed path that does not exist becomes a row of the
  failures table instead of stopping the batch;
- a ProMod3 backbone npz written by ``datasets/pdb_backbones/extract.py --format npz``
  (one work item per chain of the file; the layout is in that script's docstring).

Each work item has a stable ``key`` (the absolute path, ``<path>#<id>`` for an npz
entry): the store records finished keys, which is what makes a rerun resume.  Entry
names: a file's name without its structure suffixes (``pdb1abc.ent`` -> ``1abc``,
``AF-P69905-F1-model_v4`` -> ``AF-P69905-F1``) followed by ``_<chain>``; an npz entry's
own id (``1ABC_A``).  Two inputs that would give the same name are refused up front.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = [
    "WorkItem",
    "expand_inputs",
    "read_chains",
    "entry_name",
    "is_backbone_npz",
    "subset_backbones",
    "STRUCTURE_SUFFIXES",
    "LIST_SUFFIXES",
    "BACKBONE_NPZ_ARRAYS",
]

#: file names found in directories (case-insensitive), plain or gzipped
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")
#: a file with one of these suffixes is a list of paths
LIST_SUFFIXES = (".txt", ".list", ".lst")
#: arrays of an extractor npz (datasets/pdb_backbones/extract.py) that a chain is built from
from ..core.structure import BACKBONE_NPZ_ARRAYS  # noqa: E402  (read by the batch layer too)
_AF_MODEL = re.compile(r"^(AF-.+-F\d+)-model_v\d+$")
_PDB_ENT = re.compile(r"^pdb([0-9][A-Za-z0-9]{3})$")
#: characters allowed in an entry name (a folder name in format-1 stores; typed on command lines)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: a structure file (all its protein chains) or one npz entry.

    Attributes
    ----------
    key : str
        Stable identity recorded in the store: the absolute path, ``<path>#<id>`` for
        an npz entry, ``missing:<path>`` for a listed path that does not exist.
    kind : {"file", "npz", "missing"}
    path : str
        Absolute path of the file (the npz for an npz entry).
    name : str
        Entry name prefix (a file) or the full entry name (an npz entry).
    index : int
        Row of the entry in the npz (-1 for a file).
    cost : float
        Relative cost estimate used to schedule the largest work first (N^3 for an npz
        entry, the file size in bytes to the power 1.5 for a file).
    """

    key: str
    kind: str
    path: str
    name: str
    index: int = -1
    cost: float = 0.0

    def as_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "path": self.path, "name": self.name, "index": self.index}


def _lower_name(path: Path) -> str:
    return path.name.lower()


def is_structure_name(path) -> bool:
    """True when the file name ends in one of :data:`STRUCTURE_SUFFIXES` (any case)."""
    return _lower_name(Path(path)).endswith(STRUCTURE_SUFFIXES)


def entry_name(path) -> str:
    """Entry name prefix of a structure file: its name without the structure suffixes;
    ``pdb1abc.ent`` -> ``1abc``; AlphaFold-DB ``AF-<acc>-F<k>-model_v<n>`` -> ``AF-<acc>-F<k>``."""
    name = Path(path).name
    low = name.lower()
    if low.endswith(".gz"):
        name, low = name[:-3], low[:-3]
    for suffix in (".pdb", ".ent", ".cif", ".mmcif"):
        if low.endswith(suffix):
            name = name[: -len(suffix)]
            break
    m = _AF_MODEL.match(name)
    if m:
        return m.group(1)
    m = _PDB_ENT.match(name)
    if m:
        return m.group(1)
    return name


def is_backbone_npz(path) -> bool:
    """True when ``path`` is an npz holding the extractor's backbone arrays."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return all(k in z.files for k in BACKBONE_NPZ_ARRAYS)
    except Exception:
        return False


def _npz_items(path: Path) -> list[WorkItem]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in BACKBONE_NPZ_ARRAYS if k not in z.files]
            if missing:
                raise InputError(f"{path}: not a backbone npz of datasets/pdb_backbones/extract.py "
                                 f"(missing arrays: {', '.join(missing)})")
            ids = [str(i) for i in z["ids"]]
            length = np.asarray(z["length"], dtype=np.int64)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot be read as an npz ({_one_line(exc)})") from None
    if len(ids) != len(length):
        raise InputError(f"{path}: {len(ids)} ids but {len(length)} lengths")
    apath = str(path.resolve())
    return [WorkItem(f"{apath}#{name}", "npz", apath, name, k, float(n) ** 3)
            for k, (name, n) in enumerate(zip(ids, length))]


def _file_item(path: Path) -> WorkItem:
    apath = path.resolve()
    try:
        size = apath.stat().st_size
    except OSError:
        size = 0
    return WorkItem(str(apath), "file", str(apath), entry_name(apath), -1, float(size) ** 1.5)


def _dir_items(path: Path) -> list[WorkItem]:
    found = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if is_structure_name(f) and not f.startswith("."):
                found.append(_file_item(Path(root) / f))
    return found


def _one_input(path: Path, allow_lists: bool, listed_in: Path | None) -> list[WorkItem]:
    if not path.exists():
        if listed_in is None:
            raise InputError(f"INPUTS: {path}: no such file or directory")
        apath = str(path.absolute())
        return [WorkItem(f"missing:{apath}", "missing", apath, entry_name(path))]
    if path.is_dir():
        return _dir_items(path)
    low = _lower_name(path)
    if low.endswith(".npz"):
        return _npz_items(path)
    if low.endswith(LIST_SUFFIXES):
        if not allow_lists:
            raise InputError(f"{listed_in}: lists inside lists are not followed ({path})")
        return _list_items(path)
    return [_file_item(path)]  # any other file is tried as a structure (a failure row if it is not one)


def _list_items(path: Path) -> list[WorkItem]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a list of paths ({_one_line(exc)})") from None
    items = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        p = Path(line)
        if not p.is_absolute():
            p = path.parent / p
        items.extend(_one_input(p, allow_lists=False, listed_in=path))
    return items


def expand_inputs(inputs) -> list[WorkItem]:
    """Work items of INPUTS (paths, or one path), in input order, without duplicates.

    Raises
    ------
    InputError
        An INPUT that does not exist (a path inside a list file becomes a failure row
        instead), an unreadable list or npz, an entry name with characters other than
        letters, digits and ``_.+-``, or two inputs giving the same entry name.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items: list[WorkItem] = []
    seen: set[str] = set()
    for raw in inputs:
        for item in _one_input(Path(raw), allow_lists=True, listed_in=None):
            if item.key not in seen:
                seen.add(item.key)
                items.append(item)
    names: dict[str, str] = {}
    for item in items:
        if item.kind != "missing" and not _SAFE_NAME.match(item.name):
            raise InputError(f"{item.path}: entry name {item.name!r} has characters other than letters, digits "
                             "and _.+- (rename the file)")
        other = names.setdefault(item.name, item.key)
        if other != item.key and item.kind != "missing":
            raise InputError(f"two inputs give the entry name {item.name!r}: {other} and {item.key}; "
                             "rename one or run them into separate stores")
    return items


# --------------------------------------------------------------------------- reading chains (on the workers)

#: per-process cache of backbone npz arrays: {path: (mtime_ns, size, arrays)}
_NPZ_CACHE: dict[str, tuple] = {}


def _npz_arrays(path: str) -> dict:
    st = os.stat(path)
    hit = _NPZ_CACHE.get(path)
    if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    from ..core.structure import read_backbone_npz

    arrays = read_backbone_npz(path)
    _NPZ_CACHE.clear()  # one npz at a time per worker: they can be ~100 MB
    _NPZ_CACHE[path] = (st.st_mtime_ns, st.st_size, arrays)
    return arrays


def _npz_chain(item: dict):
    """The ProteinChain of one npz entry (:func:`~dynaprot_viz.core.structure.backbone_npz_chain`)."""
    from ..core.structure import backbone_npz_chain

    return backbone_npz_chain(_npz_arrays(item["path"]), int(item["index"]), source=item["key"])


def read_chains(item: dict) -> list[tuple[str, object]]:
    """The chains of one work item (:meth:`WorkItem.as_dict`).

    Returns
    -------
    list of (entry id, ProteinChain or Exception)
        One pair per protein chain; an exception where that chain could not be read.

    Raises
    ------
    Exception
        The item as a whole cannot be read (missing, corrupt, no protein chain).
    """
    import dataclasses

    from ..core.structure import load_chain, load_structure, protein_chain_names

    if item["kind"] == "missing":
        raise InputError(f"{item['path']}: no such file (listed in an INPUTS list)")
    if item["kind"] == "npz":
        return [(item["name"], _npz_chain(item))]
    st = load_structure(item["path"])
    names = protein_chain_names(st)
    if not names:
        raise InputError(f"{item['path']}: no protein chain found (no amino-acid residues)")
    out = []
    for c in names:
        entry = f"{item['name']}_{c}"
        try:
            chain = load_chain(st, chain=c)
            out.append((entry, dataclasses.replace(chain, source=item["path"])))
        except Exception as exc:  # one bad chain does not lose the others
            out.append((entry, exc))
    return out


def subset_backbones(src, out, ids=None, n: int | None = None, seed: int = 0) -> Path:
    """Write a smaller backbone npz (same layout) with the chains ``ids``, or ``n`` chains
    drawn at random without replacement (``numpy.random.default_rng(seed)``), kept in
    the source's order.  The file is written atomically.  Returns ``out``."""
    from .._io import atomic_write_bytes
    import io

    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    all_ids = [str(i) for i in arrays["ids"]]
    if ids is not None:
        where = {name: k for k, name in enumerate(all_ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise InputError(f"{src}: no chain {missing[0]!r} ({len(missing)} ids missing)")
        rows = np.array(sorted(where[i] for i in ids), dtype=np.int64)
    else:
        if n is None or not 1 <= n <= len(all_ids):
            raise InputError(f"n must be between 1 and {len(all_ids)}, got {n!r}")
        rows = np.sort(np.random.default_rng(seed).choice(len(all_ids), size=n, replace=False))
    offset = arrays["offset"]
    res = np.concatenate([np.arange(offset[k], offset[k + 1]) for k in rows])
    n_chains = len(arrays["ids"])
    n_res = int(offset[-1])
    sub = {}
    for k, v in arrays.items():
        if k == "offset":
            sub[k] = np.concatenate([[0], np.cumsum(arrays["length"][rows])]).astype(v.dtype)
        elif v.ndim and v.shape[0] == n_chains and k not in ("atom_names",):
            sub[k] = v[rows]
        elif v.ndim and v.shape[0] == n_res:
            sub[k] = v[res]
        else:
            sub[k] = v
    buf = io.BytesIO()
    np.savez_compressed(buf, **sub)
    return atomic_write_bytes(out, buf.getvalue())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__
