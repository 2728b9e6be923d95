"""The batch store: one Zarr hierarchy of dynamics, one group per task, plus Parquet tables.

Layout (a folder; Zarr format 3; store format 2)::

    STORE/
      zarr.json                    root group; attributes: format, format_version (2), model,
                                   model_version, model_options, coupling, created,
                                   dynaprot_viz version
      tasks/<group>/               one group per Dask task (a batch of chains; a task whose
                                   arrays exceed 64 MiB writes several), C chains of
                                   N_1 ... N_C residues, R = sum N_c in all.  Attributes:
                                   coupling; chains (C dicts: id, file, chain, entry,
                                   model_name, isotropic, n_residues); offsets (C+1 ints:
                                   chain c is rows offsets[c]:offsets[c+1] of the arrays
                                   below); coupling_offsets (C+1 ints, --coupling full);
                                   the distinct residue_chains, residue_icodes,
                                   residue_names (lists)
        residues    (R, 4)      int32    residue number, and indices into residue_chains,
                                         residue_icodes, residue_names
        mean        (R, 3)      float32  Å, C-alpha positions
        marginals   (R, 3, 3)   float32  Å², Sigma_i
        coupling    (sum N_c²,) float32  Å², chain c's C (N_c, N_c), row-major, at
                                         coupling_offsets[c]:coupling_offsets[c+1]  (--coupling full)
        coupling_band (K+1, R)  float32  Å², chain c's columns offsets[c]:offsets[c+1]:
                                         row d = C[i, i+d], zero past the chain's end  (band:K)
                                                            (nothing with --coupling none)
      summary/part-<id>.parquet    one Parquet dataset: a row per predicted chain, with the
                                   group and slot (index among the group's chains) that
                                   hold its arrays
      failures/part-<id>.parquet   one Parquet dataset: a row per input or chain that failed
      .lock                        held (flock) by the one run writing the store
      .tmp/                        work in progress, removed by the next run

Arrays are compressed with Blosc (LZ4, byte shuffle); the flat coupling is stored in
chunks of 2^18 values (1 MiB) so that reading one chain reads little more than it.

Why Zarr: each task writes its own group of arrays, so any number of workers write at
the same time without touching a shared file (HDF5 would need one writer or MPI-IO); a
group is written under ``.tmp/`` and renamed into ``tasks/``, so it exists complete or
not at all, even after SIGKILL.  One group per task rather than per chain: zarr's
per-array calls cost a few ms each, which per chain was a third of ANM's time.

Commit protocol (what makes a rerun resume without losing or duplicating anything):
only the process that runs the batch writes the tables.  When a task (a batch of work
items) returns, its groups are in ``tasks/``; the client writes
``failures/part-<id>.parquet`` and then ``summary/part-<id>.parquet``, each to a
temporary name and renamed; the summary part (possibly with zero rows) is the commit of
every input of that task, and of its groups.  A failures part without its summary part
was not committed, and a group that no committed summary row names was left by a task
that was not; the next run removes both.  At the end of a run the parts are merged into
one pair; the merged summary part lists the part ids it replaces (Parquet metadata), and
those are ignored by readers and removed by the next run if a crash left them behind.

Format 1 (one group per chain under ``chains/<entry>/``, written by earlier versions)
is still read; it is not resumed (a rerun into it is refused: give a new ``--out``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = [
    "BatchStore",
    "GroupWriter",
    "open_store",
    "parse_coupling",
    "band_taper",
    "entry_for_view",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "SUMMARY_COLUMNS",
    "FAILURE_COLUMNS",
]

STORE_FORMAT = "dynaprot-viz batch store"
STORE_FORMAT_VERSION = 2
_TASKS, _SUMMARY, _FAILURES, _TMP, _LOCK = "tasks", "summary", "failures", ".tmp", ".lock"
_CHAINS_V1 = "chains"  # format 1: one group per chain
_MERGED_KEY = b"dynaprot_viz.merged_parts"
#: a task flushes its buffered chains into a group when their arrays reach this many bytes
GROUP_BYTES = 64 * 2**20
#: chunk of the flat coupling array, in values (1 MiB of float32)
_COUPLING_CHUNK = 2**18
#: groups whose attributes and offsets a reader keeps open
_OPEN_GROUPS = 8
#: attribute of a task group -> the Residue field whose distinct values it lists
_RESIDUE_LISTS = {"residue_chains": "chain", "residue_icodes": "icode", "residue_names": "name"}

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
    "seconds": "float64",          # wall time of this chain on its worker (read + predict + its share of the write)
    "status": "string",            # "ok" or "warning" (see note)
    "note": "string",              # warnings raised for this chain, "; "-joined
    "worker": "string",            # host:pid of the worker process
    "input": "string",             # work item key (what a rerun skips)
    "group": "string",             # the group tasks/<group> that holds the arrays ("" in format 1)
    "slot": "int32",               # the chain's index among the group's chains (-1 in format 1)
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
_MISSING = {"string": "", "int32": -1, "float64": float("nan")}


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
    """Row d of the (k+1, N) float32 result = C[i, i+d] for i < N-d, zero after."""
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


def _compressors():
    from zarr.codecs import BloscCodec

    # LZ4 with byte shuffle: 0.3 ms per chain of CPU for full couplings, 20% smaller than raw
    # float32 (zstd, zarr's default, took twice the time for 6% less)
    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=4)]


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


class _OpenGroup:
    """A task group opened for reading (format 2): its attributes, and its small arrays
    (residues, mean, marginals, coupling_band: R rows, read once); the flat coupling is
    read chain by chain."""

    def __init__(self, path: Path):
        import zarr

        self.group = zarr.open_group(str(path), mode="r")
        self.attrs = dict(self.group.attrs)
        self.offsets = self.attrs["offsets"]
        self._small: dict = {}

    def _array(self, name: str) -> np.ndarray:
        if name not in self._small:
            self._small[name] = self.group[name][...]
        return self._small[name]

    def attrs_of(self, slot: int) -> dict:
        lo, hi = self.offsets[slot], self.offsets[slot + 1]
        out = {**self.attrs["chains"][slot], "coupling": self.attrs["coupling"]}
        ids = self._array("residues")[lo:hi]
        out["residue_number"] = ids[:, 0].tolist()
        for col, (key, field) in enumerate(_RESIDUE_LISTS.items(), start=1):
            values = self.attrs[key]
            out[f"residue_{field}"] = [values[i] for i in ids[:, col]]
        return out

    def arrays_of(self, slot: int) -> dict:
        lo, hi = self.offsets[slot], self.offsets[slot + 1]
        out = {"mean": self._array("mean")[lo:hi].copy(), "marginals": self._array("marginals")[lo:hi].copy()}
        mode = self.attrs["coupling"]
        if mode == "full":
            a, b = self.attrs["coupling_offsets"][slot], self.attrs["coupling_offsets"][slot + 1]
            out["coupling"] = self.group["coupling"][a:b].reshape(hi - lo, hi - lo)
        elif mode.startswith("band:"):
            out["coupling_band"] = self._array("coupling_band")[:, lo:hi].copy()
        return out


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
        self.format_version = int(attrs.get("format_version", 1))
        self._tables = None
        self._open: OrderedDict = OrderedDict()  # group id -> _OpenGroup, least recently used first

    # ------------------------------------------------------------------ creation (the writing run)
    @classmethod
    def create_or_check(cls, path, config: StoreConfig) -> "BatchStore":
        """Open ``path`` for a run with ``config``, creating the store when absent.

        Raises
        ------
        InputError
            ``path`` exists and is not a batch store (an empty folder is fine), is a
            store of an older format, or was made with another model, model options or
            coupling mode.
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
            for sub in (_TASKS, _SUMMARY, _FAILURES, _TMP):
                (path / sub).mkdir(exist_ok=True)
            zarr.open_group(str(path / _TASKS), mode="w", attributes={"about": "one group per task"})
            attrs = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dynaprot_viz": __version__,
                     **config.attrs()}
            # the root's zarr.json is written last: a folder without it is an unfinished creation
            tmp_root = path / _TMP / f"root-{uuid.uuid4().hex}"
            zarr.open_group(str(tmp_root), mode="w", attributes=attrs)
            os.replace(tmp_root / "zarr.json", path / "zarr.json")
            shutil.rmtree(tmp_root, ignore_errors=True)
        store = cls(path)
        if store.format_version != STORE_FORMAT_VERSION:
            raise InputError(f"--out {path}: store format {store.format_version} (an older dynaprot-viz) cannot be "
                             f"resumed by this one (format {STORE_FORMAT_VERSION}); give a new --out (the old "
                             "store stays readable)")
        old = {k: store.attrs.get(k) for k in ("model", "model_options", "coupling")}
        new = {k: config.attrs()[k] for k in old}
        if old != new:
            diff = ", ".join(f"{k} {old[k]!r} (asked {new[k]!r})" for k in old if old[k] != new[k])
            raise InputError(f"--out {path}: this store was made with {diff}; rerun with the same options to "
                             "resume, or give a new --out")
        for sub in (_TASKS, _SUMMARY, _FAILURES, _TMP):
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
        progress under ``.tmp``, parts replaced by a merge, uncommitted failures parts,
        and task groups that no committed summary row names."""
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
        self._open.clear()
        tasks = self.path / _TASKS
        if self.format_version >= 2 and tasks.is_dir():
            named = set(self.summary["group"])
            for d in tasks.iterdir():
                if d.is_dir() and d.name not in named:
                    shutil.rmtree(d, ignore_errors=True)

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
        where = dict(zip(summary["chain"], zip(summary["group"], summary["slot"].astype(int))))
        return pd.DataFrame(summary), pd.DataFrame(failures), where

    def refresh(self) -> "BatchStore":
        """Forget the cached tables (re-read on next access)."""
        self._tables = None
        self._open.clear()
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

    def _locate(self, entry: str) -> tuple[str, int]:
        """(group id, slot) of a predicted entry; KeyError with close names otherwise."""
        if entry not in self:
            import difflib

            close = difflib.get_close_matches(str(entry), self.keys(), n=3)
            hint = f"; close: {', '.join(close)}" if close else ""
            raise KeyError(f"{entry!r} is not a predicted chain of {self.path}{hint}")
        return self._tables[2][entry]

    def _task_group(self, gid: str) -> _OpenGroup:
        g = self._open.pop(gid, None)
        if g is None:
            g = _OpenGroup(self.path / _TASKS / gid)
        self._open[gid] = g
        while len(self._open) > _OPEN_GROUPS:
            self._open.popitem(last=False)
        return g

    def _record(self, entry: str, arrays: bool = True) -> tuple[dict, dict]:
        """(attributes, stored float32 arrays) of one entry, in either format."""
        gid, slot = self._locate(entry)
        if self.format_version < 2:
            import zarr

            g = zarr.open_group(str(self.path / _CHAINS_V1 / entry), mode="r")
            return dict(g.attrs), ({k: g[k][...] for k in g.array_keys()} if arrays else {})
        g = self._task_group(gid)
        return g.attrs_of(slot), (g.arrays_of(slot) if arrays else {})

    def info(self, entry: str) -> dict:
        """Attributes of one entry: id, file, chain, entry, model_name, isotropic, n_residues, coupling."""
        attrs, _ = self._record(entry, arrays=False)
        return {k: v for k, v in attrs.items() if not k.startswith("residue_")}

    def arrays(self, entry: str) -> dict:
        """The arrays of one entry as stored, float32: ``mean`` (N, 3) Å, ``marginals``
        (N, 3, 3) Å², and ``coupling`` (N, N) Å² (full) or ``coupling_band`` (K+1, N) Å²
        (band:K: row d = C[i, i+d], zero past the end) or neither (none)."""
        return self._record(entry)[1]

    def coupling(self, entry: str) -> np.ndarray | None:
        """The coupling as stored, shape (N, N), Å², float64: the full matrix, or for
        ``band:K`` the exact band (zero beyond it; not always PSD), None for ``none``."""
        a = self.arrays(entry)
        if "coupling" in a:
            return np.asarray(a["coupling"], dtype=np.float64)
        if "coupling_band" in a:
            return _matrix_of_band(np.asarray(a["coupling_band"]))
        return None

    def __getitem__(self, entry: str):
        """The :class:`~dynaprot_viz.Dynamics` of one entry (float32 values as float64).

        ``--coupling full``: the stored coupling.  ``band:K``: the band tapered by
        :func:`band_taper` (C_ij (1 - |i-j|/(K+1))), which keeps it PSD; the exact
        stored band is :meth:`coupling`.  ``none``: diag(tr Sigma_i / 3), independent
        residues.
        """
        from ..core.gaussian import Dynamics

        a, arr = self._record(entry)
        mean = np.asarray(arr["mean"], dtype=np.float64)
        marg = np.asarray(arr["marginals"], dtype=np.float64)
        if "coupling" in arr:
            coup = np.asarray(arr["coupling"], dtype=np.float64)
        elif "coupling_band" in arr:
            band = np.asarray(arr["coupling_band"])
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


# --------------------------------------------------------------------------- writing (workers)


class GroupWriter:
    """Collects predicted chains on a worker and writes them as task groups.

    :meth:`add` converts a chain's arrays to float32 at once (what the store keeps) and
    returns where it will be; :meth:`flush` writes every chain added since the last
    flush as one group under ``.tmp/`` and renames it into ``tasks/`` (atomic: the group
    is there complete or not at all).  :attr:`full` says when the buffered arrays reach
    ``max_bytes``; the caller then flushes, which bounds a worker's memory.

    Parameters
    ----------
    root : path
        The store folder.
    coupling : str
        The store's mode (``full``, ``none`` or ``band:K``).
    max_bytes : int, optional
        Buffered bytes at which :attr:`full` becomes True (default :data:`GROUP_BYTES`).
    """

    def __init__(self, root, coupling: str, max_bytes: int | None = None):
        self.root = Path(root)
        self.coupling = parse_coupling(coupling)
        self.max_bytes = int(GROUP_BYTES if max_bytes is None else max_bytes)
        self._reset()

    def _reset(self):
        self.group = _part_id()
        self._chains: list[dict] = []
        self._mean: list = []
        self._marg: list = []
        self._coup: list = []
        self._residues: list = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._chains)

    @property
    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def add(self, entry: str, dynamics, attrs: dict) -> dict:
        """Buffer one chain; ``attrs`` are its file, chain and entry.  Returns
        ``{"group": id, "slot": index}``, where it will be once flushed."""
        f32 = np.float32
        mean = np.asarray(dynamics.mean, dtype=f32)
        marg = np.asarray(dynamics.marginals, dtype=f32)
        if self.coupling == "full":
            coup = np.asarray(dynamics.coupling, dtype=f32).reshape(-1)
        elif self.coupling.startswith("band:"):
            coup = _band_of(dynamics.coupling, int(self.coupling[5:]))
        else:
            coup = None
        slot = len(self._chains)
        self._chains.append({"id": entry, **attrs, "model_name": dynamics.model_name,
                             "isotropic": bool(dynamics.isotropic), "n_residues": len(dynamics)})
        self._mean.append(mean)
        self._marg.append(marg)
        if coup is not None:
            self._coup.append(coup)
        self._residues.extend(dynamics.residues)  # Residue(chain, number, icode, name)
        self._bytes += mean.nbytes + marg.nbytes + (coup.nbytes if coup is not None else 0)
        return {"group": self.group, "slot": slot}

    def flush(self) -> str | None:
        """Write the buffered chains as group ``tasks/<id>``; returns the id (None when
        nothing was buffered).  The buffer is emptied even when writing fails."""
        if not self._chains:
            return None
        import zarr

        gid = self.group
        try:
            sizes = np.array([c["n_residues"] for c in self._chains], dtype=np.int64)
            attrs = {"coupling": self.coupling, "chains": self._chains,
                     "offsets": [0, *np.cumsum(sizes).tolist()]}
            if self.coupling == "full":
                attrs["coupling_offsets"] = [0, *np.cumsum(sizes**2).tolist()]
            ids = np.empty((len(self._residues), 4), dtype=np.int32)  # number, then indices into the lists
            ids[:, 0] = [r.number for r in self._residues]
            for col, (key, field) in enumerate(_RESIDUE_LISTS.items(), start=1):
                index: dict = {}
                ids[:, col] = [index.setdefault(getattr(r, field), len(index)) for r in self._residues]
                attrs[key] = list(index)
            tmp = self.root / _TMP / f"group-{gid}"
            g = zarr.open_group(str(tmp), mode="w", attributes=attrs)
            comp = _compressors()

            def put(name, arr, chunks=None):
                g.create_array(name, data=arr, chunks=chunks or arr.shape, compressors=comp)

            put("residues", ids)
            put("mean", np.concatenate(self._mean))
            put("marginals", np.concatenate(self._marg))
            if self.coupling == "full":
                flat = np.concatenate(self._coup)
                put("coupling", flat, chunks=(min(_COUPLING_CHUNK, len(flat)),))
            elif self._coup:
                put("coupling_band", np.concatenate(self._coup, axis=1))
            os.rename(tmp, self.root / _TASKS / gid)  # group ids are unique: nothing is replaced
        finally:
            self._reset()
        return gid


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
    for k, dtype in columns.items():  # a format-1 summary has no group and slot
        if k not in frame:
            frame[k] = _MISSING[dtype]
    return frame[list(columns)].astype(columns)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__

