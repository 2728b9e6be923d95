"""The label store: MD-derived labels of many chains in one HDF5 file.

One record per chain (:class:`ChainLabels`): the reference structure (residue ids,
sequence, backbone N/CA/C in Å) and the labels of DESIGN.md section 2 computed from
its trajectories (marginals Σ_i (N, 3, 3) Å², coupling C (N, N) Å², DCCM, ResAxial's
cosine correlation, RMSF (N,) Å) plus provenance.

File layout (``format = "dynaprot-viz-labels"``, ``format_version = 1``)::

    /chains/<key>/            group per chain; attrs: sequence, provenance (JSON)
        backbone              (N, 3, 3) float64 Å   [N, CA, C]
        marginals             (N, 3, 3) float64 Å²
        coupling              (N, N)    float64 Å²
        correlation           (N, N)    float32     DCCM
        cosine_correlation    (N, N)    float32     mean_t cos(dr_i, dr_j)
        rmsf                  (N,)      float64 Å
        frames                (K, N, 3) float32 Å   optional MD C-alpha conformations
        residue_chain, residue_icode, residue_name  (N,) fixed-length ASCII
        residue_number        (N,)      int64
    /index/keys, /index/lengths, /index/sources    one row per chain (resizable)

Every dataset is chunked and gzip-compressed (with the shuffle filter); the
dimensionless correlation maps are stored in float32 to halve the file (their
values lie in [-1, 1]; 1e-7 relative precision is far below MD sampling noise).
The index lets :meth:`LabelStore.keys` and :meth:`LabelStore.lengths` answer
without touching any array, so a store of thousands of chains opens instantly.

A record is written under a temporary group name and renamed when complete,
then the index is updated and the file flushed: an interrupted ``put`` leaves
no half record, and opening in ``"a"`` mode repairs the index from the groups.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError, ShapeError
from dynaprot_viz.core.gaussian import as_residues, check_symmetric
from dynaprot_viz.core.structure import Residue

__all__ = ["ChainLabels", "LabelStore", "STORE_FORMAT", "STORE_FORMAT_VERSION"]

STORE_FORMAT = "dynaprot-viz-labels"
STORE_FORMAT_VERSION = 1

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TMP_PREFIX = ".tmp-"
_COMPRESSION = dict(compression="gzip", compression_opts=4, shuffle=True)


def _require_h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the [train] extra
        raise ImportError(
            "the label store needs h5py: pip install 'dynaprot-viz[train]' (or pip install h5py)"
        ) from exc
    return h5py


def check_key(key) -> str:
    """Validate a chain key (letters, digits, ``_ . -``; no ``/``), return it as str."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InputError(
            f"chain key {key!r} is not valid: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return key


def _float_array(name, value, shape, *, allow_nan=False):
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ShapeError(f"{name} must have shape {shape}, got {arr.shape}")
    ok = ~np.isinf(arr) if allow_nan else np.isfinite(arr)
    if not np.all(ok):
        raise ShapeError(f"{name} contains {'infinite' if allow_nan else 'NaN or infinite'} values")
    return arr


def _jsonable(obj):
    """Provenance values as JSON-friendly Python objects (numpy scalars/arrays converted)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return os.fspath(obj)
    return obj


@dataclass(frozen=True, eq=False)
class ChainLabels:
    """MD labels of one chain (DESIGN.md section 2).

    Attributes
    ----------
    key : str
        Store key, e.g. ``"1abc_A"`` (letters, digits, ``_ . -``).
    sequence : str
        N one-letter codes (``X`` when unknown).
    residues : tuple[Residue, ...]
        N residue ids of the reference structure.
    backbone : ndarray, shape (N, 3, 3), float64, Å
        N, CA, C of the reference structure (NaN allowed for N or C, never CA).
    marginals : ndarray, shape (N, 3, 3), float64, Å²
        Σ_i, the C-alpha covariance of each residue over all superposed frames.
    coupling : ndarray, shape (N, N), float64, Å²
        C_ij = tr(Σ_ij) / 3.
    correlation : ndarray, shape (N, N), float64
        DCCM C_ij / sqrt(C_ii C_jj), unit diagonal.
    cosine_correlation : ndarray, shape (N, N), float64
        ResAxial's per-frame cosine mean_t (dr_i . dr_j) / (|dr_i| |dr_j|), dr the
        displacement from the mean superposed position; unit diagonal.
    rmsf : ndarray, shape (N,), float64, Å
        sqrt(tr Σ_i).
    provenance : dict
        JSON-serialisable facts: ``source``, ``n_frames``, ``time_span_ps``,
        ``replicas``, ``force_field``, ``temperature_K``, ``date``, ``tool_version``
        and whatever else the reader knows (``None`` when unknown).
    frames : ndarray, shape (K, N, 3), float32, Å, optional
        A few MD conformations (C-alpha, superposed on the reference), evenly
        spaced over all frames, for ensemble metrics; ``None`` when not kept.

    Shapes, finiteness and symmetry are checked on construction; arrays are
    made read-only.
    """

    key: str
    sequence: str
    residues: tuple
    backbone: np.ndarray
    marginals: np.ndarray
    coupling: np.ndarray
    correlation: np.ndarray
    cosine_correlation: np.ndarray
    rmsf: np.ndarray
    provenance: dict = field(default_factory=dict)
    frames: np.ndarray | None = None

    def __post_init__(self):
        check_key(self.key)
        n = len(self.residues)
        if n < 1:
            raise ShapeError(f"labels {self.key}: no residues")
        if not isinstance(self.sequence, str) or len(self.sequence) != n:
            raise ShapeError(f"labels {self.key}: sequence has {len(self.sequence)} letters for {n} residues")
        bb = _float_array("backbone", self.backbone, (n, 3, 3), allow_nan=True)
        if not np.all(np.isfinite(bb[:, 1])):
            raise ShapeError(f"labels {self.key}: backbone C-alpha coordinates are not all finite")
        marg = check_symmetric("marginals", _float_array("marginals", self.marginals, (n, 3, 3)))
        coup = check_symmetric("coupling", _float_array("coupling", self.coupling, (n, n)))
        corr = check_symmetric("correlation", _float_array("correlation", self.correlation, (n, n)))
        cos = check_symmetric("cosine_correlation",
                         _float_array("cosine_correlation", self.cosine_correlation, (n, n)))
        rmsf = _float_array("rmsf", self.rmsf, (n,))
        if np.any(rmsf < 0):
            raise ShapeError(f"labels {self.key}: rmsf has negative entries")
        if np.any(np.trace(marg, axis1=1, axis2=2) < 0) or np.any(np.diag(coup) < 0):
            raise ShapeError(f"labels {self.key}: marginals or coupling have a negative variance")
        for name, arr in (("correlation", corr), ("cosine_correlation", cos)):
            if np.abs(arr).max() > 1.0 + 1e-5:
                raise ShapeError(f"labels {self.key}: {name} has entries outside [-1, 1]")
        if not isinstance(self.provenance, dict):
            raise TypeError(f"provenance must be a dict, got {type(self.provenance).__name__}")
        prov = _jsonable(dict(self.provenance))
        try:
            json.dumps(prov)
        except TypeError as exc:
            raise TypeError(f"labels {self.key}: provenance is not JSON-serialisable ({exc})") from None
        if self.frames is not None:
            fr = np.asarray(self.frames, dtype=np.float32)
            if fr.ndim != 3 or fr.shape[1:] != (n, 3) or fr.shape[0] < 1:
                raise ShapeError(f"frames must have shape (K, {n}, 3), got {fr.shape}")
            if not np.all(np.isfinite(fr)):
                raise ShapeError(f"labels {self.key}: frames contain NaN or infinite values")
            fr.setflags(write=False)
            object.__setattr__(self, "frames", fr)
        for k, v in (("backbone", bb), ("marginals", marg), ("coupling", coup),
                     ("correlation", corr), ("cosine_correlation", cos), ("rmsf", rmsf)):
            v.setflags(write=False)
            object.__setattr__(self, k, v)
        object.__setattr__(self, "residues", as_residues(self.residues, n))
        object.__setattr__(self, "provenance", prov)

    def __len__(self) -> int:
        return len(self.residues)

    @property
    def n_residues(self) -> int:
        return len(self.residues)

    @property
    def ca(self) -> np.ndarray:
        """Reference C-alpha coordinates, shape (N, 3), Å."""
        return self.backbone[:, 1]

    def to_dynamics(self):
        """The labels as a :class:`~dynaprot_viz.core.gaussian.Dynamics` (``model_name="md"``).

        ``mean`` is the reference C-alpha positions; marginals and coupling as stored.
        Raises :class:`~dynaprot_viz.core.errors.InputError` when a marginal is not
        positive definite (a residue that never moved, or fewer than 4 frames, which
        cannot span three dimensions).
        """
        from dynaprot_viz.core.gaussian import Dynamics

        try:
            return Dynamics(mean=self.ca, marginals=self.marginals, coupling=self.coupling,
                            residues=self.residues, model_name="md")
        except ShapeError as exc:
            frames = self.provenance.get("n_frames", "?")
            raise InputError(f"labels {self.key!r} ({frames} frames) are not a valid Gaussian: {exc}; "
                             "a 3x3 covariance needs at least 4 frames with motion") from None

    def to_chain(self):
        """The reference structure as a :class:`~dynaprot_viz.core.structure.ProteinChain`.

        ``source`` is ``"labels:<key>"``; B-factors are zero (MD labels carry none).
        """
        from dynaprot_viz.core.structure import ProteinChain

        return ProteinChain(source=f"labels:{self.key}", residues=self.residues,
                            sequence=self.sequence, backbone=np.array(self.backbone),
                            bfactors=np.zeros(self.n_residues))


# --------------------------------------------------------------------------- store


def _fixed_ascii(values) -> np.ndarray:
    enc = [str(v).encode("ascii", "replace") for v in values]
    width = max([len(e) for e in enc] + [1])
    return np.array(enc, dtype=f"S{width}")


def _decode(arr) -> list[str]:
    return [v.decode("ascii") if isinstance(v, bytes) else str(v) for v in arr]


def _matrix_chunks(n: int):
    c = min(n, 256)
    return (c, c)


class LabelStore:
    """Many chains' :class:`ChainLabels` in one HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.
    mode : ``"r"`` or ``"a"``
        ``"r"`` read only (the file must exist); ``"a"`` read and write, created
        when missing.

    Use as a context manager (or call :meth:`close`).  One writer at a time.

    Examples
    --------
    >>> with LabelStore("labels.h5", "a") as store:          # doctest: +SKIP
    ...     store.put(labels)
    ...     store.lengths()["1abc_A"]
    """

    def __init__(self, path, mode: str = "r"):
        h5py = _require_h5py()
        if mode not in ("r", "a"):
            raise InputError(f"mode must be 'r' or 'a', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        if mode == "r" and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, expected a label store (.h5)")
        try:
            self._h5 = h5py.File(self.path, mode)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot be opened as an HDF5 label store ({exc})") from None
        try:
            self._init_layout()
        except Exception:
            self._h5.close()
            raise

    # ----------------------------------------------------------- layout / index
    def _init_layout(self):
        h5 = self._h5
        fmt = h5.attrs.get("format")
        if fmt is None:
            if self.mode == "r" or len(h5.keys()):
                raise InputError(f"{self.path}: not a dynaprot-viz label store (no 'format' attribute)")
            h5.attrs["format"] = STORE_FORMAT
            h5.attrs["format_version"] = STORE_FORMAT_VERSION
            h5.create_group("chains")
            self._create_index([], [], [])
            h5.flush()
        else:
            if (fmt.decode() if isinstance(fmt, bytes) else str(fmt)) != STORE_FORMAT:
                raise InputError(f"{self.path}: not a dynaprot-viz label store (format {fmt!r})")
            version = int(h5.attrs.get("format_version", 0))
            if version > STORE_FORMAT_VERSION:
                raise InputError(
                    f"{self.path}: label store format version {version} is newer than this "
                    f"dynaprot-viz reads ({STORE_FORMAT_VERSION}); upgrade dynaprot-viz"
                )
        self._load_index()
        if self.mode == "a":
            self._repair()

    def _create_index(self, keys, lengths, sources):
        h5py = _require_h5py()
        if "index" in self._h5:
            del self._h5["index"]
        g = self._h5.create_group("index")
        s = h5py.string_dtype("utf-8")
        g.create_dataset("keys", data=np.array(keys, dtype=object), dtype=s, maxshape=(None,), chunks=(1024,))
        g.create_dataset("lengths", data=np.array(lengths, dtype=np.int64), maxshape=(None,), chunks=(1024,))
        g.create_dataset("sources", data=np.array(sources, dtype=object), dtype=s, maxshape=(None,), chunks=(1024,))

    def _load_index(self):
        g = self._h5["index"]
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in g["keys"][()]]
        lengths = [int(x) for x in g["lengths"][()]]
        sources = [s.decode() if isinstance(s, bytes) else str(s) for s in g["sources"][()]]
        self._index = {k: (n, s) for k, n, s in zip(keys, lengths, sources)}
        self._order = list(keys)

    def _write_index(self):
        keys = self._order
        self._create_index(keys, [self._index[k][0] for k in keys], [self._index[k][1] for k in keys])

    def _append_index(self, key, length, source):
        g = self._h5["index"]
        n = g["keys"].shape[0]
        for name, value in (("keys", key), ("lengths", length), ("sources", source)):
            g[name].resize((n + 1,))
            g[name][n] = value
        self._index[key] = (int(length), str(source))
        self._order.append(key)

    def _repair(self):
        """Drop half-written groups; make the index agree with the chain groups."""
        chains = self._h5["chains"]
        changed = False
        for name in list(chains.keys()):
            if name.startswith(_TMP_PREFIX):
                del chains[name]
                changed = True
        present = set(chains.keys())
        if set(self._order) != present:
            order = [k for k in self._order if k in present]
            order += sorted(present - set(order))
            self._order = order
            self._index = {k: self._index.get(k) or self._group_meta(k) for k in order}
            self._write_index()
            changed = True
        if changed:
            self._h5.flush()

    def _group_meta(self, key):
        g = self._h5["chains"][key]
        prov = json.loads(g.attrs.get("provenance", "{}"))
        return int(g["rmsf"].shape[0]), str(prov.get("source", ""))

    # ----------------------------------------------------------- public API
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if getattr(self, "_h5", None) is not None and self._h5.id.valid:
            self._h5.close()

    def __del__(self):  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass

    def keys(self) -> list[str]:
        """Chain keys in insertion order (from the index; no array is read)."""
        return list(self._order)

    def __iter__(self):
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key) -> bool:
        return key in self._index

    def lengths(self) -> dict:
        """``{key: number of residues}`` from the index."""
        return {k: self._index[k][0] for k in self._order}

    def sources(self) -> dict:
        """``{key: source}`` from the index (where the trajectories came from)."""
        return {k: self._index[k][1] for k in self._order}

    def _group(self, key):
        if key not in self._index:
            raise KeyError(f"{self.path}: no chain {key!r} in the label store")
        return self._h5["chains"][key]

    def metadata(self, key) -> dict:
        """Everything but the arrays: ``key``, ``length``, ``sequence``, ``source``,
        ``provenance`` (dict)."""
        g = self._group(key)
        return {
            "key": key,
            "length": self._index[key][0],
            "sequence": str(g.attrs["sequence"]),
            "source": self._index[key][1],
            "provenance": json.loads(g.attrs.get("provenance", "{}")),
        }

    def get(self, key) -> ChainLabels:
        """Read one chain's labels.

        Raises
        ------
        KeyError
            ``key`` is not in the store.
        """
        g = self._group(key)
        residues = tuple(
            Residue(c, int(n), i, r)
            for c, n, i, r in zip(_decode(g["residue_chain"][()]), g["residue_number"][()],
                                  _decode(g["residue_icode"][()]), _decode(g["residue_name"][()]))
        )
        return ChainLabels(
            key=key,
            sequence=str(g.attrs["sequence"]),
            residues=residues,
            backbone=g["backbone"][()],
            marginals=g["marginals"][()],
            coupling=g["coupling"][()],
            correlation=g["correlation"][()].astype(np.float64),
            cosine_correlation=g["cosine_correlation"][()].astype(np.float64),
            rmsf=g["rmsf"][()],
            provenance=json.loads(g.attrs.get("provenance", "{}")),
            frames=g["frames"][()] if "frames" in g else None,
        )

    def __getitem__(self, key) -> ChainLabels:
        return self.get(key)

    def put(self, labels: ChainLabels, overwrite: bool = False) -> None:
        """Add one chain's labels.

        Raises
        ------
        InputError
            The store is read-only, or ``labels.key`` exists and ``overwrite`` is False.
        """
        if not isinstance(labels, ChainLabels):
            raise TypeError(f"labels must be ChainLabels, got {type(labels).__name__}")
        if self.mode != "a":
            raise InputError(f"{self.path}: label store opened read-only (mode 'r')")
        key = labels.key
        if key in self._index and not overwrite:
            raise InputError(f"{self.path}: chain {key!r} already in the label store (use overwrite=True)")
        chains = self._h5["chains"]
        tmp = f"{_TMP_PREFIX}{key}"
        if tmp in chains:
            del chains[tmp]
        g = chains.create_group(tmp)
        n = labels.n_residues
        res = labels.residues
        g.attrs["sequence"] = labels.sequence
        g.attrs["provenance"] = json.dumps(labels.provenance, sort_keys=True)
        g.create_dataset("backbone", data=labels.backbone, chunks=(min(n, 1024), 3, 3), **_COMPRESSION)
        g.create_dataset("marginals", data=labels.marginals, chunks=(min(n, 1024), 3, 3), **_COMPRESSION)
        g.create_dataset("coupling", data=labels.coupling, chunks=_matrix_chunks(n), **_COMPRESSION)
        g.create_dataset("correlation", data=labels.correlation.astype(np.float32),
                         chunks=_matrix_chunks(n), **_COMPRESSION)
        g.create_dataset("cosine_correlation", data=labels.cosine_correlation.astype(np.float32),
                         chunks=_matrix_chunks(n), **_COMPRESSION)
        g.create_dataset("rmsf", data=labels.rmsf, **_COMPRESSION)
        if labels.frames is not None:
            g.create_dataset("frames", data=labels.frames, chunks=(1,) + labels.frames.shape[1:],
                             **_COMPRESSION)
        g.create_dataset("residue_chain", data=_fixed_ascii(r.chain for r in res))
        g.create_dataset("residue_number", data=np.array([r.number for r in res], dtype=np.int64))
        g.create_dataset("residue_icode", data=_fixed_ascii(r.icode for r in res))
        g.create_dataset("residue_name", data=_fixed_ascii(r.name for r in res))
        source = str(labels.provenance.get("source", "") or "")
        if key in chains:  # overwrite: replace the group, keep the index position
            del chains[key]
            chains.move(tmp, key)
            self._index[key] = (n, source)
            self._write_index()
        else:
            chains.move(tmp, key)
            self._append_index(key, n, source)
        self._h5.flush()

    def delete(self, key) -> None:
        """Remove one chain (its space is reclaimed only by ``h5repack``)."""
        if self.mode != "a":
            raise InputError(f"{self.path}: label store opened read-only (mode 'r')")
        self._group(key)
        del self._h5["chains"][key]
        del self._index[key]
        self._order.remove(key)
        self._write_index()
        self._h5.flush()

    def __repr__(self) -> str:
        state = "closed" if not self._h5.id.valid else self.mode
        return f"LabelStore({os.fspath(self.path)!r}, {state}, {len(self)} chains)"
