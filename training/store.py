"""The label store: training labels of many chains in one HDF5 file.

One record per chain (:class:`ChainLabels`): the reference structure (residue ids,
sequence, backbone N/CA/C in Å) and the labels of DESIGN.md section 2 (marginals Σ_i
(N, 3, 3) Å², coupling C (N, N) Å², DCCM, ResAxial's cosine correlation, RMSF (N,) Å)
plus provenance.

Every record has a *kind* (:data:`LABEL_KINDS`) that says which labels it holds:

``"md"``
    Labels from MD trajectories (:mod:`~dynaprot_viz.training.ingest`): every array.
``"experimental-ensemble"``
    Covariance of experimental conformers of one protein
    (:mod:`~dynaprot_viz.training.ensembles`): marginals, coupling, correlation, RMSF,
    ``n_conformers`` and ``position_counts``; cosine correlation optional; backbone
    C-alpha only (N and C are NaN).  Not the same quantity as thermal MD covariance:
    never mix its absolute scale with MD.
``"md-rmsf"``
    Per-residue MD RMSF only (:mod:`~dynaprot_viz.training.rmsf_labels`): no
    marginals, no coupling, no correlation maps.
``"teacher-rmsf"``
    Per-residue RMSF *predicted* by a cheap teacher model (ANM-GBM on a real PDB
    backbone, :mod:`~dynaprot_viz.training.teacher_labels`), for pretraining only:
    the same arrays as ``"md-rmsf"``, kept apart so that a prediction is never
    mistaken for a measurement.

File layout (``format = "dynaprot-viz-labels"``, ``format_version = 2``)::

    /chains/<key>/            group per chain; attrs: sequence, provenance (JSON), kind,
                              n_conformers (experimental-ensemble only)
        backbone              (N, 3, 3) float64 Å   [N, CA, C]
        marginals             (N, 3, 3) float64 Å²  absent for md-rmsf
        coupling              (N, N)    float64 Å²  absent for md-rmsf
        correlation           (N, N)    float32     DCCM; absent for md-rmsf
        cosine_correlation    (N, N)    float32     mean_t cos(dr_i, dr_j); optional
        rmsf                  (N,)      float64 Å
        frames                (K, N, 3) float32 Å   optional MD C-alpha conformations
        position_counts       (N,)      int64       experimental-ensemble: conformers per residue
        residue_chain, residue_icode, residue_name  (N,) fixed-length ASCII
        residue_number        (N,)      int64
    /index/keys, /index/lengths, /index/sources, /index/kinds   one row per chain (resizable)

Version 1 (before kinds) had no ``kind`` attribute and no ``/index/kinds``: every
record of such a file reads as ``"md"``.  Writing to a version-1 file adds the kinds
column and marks it version 2.

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

__all__ = ["ChainLabels", "LabelStore", "STORE_FORMAT", "STORE_FORMAT_VERSION", "LABEL_KINDS",
           "RMSF_ONLY_KINDS", "check_kind"]

STORE_FORMAT = "dynaprot-viz-labels"
STORE_FORMAT_VERSION = 2

#: record kinds, see the module docstring
LABEL_KINDS = ("md", "experimental-ensemble", "md-rmsf", "teacher-rmsf")
#: kinds that hold per-residue RMSF only (no marginals, coupling or correlation maps)
RMSF_ONLY_KINDS = ("md-rmsf", "teacher-rmsf")
#: arrays each kind must hold (rmsf for all); the others of _OPTIONAL_ARRAYS must be None
#: for md-rmsf, may be None for experimental-ensemble (cosine_correlation only)
_REQUIRED = {
    "md": ("marginals", "coupling", "correlation", "cosine_correlation", "rmsf"),
    "experimental-ensemble": ("marginals", "coupling", "correlation", "rmsf"),
    "md-rmsf": ("rmsf",),
    "teacher-rmsf": ("rmsf",),
}
_OPTIONAL_ARRAYS = ("marginals", "coupling", "correlation", "cosine_correlation")

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


def check_kind(kind) -> str:
    """Validate a record kind (one of :data:`LABEL_KINDS`), return it as str."""
    if not isinstance(kind, str) or kind not in LABEL_KINDS:
        raise InputError(f"label kind {kind!r} is not known: expected one of {', '.join(LABEL_KINDS)}")
    return kind


def _kind_set(kind) -> set | None:
    """None (all kinds) or the set of kinds named by a str or an iterable of str."""
    if kind is None:
        return None
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return {check_kind(k) for k in kinds}


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
    """Training labels of one chain (DESIGN.md section 2), of one :data:`kind <LABEL_KINDS>`.

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
    marginals : ndarray, shape (N, 3, 3), float64, Å², or None
        Σ_i, the C-alpha covariance of each residue over all superposed frames
        (conformers for ``"experimental-ensemble"``); None for ``"md-rmsf"``.
    coupling : ndarray, shape (N, N), float64, Å², or None
        C_ij = tr(Σ_ij) / 3; None for ``"md-rmsf"``.
    correlation : ndarray, shape (N, N), float64, or None
        DCCM C_ij / sqrt(C_ii C_jj), unit diagonal; None for ``"md-rmsf"``.
    cosine_correlation : ndarray, shape (N, N), float64, or None
        ResAxial's per-frame cosine mean_t (dr_i . dr_j) / (|dr_i| |dr_j|), dr the
        displacement from the mean superposed position; unit diagonal.  Required
        for ``"md"``, optional for ``"experimental-ensemble"``, None for ``"md-rmsf"``.
    rmsf : ndarray, shape (N,), float64, Å
        sqrt(tr Σ_i) (every kind).
    provenance : dict
        JSON-serialisable facts: ``source``, ``n_frames``, ``time_span_ps``,
        ``replicas``, ``force_field``, ``temperature_K``, ``date``, ``tool_version``
        and whatever else the reader knows (``None`` when unknown).
    frames : ndarray, shape (K, N, 3), float32, Å, optional
        A few MD conformations (C-alpha, superposed on the reference), evenly
        spaced over all frames, for ensemble metrics; ``None`` when not kept
        (always ``None`` for kinds other than ``"md"``).
    kind : str
        ``"md"`` (default), ``"experimental-ensemble"`` or ``"md-rmsf"``
        (:data:`LABEL_KINDS`).
    n_conformers : int or None
        ``"experimental-ensemble"`` only: conformers in the collection (>= 3).
    position_counts : ndarray, shape (N,), int64, or None
        ``"experimental-ensemble"`` only: conformers with a C-alpha at each residue
        (3 <= count <= n_conformers).

    Shapes, finiteness, symmetry and the arrays each kind needs are checked on
    construction; arrays are made read-only.
    """

    key: str
    sequence: str
    residues: tuple
    backbone: np.ndarray
    marginals: np.ndarray | None = None
    coupling: np.ndarray | None = None
    correlation: np.ndarray | None = None
    cosine_correlation: np.ndarray | None = None
    rmsf: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    frames: np.ndarray | None = None
    kind: str = "md"
    n_conformers: int | None = None
    position_counts: np.ndarray | None = None

    def __post_init__(self):
        check_key(self.key)
        n = len(self.residues)
        if n < 1:
            raise ShapeError(f"labels {self.key}: no residues")
        if not isinstance(self.sequence, str) or len(self.sequence) != n:
            raise ShapeError(f"labels {self.key}: sequence has {len(self.sequence)} letters for {n} residues")
        kind = check_kind(self.kind)
        bb = _float_array("backbone", self.backbone, (n, 3, 3), allow_nan=True)
        if not np.all(np.isfinite(bb[:, 1])):
            raise ShapeError(f"labels {self.key}: backbone C-alpha coordinates are not all finite")
        for name in _REQUIRED[kind]:
            if getattr(self, name) is None:
                raise ShapeError(f"labels {self.key}: kind {kind!r} needs {name}, got None")
        if kind in RMSF_ONLY_KINDS:
            given = [k for k in (*_OPTIONAL_ARRAYS, "frames") if getattr(self, k) is not None]
            if given:
                raise ShapeError(f"labels {self.key}: kind {kind!r} holds RMSF only; "
                                 f"{', '.join(given)} must be None")
        arrays = {}
        if self.marginals is not None:
            arrays["marginals"] = check_symmetric("marginals", _float_array("marginals", self.marginals, (n, 3, 3)))
        if self.coupling is not None:
            arrays["coupling"] = check_symmetric("coupling", _float_array("coupling", self.coupling, (n, n)))
        for name in ("correlation", "cosine_correlation"):
            if getattr(self, name) is not None:
                arr = check_symmetric(name, _float_array(name, getattr(self, name), (n, n)))
                if np.abs(arr).max() > 1.0 + 1e-5:
                    raise ShapeError(f"labels {self.key}: {name} has entries outside [-1, 1]")
                arrays[name] = arr
        rmsf = arrays["rmsf"] = _float_array("rmsf", self.rmsf, (n,))
        if np.any(rmsf < 0):
            raise ShapeError(f"labels {self.key}: rmsf has negative entries")
        if ("marginals" in arrays and np.any(np.trace(arrays["marginals"], axis1=1, axis2=2) < 0)) or (
                "coupling" in arrays and np.any(np.diag(arrays["coupling"]) < 0)):
            raise ShapeError(f"labels {self.key}: marginals or coupling have a negative variance")
        self._check_ensemble_fields(kind, n)
        if not isinstance(self.provenance, dict):
            raise TypeError(f"provenance must be a dict, got {type(self.provenance).__name__}")
        prov = _jsonable(dict(self.provenance))
        try:
            json.dumps(prov)
        except TypeError as exc:
            raise TypeError(f"labels {self.key}: provenance is not JSON-serialisable ({exc})") from None
        if self.frames is not None:
            if kind != "md":
                raise ShapeError(f"labels {self.key}: frames are kept for kind 'md' only, not {kind!r}")
            fr = np.asarray(self.frames, dtype=np.float32)
            if fr.ndim != 3 or fr.shape[1:] != (n, 3) or fr.shape[0] < 1:
                raise ShapeError(f"frames must have shape (K, {n}, 3), got {fr.shape}")
            if not np.all(np.isfinite(fr)):
                raise ShapeError(f"labels {self.key}: frames contain NaN or infinite values")
            fr.setflags(write=False)
            object.__setattr__(self, "frames", fr)
        arrays["backbone"] = bb
        for k, v in arrays.items():
            v.setflags(write=False)
            object.__setattr__(self, k, v)
        object.__setattr__(self, "residues", as_residues(self.residues, n))
        object.__setattr__(self, "provenance", prov)

    def _check_ensemble_fields(self, kind: str, n: int) -> None:
        """``n_conformers`` and ``position_counts``: required for experimental-ensemble,
        None otherwise."""
        if kind != "experimental-ensemble":
            if self.n_conformers is not None or self.position_counts is not None:
                raise ShapeError(f"labels {self.key}: n_conformers and position_counts are for kind "
                                 f"'experimental-ensemble' only, not {kind!r}")
            return
        k = self.n_conformers
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or int(k) < 3:
            raise ShapeError(f"labels {self.key}: n_conformers must be an int >= 3, got {k!r}")
        if self.position_counts is None:
            raise ShapeError(f"labels {self.key}: kind 'experimental-ensemble' needs position_counts, got None")
        counts = np.asarray(self.position_counts)
        if counts.shape != (n,) or not (np.issubdtype(counts.dtype, np.integer) or counts.dtype == bool):
            raise ShapeError(f"position_counts must be an integer array of shape ({n},), "
                             f"got {counts.dtype} {counts.shape}")
        counts = counts.astype(np.int64)
        if counts.min() < 1 or counts.max() > int(k):
            raise ShapeError(f"labels {self.key}: position_counts must lie in [1, n_conformers = {int(k)}], "
                             f"got [{counts.min()}, {counts.max()}]")
        counts.setflags(write=False)
        object.__setattr__(self, "n_conformers", int(k))
        object.__setattr__(self, "position_counts", counts)

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
        """The labels as a :class:`~dynaprot_viz.core.gaussian.Dynamics`
        (``model_name`` = the kind: ``"md"`` or ``"experimental-ensemble"``).

        ``mean`` is the reference C-alpha positions; marginals and coupling as stored.
        Raises :class:`~dynaprot_viz.core.errors.InputError` for kind ``"md-rmsf"``
        (RMSF only), and when a marginal is not positive definite (a residue that
        never moved, or fewer than 4 frames / conformers, which cannot span three
        dimensions).
        """
        from dynaprot_viz.core.gaussian import Dynamics

        if self.kind in RMSF_ONLY_KINDS:
            raise InputError(f"labels {self.key!r} are of kind {self.kind!r} (RMSF only): no marginals or "
                             "coupling to make a Dynamics from")
        try:
            return Dynamics(mean=self.ca, marginals=self.marginals, coupling=self.coupling,
                            residues=self.residues, model_name=self.kind)
        except ShapeError as exc:
            if self.kind == "experimental-ensemble":
                raise InputError(f"labels {self.key!r} ({self.n_conformers} conformers) are not a valid "
                                 f"Gaussian: {exc}; a 3x3 covariance needs at least 4 conformers that differ "
                                 "at every residue") from None
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


def _decode_utf8(arr) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in arr]


def _group_kind(g) -> str:
    """A record's kind: its ``kind`` attribute, ``"md"`` when absent (format version 1)."""
    kind = g.attrs.get("kind", "md")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


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
            self._create_index([], [], [], [])
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
        self.format_version = int(h5.attrs.get("format_version", STORE_FORMAT_VERSION))
        self._load_index()
        if self.mode == "a":
            self._repair()

    def _create_index(self, keys, lengths, sources, kinds):
        h5py = _require_h5py()
        if "index" in self._h5:
            del self._h5["index"]
        g = self._h5.create_group("index")
        s = h5py.string_dtype("utf-8")
        g.create_dataset("keys", data=np.array(keys, dtype=object), dtype=s, maxshape=(None,), chunks=(1024,))
        g.create_dataset("lengths", data=np.array(lengths, dtype=np.int64), maxshape=(None,), chunks=(1024,))
        g.create_dataset("sources", data=np.array(sources, dtype=object), dtype=s, maxshape=(None,), chunks=(1024,))
        g.create_dataset("kinds", data=np.array(kinds, dtype=object), dtype=s, maxshape=(None,), chunks=(1024,))

    def _load_index(self):
        g = self._h5["index"]
        keys = _decode_utf8(g["keys"][()])
        lengths = [int(x) for x in g["lengths"][()]]
        sources = _decode_utf8(g["sources"][()])
        # format version 1 had no kinds column: all its records are MD labels
        kinds = _decode_utf8(g["kinds"][()]) if "kinds" in g else ["md"] * len(keys)
        self._index = {k: (n, s, kd) for k, n, s, kd in zip(keys, lengths, sources, kinds)}
        self._order = list(keys)

    def _write_index(self):
        keys = self._order
        self._create_index(keys, [self._index[k][0] for k in keys], [self._index[k][1] for k in keys],
                           [self._index[k][2] for k in keys])

    def _upgrade(self):
        """Make a version-1 file version 2 (kinds column; absent ``kind`` attributes mean md)."""
        if "kinds" not in self._h5["index"]:
            self._write_index()
        self._h5.attrs["format_version"] = STORE_FORMAT_VERSION
        self.format_version = STORE_FORMAT_VERSION

    def _append_index(self, key, length, source, kind):
        g = self._h5["index"]
        n = g["keys"].shape[0]
        for name, value in (("keys", key), ("lengths", length), ("sources", source), ("kinds", kind)):
            g[name].resize((n + 1,))
            g[name][n] = value
        self._index[key] = (int(length), str(source), str(kind))
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
        return int(g["rmsf"].shape[0]), str(prov.get("source", "")), _group_kind(g)

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

    def keys(self, kind=None) -> list[str]:
        """Chain keys in insertion order (from the index; no array is read).

        ``kind``: only records of this kind (a str of :data:`LABEL_KINDS`) or of these
        kinds (an iterable); default all.
        """
        wanted = _kind_set(kind)
        if wanted is None:
            return list(self._order)
        return [k for k in self._order if self._index[k][2] in wanted]

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

    def kinds(self) -> dict:
        """``{key: kind}`` from the index (``"md"``, ``"experimental-ensemble"``,
        ``"md-rmsf"``); every record of a version-1 file is ``"md"``."""
        return {k: self._index[k][2] for k in self._order}

    def kind(self, key) -> str:
        """The kind of one record (from the index)."""
        if key not in self._index:
            raise KeyError(f"{self.path}: no chain {key!r} in the label store")
        return self._index[key][2]

    def _group(self, key):
        if key not in self._index:
            raise KeyError(f"{self.path}: no chain {key!r} in the label store")
        return self._h5["chains"][key]

    def metadata(self, key) -> dict:
        """Everything but the arrays: ``key``, ``length``, ``sequence``, ``source``,
        ``kind``, ``provenance`` (dict)."""
        g = self._group(key)
        return {
            "key": key,
            "length": self._index[key][0],
            "sequence": str(g.attrs["sequence"]),
            "source": self._index[key][1],
            "kind": self._index[key][2],
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
        def opt(name, dtype=None):
            if name not in g:
                return None
            arr = g[name][()]
            return arr.astype(dtype) if dtype is not None else arr

        n_conf = g.attrs.get("n_conformers")
        return ChainLabels(
            key=key,
            sequence=str(g.attrs["sequence"]),
            residues=residues,
            backbone=g["backbone"][()],
            marginals=opt("marginals"),
            coupling=opt("coupling"),
            correlation=opt("correlation", np.float64),
            cosine_correlation=opt("cosine_correlation", np.float64),
            rmsf=g["rmsf"][()],
            provenance=json.loads(g.attrs.get("provenance", "{}")),
            frames=opt("frames"),
            kind=_group_kind(g),
            n_conformers=None if n_conf is None else int(n_conf),
            position_counts=opt("position_counts", np.int64),
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
        if self.format_version < STORE_FORMAT_VERSION:
            self._upgrade()
        g.attrs["sequence"] = labels.sequence
        g.attrs["provenance"] = json.dumps(labels.provenance, sort_keys=True)
        g.attrs["kind"] = labels.kind
        if labels.n_conformers is not None:
            g.attrs["n_conformers"] = np.int64(labels.n_conformers)
        g.create_dataset("backbone", data=labels.backbone, chunks=(min(n, 1024), 3, 3), **_COMPRESSION)
        if labels.marginals is not None:
            g.create_dataset("marginals", data=labels.marginals, chunks=(min(n, 1024), 3, 3), **_COMPRESSION)
        if labels.coupling is not None:
            g.create_dataset("coupling", data=labels.coupling, chunks=_matrix_chunks(n), **_COMPRESSION)
        for name in ("correlation", "cosine_correlation"):
            arr = getattr(labels, name)
            if arr is not None:
                g.create_dataset(name, data=arr.astype(np.float32), chunks=_matrix_chunks(n), **_COMPRESSION)
        g.create_dataset("rmsf", data=labels.rmsf, **_COMPRESSION)
        if labels.frames is not None:
            g.create_dataset("frames", data=labels.frames, chunks=(1,) + labels.frames.shape[1:],
                             **_COMPRESSION)
        if labels.position_counts is not None:
            g.create_dataset("position_counts", data=labels.position_counts, **_COMPRESSION)
        g.create_dataset("residue_chain", data=_fixed_ascii(r.chain for r in res))
        g.create_dataset("residue_number", data=np.array([r.number for r in res], dtype=np.int64))
        g.create_dataset("residue_icode", data=_fixed_ascii(r.icode for r in res))
        g.create_dataset("residue_name", data=_fixed_ascii(r.name for r in res))
        source = str(labels.provenance.get("source", "") or "")
        if key in chains:  # overwrite: replace the group, keep the index position
            del chains[key]
            chains.move(tmp, key)
            self._index[key] = (n, source, labels.kind)
            self._write_index()
        else:
            chains.move(tmp, key)
            self._append_index(key, n, source, labels.kind)
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
