"""What both trainers (DynaProt, ResAxial) write while they run: atomic checkpoints
and a metrics CSV that a resumed run rewinds to its checkpoint."""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["atomic_torch_save", "append_metrics", "truncate_metrics"]


def atomic_torch_save(payload: dict, path: Path) -> None:
    """``torch.save`` to a temporary name and rename: a kill never leaves half a checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def append_metrics(path: Path, rows: list, fields: list) -> None:
    """Append metric rows (dicts; missing fields left empty) to a CSV with header ``fields``."""
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def truncate_metrics(path: Path, step: int, fields: list) -> None:
    """Drop rows written after the checkpoint we resume from (they will be redone)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
