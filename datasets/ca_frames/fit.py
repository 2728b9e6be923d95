"""Fit and measure the virtual N/C coefficients of ``dynaprot_viz.core.ca_trace``.

Data (real experimental backbones with N, CA, C; nothing synthetic):

- fit: ``shared/data/mdcath_train/pdbs/*.pdb.gz`` (ProMod3's copies of PDB chains), the
  domains whose index in sorted file order is not a multiple of 5 (837 of 1,046);
- held out (measured, never fitted): the other 209 mdcath_train domains, the ten
  ``shared/data/atlas_chains/*.pdb`` (ATLAS start structures) and ``examples/data/``
  1ubi.pdb, 1ake_A.pdb, 4ake_A.pdb.

Targets: the true N and C of each residue in the trace frame that
:func:`~dynaprot_viz.core.ca_trace.trace_geometry` assigns it.  Each case's table is the
least-squares solution of features[:, CASE_FEATURES[case]] @ W = [N_loc, C_loc] over
every fit residue where that case's relation is defined (the reduced cases "a", "b",
"bend" use all residues that have their features, not only the few at segment ends;
"start" / "end" use every residue i whose next / previous residue has a trace frame,
placed in that frame).  Residues without N or C are skipped.

Measure: rotation angle (degrees) between ``local_frames`` of the virtual backbone and
the true N-CA-C frame, per residue, on the held-out set.

Usage (from the project root)::

    .venv/bin/python datasets/ca_frames/fit.py            # fit, measure, print the numbers
    .venv/bin/python datasets/ca_frames/fit.py --write    # also rewrite the constants in core/ca_trace.py
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynaprot_viz.core.ca_trace import CASE_FEATURES, trace_geometry, virtual_backbone
from dynaprot_viz.core.structure import load_chain, local_frames

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CONSTANTS_FILE = ROOT / "core" / "ca_trace.py"


def chains(paths, desc):
    out = []
    for p in tqdm(paths, desc=desc, leave=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ch = load_chain(p)
        out.append((Path(p).name, ch.backbone))
    return out


def datasets():
    md = sorted((SHARED / "mdcath_train" / "pdbs").glob("*.pdb.gz"))
    if not md:
        sys.exit(f"no structures under {SHARED / 'mdcath_train' / 'pdbs'}")
    fit = [p for i, p in enumerate(md) if i % 5]
    held = [p for i, p in enumerate(md) if i % 5 == 0]
    held += sorted((SHARED / "atlas_chains").glob("*.pdb"))
    held += [ROOT / "examples" / "data" / f for f in ("1ubi.pdb", "1ake_A.pdb", "4ake_A.pdb")]
    return chains(fit, "fit structures"), chains(held, "held-out structures")


def rows(bbs):
    """Per case: (features, targets (M, 6)) over all residues where the case's relation holds."""
    acc = {k: ([], []) for k in CASE_FEATURES}
    for _, bb in bbs:
        ca = bb[:, 1]
        geo = trace_geometry(ca)
        n = len(ca)
        own = geo["borrowed"] == np.arange(n)  # residues with their own trace frame
        full = np.isfinite(bb).all(axis=(1, 2))
        feats, frame, seg = geo["features"], geo["frame"], geo["segment"]

        def local(i, f):  # true N, C of residues i in frames f: (M, 6)
            return np.concatenate([np.einsum("nji,nj->ni", f, bb[i, 0] - ca[i]),
                                   np.einsum("nji,nj->ni", f, bb[i, 2] - ca[i])], axis=1)

        has_a = own & (feats[:, 3:5] != 0).any(axis=1)
        has_b = own & (feats[:, 5:7] != 0).any(axis=1)
        for case, sel in (("ab", has_a & has_b), ("a", has_a), ("b", has_b), ("bend", own)):
            i = np.flatnonzero(sel & full)
            acc[case][0].append(feats[i][:, CASE_FEATURES[case]])
            acc[case][1].append(local(i, frame[i]))
        for case, step in (("start", 1), ("end", -1)):
            i = np.arange(max(0, -step), n - max(0, step))
            j = i + step
            ok = own[j] & (seg[i] == seg[j]) & full[i]
            i, j = i[ok], j[ok]
            acc[case][0].append(feats[j][:, CASE_FEATURES[case]])
            acc[case][1].append(local(i, frame[j]))
    return {k: (np.concatenate(x), np.concatenate(y)) for k, (x, y) in acc.items()}


def fit(fit_bbs):
    models = {}
    for case, (x, y) in rows(fit_bbs).items():
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        models[case] = np.round(w, 4)
        print(f"fitted {case:5s} on {len(x):7d} residues, {w.shape[0]} features")
    return models


def angles(bbs, models):
    """Rotation angle (deg) of every held-out residue with full backbone, and its case."""
    ang, cases = [], []
    for _, bb in bbs:
        full = np.isfinite(bb).all(axis=(1, 2))
        vb = virtual_backbone(bb[:, 1], models)
        r_true, _ = local_frames(bb[full, 0], bb[full, 1], bb[full, 2])
        r_virt, _ = local_frames(vb[full, 0], vb[full, 1], vb[full, 2])
        tr = np.einsum("nij,nij->n", r_true, r_virt)
        ang.append(np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1))))
        cases.append(trace_geometry(bb[:, 1])["case"][full])
    return np.concatenate(ang), np.concatenate(cases)


def report(ang, cases, label):
    print(f"{label}: {len(ang)} residues, median {np.median(ang):.1f} deg, "
          f"95th percentile {np.percentile(ang, 95):.1f} deg")
    for case in CASE_FEATURES:
        a = ang[cases == case]
        if len(a):
            print(f"    {case:5s} {len(a):6d} residues: median {np.median(a):5.1f}, p95 {np.percentile(a, 95):5.1f}")


def source(models) -> str:
    lines = ["CA_TRACE_MODELS = {"]
    for case, w in models.items():
        lines.append(f"    {case!r}: np.array([")
        for row in w:
            lines.append("        [" + ", ".join(f"{v: .4f}" for v in row) + "],")
        lines.append("    ]),")
    lines.append("}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the fitted constants in core/ca_trace.py")
    args = ap.parse_args(argv)
    fit_bbs, held_bbs = datasets()
    print(f"{len(fit_bbs)} fit chains, {len(held_bbs)} held-out chains")
    models = fit(fit_bbs)
    ang, cases = angles(held_bbs, models)
    report(ang, cases, "held-out, fitted tables")
    # baselines for the docstring: one fixed set of coefficients, and cos(theta) only,
    # in every residue's own trace frame (segment ends keep the fitted tables)
    x, y = rows(fit_bbs)["bend"]
    for label, k in (("one fixed set of coefficients", 1), ("cos(theta) only", 2)):
        w = np.linalg.lstsq(x[:, :k], y, rcond=None)[0]
        base = {c: (np.vstack([w, np.zeros((len(cols) - k, 6))]) if c not in ("start", "end") else models[c])
                for c, cols in CASE_FEATURES.items()}
        a, c = angles(held_bbs, base)
        inner = ~np.isin(c, ("start", "end"))
        print(f"baseline, {label}: residues with a trace frame median {np.median(a[inner]):.1f} deg, "
              f"p95 {np.percentile(a[inner], 95):.1f}; all median {np.median(a):.1f}, p95 {np.percentile(a, 95):.1f}")
    text = source(models)
    print(text)
    if args.write:
        src = CONSTANTS_FILE.read_text()
        new = re.sub(r"(# BEGIN FITTED CONSTANTS\n).*?(\n# END FITTED CONSTANTS)",
                     lambda m: m.group(1) + text + m.group(2), src, flags=re.S)
        CONSTANTS_FILE.write_text(new)
        print(f"wrote the constants into {CONSTANTS_FILE}")


if __name__ == "__main__":
    main()
