"""Pretraining on teacher labels, then fine-tuning (issue: a learned model that beats ANM).

Teacher labels (kind ``teacher-rmsf``) on real backbones in the extractor's npz layout,
the ``max_minutes`` budget and ``init_from`` of the trainer, ResAxial on RMSF-only
labels, and the ablation's table writer.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")

from dynaprot_viz.core.errors import InputError, ShapeError  # noqa: E402
from dynaprot_viz.core.models.anm_gbm import predict_anm_gbm  # noqa: E402
from dynaprot_viz.core.structure import BACKBONE_NPZ_ARRAYS, backbone_npz_chain, load_chain  # noqa: E402
from dynaprot_viz.training.store import ChainLabels, LabelStore  # noqa: E402
from dynaprot_viz.training.teacher_labels import choose_chains, ingest_teacher_labels  # noqa: E402
from dynaprot_viz.training.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
SMALL = dict(c_s=16, c_z=8, n_blocks=1, j_n_blocks=1, ipa_heads=2, ipa_c_hidden=8, j_transition_factor=2,
             transition_factor=2, c_pair=8, n_pair_blocks=1, pair_c_hidden_mul=8, pair_c_hidden_att=4,
             pair_heads=2, n_rbf=8)


def _write_backbone_npz(path, chains) -> Path:
    """Chains (ProteinChain) in the layout of datasets/pdb_backbones/extract.py (N, CA, C, O=CA)."""
    unit = 0.01
    origin = np.stack([c.backbone[:, 1].mean(0) for c in chains]).astype(np.float32)
    coords = np.concatenate([
        np.round((np.concatenate([c.backbone, c.backbone[:, 1:2]], axis=1) - o) / unit).astype(np.int16)
        for c, o in zip(chains, origin)])
    lengths = np.array([len(c) for c in chains], dtype=np.int32)
    np.savez_compressed(
        path, ids=np.array([f"T{k:03d}_{c.chain_id}" for k, c in enumerate(chains)]),
        pdb_id=np.array([f"T{k:03d}" for k in range(len(chains))]), chain=np.array([c.chain_id for c in chains]),
        db_index=np.arange(len(chains), dtype=np.int32),
        start_resnum=np.array([c.residues[0].number for c in chains], dtype=np.int32), length=lengths,
        offset=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), origin=origin, coords=coords,
        sequence=np.frombuffer("".join(c.sequence for c in chains).encode(), dtype="S1"),
        atom_names=np.array(["N", "CA", "C", "O"]), coord_unit_A=np.float64(unit))
    return Path(path)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    chains = [load_chain(DATA / "1ake_A.pdb"), load_chain(DATA / "1ubi.pdb"), load_chain(DATA / "4ake_A.pdb")]
    return chains, _write_backbone_npz(tmp_path_factory.mktemp("bb") / "bb.npz", chains)


def test_backbone_npz_chain_reads_the_extractor_layout(backbones):
    chains, path = backbones
    with np.load(path) as z:
        arrays = {k: z[k] for k in BACKBONE_NPZ_ARRAYS}
    got = backbone_npz_chain(arrays, 1)
    assert got.source == "T001_A" and got.sequence == chains[1].sequence
    np.testing.assert_allclose(got.backbone, chains[1].backbone, atol=0.006)  # 0.01 Å grid
    assert [r.number for r in got.residues] == [r.number for r in chains[1].residues]
    arrays["length"] = arrays["length"] + 1
    with pytest.raises(InputError, match="offsets give"):
        backbone_npz_chain(arrays, 0)



def test_read_backbone_npz_refuses_other_files_in_one_line(backbones, tmp_path):
    from dynaprot_viz.core.structure import read_backbone_npz

    got = read_backbone_npz(backbones[1])
    assert set(got) == set(BACKBONE_NPZ_ARRAYS)
    np.savez(tmp_path / "other.npz", ids=np.array(["a"]))
    with pytest.raises(InputError, match="missing arrays: chain, start_resnum"):
        read_backbone_npz(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot be read as an npz"):
        read_backbone_npz(tmp_path / "junk.npz")


def test_choose_chains_filters_by_length_and_is_seeded():
    lengths = np.array([10, 50, 60, 500, 70, 80, 399])
    a = choose_chains(lengths, 3, min_length=40, max_length=400, seed=1)
    assert len(a) == 3 and set(a) <= {1, 2, 4, 5, 6} and list(a) == sorted(a)
    np.testing.assert_array_equal(a, choose_chains(lengths, 3, min_length=40, max_length=400, seed=1))
    assert len(choose_chains(lengths, 100)) == 5  # all that qualify
    with pytest.raises(InputError, match="no chain of 600 to 700"):
        choose_chains(lengths, 3, min_length=600, max_length=700)


def test_teacher_labels_are_anm_gbm_predictions_and_resume(backbones, tmp_path):
    chains, path = backbones
    store = tmp_path / "teacher.h5"
    res = ingest_teacher_labels(path, store, n_chains=2, min_length=40, max_length=400, seed=0, progress=False)
    assert len(res.ingested) == 2 and not res.failed
    with LabelStore(store, "r") as st:
        assert set(st.kinds().values()) == {"teacher-rmsf"}
        key = st.keys()[0]
        lab = st.get(key)
    k = int(key[1:4])
    want = predict_anm_gbm(chains[k]).rmsf  # the teacher on the original coordinates
    assert np.corrcoef(lab.rmsf, want)[0, 1] > 0.999  # the 0.01 Å grid moves ANM a hair
    assert lab.marginals is None and lab.provenance["teacher"] == "anm-gbm"
    assert len(lab.provenance["teacher_weights_sha256"]) == 64
    again = ingest_teacher_labels(path, store, n_chains=2, seed=0, progress=False)
    assert not again.ingested and len(again.skipped) == 2
    with pytest.raises(InputError, match="no such backbone npz"):
        ingest_teacher_labels(tmp_path / "nope.npz", store, progress=False)


def test_teacher_kind_holds_rmsf_only():
    c = load_chain(DATA / "1ubi.pdb")
    base = dict(key="x", sequence=c.sequence, residues=c.residues, backbone=c.backbone, rmsf=np.ones(len(c)))
    with pytest.raises(ShapeError, match="kind 'teacher-rmsf' holds RMSF only"):
        ChainLabels(**base, marginals=np.tile(np.eye(3), (len(c), 1, 1)), kind="teacher-rmsf")
    with pytest.raises(InputError, match="kind 'teacher-rmsf' \\(RMSF only\\)"):
        ChainLabels(**base, kind="teacher-rmsf").to_dynamics()


def _cfg(store, out, **kw):
    d = dict(store=str(store), out_dir=str(out), model={**SMALL, "prior": "anm"}, kinds=["teacher-rmsf"],
             lr=1e-3, warmup_steps=1, max_steps=3, batch_size=2, crop_size=40, device="cpu", precision="fp32",
             num_threads=1, checkpoint_every=1, val_every=100, val_fraction=0.0, progress=False)
    return TrainConfig.from_dict({**d, **kw})


@pytest.fixture(scope="module")
def teacher_store(backbones, tmp_path_factory):
    store = tmp_path_factory.mktemp("teacher") / "teacher.h5"
    ingest_teacher_labels(backbones[1], store, n_chains=3, progress=False)
    return store


def test_pretrain_then_finetune_starts_from_the_pretrained_weights(teacher_store, tmp_path):
    pre = train(_cfg(teacher_store, tmp_path / "pre"))
    assert pre.step == 3
    ck = torch.load(pre.checkpoint, weights_only=False)
    assert ck["train_seconds"] > 0 and ck["init_from"] is None
    # lr 0: the fine-tuning step changes nothing, so the weights must be the pretrained ones
    ft = train(_cfg(teacher_store, tmp_path / "ft", init_from=str(pre.checkpoint), lr=0.0, max_steps=1))
    got = torch.load(ft.checkpoint, weights_only=False)
    assert got["init_from"]["path"] == str(pre.checkpoint) and got["init_from"]["step"] == 3
    for name, tensor in ck["model"].items():
        torch.testing.assert_close(got["model"][name], tensor, rtol=0, atol=0)
    # a run without init_from starts elsewhere (the trunk is randomly initialised)
    fresh = train(_cfg(teacher_store, tmp_path / "fresh", lr=0.0, max_steps=1, seed=5))
    fr = torch.load(fresh.checkpoint, weights_only=False)["model"]
    assert any(not torch.equal(fr[k], v) for k, v in ck["model"].items())
    with pytest.raises(InputError, match="different model config"):
        train(_cfg(teacher_store, tmp_path / "bad", init_from=str(pre.checkpoint),
                   model={**SMALL, "prior": "anm", "c_s": 32}))
    with pytest.raises(InputError, match="no such checkpoint"):
        train(_cfg(teacher_store, tmp_path / "bad2", init_from=str(tmp_path / "none.pt")))


def test_max_minutes_stops_early_and_counts_over_resumes(teacher_store, tmp_path):
    cfg = _cfg(teacher_store, tmp_path / "run", max_steps=1000, max_minutes=1e-9)
    out = train(cfg)
    assert out.step == 0  # the budget is spent before the first step
    ck = torch.load(out.checkpoint, weights_only=False)
    assert ck["step"] == 0 and ck["train_seconds"] > 0
    again = train(cfg)  # resumes with the budget already spent: no step either
    assert again.resumed_from == 0 and again.step == 0
    with pytest.raises(InputError, match="max_minutes must be a number > 0"):
        _cfg(teacher_store, tmp_path / "x", max_minutes=0)


def test_resaxial_trains_on_rmsf_only_labels(teacher_store, tmp_path):
    from dynaprot_viz.training.train_resaxial import ResAxialTrainConfig, train_resaxial

    base = dict(model="resaxial", store=str(teacher_store), out_dir=str(tmp_path / "r"), kinds=["teacher-rmsf"],
                architecture=dict(channels=[8, 16], blocks_per_level=1, embed_dim=0, n_axial=1, axial_heads=2,
                                  axial_c_hidden=8, chunk_size=32),
                max_steps=2, batch_size=2, crop_size=40, val_every=2, val_fraction=0.4, checkpoint_every=2,
                precision="fp32", progress=False)
    with pytest.raises(InputError, match="use loss_mode: rmsf"):
        ResAxialTrainConfig.from_dict(base)
    res = train_resaxial(None, {**base, "loss_mode": "rmsf"})
    rows = [r for r in res.history if r["split"] == "train"]
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    assert np.isfinite(res.last("val")["rmsf_r"])


def test_ablation_table_lists_every_model_and_set():
    from dynaprot_viz.training.ablation import markdown_table

    sets = {"mdcath-split-heldout": {"n": 3, "models": {"anm": 0.7, "x": 0.8},
                                     "mean_rmsf_abs_err_A": {"anm": 0.3, "x": 0.2}},
            "dance-test": {"n": 2, "models": {"anm": 0.71, "x": float("nan")}}}
    extras = {"dance-test": {"anm": {"coupling_r_peak": 0.5, "top_mode_overlap": 0.4}, "x": {}}}
    table = markdown_table({"sets": sets, "extras": extras, "models": ["anm", "x"]})
    lines = table.splitlines()
    assert lines[0].startswith("Proteins: mdCATH split 3")
    anm = next(ln for ln in lines if ln.startswith("| anm |"))
    assert "0.700 | 0.300" in anm and "0.710 | 0.500 | 0.400" in anm
    x = next(ln for ln in lines if ln.startswith("| x |"))
    assert "0.800 | 0.200" in x and "| 0.710" not in x  # NaN and missing cells stay empty


def test_source_scales_rescale_other_sources_only():
    from dynaprot_viz.training.store import LABEL_KINDS
    from dynaprot_viz.training.train import SourceScales

    sc = SourceScales()
    with torch.no_grad():
        sc.log_scale[:] = 0.3
    out = {"marginals": torch.ones(3, 4, 3, 3), "coupling": torch.ones(3, 4, 4)}
    kinds = torch.tensor([[LABEL_KINDS.index(k)] * 4 for k in ("md-rmsf", "experimental-ensemble", "teacher-rmsf")])
    got = sc(out, kinds)
    assert torch.allclose(got["marginals"][0], out["marginals"][0])  # the MD RMSF reference is fixed
    assert torch.allclose(got["marginals"][2], out["marginals"][2])
    assert torch.allclose(got["marginals"][1], out["marginals"][1] * float(np.exp(0.6)))
    assert torch.allclose(got["coupling"][1], out["coupling"][1] * float(np.exp(0.6)))
    # the scale is learnable: a loss on the ensemble chain gives it a gradient, none to the reference
    got["marginals"][1].sum().backward()
    g = sc.log_scale.grad
    assert g[LABEL_KINDS.index("experimental-ensemble")] > 0 and g[LABEL_KINDS.index("md-rmsf")] == 0


def test_source_scales_train_and_resume(teacher_store, tmp_path):
    cfg = _cfg(teacher_store, tmp_path / "s", source_scales=True, max_steps=2)
    out = train(cfg)
    ck = torch.load(out.checkpoint, weights_only=False)
    assert "log_scale" in ck["source_scales"] and out.step == 2
    again = train(TrainConfig.from_dict({**cfg.__dict__, "max_steps": 3}))
    assert again.resumed_from == 2 and again.step == 3


def test_ablation_merge_adds_models_without_losing_others():
    from dynaprot_viz.training.ablation import merge_results

    old = {"sets": {"s": {"n": 2, "models": {"anm": 0.7}, "per_protein": {"p1": {"anm": 0.6}}}},
           "extras": {"dance-test": {"anm": {"coupling_r_peak": 0.5}}}, "models": ["anm"], "descriptions": {}}
    new = {"sets": {"s": {"n": 2, "models": {"x": 0.8}, "per_protein": {"p1": {"x": 0.9}}}},
           "extras": {"dance-test": {"x": {"coupling_r_peak": 0.4}}}, "models": ["x"], "descriptions": {"x": "new"}}
    got = merge_results(old, new)
    assert got["sets"]["s"]["models"] == {"anm": 0.7, "x": 0.8}
    assert got["sets"]["s"]["per_protein"]["p1"] == {"anm": 0.6, "x": 0.9}
    assert got["extras"]["dance-test"] == {"anm": {"coupling_r_peak": 0.5}, "x": {"coupling_r_peak": 0.4}}
    assert got["models"] == ["anm", "x"] and old["models"] == ["anm"]  # old is not modified
