"""Family-aware train / held-out split of ``../shared/data/mdcath_train`` (1,046 mdCATH domains).

    python datasets/mdcath_split/make_split.py            # writes train.txt, heldout.txt, excluded.txt, split.json
    python datasets/mdcath_split/make_split.py --check    # recompute and compare with the committed files

Rule (issue 12): no training domain within 30% sequence identity of a held-out domain, and no
training domain within 30% of the seven ``mdcath_rmsf`` domains or of the DANCE test proteins.

Identity.  Every pair of sequences (the full mdCATH domain sequence of ``rmsf_320K.csv``, one
letter per ``resid``; the seven domains' sequences from their PDB files; a DANCE test protein's
sequence = the first record of ``alignments/<ID>_aln.fa`` with the gaps removed) is aligned
globally with ``gemmi.align_string_sequences`` and the identity is
``AlignmentResult.calculate_identity()`` (identical aligned pairs / length of the shorter
sequence, in %).  gemmi's default scoring (match 1, mismatch -1, gap open -1, extend -1) makes
gaps so cheap that two *unrelated* domains reach 37% identity at the median (measured on 200
random pairs of this set), which would merge everything into one family; we therefore use
match 1, mismatch -1, gap open -10, gap extend -1 (:data:`SCORING`).  Calibration on this set,
measured once while choosing the scoring (200 random pairs; 60 mutated sequences per level): random pairs median 12.7%, 99th percentile 22%, max 24%; a real sequence
mutated to 30% true identity with 3% indels measures 31% at the median (5th pct 22%), one at
45% measures 46%.  So the 30% threshold separates families without chaining unrelated ones;
pairs of remote homologs that keep < 30% identity are not caught (sequence identity cannot see
them; no CATH superfamily labels ship with the data).

Families = connected components of the graph "identity >= 30%" (single linkage).  Whole
families are drawn for the held-out set in a seeded random order until it holds at least
:data:`HELDOUT_TARGET` domains.  Domains linked (>= 30%) to a mdcath_rmsf or DANCE test protein
are excluded from both parts (``excluded.txt``, with the reason).  The full all-pairs identity
matrix (547k alignments, about 2 minutes) is cached in ``runs/mdcath_split/identity.npy``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import gemmi
import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
THRESHOLD = 30.0  #: % identity, calculate_identity()
HELDOUT_TARGET = 150  #: at least this many held-out domains
SEED = 12  #: issue 12
CHARMM = {"HSD": "H", "HSE": "H", "HSP": "H", "HIE": "H", "HID": "H", "HIP": "H", "CYX": "C"}


def scoring() -> gemmi.AlignmentScoring:
    """match 1, mismatch -1, gap open -10, gap extend -1 (see the module docstring)."""
    s = gemmi.AlignmentScoring()
    s.match, s.mismatch, s.gapo, s.gape = 1, -1, -10, -1
    return s


SCORING = scoring()


def identity(a: str, b: str) -> float:
    """% identity of two one-letter sequences (global alignment, over the shorter one)."""
    return gemmi.align_string_sequences(list(a), list(b), [], SCORING).calculate_identity()


def _one_letter(name: str) -> str:
    if name in CHARMM:
        return CHARMM[name]
    info = gemmi.find_tabulated_residue(name)
    return info.one_letter_code.upper() if info is not None and info.is_amino_acid() else "X"


def mdcath_train_sequences(folder: Path) -> dict:
    """``{domain: sequence}`` over every resid of ``rmsf_320K.csv`` (with or without coordinates)."""
    rows: dict = defaultdict(dict)
    with open(folder / "rmsf_320K.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["domain_id"]][int(r["resid"])] = r["resname"]
    return {d: "".join(_one_letter(m[i]) for i in sorted(m)) for d, m in sorted(rows.items())}


def mdcath7_sequences(folder: Path) -> dict:
    out = {}
    for pdb in sorted((folder / "pdbs").glob("*.pdb")):
        st = gemmi.read_structure(str(pdb))
        ch = st[0][0]
        out[pdb.stem] = "".join(_one_letter(r.name) for r in ch if r.find_atom("CA", "*") is not None)
    return out


def dance_test_sequences(folder: Path) -> dict:
    out = {}
    for cid in (folder / "test_list.txt").read_text().split():
        lines = (folder / "alignments" / f"{cid}_aln.fa").read_text().splitlines()
        seq, started = [], False
        for line in lines:
            if line.startswith(">"):
                if started:
                    break
                started = True
                continue
            seq.append(line.strip())
        out[cid] = "".join(seq).replace("-", "").upper()
    return out


def all_pairs(seqs: list[str], cache: Path | None) -> np.ndarray:
    """Symmetric (n, n) % identity matrix (diagonal 100), cached by sequence content."""
    if cache is not None and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if data.shape == (len(seqs), len(seqs)) and cache.with_suffix(".json").exists():
            meta = json.loads(cache.with_suffix(".json").read_text())
            if meta.get("sequences") == seqs:
                return data
    n = len(seqs)
    mat = np.full((n, n), 100.0)
    with tqdm(total=n * (n - 1) // 2, desc="all-pairs identity", unit="pair", mininterval=2) as bar:
        for i in range(n):
            for j in range(i + 1, n):
                mat[i, j] = mat[j, i] = identity(seqs[i], seqs[j])
            bar.update(n - 1 - i)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, mat)
        cache.with_suffix(".json").write_text(json.dumps({"sequences": seqs}))
    return mat


def families(mat: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Connected components of ``mat >= threshold`` (single linkage): one label per row."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(csr_matrix(mat >= threshold), directed=False)
    return labels


def make_split(shared: Path = SHARED, cache: Path | None = ROOT / "runs" / "mdcath_split" / "identity.npy") -> dict:
    train_seqs = mdcath_train_sequences(shared / "mdcath_train")
    domains = list(train_seqs)
    refs = {**{f"mdcath7:{k}": v for k, v in mdcath7_sequences(shared / "mdcath_rmsf").items()},
            **{f"dance-test:{k}": v for k, v in dance_test_sequences(shared / "dance").items()}}
    excluded = {}
    for d in tqdm(domains, desc="vs mdcath_rmsf + DANCE test", mininterval=2):
        for name, s in refs.items():
            pid = identity(train_seqs[d], s)
            if pid >= THRESHOLD:
                excluded[d] = f"{pid:.1f}% identical to {name}"
                break
    mat = all_pairs([train_seqs[d] for d in domains], cache)
    labels = families(mat)
    fam_members: dict = defaultdict(list)
    for d, lab in zip(domains, labels):
        fam_members[int(lab)].append(d)
    order = sorted(fam_members)
    random.Random(SEED).shuffle(order)
    heldout, fams_held = [], []
    for lab in order:
        members = [d for d in fam_members[lab] if d not in excluded]
        if not members or any(d in excluded for d in fam_members[lab]):
            continue  # a family touching an evaluation protein stays out of both parts
        heldout += members
        fams_held.append(lab)
        if len(heldout) >= HELDOUT_TARGET:
            break
    held = set(heldout)
    for lab, members in fam_members.items():  # whole family of an excluded domain is excluded too
        if any(d in excluded for d in members):
            for d in members:
                excluded.setdefault(d, "same family as " + next(m for m in members if m in excluded and
                                                                 not excluded[m].startswith("same")))
    train = [d for d in domains if d not in held and d not in excluded]
    idx = {d: i for i, d in enumerate(domains)}
    cross = max(float(mat[idx[a], idx[b]]) for a in heldout for b in train)
    return {
        "train": sorted(train), "heldout": sorted(heldout), "excluded": dict(sorted(excluded.items())),
        "n_families": int(labels.max() + 1), "n_heldout_families": len(fams_held),
        "max_identity_heldout_vs_train": cross,
        "family_of": {d: int(lab) for d, lab in zip(domains, labels)},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(SHARED), help="the shared data folder (../shared/data)")
    p.add_argument("--check", action="store_true", help="recompute and compare with the committed files")
    args = p.parse_args(argv)
    shared = Path(args.shared)
    if not (shared / "mdcath_train" / "rmsf_320K.csv").exists():
        print(f"error: {shared}/mdcath_train/rmsf_320K.csv not found", file=sys.stderr)
        return 2
    res = make_split(shared)
    texts = {"train.txt": "\n".join(res["train"]) + "\n", "heldout.txt": "\n".join(res["heldout"]) + "\n",
             "excluded.txt": "".join(f"{d}\t{why}\n" for d, why in res["excluded"].items())}
    meta = {
        "threshold_identity_pct": THRESHOLD, "scoring": {"match": 1, "mismatch": -1, "gap_open": -10, "gap_extend": -1},
        "identity": "gemmi.align_string_sequences(...).calculate_identity() (over the shorter sequence)",
        "seed": SEED, "n_train": len(res["train"]), "n_heldout": len(res["heldout"]),
        "n_excluded": len(res["excluded"]), "n_families": res["n_families"],
        "n_heldout_families": res["n_heldout_families"],
        "max_identity_heldout_vs_train_pct": round(res["max_identity_heldout_vs_train"], 2),
        "family_of": res["family_of"],
        "command": "python datasets/mdcath_split/make_split.py",
    }
    texts["split.json"] = json.dumps(meta, indent=1, sort_keys=True) + "\n"
    print(f"train {len(res['train'])}, held-out {len(res['heldout'])} ({res['n_heldout_families']} families), "
          f"excluded {len(res['excluded'])}; families {res['n_families']}; "
          f"max identity held-out vs train {res['max_identity_heldout_vs_train']:.1f}%")
    if args.check:
        same = all((HERE / k).exists() and (HERE / k).read_text() == v for k, v in texts.items())
        print("split unchanged" if same else "split DIFFERS from the committed files")
        return 0 if same else 1
    for name, text in texts.items():
        tmp = HERE / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(HERE / name)
    print(f"wrote {', '.join(texts)} in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
