"""MD trajectories -> training labels (DESIGN.md section 2), streamed.

For each chain: every frame's C-alpha atoms are superposed (Kabsch, all C-alpha,
equal weights) on the reference structure's C-alpha; replicas are concatenated;
the sample covariance over all frames gives Σ_joint (3N, 3N) Å², whose 3x3
diagonal blocks are the marginals, whose trace-pooled blocks are the coupling C,
with the DCCM C~ and RMSF = sqrt(tr Σ_i); ResAxial's cosine correlation
mean_t (dr_i . dr_j) / (|dr_i| |dr_j|) (dr from the mean superposed position) is
computed too.

Streaming: frames arrive in chunks of ``chunk_frames``; the covariance is merged
chunk by chunk (Chan, Golub & LeVeque's pairwise update of mean and scatter, in
float64, centred on the reference so no precision is lost).  The cosine needs the
final mean, so the superposed C-alpha displacements (float32, 12 N bytes a frame)
are spooled - in memory up to ``spool_bytes``, then to a temporary file - and read
back in chunks.  Peak memory is therefore one chunk of all-atom frames plus the
(3N, 3N) scatter matrix plus at most ``spool_bytes``, whatever the trajectory length.
The spool also gives ``keep_frames`` evenly spaced superposed conformations, kept in
the store for AlphaFlow's ensemble metrics.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.superpose import superpose as kabsch_superpose

from .readers import TrajectorySource
from .store import ChainLabels, LabelStore, check_key

__all__ = [
    "LabelAccumulator",
    "IngestResult",
    "ingest",
    "ingest_labels",
    "labels_from_source",
    "correlation_from_coupling",
]

DEFAULT_CHUNK_FRAMES = 256
DEFAULT_SPOOL_BYTES = 256 * 2**20


def _tool_version() -> str:
    try:
        from dynaprot_viz import __version__
    except Exception:  # pragma: no cover
        return "unknown"
    return f"dynaprot-viz {__version__}"


def correlation_from_coupling(coupling: np.ndarray) -> np.ndarray:
    """DCCM C_ij / sqrt(C_ii C_jj), shape (N, N); rows of a zero-variance residue are 0
    (diagonal 1)."""
    d = np.sqrt(np.clip(np.diag(coupling), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = coupling / np.outer(d, d)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


class _Spool:
    """Append-only float32 frame buffer: memory up to ``limit`` bytes, then a temp file."""

    def __init__(self, n: int, limit: int, tmpdir=None):
        self.n = n
        self.limit = int(limit)
        self.tmpdir = tmpdir
        self.chunks: list[np.ndarray] = []
        self.nbytes = 0
        self.file = None
        self.path = None
        self.n_frames = 0

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        self.n_frames += block.shape[0]
        if self.file is None and self.nbytes + block.nbytes > self.limit:
            fd, self.path = tempfile.mkstemp(prefix="dynaprot-spool-", suffix=".f32", dir=self.tmpdir)
            self.file = os.fdopen(fd, "wb")
            for c in self.chunks:
                c.tofile(self.file)
            self.chunks = []
        if self.file is not None:
            block.tofile(self.file)
        else:
            self.chunks.append(block)
        self.nbytes += block.nbytes

    def iter_chunks(self, size: int):
        if self.file is None:
            for c in self.chunks:
                for i in range(0, c.shape[0], size):
                    yield c[i:i + size]
            return
        self.file.flush()
        mm = np.memmap(self.path, dtype=np.float32, mode="r", shape=(self.n_frames, self.n, 3))
        try:
            for i in range(0, self.n_frames, size):
                yield np.array(mm[i:i + size])
        finally:
            del mm

    @property
    def on_disk(self) -> bool:
        return self.file is not None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.path is not None and os.path.exists(self.path):
            os.unlink(self.path)
        self.path = None
        self.chunks = []


class LabelAccumulator:
    """Streaming labels of one chain: feed C-alpha frames, get marginals, C, DCCM,
    cosine correlation and RMSF.

    Parameters
    ----------
    reference_ca : ndarray, shape (N, 3), Å
        The superposition target (the reference structure's C-alpha).
    superpose : bool
        Kabsch-superpose every frame on ``reference_ca`` (default True; False for
        frames already fitted on it).
    spool_bytes : int
        Memory for the spooled displacements before they go to a temporary file.
    tmpdir : path, optional
        Where the spool file goes (default: the system temporary folder).

    Use :meth:`add` for each chunk (b, N, 3) Å, then :meth:`finish`.  It is a
    context manager that removes the spool file.
    """

    def __init__(self, reference_ca, superpose: bool = True, spool_bytes: int = DEFAULT_SPOOL_BYTES,
                 tmpdir=None):
        ref = np.asarray(reference_ca, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] != 3 or ref.shape[0] < 2:
            raise InputError(f"reference_ca must have shape (N >= 2, 3), got {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise InputError("reference_ca contains NaN or infinite values")
        self.reference = ref
        self.n = ref.shape[0]
        self.superpose = bool(superpose)
        self.count = 0
        self._mean = np.zeros(3 * self.n)  # running mean of (x - ref), [3N]
        self._scatter = np.zeros((3 * self.n, 3 * self.n))  # sum of centred outer products, [3N, 3N]
        self._spool = _Spool(self.n, spool_bytes, tmpdir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        self._spool.close()

    @property
    def spilled(self) -> bool:
        """True when the spool went to a temporary file."""
        return self._spool.on_disk

    #: consecutive C-alpha atoms bonded in the reference (< 4.2 Å) that end up further
    #: apart than this in a frame mean a molecule split across periodic images
    MAX_BONDED_CA_DISTANCE = 8.0

    def _check_whole(self, x: np.ndarray) -> None:
        """Refuse frames in which the chain is broken across periodic boundaries: the
        covariance would measure box jumps (tens of Å), not motion."""
        ref_d = np.linalg.norm(np.diff(self.reference, axis=0), axis=-1)  # [N-1]
        bonded = ref_d < 4.2
        if not bonded.any():
            return
        d = np.linalg.norm(np.diff(x, axis=1), axis=-1)[:, bonded]  # [b, bonded pairs]
        if d.max() > self.MAX_BONDED_CA_DISTANCE:
            frame = self.count + int(np.argmax(d.max(axis=1)))
            raise InputError(
                f"frame {frame}: consecutive C-alpha atoms {d.max():.1f} Å apart; the molecule is split "
                "across periodic boundaries: make it whole first (e.g. gmx trjconv -pbc mol, or "
                "MDAnalysis transformations.unwrap)"
            )

    def add(self, frames) -> None:
        """Add a chunk of C-alpha frames, shape (b, N, 3) or (N, 3), Å."""
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (self.n, 3):
            raise InputError(f"frames must have shape (b, {self.n}, 3), got {x.shape}")
        if x.shape[0] == 0:
            return
        if not np.all(np.isfinite(x)):
            raise InputError("frames contain NaN or infinite coordinates")
        self._check_whole(x)
        if self.superpose:
            x = kabsch_superpose(x, self.reference)
        d = x - self.reference  # [b, N, 3], small numbers: no cancellation in the scatter
        self._spool.append(d)
        flat = d.reshape(d.shape[0], 3 * self.n)  # [b, 3N], index 3 i + a
        nb = flat.shape[0]
        mean_b = flat.mean(axis=0)
        cb = flat - mean_b
        scatter_b = cb.T @ cb
        na = self.count
        tot = na + nb
        delta = mean_b - self._mean
        self._scatter += scatter_b + np.outer(delta, delta) * (na * nb / tot)
        self._mean += delta * (nb / tot)
        self.count = tot

    def mean_positions(self) -> np.ndarray:
        """Mean superposed C-alpha positions, shape (N, 3), Å."""
        return self.reference + self._mean.reshape(self.n, 3)

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """Σ_joint, shape (3N, 3N), Å²: the scatter over ``count - ddof``."""
        if self.count - ddof < 1:
            raise InputError(f"{self.count} frame(s): at least {ddof + 1} needed for a covariance")
        return self._scatter / (self.count - ddof)

    def cosine_correlation(self, chunk_frames: int = DEFAULT_CHUNK_FRAMES, eps: float = 1e-12) -> np.ndarray:
        """mean_t (dr_i . dr_j) / (|dr_i| |dr_j|), shape (N, N), dr = x - mean.

        A residue exactly at its mean in some frame contributes 0 there.
        """
        if self.count < 1:
            raise InputError("no frames added")
        mean_d = self._mean.reshape(self.n, 3).astype(np.float64)
        acc = np.zeros((self.n, self.n))
        for block in self._spool.iter_chunks(chunk_frames):
            dr = block.astype(np.float64) - mean_d  # [b, N, 3]
            norm = np.linalg.norm(dr, axis=-1, keepdims=True)
            u = np.where(norm > eps, dr / np.maximum(norm, eps), 0.0)
            # sum_t U_t U_t^T: [N, b*3] @ [b*3, N]
            ut = np.transpose(u, (1, 0, 2)).reshape(self.n, -1)
            acc += ut @ ut.T
        cos = acc / self.count
        np.fill_diagonal(cos, 1.0)
        return np.clip(0.5 * (cos + cos.T), -1.0, 1.0)

    def frames_subsample(self, k: int) -> np.ndarray:
        """``k`` superposed C-alpha conformations evenly spaced over all frames, shape
        (min(k, count), N, 3), float32, Å."""
        if self.count < 1:
            raise InputError("no frames added")
        idx = np.unique(np.linspace(0, self.count - 1, min(int(k), self.count)).round().astype(np.int64))
        out, start = [], 0
        for block in self._spool.iter_chunks(DEFAULT_CHUNK_FRAMES):
            stop = start + block.shape[0]
            take = idx[(idx >= start) & (idx < stop)] - start
            if take.size:
                out.append(block[take])
            start = stop
        sel = np.concatenate(out).astype(np.float64) + self.reference
        return sel.astype(np.float32)

    def finish(self, ddof: int = 1, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> dict:
        """All labels: ``marginals`` (N,3,3) Å², ``coupling`` (N,N) Å², ``correlation``
        (N,N), ``cosine_correlation`` (N,N), ``rmsf`` (N,) Å, ``mean`` (N,3) Å,
        ``n_frames``."""
        joint = self.covariance(ddof)
        marg = marginals_from_joint(joint).copy()
        coup = coupling_from_joint(joint)
        return {
            "marginals": 0.5 * (marg + np.swapaxes(marg, 1, 2)),
            "coupling": 0.5 * (coup + coup.T),
            "correlation": correlation_from_coupling(coup),
            "cosine_correlation": self.cosine_correlation(chunk_frames),
            "rmsf": np.sqrt(np.clip(np.trace(marg, axis1=1, axis2=2), 0.0, None)),
            "mean": self.mean_positions(),
            "n_frames": self.count,
        }


def labels_from_source(source: TrajectorySource, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                       ddof: int = 1, spool_bytes: int = DEFAULT_SPOOL_BYTES, tmpdir=None,
                       frame_progress=None, keep_frames: int = 250) -> ChainLabels:
    """Read one source's replicas and compute its :class:`ChainLabels`.

    ``frame_progress`` (optional callable ``(n_frames_just_read)``) is called per chunk.
    ``keep_frames``: how many superposed C-alpha conformations, evenly spaced, to keep
    in :attr:`ChainLabels.frames` for ensemble metrics (0: none).
    """
    check_key(source.key)
    if int(chunk_frames) < 1:
        raise InputError(f"chunk_frames must be >= 1, got {chunk_frames!r}")
    opened = source.open()
    try:
        ref = opened.reference
        with LabelAccumulator(ref.ca, spool_bytes=spool_bytes, tmpdir=tmpdir) as acc:
            replica_names = []
            for rname, chunks in opened.replicas(int(chunk_frames)):
                replica_names.append(str(rname))
                before = acc.count
                for block in chunks:
                    acc.add(block)
                    if frame_progress is not None:
                        frame_progress(block.shape[0])
                if acc.count == before:
                    raise InputError(f"{source.key}: replica {rname} has no frames")
            if acc.count < ddof + 2:
                raise InputError(f"{source.key}: only {acc.count} frame(s); need at least {ddof + 2}")
            out = acc.finish(ddof=ddof, chunk_frames=int(chunk_frames))
            frames = acc.frames_subsample(keep_frames) if keep_frames and keep_frames > 0 else None
            spilled = acc.spilled
    finally:
        opened.close()
    info = opened.replica_info
    spans = [r["t_last_ps"] - r["t_first_ps"] for r in info.values()
             if r.get("t_first_ps") is not None and r.get("t_last_ps") is not None]
    prov = {
        "source": None, "force_field": None, "temperature_K": None,
        **opened.provenance,
        "n_frames": int(out["n_frames"]),
        "replicas": replica_names,
        "replica_frames": {k: v.get("n_frames") for k, v in info.items()},
        "frame_interval_ps": {k: v.get("dt_ps") for k, v in info.items()},
        "time_span_ps": float(sum(spans)) if spans and len(spans) == len(info) else None,
        "superposition": "Kabsch on all C-alpha, target = reference structure",
        "covariance_ddof": int(ddof),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool_version": _tool_version(),
        "spooled_to_disk": bool(spilled),
    }
    return ChainLabels(
        key=source.key,
        sequence=ref.sequence,
        residues=ref.residues,
        backbone=ref.backbone,
        marginals=out["marginals"],
        coupling=out["coupling"],
        correlation=out["correlation"],
        cosine_correlation=out["cosine_correlation"],
        rmsf=out["rmsf"],
        provenance=prov,
        frames=frames,
    )


@dataclass
class IngestResult:
    """What :func:`ingest` did.

    ingested : list of str     keys written this run
    skipped : list of str      keys already in the store (resume)
    failed : dict str -> str   key -> one-line reason
    store : Path
    """

    store: Path
    ingested: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"{self.store}: {len(self.ingested)} ingested, {len(self.skipped)} already present, "
                 f"{len(self.failed)} failed"]
        lines += [f"  failed {k}: {v}" for k, v in self.failed.items()]
        return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def ingest(sources, store_path, *, overwrite: bool = False, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
           ddof: int = 1, spool_bytes: int = DEFAULT_SPOOL_BYTES, tmpdir=None,
           keep_frames: int = 250, progress: bool = True) -> IngestResult:
    """Compute labels for every source and add them to a :class:`LabelStore`.

    Resumable: keys already in the store are skipped (unless ``overwrite``).  A
    failure on one chain (unreadable or corrupt file, atom-count mismatch, too
    few frames) is recorded in :attr:`IngestResult.failed`, warned about, and the
    rest continue; each finished chain is flushed to the store at once.

    Parameters
    ----------
    sources : iterable of TrajectorySource
        From :func:`~dynaprot_viz.training.readers.atlas_sources`,
        :func:`~dynaprot_viz.training.readers.mdcath_sources` or
        :func:`~dynaprot_viz.training.readers.trajectory_source`.
    store_path : path
        The HDF5 label store (created when missing).
    chunk_frames : int
        Frames read at a time.
    ddof : int
        Covariance normalisation: 1 (sample covariance, default) or 0.
    keep_frames : int
        MD conformations kept per chain for ensemble metrics (default 250, 0 none).
    progress : bool
        Show a tqdm bar (chains, frames as postfix) on stderr.
    """
    from tqdm.auto import tqdm

    sources = list(sources)
    keys = [s.key for s in sources]
    dup = sorted(k for k, c in Counter(keys).items() if c > 1)
    if dup:
        raise InputError(f"duplicate chain keys among the inputs: {', '.join(dup[:5])}")
    result = IngestResult(store=Path(store_path))
    with LabelStore(store_path, "a") as store:
        bar = tqdm(sources, desc="ingest", unit="chain", disable=not progress, dynamic_ncols=True)
        frames = [0]

        def tick(n):
            frames[0] += n
            bar.set_postfix_str(f"{frames[0]} frames", refresh=False)

        for src in bar:
            if src.key in store and not overwrite:
                result.skipped.append(src.key)
                continue
            bar.set_description_str(f"ingest {src.key}")
            try:
                labels = labels_from_source(src, chunk_frames=chunk_frames, ddof=ddof,
                                            spool_bytes=spool_bytes, tmpdir=tmpdir, frame_progress=tick,
                                            keep_frames=keep_frames)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # one bad chain must not cost the others
                reason = _one_line(exc)
                result.failed[src.key] = reason
                warnings.warn(f"ingest: {src.key} skipped: {reason}", stacklevel=2)
                continue
            store.put(labels, overwrite=overwrite)
            result.ingested.append(src.key)
        bar.close()
    return result


def ingest_labels(items, store_path, *, overwrite: bool = False, progress: bool = True,
                  desc: str = "ingest", unit: str = "chain") -> IngestResult:
    """Build labels one record at a time and add them to a :class:`LabelStore`.

    The streaming, resumable loop of :func:`ingest` for label sources that are not MD
    trajectories (:func:`~dynaprot_viz.training.ensembles.ingest_ensembles`,
    :func:`~dynaprot_viz.training.rmsf_labels.ingest_mdcath_rmsf`): keys already in
    the store are skipped (unless ``overwrite``) without calling their builder; a
    builder that raises is recorded in :attr:`IngestResult.failed` with a one-line
    reason and warned about, and nothing is written for it; each finished record is
    flushed at once.

    Parameters
    ----------
    items : iterable of (str, callable)
        ``(key, build)`` pairs; ``build()`` returns the :class:`ChainLabels` of ``key``.
        Only one record is in memory at a time.
    store_path : path
        The HDF5 label store (created when missing).
    progress : bool
        Show a tqdm bar on stderr.
    desc, unit : str
        The bar's label and unit.
    """
    from tqdm.auto import tqdm

    items = list(items)
    dup = sorted(k for k, c in Counter(k for k, _ in items).items() if c > 1)
    if dup:
        raise InputError(f"duplicate keys among the inputs: {', '.join(dup[:5])}")
    result = IngestResult(store=Path(store_path))
    with LabelStore(store_path, "a") as store:
        bar = tqdm(items, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
        for key, build in bar:
            if key in store and not overwrite:
                result.skipped.append(key)
                continue
            try:
                check_key(key)
                labels = build()
                if not isinstance(labels, ChainLabels) or labels.key != key:
                    raise InputError(f"builder of {key!r} returned "
                                     f"{getattr(labels, 'key', type(labels).__name__)!r}")
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # one bad record must not cost the others
                reason = _one_line(exc)
                result.failed[key] = reason
                warnings.warn(f"ingest: {key} skipped: {reason}", stacklevel=2)
                continue
            store.put(labels, overwrite=overwrite)
            result.ingested.append(key)
        bar.close()
    return result
