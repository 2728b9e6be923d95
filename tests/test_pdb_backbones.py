"""ProMod3 backbone extractor (datasets/pdb_backbones/extract.py, run by the system python)."""

import subprocess
from pathlib import Path

import gemmi
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = ROOT / "datasets" / "pdb_backbones" / "extract.py"
SYSTEM_PYTHON = "/usr/bin/python3"
IDS = ["12as_A", "16PK A", "16vpA"]  # three chains of the database, three id spellings


def _promod3_available() -> bool:
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", "from promod3 import loop"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not _promod3_available(),
                                reason=f"promod3 not importable by {SYSTEM_PYTHON} "
                                       "(apt-get install python3-promod3 promod3-data)")


def _run(*args):
    return subprocess.run([SYSTEM_PYTHON, str(EXTRACT), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture()
def ids_file(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# three chains\n" + "\n".join(IDS) + "\n")
    return path


def _chains_of_pdb_dir(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.glob("*.pdb.gz")):
        st = gemmi.read_structure(str(path))
        ch = st[0][0]
        out[path.name] = (ch.name, [r.seqid.num for r in ch], [[a.name for a in r] for r in ch],
                          np.array([r["CA"][0].pos.tolist() for r in ch]), gemmi.one_letter_code([r.name for r in ch]))
    return out


def test_pdb_format_reads_back_and_resumes(tmp_path, ids_file):
    out = tmp_path / "pdb"
    r = _run("--ids", ids_file, "--format", "pdb", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "3 chains extracted, 0 already done" in r.stdout
    chains = _chains_of_pdb_dir(out)
    assert sorted(chains) == ["12AS_A.pdb.gz", "16PK_A.pdb.gz", "16VP_A.pdb.gz"]
    for name, (chain_id, numbers, atoms, ca, seq) in chains.items():
        assert chain_id == "A"
        assert np.all(np.diff(numbers) == 1)  # gap-free stretch, numbered from start_resnum
        assert all(a == ["N", "CA", "C", "O"] for a in atoms)
        step = np.linalg.norm(np.diff(ca, axis=0), axis=1)
        assert np.all((step > 2.7) & (step < 4.3)), name
        assert len(seq) == len(numbers) > 50
    assert chains["12AS_A.pdb.gz"][1][0] == 4  # 12AS chain A starts at SEQRES position 4 in ProMod3
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdb.gz")}
    again = _run("--ids", ids_file, "--format", "pdb", "--out", out)
    assert again.returncode == 0, again.stderr
    assert "0 chains extracted, 3 already done" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdb.gz")} == mtimes
    assert not list(out.glob(".*tmp"))  # no temporary files left


def test_npz_format_matches_pdb_and_resumes(tmp_path, ids_file):
    pdb_dir, npz = tmp_path / "pdb", tmp_path / "bb.npz"
    assert _run("--ids", ids_file, "--format", "pdb", "--out", pdb_dir).returncode == 0
    two = tmp_path / "two.txt"
    two.write_text("\n".join(IDS[:2]) + "\n")
    r = _run("--ids", two, "--format", "npz", "--out", npz, "--part-size", "1")
    assert r.returncode == 0, r.stderr
    r = _run("--ids", ids_file, "--format", "npz", "--out", npz)  # resume: only the third is new
    assert r.returncode == 0, r.stderr
    assert "1 chains extracted, 2 already done" in r.stdout
    assert not npz.with_name(npz.name + ".parts").exists()
    chains = _chains_of_pdb_dir(pdb_dir)
    with np.load(npz) as z:
        assert list(z["ids"]) == ["12AS_A", "16PK_A", "16VP_A"]  # database order
        assert z["coords"].dtype == np.int16 and list(z["atom_names"]) == ["N", "CA", "C", "O"]
        for c, key in enumerate(z["ids"]):
            lo, hi = z["offset"][c], z["offset"][c + 1]
            ca = z["origin"][c] + float(z["coord_unit_A"]) * z["coords"][lo:hi, 1].astype(float)
            _, numbers, _, ca_pdb, seq = chains[f"{key}.pdb.gz"]
            np.testing.assert_allclose(ca, ca_pdb, atol=0.006)  # 0.01 Å storage vs 3-decimal PDB
            assert z["sequence"][lo:hi].tobytes().decode() == seq
            assert numbers[0] == z["start_resnum"][c] and len(numbers) == z["length"][c]
            assert len(z["dssp"][lo:hi]) == hi - lo and len(z["solvent_access"][lo:hi]) == hi - lo
    mtime = npz.stat().st_mtime_ns
    r = _run("--ids", ids_file, "--format", "npz", "--out", npz)
    assert "0 chains extracted, 3 already done" in r.stdout and npz.stat().st_mtime_ns == mtime
    assert not npz.with_name(npz.name + ".parts").exists()


def test_missing_and_bad_ids(tmp_path):
    some = tmp_path / "some.txt"
    some.write_text("12as_A\nzzzz_Q\n")
    r = _run("--ids", some, "--format", "pdb", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "1 of 2 ids are not in the ProMod3 database: ZZZZ_Q" in r.stderr
    assert (tmp_path / "o" / "missing.txt").read_text() == "ZZZZ_Q\n"
    none = tmp_path / "none.txt"
    none.write_text("zzzz_Q\n")
    r = _run("--ids", none, "--format", "npz", "--out", tmp_path / "n.npz")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: none of the requested")
    assert not (tmp_path / "n.npz").exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("12as_A\nnot-an-id\n")
    r = _run("--ids", bad, "--format", "pdb", "--out", tmp_path / "b")
    assert r.returncode == 2 and "bad.txt:2: bad chain id 'not-an-id'" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("--ids", some, "--format", "npz", "--out", tmp_path / "x.h5")
    assert r.returncode == 2 and "needs a file name ending in .npz" in r.stderr
