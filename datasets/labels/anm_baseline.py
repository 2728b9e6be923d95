"""ANM's RMSF Pearson r against every record of a label store, per kind.

    python datasets/labels/anm_baseline.py runs/labels/labels.h5 [--kind md-rmsf] [--csv out.csv]

For each record: the ANM (``dynaprot_viz.core.anm``, cutoff 15 Å, gamma 1) of the
record's reference C-alpha coordinates, its RMSF sqrt(tr Σ_i), and the Pearson r with
the record's RMSF label.  Prints, per kind (and per split where the provenance has
one, as for the DANCE ensembles), the number of records and the median and
quartiles of r.  Pearson r is scale-free, so ANM's relative units do not matter.
"""

import argparse
import csv
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from tqdm.auto import tqdm

    from dynaprot_viz.core.anm import anm_covariance
    from dynaprot_viz.core.gaussian import marginals_from_joint
    from dynaprot_viz.core.metrics import rmsf_pearson
    from dynaprot_viz.training.store import LABEL_KINDS, LabelStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", help="label store (.h5)")
    p.add_argument("--kind", choices=LABEL_KINDS, action="append", help="only these kinds (repeatable)")
    p.add_argument("--csv", metavar="OUT", help="also write the per-record r to this CSV")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not Path(args.store).is_file():
        print(f"{args.store}: no such label store", file=sys.stderr)
        return 2
    rows = []
    t0 = time.perf_counter()
    with LabelStore(args.store) as store:
        keys = store.keys(kind=args.kind)
        for key in tqdm(keys, desc="ANM", unit="record", disable=args.no_progress, dynamic_ncols=True):
            lab = store.get(key)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # disconnected-network notes: r is still defined
                cov = anm_covariance(lab.ca)
            rmsf = np.sqrt(np.trace(marginals_from_joint(cov), axis1=1, axis2=2))
            rows.append({"key": key, "kind": lab.kind, "split": lab.provenance.get("split") or "",
                         "n_residues": lab.n_residues, "anm_rmsf_r": rmsf_pearson(rmsf, lab.rmsf)})
    elapsed = time.perf_counter() - t0
    groups = {}
    for r in rows:
        groups.setdefault((r["kind"], ""), []).append(r["anm_rmsf_r"])
        if r["split"]:
            groups.setdefault((r["kind"], r["split"]), []).append(r["anm_rmsf_r"])
    print(f"ANM (cutoff 15 Å) RMSF Pearson r vs the labels of {args.store} ({len(rows)} records, {elapsed:.0f} s)")
    print(f"{'kind':<24}{'split':<7}{'n':>6}{'median':>9}{'q25':>8}{'q75':>8}")
    for (kind, split), vals in sorted(groups.items()):
        v = np.array(vals, dtype=float)
        v = v[np.isfinite(v)]
        q25, med, q75 = np.percentile(v, [25, 50, 75]) if v.size else (np.nan,) * 3
        print(f"{kind:<24}{split or 'all':<7}{v.size:>6}{med:>9.3f}{q25:>8.3f}{q75:>8.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["key"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
