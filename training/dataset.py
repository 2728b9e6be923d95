"""Training examples from a label store: features, labels, crops, padding, splits.

Batches are a pure function of ``(seed, step, rank)`` (:meth:`LabelDataset.batch`),
so a run resumed from a checkpoint sees exactly the batches the uninterrupted
run would have seen, without any data-loader state to save.
"""

from __future__ import annotations

import csv
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.models.dynaprot import collate, featurize_arrays

__all__ = ["LabelDataset", "split_keys", "family_labels", "sequence_clusters"]


class LabelDataset:
    """Examples of the chains ``keys`` of a :class:`~dynaprot_viz.training.store.LabelStore`.

    Parameters
    ----------
    store_path : path
        The HDF5 label store.
    keys : list of str
        Chains to use (chains with missing backbone N or C are left out with a warning).
    crop_size : int
        Longer chains are cropped to a random contiguous window of this length
        (training) or to their centre window (:meth:`full`, validation).
    cache_size : int
        Featurised chains kept in memory.
    kind : str or iterable of str
        Record kinds to train on (default ``"md"``; None: every kind with marginals
        and coupling); chains of other kinds among ``keys`` are left out with a
        warning.  ``"md-rmsf"`` cannot be used (no marginals or coupling) unless
        ``source_aware`` is True.
    anm : bool
        Also the physics-prior ANM inputs (``featurize_arrays(..., anm=True)``: the ANM
        of the whole chain, cropped with it).  Default False.
    source_aware : bool
        Examples also carry ``rmsf`` [N] Å, ``label_full`` [N] (1 for kinds with
        marginals and coupling), ``label_rmsf`` [N] (1 where the RMSF label is finite
        and positive) and ``kind_index`` [N] long (index into ``LABEL_KINDS``), so a
        trainer can choose the loss by label kind; ``"md-rmsf"`` records are then
        allowed, with zero placeholders (views, no memory) for marginals and coupling.
        Default False (the examples described below, unchanged).

    An example is a dict of tensors (no batch axis): the model inputs of
    :func:`~dynaprot_viz.core.models.dynaprot.featurize_arrays` (float64) plus
    ``marginals`` [N, 3, 3] Å² and ``coupling`` [N, N] Å².
    """

    def __init__(self, store_path, keys, crop_size: int = 256, cache_size: int = 512, kind="md",
                 anm: bool = False, source_aware: bool = False):
        from .store import RMSF_ONLY_KINDS, LabelStore, _kind_set

        self.store_path = Path(store_path)
        if not self.store_path.exists():
            raise FileNotFoundError(f"{self.store_path}: no such label store")
        self.crop_size = int(crop_size)
        if self.crop_size < 2:
            raise InputError(f"crop_size must be >= 2, got {crop_size!r}")
        self._store = LabelStore(self.store_path)
        known = set(self._store.keys())
        missing = [k for k in keys if k not in known]
        if missing:
            raise InputError(f"{self.store_path}: chains not in the label store: {', '.join(missing[:5])}")
        self.kinds = _kind_set(kind) if kind is not None else {"md", "experimental-ensemble"}
        self.anm, self.source_aware = bool(anm), bool(source_aware)
        rmsf_only = sorted(self.kinds & set(RMSF_ONLY_KINDS))
        if rmsf_only and not self.source_aware:
            raise InputError(f"LabelDataset needs marginals and coupling; kind {rmsf_only[0]!r} holds RMSF only")
        kinds = self._store.kinds()
        other = [k for k in keys if kinds[k] not in self.kinds]
        if other:
            warnings.warn(f"{self.store_path}: {len(other)} chain(s) of other kinds than "
                          f"{', '.join(sorted(self.kinds))} left out (first: {other[0]}, {kinds[other[0]]})",
                          stacklevel=2)
            keys = [k for k in keys if kinds[k] in self.kinds]
        self._cache: OrderedDict = OrderedDict()
        self.cache_size = int(cache_size)
        if len(keys) > self.cache_size:
            # more chains than the cache holds: featurising them all here would be thrown
            # away; a chain that cannot be featurised is left out when first drawn instead
            self.keys = list(keys)
        else:
            from tqdm.auto import tqdm

            self.keys = []
            # featurising is ~0.1 s a chain with the ANM inputs: show it when it takes a while
            for k in tqdm(keys, desc="featurise", unit="chain", disable=len(keys) < 200, dynamic_ncols=True,
                          leave=False):
                try:
                    self._load(k)
                except ValueError as exc:
                    warnings.warn(f"{self.store_path}: chain {k} left out: {exc}", stacklevel=2)
                    continue
                self.keys.append(k)
        if not self.keys:
            raise InputError(f"{self.store_path}: no usable chains among {len(keys)} keys")

    def __len__(self) -> int:
        return len(self.keys)

    def _load(self, key) -> dict:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        lab = self._store.get(key)
        frames = None
        if not np.isfinite(lab.backbone).all():
            # C-alpha-only labels (the DANCE ensembles): the approximate frames of the C-alpha
            # trace, exactly what prediction uses on a C-alpha-only input (frames_for_model)
            frames = lab.to_chain().frames(approximate=True)
        item = featurize_arrays(lab.sequence, lab.backbone, frames=frames, anm=self.anm)
        if self.source_aware:
            item.update(_source_aware_labels(lab))
        else:
            item["marginals"] = torch.from_numpy(np.array(lab.marginals, dtype=np.float64))
            item["coupling"] = torch.from_numpy(np.array(lab.coupling, dtype=np.float64))
        self._cache[key] = item
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return item

    @staticmethod
    def _crop(item: dict, start: int, length: int) -> dict:
        sl = slice(start, start + length)
        out = {}
        for k, v in item.items():
            if k in ("coupling", "anm_coupling"):
                out[k] = v[sl, sl]
            else:
                out[k] = v[sl]
        out["residue_index"] = out["residue_index"] - start  # relative positions unchanged
        return out

    def example(self, key, rng: np.random.Generator | None = None) -> dict:
        """One chain, randomly cropped (``rng``) or centre-cropped (``rng=None``)."""
        item = self._load(key)
        n = len(item["aatype"])
        if n <= self.crop_size:
            return item
        start = int(rng.integers(0, n - self.crop_size + 1)) if rng is not None else (n - self.crop_size) // 2
        return self._crop(item, start, self.crop_size)

    def batch(self, seed: int, step: int, batch_size: int, rank: int = 0) -> dict:
        """The training batch of ``step``: chains drawn uniformly, random crops, padded."""
        rng = np.random.default_rng([int(seed), int(step), int(rank)])
        todo = [self.keys[i] for i in rng.integers(0, len(self.keys), size=int(batch_size))]
        examples = []
        while todo:
            key = todo.pop(0)
            try:
                examples.append(self.example(key, rng))
            except ValueError as exc:  # only with more chains than the cache (not checked up front)
                warnings.warn(f"{self.store_path}: chain {key} left out: {exc}", stacklevel=2)
                if key in self.keys:
                    self.keys.remove(key)
                if not self.keys:
                    raise InputError(f"{self.store_path}: no usable chains left") from None
                todo.append(self.keys[int(rng.integers(0, len(self.keys)))])
        return collate(examples)

    def full(self, key) -> dict:
        """One chain (centre crop when longer than crop_size) as a batch of one."""
        return collate([self.example(key, None)])

    def close(self) -> None:
        self._store.close()


def _source_aware_labels(lab) -> dict:
    """The labels of a ``source_aware`` example (see :class:`LabelDataset`)."""
    from .store import LABEL_KINDS

    n = len(lab.sequence)
    full = lab.marginals is not None and lab.coupling is not None
    if full:
        marg = torch.from_numpy(np.array(lab.marginals, dtype=np.float64))
        coup = torch.from_numpy(np.array(lab.coupling, dtype=np.float64))
    else:  # RMSF only: zero placeholders as stride-0 views (never used by the loss)
        marg = torch.zeros(1, 1, 1, dtype=torch.float64).expand(n, 3, 3)
        coup = torch.zeros(1, 1, dtype=torch.float64).expand(n, n)
    rmsf = np.array(lab.rmsf, dtype=np.float64)
    ok = np.isfinite(rmsf) & (rmsf > 0)
    return {
        "marginals": marg, "coupling": coup,
        "rmsf": torch.from_numpy(np.where(ok, rmsf, 0.0)),
        "label_full": torch.full((n,), float(full), dtype=torch.float64),
        "label_rmsf": torch.from_numpy(ok.astype(np.float64)),
        "kind_index": torch.full((n,), LABEL_KINDS.index(lab.kind), dtype=torch.long),
    }


# ----------------------------------------------------------------------------- splits


def _family_of(cath: str, ecod: str):
    """Topology-level family: CATH C.A.T (first domain) or ECOD X.H.T; None when unknown."""
    for value, prefix in ((cath, "cath"), (ecod, "ecod")):
        text = (value or "").strip().strip('"')
        first = text.split(",")[0].strip()
        if first and first != "-" and "." in first:
            return f"{prefix}:{'.'.join(first.split('.')[:3])}"
    return None


def family_labels(store, families_tsv=None) -> dict:
    """Family label of each chain of the store (keys without a family are absent).

    Sources, first found wins: ``families_tsv`` (a table with a ``PDB`` or ``key``
    column and ``CATH_ID`` and/or ``ECOD_ID`` columns, as ATLAS_info.tsv), then
    the store's provenance fields ``cath`` / ``ecod``.
    """
    out = {}
    if families_tsv is not None:
        path = Path(families_tsv)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such family table")
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                key = row.get("PDB") or row.get("key")
                fam = _family_of(row.get("CATH_ID", ""), row.get("ECOD_ID", ""))
                if key and fam:
                    out[key] = fam
    for key in store.keys():
        if key not in out:
            prov = store.metadata(key)["provenance"]
            fam = _family_of(str(prov.get("cath") or ""), str(prov.get("ecod") or ""))
            if fam:
                out[key] = fam
    return out


def _kmers(seq: str, k: int = 3) -> set:
    return {seq[i:i + k] for i in range(max(1, len(seq) - k + 1))}


def sequence_clusters(sequences: dict, threshold: float = 0.4) -> dict:
    """Greedy single-linkage clusters of sequences by 3-mer Jaccard similarity.

    A cheap stand-in for sequence-identity clustering (identical and closely
    related sequences share most 3-mers).  Returns key -> cluster label.

    The 3-mer intersections of all pairs come from one sparse product (in row blocks),
    so thousands of sequences take seconds; the unions are then applied pair by pair in
    the order of the plain double loop, which keeps the labels of the original
    O(n^2)-Python version exactly.
    """
    import scipy.sparse as sp

    keys = sorted(sequences)
    kmers = [_kmers(sequences[k]) for k in keys]
    vocab: dict = {}
    rows, cols = [], []
    for i, km in enumerate(kmers):
        for m in km:
            rows.append(i)
            cols.append(vocab.setdefault(m, len(vocab)))
    n = len(keys)
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n, max(1, len(vocab))))
    size = np.array([len(km) for km in kmers], dtype=np.int64)
    pairs = []
    for lo in range(0, n, 512):
        inter = (x[lo:lo + 512] @ x.T).toarray()  # (block, n) shared 3-mers
        union = size[lo:lo + 512, None] + size[None, :] - inter
        ok = (inter > 0) & (inter >= threshold * union)
        ii, jj = np.nonzero(ok)
        ii = ii + lo
        keep = jj > ii
        pairs.extend(zip(ii[keep].tolist(), jj[keep].tolist()))
    pairs.sort()
    parent = list(range(n))

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in pairs:
        parent[find(i)] = find(j)
    return {k: f"seq:{keys[find(i)]}" for i, k in enumerate(keys)}


def split_keys(store, val_fraction: float = 0.1, test_fraction: float = 0.0, seed: int = 0,
               families_tsv=None, val_keys=None, test_keys=None, kind="md") -> dict:
    """Train / val / test keys with no family (or sequence cluster) in two splits.

    Only records of ``kind`` (default ``"md"``; a str or an iterable of kinds, None
    for all) take part: other label kinds never enter a trainer by accident.

    Explicit ``val_keys`` / ``test_keys`` win.  Otherwise chains are grouped by
    CATH/ECOD family when labels exist (:func:`family_labels`), else by
    sequence cluster (:func:`sequence_clusters`); whole groups are assigned, in
    a seeded random order, until each held-out split reaches its fraction of
    chains.  Returns {"train": [...], "val": [...], "test": [...], "grouping": str}.
    """
    keys = list(store.keys(kind=kind))
    if val_keys is not None or test_keys is not None:
        val, test = list(val_keys or []), list(test_keys or [])
        unknown = [k for k in val + test if k not in set(keys)]
        if unknown:
            of = "" if kind is None else f" (of kind {kind if isinstance(kind, str) else ', '.join(kind)})"
            raise InputError(f"split keys not in the label store{of}: {', '.join(unknown[:5])}")
        held = set(val) | set(test)
        return {"train": [k for k in keys if k not in held], "val": val, "test": test, "grouping": "explicit"}
    fams = family_labels(store, families_tsv)
    if fams:
        grouping = "family"
        seqs = {k: store.metadata(k)["sequence"] for k in keys if k not in fams}
        groups = {**fams, **sequence_clusters(seqs)}
    else:
        grouping = "sequence"
        groups = sequence_clusters({k: store.metadata(k)["sequence"] for k in keys})
    members: dict = {}
    for k in keys:
        members.setdefault(groups[k], []).append(k)
    order = sorted(members)
    np.random.default_rng(seed).shuffle(order)
    out = {"train": [], "val": [], "test": []}
    targets = {"val": val_fraction * len(keys), "test": test_fraction * len(keys)}
    for g in order:
        for split in ("val", "test"):
            if len(out[split]) < targets[split] and len(out[split]) + len(members[g]) <= max(1, 2 * targets[split]):
                out[split] += members[g]
                break
        else:
            out["train"] += members[g]
    out["grouping"] = grouping
    return out
