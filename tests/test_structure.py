"""Reading chains from real PDB/mmCIF files, and the bad-input cases of issue 2."""

import gzip
import shutil

import gemmi
import numpy as np
import pytest

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.structure import load_chain, local_frames, protein_chain_names

from helpers import random_rotation


def test_pdb_basic(ubq_chain):
    assert len(ubq_chain) == 76
    assert ubq_chain.sequence.startswith("MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"[:40])
    assert ubq_chain.chain_id == "A"
    assert ubq_chain.has_full_backbone
    assert ubq_chain.backbone.shape == (76, 3, 3)
    assert np.all(ubq_chain.bfactors > 0)
    # the first C-alpha as written in the file
    st = gemmi.read_structure(str(ubq_chain.source))
    ca = st[0]["A"][0]["CA"][0].pos
    np.testing.assert_allclose(ubq_chain.ca[0], [ca.x, ca.y, ca.z])


def test_mmcif_and_chain_selection(data_dir):
    a = load_chain(data_dir / "1ake.cif")
    b = load_chain(data_dir / "1ake.cif", chain="B")
    assert a.chain_id == "A" and b.chain_id == "B"
    assert len(a) == len(b) == 214
    assert a.sequence == b.sequence
    assert not np.allclose(a.ca, b.ca)
    assert protein_chain_names(gemmi.read_structure(str(data_dir / "1ake.cif"))) == ["A", "B"]


def test_gzipped_pdb_and_mmcif_equal_plain(data_dir, tmp_path):
    plain = tmp_path / "1ake.cif"
    shutil.copy(data_dir / "1ake.cif", plain)
    gz = tmp_path / "1ake.cif.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    np.testing.assert_array_equal(load_chain(gz).ca, load_chain(plain).ca)
    osm = load_chain(data_dir / "1osm.pdb.gz")
    assert len(osm) > 100


def test_insertion_codes_kept(data_dir):
    osm = load_chain(data_dir / "1osm.pdb.gz")
    with_icode = [r for r in osm.residues if r.icode]
    assert with_icode, "1OSM has residues with insertion codes"
    ids = [(r.number, r.icode) for r in osm.residues]
    assert len(set(ids)) == len(ids)
    assert (163, "A") in ids and (163, "B") in ids


def test_ligands_and_water_ignored(data_dir):
    st = gemmi.read_structure(str(data_dir / "1ake.cif"), merge_chain_parts=True)
    names = {r.name for r in st[0]["A"]}
    assert "HOH" in names and "AP5" in names  # the file really has them
    chain = load_chain(data_dir / "1ake.cif")
    assert len(chain) == 214
    assert "HOH" not in {r.name for r in chain.residues}


def test_altloc_highest_occupancy_real(data_dir):
    """1EJG (crambin, 0.54 Å) has alternate conformations and two positions with
    two residue types (22 PRO/SER, 25 LEU/ILE): per position, the altloc with the
    highest mean occupancy wins, and the residue carrying its C-alpha."""
    chain = load_chain(data_dir / "1ejg.pdb")
    assert len(chain) == 46
    numbers = [r.number for r in chain.residues]
    st = gemmi.read_structure(str(data_dir / "1ejg.pdb"))
    groups = {}
    for res in st[0]["A"]:
        groups.setdefault(res.seqid.num, []).append(res)
    checked = 0
    for num, group in groups.items():
        atoms = [a for r in group for a in r]
        alts = {}
        for a in atoms:
            if a.altloc != "\0":
                alts.setdefault(a.altloc, []).append(a.occ)
        if len(alts) < 2:
            continue
        best = max(alts, key=lambda k: (np.mean(alts[k]), -ord(k)))
        ca = [(a, r) for r in group for a in r if a.name == "CA" and a.altloc in ("\0", best)]
        assert len(ca) == 1
        i = numbers.index(num)
        np.testing.assert_allclose(chain.ca[i], [ca[0][0].pos.x, ca[0][0].pos.y, ca[0][0].pos.z])
        assert chain.residues[i].name == ca[0][1].name
        checked += 1
    assert checked >= 5
    assert chain.residues[numbers.index(22)].name == "PRO"
    assert chain.residues[numbers.index(25)].name == "LEU"


def _edit_pdb(src, dst, edit):
    lines = open(src).read().splitlines()
    open(dst, "w").write("\n".join(edit(lines)) + "\n")


def test_altloc_prefers_occupancy_over_letter(ubq_path, tmp_path):
    """A synthetic altloc on residue 10: B (occupancy 0.7) beats A (0.3)."""
    def edit(lines):
        out = []
        for line in lines:
            if line.startswith("ATOM") and line[22:26].strip() == "10":
                a = line[:16] + "A" + line[17:54] + "  0.30" + line[60:]
                x = float(line[30:38]) + 1.5
                b = line[:16] + "B" + line[17:30] + f"{x:8.3f}" + line[38:54] + "  0.70" + line[60:]
                out += [a, b]
            else:
                out.append(line)
        return out

    path = tmp_path / "alt.pdb"
    _edit_pdb(ubq_path, path, edit)
    orig = load_chain(ubq_path)
    alt = load_chain(path)
    i = [r.number for r in alt.residues].index(10)
    np.testing.assert_allclose(alt.ca[i], orig.ca[i] + [1.5, 0, 0], atol=1e-3)


def test_modified_residue_maps_to_parent(ubq_path, tmp_path):
    """MET 1 rewritten as selenomethionine (HETATM MSE, SD -> SE)."""
    def edit(lines):
        out = []
        for line in lines:
            if line.startswith("ATOM") and line[17:20] == "MET" and line[22:26].strip() == "1":
                line = "HETATM" + line[6:17] + "MSE" + line[20:]
                if line[12:16] == " SD ":
                    line = line[:12] + "SE  " + line[16:76] + "SE" + line[78:]
            out.append(line)
        return out

    path = tmp_path / "mse.pdb"
    _edit_pdb(ubq_path, path, edit)
    chain = load_chain(path)
    assert len(chain) == 76
    assert chain.residues[0].name == "MSE"
    assert chain.sequence[0] == "M"


def test_several_models_warns_and_uses_first(data_dir):
    with pytest.warns(UserWarning, match="3 models, using the first"):
        chain = load_chain(data_dir / "2k39_3models.pdb")
    st = gemmi.read_structure(str(data_dir / "2k39_3models.pdb"))
    p = st[0][0][0]["CA"][0].pos
    np.testing.assert_allclose(chain.ca[0], [p.x, p.y, p.z])


def test_missing_ca_dropped_missing_n_refuses_frames(ubq_path, tmp_path):
    def edit(lines):
        return [
            line for line in lines
            if not (line.startswith("ATOM") and line[22:26].strip() == "20" and line[12:16] == " CA ")
            and not (line.startswith("ATOM") and line[22:26].strip() == "30" and line[12:16] == " N  ")
        ]

    path = tmp_path / "missing.pdb"
    _edit_pdb(ubq_path, path, edit)
    with pytest.warns(UserWarning, match="without a C-alpha skipped: A:20 SER"):
        chain = load_chain(path)
    assert len(chain) == 75
    assert not chain.has_full_backbone
    with pytest.raises(InputError, match="missing backbone N or C: A:30 ILE"):
        chain.frames()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "file is empty"),
        (bytes(range(256)) * 20, "cannot be read|no atoms"),
        (b"HEADER    NOTHING\nREMARK just text\nEND\n", "no atoms"),
    ],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.pdb"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_chain(path)


def test_non_protein_files(data_dir, tmp_path):
    with pytest.raises(InputError, match="no protein chain found"):
        load_chain(data_dir / "nucleic_only.pdb")
    water = tmp_path / "water.pdb"
    water.write_text(
        "HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 20.00           O\n"
        "HETATM    2  O   HOH A   2      12.000  10.000  10.000  1.00 20.00           O\nEND\n"
    )
    with pytest.raises(InputError, match="no protein chain found"):
        load_chain(water)


def test_unknown_chain_and_ligand_chain(data_dir):
    with pytest.raises(InputError, match=r"no chain 'Z'; chains with protein: A, B"):
        load_chain(data_dir / "1ake.cif", chain="Z")


def test_nan_coordinates(ubq_path, tmp_path):
    def edit(lines):
        out = []
        for line in lines:
            if line.startswith("ATOM") and line[22:26].strip() == "5" and line[12:16] == " CA ":
                line = line[:30] + "     nan" + line[38:]
            out.append(line)
        return out

    path = tmp_path / "nan.pdb"
    _edit_pdb(ubq_path, path, edit)
    with pytest.raises(InputError, match="non-finite coordinates"):
        load_chain(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_chain(tmp_path / "absent.pdb")
    with pytest.raises(InputError, match="is a directory"):
        load_chain(tmp_path)
    with pytest.raises(TypeError, match="source must be a path"):
        load_chain(42)


def test_frames_orthonormal_right_handed_and_equivariant(ubq_chain):
    rot, trans = ubq_chain.frames()
    np.testing.assert_allclose(np.einsum("nji,njk->nik", rot, rot), np.broadcast_to(np.eye(3), rot.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-10)
    # e1 along CA->C
    e1 = ubq_chain.backbone[:, 2] - ubq_chain.backbone[:, 1]
    np.testing.assert_allclose(rot[:, :, 0], e1 / np.linalg.norm(e1, axis=1, keepdims=True), atol=1e-10)
    r = random_rotation(np.random.default_rng(3))
    t = np.array([4.0, -7.0, 1.0])
    bb = ubq_chain.backbone @ r.T + t
    rot2, trans2 = local_frames(bb[:, 0], bb[:, 1], bb[:, 2])
    np.testing.assert_allclose(rot2, r @ rot, atol=1e-10)
    np.testing.assert_allclose(trans2, trans @ r.T + t, atol=1e-10)
