"""The batch store: one Zarr hierarchy of per-chain dynamics plus Parquet tables.

Layout (a folder; Zarr format 3)::

    STORE/
      zarr.json                    root group; attributes: format, model, model_version,
                                   model_options, coupling, created, dynaprot_viz version
      chains/<entry>/              one group per chain, attributes: id, file, chain, entry,
                                   model_name, isotropic, n_residues, coupling and the
                                   residue ids (residue_chain, residue_number,
                                   residue_icode, residue_name: lists of N)
        mean        (N, 3)    float32  Å, C-alpha positions
        marginals   (N, 3, 3) float32  Å², Sigma_i
        coupling    (N, N)    float32  Å², C_ij            (--coupling full)
        coupling_band (K+1, N) float32 Å², row d = C[i, i+d], zero-padded   (band:K)
                                                            (nothing with --coupling none)
      summary/part-<id>.parquet    one Parquet dataset: a row per predicted chain
      failures/part-<id>.parquet   one Parquet dataset: a row per input or chain that failed
      .lock                        held (flock) by the one run writing the store
      .tmp/                        work in progress, removed by the next run

Why Zarr: every chain is its own group with single-chunk arrays, so any number of
workers write at the same time without touching a shared file (HDF5 would need one
writer or MPI-IO); a group is written under ``.tmp/`` and renamed into ``chains/``,
so a chain group either exists complete or not at all, even after SIGKILL.

Commit protocol (what makes a rerun resume without losing or duplicating anything):
only the process that runs the batch writes the tables.  When a task (a batch of work
items) returns, it writes ``failures/part-<id>.parquet`` and then
``summary/part-<id>.parquet``, each to a temporary name and renamed; the summary part
(possibly with zero rows) is the commit of every input of that task.  A failures part
without its summary part was not committed and is removed by the next run.  At the end
of a run the parts are merged into one pair; the merged summary part lists the part
ids it replaces (Parquet metadata), and those are ignored by readers and removed by the
next run if a crash left them behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = [
    "BatchStore",
    "open_store",
    "parse_coupling",
    "band_taper",
    "entry_for_view",
    "write_chain",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "SUMMARY_COLUMNS",
    "FAILURE_COLUMNS",
]

STORE_FORMAT = "dynaprot-viz batch store"
STORE_FORMAT_VERSION = 1
_CHAINS, _SUMMARY, _FAILURES, _TMP, _LOCK = "chains", "summary", "failures", ".tmp", ".lock"
_MERGED_KEY = b"dynaprot_viz.merged_parts"

#: columns of the summary table (one row per predicted chain)
SUMMARY_COLUMNS = {
    "chain": "string",             # entry id, e.g. 1abc_A: the key of store[...]
    "file": "string",              # absolute path of the input file (the npz for an npz entry)
    "entry": "string",             # npz entry id ("" for a structure file)
    "n_residues": "int32",         # N
    "model": "string",             # Dynamics.model_name
    "mean_rmsf": "float64",        # Å (model units: ANM "relative" is kT/gamma)
    "max_rmsf": "float64",
    "top5_mobile": "string",       # the five residues of highest RMSF, "A:45,A:46,..."
    "best_pocket_score": "float64",  # score of find_pockets()[0], NaN when none
    "seconds": "float64",          # wall time of this chain on its worker (read + predict + write)
    "status": "string",            # "ok" or "warning" (see note)
    "note": "string",              # warnings raised for this chain, "; "-joined
    "worker": "string",            # host:pid of the worker process
    "input": "string",             # work item key (what a rerun skips)
}
#: columns of the failures table (one row per input or chain that could not be predicted)
FAILURE_COLUMNS = {
    "input": "string",
    "file": "string",
    "entry": "string",
    "chain": "string",             # entry id when one chain failed, "" when the whole input did
    "reason": "string",            # one line
    "model": "string",
    "worker": "string",
    "seconds": "float64",
}


def _require():
    try:
        import pyarrow  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the batch store needs zarr>=3 (Python >= 3.11) and pyarrow ({exc}); "
                          "pip install 'dynaprot-viz[batch]'") from None


def parse_coupling(text) -> str:
    """Validate a ``--coupling`` value: ``"full"``, ``"none"`` or ``"band:K"`` (K >= 1, the
    number of off-diagonals kept on each side).  Returns the canonical text."""
    t = str(text).strip().lower()
    if t in ("full", "none"):
        return t
    if t.startswith("band:"):
        try:
            k = int(t[5:])
        except ValueError:
            k = -1
        if k >= 1:
            return f"band:{k}"
    raise InputError(f"--coupling must be full, none or band:K with an integer K >= 1, got {text!r}")


def band_taper(k: int, n: int) -> np.ndarray:
    """Bartlett taper of a band of half-width ``k``, shape (n, n): T_ij = max(0, 1 - |i-j|/(k+1)).

    T is positive semi-definite (a triangle's autocorrelation), so the Schur product
    C * T of a PSD coupling C is PSD (Schur product theorem) and zero beyond the band,
    whereas the band of C cut out as it is often is not PSD.
    """
    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return np.clip(1.0 - d / (k + 1.0), 0.0, None)


def _band_of(coupling: np.ndarray, k: int) -> np.ndarray:
    """Row d of the (k+1, N) result = C[i, i+d] for i < N-d, zero after."""
    n = coupling.shape[0]
    band = np.zeros((k + 1, n), dtype=np.float32)
    for d in range(min(k, n - 1) + 1):
        band[d, : n - d] = np.diagonal(coupling, offset=d)
    return band


def _matrix_of_band(band: np.ndarray) -> np.ndarray:
    """The symmetric (N, N) matrix with the band's diagonals, zero beyond it."""
    k1, n = band.shape
    c = np.zeros((n, n))
    for d in range(min(k1 - 1, n - 1) + 1):
        v = band[d, : n - d].astype(np.float64)
        c += np.diag(v, d)
        if d:
            c += np.diag(v, -d)
    return c


def _part_id() -> str:
    return f"{time.time_ns() // 1_000_000:013d}-{uuid.uuid4().hex[:10]}"


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total


@dataclass(frozen=True)
class StoreConfig:
    """What a store was made with; a rerun must ask for the same.

    model : str
        Registered predictor name.
    model_version : str
        ``dynaprot-viz <version>`` plus the weights file's SHA-256 when one was given.
    model_options : dict
        Predictor options (JSON values), e.g. ``{"scale": "relative"}``.
    coupling : str
        ``full``, ``none`` or ``band:K``.
    """

    model: str
    model_version: str
    model_options: dict
    coupling: str

    def attrs(self) -> dict:
        return {"model": self.model, "model_version": self.model_version,
                "model_options": self.model_options, "coupling": self.coupling}


class BatchStore:
    """A batch store folder (see the module docstring for the layout).

    ``store.summary`` and ``store.failures`` are pandas DataFrames (committed rows only),
    ``store["1abc_A"]`` is the :class:`~dynaprot_viz.Dynamics` of one entry, ``len(store)``
    the number of predicted chains, ``"1abc_A" in store`` tests an entry.
    """

    def __init__(self, path):
        _require()
        import zarr

        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise InputError(f"{self.path}: not a batch store (no zarr.json; make one with `dynaprot-viz batch`)")
        try:
            attrs = dict(zarr.open_group(str(self.path), mode="r").attrs)
        except Exception as exc:
            raise InputError(f"{self.path}: cannot be opened as a Zarr group ({_one_line(exc)})") from None
        if attrs.get("format") != STORE_FORMAT:
            raise InputError(f"{self.path}: a Zarr group but not a {STORE_FORMAT}")
        if int(attrs.get("format_version", 0)) > STORE_FORMAT_VERSION:
            raise InputError(f"{self.path}: store format {attrs.get('format_version')} is newer than this "
                             f"dynaprot-viz reads ({STORE_FORMAT_VERSION}); upgrade dynaprot-viz")
        self.attrs = attrs
        self._tables = None

    # ------------------------------------------------------------------ creation (the writing run)
    @classmethod
    def create_or_check(cls, path, config: StoreConfig) -> "BatchStore":
        """Open ``path`` for a run with ``config``, creating the store when absent.

        Raises
        ------
        InputError
            ``path`` exists and is not a batch store (an empty folder is fine), or was
            made with another model, model options or coupling mode.
        """
        _require()
        import zarr

        from .. import __version__

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path}: exists and is not a folder")
        if path.is_dir() and not (path / "zarr.json").exists() and any(path.iterdir()):
            raise InputError(f"--out {path}: a folder that is not empty and not a batch store; "
                             "give a new or empty folder")
        if not (path / "zarr.json").exists():
            from ..commands._outputs import check_output_folder

            check_output_folder(path, "--out")
            path.mkdir(parents=True, exist_ok=True)
            for sub in (_CHAINS, _SUMMARY, _FAILURES, _TMP):
                (path / sub).mkdir(exist_ok=True)
            zarr.open_group(str(path / _CHAINS), mode="w", attributes={"about": "one group per chain"})
            attrs = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dynaprot_viz": __version__,
                     **config.attrs()}
            # the root's zarr.json is written last: a folder without it is an unfinished creation
            tmp_root = path / _TMP / f"root-{uuid.uuid4().hex}"
            zarr.open_group(str(tmp_root), mode="w", attributes=attrs)
            os.replace(tmp_root / "zarr.json", path / "zarr.json")
            shutil.rmtree(tmp_root, ignore_errors=True)
        store = cls(path)
        old = {k: store.attrs.get(k) for k in ("model", "model_options", "coupling")}
        new = {k: config.attrs()[k] for k in old}
        if old != new:
            diff = ", ".join(f"{k} {old[k]!r} (asked {new[k]!r})" for k in old if old[k] != new[k])
            raise InputError(f"--out {path}: this store was made with {diff}; rerun with the same options to "
                             "resume, or give a new --out")
        for sub in (_CHAINS, _SUMMARY, _FAILURES, _TMP):
            (path / sub).mkdir(exist_ok=True)
        return store

    @contextlib.contextmanager
    def lock(self):
        """Hold the store's write lock (flock; released by the OS even on SIGKILL)."""
        import fcntl

        fh = open(self.path / _LOCK, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                who = fh.read().strip() or "another process"
                raise InputError(f"--out {self.path}: in use by another batch run ({who}); wait for it "
                                 "or give another --out") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            fh.flush()
            yield self
        finally:
            fh.close()

    # ------------------------------------------------------------------ tables
    def _part_files(self, table: str) -> dict[str, Path]:
        folder = self.path / table
        if not folder.is_dir():
            return {}
        return {p.name[len("part-"):-len(".parquet")]: p for p in folder.glob("part-*.parquet")}

    def _merged_ids(self, summary_parts: dict[str, Path]) -> set[str]:
        import pyarrow.parquet as pq

        merged: set[str] = set()
        for pid, p in summary_parts.items():
            if "-merged-" not in pid:
                continue
            meta = pq.read_schema(p).metadata or {}
            if _MERGED_KEY in meta:
                merged.update(json.loads(meta[_MERGED_KEY]))
        return merged

    def committed_parts(self) -> list[str]:
        """Ids of the committed table parts: a summary part exists, and no merged part replaces it."""
        summary = self._part_files(_SUMMARY)
        merged = self._merged_ids(summary)
        return sorted(pid for pid in summary if pid not in merged)

    def recover(self) -> None:
        """Clean what an interrupted run left (call with :meth:`lock` held): work in
        progress under ``.tmp``, parts replaced by a merge, uncommitted failures parts."""
        shutil.rmtree(self.path / _TMP, ignore_errors=True)
        (self.path / _TMP).mkdir(exist_ok=True)
        summary = self._part_files(_SUMMARY)
        merged = self._merged_ids(summary)
        for pid in merged:
            for table in (_SUMMARY, _FAILURES):
                with contextlib.suppress(FileNotFoundError):
                    (self.path / table / f"part-{pid}.parquet").unlink()
        summary = self._part_files(_SUMMARY)
        for pid, p in self._part_files(_FAILURES).items():
            if pid not in summary:
                p.unlink()
        self._tables = None

    def _read_tables(self) -> tuple:
        import pandas as pd
        import pyarrow.parquet as pq

        for attempt in range(3):  # a merge may remove parts between listing and reading
            try:
                ids = self.committed_parts()
                failures_parts = self._part_files(_FAILURES)
                s = [pq.read_table(self.path / _SUMMARY / f"part-{pid}.parquet") for pid in ids]
                f = [pq.read_table(failures_parts[pid]) for pid in ids if pid in failures_parts]
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.2)
        summary = _concat(s, SUMMARY_COLUMNS)
        failures = _concat(f, FAILURE_COLUMNS)
        summary = summary.sort_values("chain", kind="stable").reset_index(drop=True)
        failures = failures.sort_values(["input", "chain"], kind="stable").reset_index(drop=True)
        return pd.DataFrame(summary), pd.DataFrame(failures), frozenset(summary["chain"])

    def refresh(self) -> "BatchStore":
        """Forget the cached tables (re-read on next access)."""
        self._tables = None
        return self

    @property
    def summary(self):
        """pandas DataFrame, one row per predicted chain (:data:`SUMMARY_COLUMNS`), sorted by chain."""
        if self._tables is None:
            self._tables = self._read_tables()
        return self._tables[0]

    @property
    def failures(self):
        """pandas DataFrame, one row per failed input or chain (:data:`FAILURE_COLUMNS`)."""
        if self._tables is None:
            self._tables = self._read_tables()
        return self._tables[1]

    def done_inputs(self) -> set[str]:
        """Keys of the work items already committed (done or failed)."""
        s, f = self.summary, self.failures
        return set(s["input"]) | set(f["input"])

    def write_part(self, rows: list[dict], failures: list[dict]) -> str:
        """Commit one finished task: the failures part, then the summary part (the commit).
        Returns the part id."""
        pid = _part_id()
        self._write_table(_FAILURES, pid, failures, FAILURE_COLUMNS)
        self._write_table(_SUMMARY, pid, rows, SUMMARY_COLUMNS)
        self._tables = None
        return pid

    def _write_table(self, table, pid, rows, columns, metadata=None, frame=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame is None:
            frame = _frame(rows, columns)
        t = pa.Table.from_pandas(frame, preserve_index=False)
        if metadata:
            t = t.replace_schema_metadata({**(t.schema.metadata or {}), **metadata})
        tmp = self.path / _TMP / f"{table}-{pid}.parquet"
        pq.write_table(t, tmp)
        os.replace(tmp, self.path / table / f"part-{pid}.parquet")

    def merge_parts(self) -> None:
        """Merge the committed parts into one pair (call with :meth:`lock` held)."""
        ids = self.committed_parts()
        if len(ids) <= 1:
            return
        summary, failures, _ = self._read_tables()
        pid = f"{_part_id()}-merged-{len(ids)}"
        meta = {_MERGED_KEY: json.dumps(ids).encode()}
        self._write_table(_FAILURES, pid, None, FAILURE_COLUMNS, frame=failures)
        self._write_table(_SUMMARY, pid, None, SUMMARY_COLUMNS, metadata=meta, frame=summary)
        self.recover()  # removes the merged parts

    # ------------------------------------------------------------------ chains
    def keys(self) -> list[str]:
        """Entry ids of the predicted chains (the summary's ``chain`` column)."""
        return list(self.summary["chain"])

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.summary)

    def __contains__(self, entry) -> bool:
        self.summary  # noqa: B018 (reads the tables once)
        return entry in self._tables[2]

    def __repr__(self) -> str:
        return (f"BatchStore({str(self.path)!r}: {len(self.summary)} chains, {len(self.failures)} failures, "
                f"model {self.attrs.get('model')}, coupling {self.attrs.get('coupling')})")

    @property
    def model(self) -> str:
        return str(self.attrs.get("model"))

    @property
    def coupling_mode(self) -> str:
        return str(self.attrs.get("coupling"))

    def size_bytes(self) -> int:
        """Bytes on disk of the whole store folder."""
        return _dir_size(self.path)

    def _group(self, entry: str):
        import zarr

        if entry not in self:
            import difflib

            close = difflib.get_close_matches(str(entry), self.keys(), n=3)
            hint = f"; close: {', '.join(close)}" if close else ""
            raise KeyError(f"{entry!r} is not a predicted chain of {self.path}{hint}")
        return zarr.open_group(str(self.path / _CHAINS / entry), mode="r")

    def info(self, entry: str) -> dict:
        """Attributes of one entry: id, file, chain, entry, model_name, n_residues, coupling."""
        attrs = dict(self._group(entry).attrs)
        return {k: v for k, v in attrs.items() if not k.startswith("residue_")}

    def coupling(self, entry: str) -> np.ndarray | None:
        """The coupling as stored, shape (N, N), Å², float64: the full matrix, or for
        ``band:K`` the exact band (zero beyond it; not always PSD), None for ``none``."""
        g = self._group(entry)
        if "coupling" in g:
            return np.asarray(g["coupling"][...], dtype=np.float64)
        if "coupling_band" in g:
            return _matrix_of_band(np.asarray(g["coupling_band"][...]))
        return None

    def __getitem__(self, entry: str):
        """The :class:`~dynaprot_viz.Dynamics` of one entry (float32 values as float64).

        ``--coupling full``: the stored coupling.  ``band:K``: the band tapered by
        :func:`band_taper` (C_ij (1 - |i-j|/(K+1))), which keeps it PSD; the exact
        stored band is :meth:`coupling`.  ``none``: diag(tr Sigma_i / 3), independent
        residues.
        """
        from ..core.gaussian import Dynamics

        g = self._group(entry)
        a = g.attrs
        mean = np.asarray(g["mean"][...], dtype=np.float64)
        marg = np.asarray(g["marginals"][...], dtype=np.float64)
        if "coupling" in g:
            coup = np.asarray(g["coupling"][...], dtype=np.float64)
        elif "coupling_band" in g:
            band = np.asarray(g["coupling_band"][...])
            coup = _matrix_of_band(band) * band_taper(band.shape[0] - 1, band.shape[1])
        else:
            coup = np.diag(np.trace(marg, axis1=1, axis2=2) / 3.0)
        residues = list(zip(a["residue_chain"], a["residue_number"], a["residue_icode"], a["residue_name"]))
        return Dynamics(mean=mean, marginals=marg, coupling=coup, residues=residues,
                        model_name=str(a.get("model_name", self.model)), isotropic=bool(a.get("isotropic", False)))


def open_store(path) -> BatchStore:
    """Open a batch store for reading.

    >>> store = open_store("out/pdb.zarr")          # doctest: +SKIP
    >>> store.summary.head()                         # pandas DataFrame, one row per chain
    >>> dyn = store["1abc_A"]                        # Dynamics
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such store")
    return BatchStore(path)


def entry_for_view(store, entry, input_path=None, structure=None):
    """``dynaprot-viz view --store STORE --chain ENTRY``: (Dynamics, structure file or None).

    The structure drawn as cartoon is ``structure`` when given, else the entry's input
    file when it is a structure file that still exists (an npz entry has none: C-alpha
    trace only).
    """
    from .inputs import is_structure_name

    if store is None:
        raise InputError("give INPUT, or --store STORE with --chain ENTRY")
    if input_path is not None:
        raise InputError(f"give INPUT ({input_path}) or --store STORE, not both")
    s = open_store(store)
    if not entry:
        some = ", ".join(s.keys()[:5]) or "none"
        raise InputError(f"--store {store}: give the entry with --chain (e.g. {some})")
    try:
        dyn = s[entry]
    except KeyError as exc:
        raise InputError(f"--store {store}: {exc.args[0]}") from None
    if structure is not None:
        return dyn, Path(structure)
    f = s.info(entry).get("file", "")
    return dyn, (Path(f) if f and is_structure_name(f) and Path(f).is_file() else None)


# --------------------------------------------------------------------------- writing one chain (workers)


def write_chain(root, entry: str, dynamics, coupling: str, attrs: dict) -> None:
    """Write one chain's group into ``root/chains/<entry>`` atomically (under ``.tmp``, then a rename).

    ``coupling`` is the store's mode; ``attrs`` extra group attributes (file, chain, entry).
    An existing group of the same entry (left by an interrupted run) is replaced.
    """
    import zarr

    root = Path(root)
    tmp = root / _TMP / f"{entry}.{uuid.uuid4().hex}"
    res = dynamics.residues
    group_attrs = {
        "id": entry, **attrs, "model_name": dynamics.model_name, "isotropic": bool(dynamics.isotropic),
        "n_residues": len(dynamics), "coupling": coupling,
        "residue_chain": [r.chain for r in res], "residue_number": [int(r.number) for r in res],
        "residue_icode": [r.icode for r in res], "residue_name": [r.name for r in res],
    }
    g = zarr.open_group(str(tmp), mode="w", attributes=group_attrs)

    def put(name, arr):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        g.create_array(name, data=arr, chunks=arr.shape)

    put("mean", dynamics.mean)
    put("marginals", dynamics.marginals)
    if coupling == "full":
        put("coupling", dynamics.coupling)
    elif coupling.startswith("band:"):
        put("coupling_band", _band_of(dynamics.coupling, int(coupling[5:])))
    final = root / _CHAINS / entry
    for _ in range(5):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if not final.exists():
                raise
            try:
                import zarr as _z

                other = _z.open_group(str(final), mode="r").attrs.get("id")
            except Exception:
                other = entry  # unreadable leftover: replace it
            if other != entry:
                shutil.rmtree(tmp, ignore_errors=True)
                raise InputError(f"entry {entry!r} collides with {other!r} in {root} (a case-insensitive file "
                                 "system?); use a case-sensitive one") from None
            trash = root / _TMP / f"old-{entry}.{uuid.uuid4().hex}"
            with contextlib.suppress(OSError):
                os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
    raise OSError(f"{final}: could not be replaced")


# --------------------------------------------------------------------------- helpers


def _frame(rows, columns: dict):
    import pandas as pd

    frame = pd.DataFrame(list(rows or []), columns=list(columns))
    return frame.astype(columns)


def _concat(tables, columns: dict):
    import pandas as pd

    if not tables:
        return _frame([], columns)
    frames = [t.to_pandas() for t in tables]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame[list(columns)].astype(columns)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__
