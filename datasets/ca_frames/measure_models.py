"""DynaProt and ResAxial on a full-backbone file versus the same file stripped to C-alpha.

For each real chain: predict from the file as it is (exact N-CA-C frames) and from a
copy holding only its CA atoms (written with gemmi; DynaProt then uses the C-alpha-trace
frames of ``dynaprot_viz.core.ca_trace``), and report the Pearson r of the two RMSF
profiles and of the two correlation maps (upper triangle), with the shipped weights.

Chains: ``examples/data/{1ubi,1ake_A,4ake_A}.pdb`` and, when ``../shared/data`` is
there, the ten ``atlas_chains``.  Usage (from the project root)::

    .venv/bin/python datasets/ca_frames/measure_models.py
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import gemmi
import numpy as np
from tqdm import tqdm

from dynaprot_viz.core.models.dynaprot.predictor import predict_dynaprot
from dynaprot_viz.core.models.resaxial.predictor import predict_resaxial
from dynaprot_viz.core.structure import load_chain

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def strip_to_ca(src: Path, dst: Path) -> None:
    st = gemmi.read_structure(str(src))
    st.remove_hydrogens()
    for model in st:
        for chain in model:
            for res in chain:
                for k in reversed(range(len(res))):
                    if res[k].name != "CA":
                        del res[k]
    st.remove_empty_chains()
    st.write_pdb(str(dst))


def main():
    files = [ROOT / "examples" / "data" / f for f in ("1ubi.pdb", "1ake_A.pdb", "4ake_A.pdb")]
    files += sorted((SHARED / "atlas_chains").glob("*.pdb"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in tqdm(files, desc="chains"):
            ca_file = Path(tmp) / f"{f.stem}_ca.pdb"
            strip_to_ca(f, ca_file)
            full, ca = load_chain(f), load_chain(ca_file)
            assert len(full) == len(ca) and not ca.missing_n_or_c.sum() < len(ca)
            np.testing.assert_allclose(full.ca, ca.ca, atol=1e-3)
            row = [f.stem, len(full)]
            for predict in (predict_dynaprot, predict_resaxial):
                a, b = predict(full, device="cpu"), predict(ca, device="cpu")
                iu = np.triu_indices(len(full), 1)
                row += [np.corrcoef(a.rmsf, b.rmsf)[0, 1],
                        np.corrcoef(a.correlation[iu], b.correlation[iu])[0, 1]]
            rows.append(row)
    print(f"{'chain':10s} {'N':>4s}  {'DynaProt RMSF r':>15s} {'corr-map r':>10s}  "
          f"{'ResAxial RMSF r':>15s} {'corr-map r':>10s}")
    for r in rows:
        print(f"{r[0]:10s} {r[1]:4d}  {r[2]:15.4f} {r[3]:10.4f}  {r[4]:15.4f} {r[5]:10.4f}")
    arr = np.array([r[2:] for r in rows])
    print(f"{'median':10s} {'':4s}  {np.median(arr[:, 0]):15.4f} {np.median(arr[:, 1]):10.4f}  "
          f"{np.median(arr[:, 2]):15.4f} {np.median(arr[:, 3]):10.4f}")
    print(f"{'min':10s} {'':4s}  {arr[:, 0].min():15.4f} {arr[:, 1].min():10.4f}  "
          f"{arr[:, 2].min():15.4f} {arr[:, 3].min():10.4f}")


if __name__ == "__main__":
    main()
