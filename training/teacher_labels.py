"""Teacher labels for pretraining: ANM-GBM RMSF on thousands of real PDB backbones.

The learned models have only ~900 real MD RMSF profiles to learn from (the mdCATH
train split).  The 21,119 real PDB backbones of ProMod3's structure database
(``datasets/pdb_backbones/extract.py``) carry no dynamics, but a cheap teacher can
label them: ANM-GBM (:mod:`dynaprot_viz.core.models.anm_gbm`, ANM corrected per
residue by gradient-boosted trees that were trained on the mdCATH *train* split only)
predicts a per-residue RMSF in Å for each.  Pretraining on those predictions teaches
a network the teacher's structure-to-RMSF map on a hundred times more folds; the
fine-tuning on real labels then corrects it.

Records are of kind ``"teacher-rmsf"`` (RMSF only, like ``"md-rmsf"``, but never
taken for a measurement); provenance names the teacher, the SHA-256 of its weights,
the backbone file and the chain's index in it.  No held-out label enters: the
teacher never saw a held-out domain's RMSF, so its predictions on a PDB chain that
happens to contain a held-out domain carry no information about that domain's MD.

    python -m dynaprot_viz.training.teacher_labels runs/pdb_backbones/promod3_backbones.npz \\
        --out runs/pretrain/teacher.h5 --n-chains 3000

Streaming and resumable (keys already in the store are skipped), one progress bar.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.structure import backbone_npz_chain, read_backbone_npz

from .ingest import IngestResult, ingest_labels
from .store import ChainLabels

__all__ = ["TEACHER", "choose_chains", "teacher_labels", "ingest_teacher_labels", "main"]

#: the teacher model (a registered predictor name)
TEACHER = "anm-gbm"


def choose_chains(lengths, n_chains: int, min_length: int = 40, max_length: int = 400, seed: int = 0) -> np.ndarray:
    """Indices of ``n_chains`` chains with min_length <= length <= max_length, drawn
    without replacement by ``numpy.random.default_rng(seed)``, in file order.

    Parameters
    ----------
    lengths : array of int, shape (C,)
        Residues per chain.

    Returns
    -------
    ndarray of int64, shape (n,), n = min(n_chains, eligible chains)
    """
    lengths = np.asarray(lengths)
    eligible = np.flatnonzero((lengths >= min_length) & (lengths <= max_length))
    if eligible.size == 0:
        raise InputError(f"no chain of {min_length} to {max_length} residues")
    n = min(int(n_chains), eligible.size)
    return np.sort(np.random.default_rng(seed).choice(eligible, size=n, replace=False))


def _teacher_digest() -> str:
    from importlib import resources

    ref = resources.files("dynaprot_viz.weights").joinpath("anm-gbm.safetensors")
    return hashlib.sha256(ref.read_bytes()).hexdigest()


def teacher_labels(arrays: dict, index: int, backbones_path: str = "", teacher_sha256: str = "") -> ChainLabels:
    """Labels of kind ``"teacher-rmsf"`` of chain ``index`` of a backbone npz.

    Returns
    -------
    ChainLabels
        Key = the chain id (``"1ABC_A"``); backbone (N, 3, 3) Å [N, CA, C]; ``rmsf``
        (N,) Å = ANM-GBM's prediction (mdCATH's 320 K scale).
    """
    from dynaprot_viz.core.models.anm_gbm import predict_anm_gbm

    chain = backbone_npz_chain(arrays, index)
    dyn = predict_anm_gbm(chain)
    rmsf = np.asarray(dyn.rmsf, dtype=np.float64)
    if not np.all(np.isfinite(rmsf) & (rmsf > 0)):
        raise InputError(f"{chain.source}: the teacher gave a non-finite or zero RMSF")
    prov = {"source": f"teacher:{TEACHER}", "teacher": TEACHER, "teacher_weights_sha256": teacher_sha256,
            "backbones": os.fspath(backbones_path), "index": int(index), "n_residues": len(chain),
            "temperature_K": 320, "n_frames": None, "time_span_ps": None, "replicas": None,
            "force_field": None,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return ChainLabels(key=chain.source, sequence=chain.sequence, residues=chain.residues,
                       backbone=chain.backbone, rmsf=rmsf, provenance=prov, kind="teacher-rmsf")


def ingest_teacher_labels(backbones, store_path, *, n_chains: int = 3000, min_length: int = 40,
                          max_length: int = 400, seed: int = 0, progress: bool = True) -> IngestResult:
    """Teacher labels for ``n_chains`` chains of a backbone npz -> a label store.

    Parameters
    ----------
    backbones : path
        The npz of ``datasets/pdb_backbones/extract.py``.
    store_path : path
        The HDF5 label store (created when missing; resumable).
    n_chains, min_length, max_length, seed
        Which chains (:func:`choose_chains`).
    """
    arrays = read_backbone_npz(backbones)
    rows = choose_chains(arrays["length"], n_chains, min_length, max_length, seed)
    digest = _teacher_digest()
    path = os.fspath(Path(backbones).resolve())

    def builder(k):
        return lambda: teacher_labels(arrays, int(k), path, digest)

    return ingest_labels([(str(arrays["ids"][k]), builder(k)) for k in rows], store_path,
                         progress=progress, desc="teacher labels", unit="chain")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backbones", help="backbone npz of datasets/pdb_backbones/extract.py")
    ap.add_argument("--out", required=True, help="label store (.h5), created or extended")
    ap.add_argument("--n-chains", type=int, default=3000)
    ap.add_argument("--min-length", type=int, default=40)
    ap.add_argument("--max-length", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        res = ingest_teacher_labels(args.backbones, args.out, n_chains=args.n_chains, min_length=args.min_length,
                                    max_length=args.max_length, seed=args.seed)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(res.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
