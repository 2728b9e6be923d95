"""Training on real MD labels (MDAnalysisTests trajectories): the loss drops, resume is exact."""

import csv
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("MDAnalysisTests")
pytest.importorskip("h5py")
yaml = pytest.importorskip("yaml")

# the test machine's cores are shared: one thread avoids OpenMP oversubscription stalls
torch.set_num_threads(1)

from dynaprot_viz.core.errors import InputError  # noqa: E402
from dynaprot_viz.training.dataset import LabelDataset, sequence_clusters, split_keys  # noqa: E402
from dynaprot_viz.training.store import LabelStore  # noqa: E402
from dynaprot_viz.training.train import TrainConfig, load_config, train  # noqa: E402

TINY_MODEL = {"c_s": 32, "c_z": 8, "n_blocks": 2, "j_n_blocks": 2, "ipa_heads": 2, "ipa_c_hidden": 8,
              "j_transition_factor": 2, "c_pair": 8, "n_pair_blocks": 1, "pair_c_hidden_mul": 8,
              "pair_c_hidden_att": 4, "pair_heads": 2, "n_rbf": 8}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """Labels of real MD: adenylate kinase (3 runs) and cobrotoxin, via the ingestion code."""
    from MDAnalysisTests import datafiles as d

    from dynaprot_viz.training.ingest import ingest
    from dynaprot_viz.training.readers import trajectory_source

    path = tmp_path_factory.mktemp("labels") / "md.h5"
    sources = [
        trajectory_source(d.PSF, d.DCD, key="adk_dims"),
        trajectory_source(d.PSF, d.DCD2, key="adk_dims2"),
        trajectory_source(d.PSF_NAMD_GBIS, d.DCD_NAMD_GBIS, key="adk_gbis"),
        trajectory_source(d.TPR_xvf, d.TRR_xvf, key="cobrotoxin"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ingest(sources, path, progress=False, keep_frames=0)
    assert result.ok, result.summary()
    return path


def _cfg(store_path, out_dir, **kw):
    d = dict(store=str(store_path), out_dir=str(out_dir), model=TINY_MODEL, lr=3e-3, warmup_steps=20,
             batch_size=2, crop_size=48, seed=0, device="cpu", num_threads=1, val_keys=["adk_gbis"],
             progress=False, floor_marginal=1e-2)
    d.update(kw)
    return TrainConfig.from_dict(d)


def test_validation_loss_drops(store_path, tmp_path):
    res = train(_cfg(store_path, tmp_path / "run", max_steps=150, checkpoint_every=50, val_every=50))
    val = [r["loss"] for r in res.history if r["split"] == "val"]
    assert len(val) == 4 and np.isfinite(val).all()
    assert val[-1] < 0.7 * val[0], val
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r["split"] == "train"] == list(range(1, 151))


class _Killed(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted(store_path, tmp_path):
    kw = dict(max_steps=24, checkpoint_every=8, val_every=8)
    full = train(_cfg(store_path, tmp_path / "a", **kw))

    def kill(step, row):
        if step == 19:
            raise _Killed

    with pytest.raises(_Killed):
        train(_cfg(store_path, tmp_path / "b", **kw), on_step=kill)
    resumed = train(_cfg(store_path, tmp_path / "b", **kw))
    assert resumed.resumed_from == 16 and resumed.step == full.step == 24
    wa = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["model"]
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6)
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "metrics.csv")) if r["split"] == "train"]
    assert steps == list(range(1, 25))  # rows after the checkpoint were redone once, not duplicated


def test_crops_masks_and_deterministic_batches(store_path):
    ds = LabelDataset(store_path, ["adk_dims", "cobrotoxin"], crop_size=40)
    b1 = ds.batch(seed=3, step=7, batch_size=3)
    b2 = ds.batch(seed=3, step=7, batch_size=3)
    for k in b1:
        torch.testing.assert_close(b1[k], b2[k])
    assert b1["aatype"].shape == (3, 40) and b1["coupling"].shape == (3, 40, 40)
    full = ds.full("cobrotoxin")
    assert full["mask"].sum() == 40  # 62 residues, centre crop of 40
    with LabelStore(store_path) as store:
        lab = store.get("cobrotoxin")
    np.testing.assert_allclose(full["marginals"][0].numpy(), lab.marginals[11:51])
    np.testing.assert_allclose(full["coupling"][0].numpy(), lab.coupling[11:51, 11:51])
    ds.close()


def test_splits_family_and_sequence(store_path, tmp_path):
    with LabelStore(store_path) as store:
        s = split_keys(store, val_fraction=0.25, seed=0)
        assert s["grouping"] == "sequence"
        adk = {"adk_dims", "adk_dims2", "adk_gbis"}
        assert adk <= set(s["train"]) or adk <= set(s["val"])  # one sequence cluster never straddles
        tsv = tmp_path / "fam.tsv"
        tsv.write_text("PDB\tCATH_ID\tECOD_ID\nadk_dims\t3.40.50.300\t-\nadk_dims2\t3.40.50.300\t-\n"
                       "adk_gbis\t3.40.50.300\t-\ncobrotoxin\t2.10.60.10\t-\n")
        f = split_keys(store, val_fraction=0.25, seed=1, families_tsv=tsv)
        assert f["grouping"] == "family" and sorted(f["train"] + f["val"]) == sorted(store.keys())
        assert adk <= set(f["train"]) or adk <= set(f["val"])
        with pytest.raises(InputError, match="not in the label store"):
            split_keys(store, val_keys=["nope"])
    assert len(set(sequence_clusters({"a": "MKVLAAGIVG", "b": "MKVLAAGIVG", "c": "WWWPPPYYY"}).values())) == 2


def test_config_errors(tmp_path):
    with pytest.raises(InputError, match="unknown training config keys: bogus"):
        TrainConfig.from_dict({"store": "x", "out_dir": "y", "bogus": 1})
    with pytest.raises(InputError, match="needs 'store'"):
        TrainConfig.from_dict({"out_dir": "y"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_config(bad)


def test_cli_train_and_export(store_path, tmp_path):
    from dynaprot_viz.cli import main

    cfg = {"store": str(store_path), "out_dir": "out", "model": TINY_MODEL, "max_steps": 3, "batch_size": 1,
           "crop_size": 32, "device": "auto", "val_keys": ["cobrotoxin"], "checkpoint_every": 2, "num_threads": 1}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    weights = tmp_path / "w.safetensors"
    assert main(["train", str(path), "--no-progress", "--export", str(weights)]) == 0
    assert (tmp_path / "out" / "checkpoints" / "last.pt").exists()  # relative to the YAML's folder
    assert weights.exists() and weights.with_suffix(".json").exists()
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
