"""`dynaprot-viz batch` / predict_many on Dask: real LocalCluster (worker processes) on real
chains, kill -9 and resume, bad inputs in the failures table, --scheduler to a cluster
started here, reading back with open_store and `view --store`.

Structures: the campaign's real PDB/MD/BioEmu chains shipped in datasets/campaign/structures
and tests/data/1ake.cif (two chains); the npz input kind uses the ATLAS backbones extract
shipped in datasets/atlas_amplitudes (skipped when absent).
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the batch extra (dask[distributed]) is not installed")
pytest.importorskip("zarr", reason="the batch extra (zarr) is not installed")
pytest.importorskip("pyarrow", reason="the batch extra (pyarrow) is not installed")

import dynaprot_viz as dv  # noqa: E402
from dynaprot_viz.batch import expand_inputs, open_store, predict_many  # noqa: E402
from dynaprot_viz.batch.store import band_taper, parse_coupling  # noqa: E402
from dynaprot_viz.core.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "datasets" / "campaign" / "structures"
ATLAS_NPZ = REPO / "datasets" / "atlas_amplitudes" / "atlas_backbones.npz"
DATA = Path(__file__).parent / "data"

# 20 small real chains (34-70 residues) and 24 medium ones (124-160) of the campaign set
SMALL = ["bioemu_2YSF_A", "bioemu_1I6C_A", "bioemu_2WQG_A", "bioemu_EEHEE_rd3_0019_A", "bioemu_HHH_rd1_0335_A",
         "bioemu_1GJS_A", "atlas_1ab1_A", "bioemu_2MKX_L11A_A", "bioemu_EA_run2_0290_0001_A", "bioemu_1ENH_A",
         "bioemu_2K1B_A", "bioemu_2L7F_A", "bioemu_2MYX_A", "bioemu_1EM7_L7A_A", "bioemu_7JJK_A", "mdat_5PTI_A",
         "bioemu_2PTL_I58A_A", "bioemu_4C26_A", "mdat_cobrotoxin", "bioemu_1TG0_A"]
MEDIUM = ["atlas_1bgf_A", "mdat_1y1lA_A", "bioemu_6UF2_A_A", "bioemu_4ZRB_G_A", "mdat_1ahsA_A", "mdat_4gcnA_A",
          "mdat_2gu3A_A", "mdat_1pdoA_A", "atlas_1a62_A", "bioemu_1NEP_A_A", "mdat_2xr6A_A", "mdat_2cayA_A",
          "mdat_3aqgA_A", "mdat_1eteA_A", "mdat_2j49A_A", "mdat_2fvvA_A", "bioemu_6JQ4_A_A", "mdat_3so6A_A",
          "mdat_3hklA_A", "bioemu_1CLL_A_A", "mdat_2a2lA_A", "bioemu_7UBJ_A_A", "mdat_3fhkA_A", "mdat_3ii2A_A"]


def _copy(names, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(CAMPAIGN / f"{n}.pdb.gz", folder / f"{n}.pdb.gz")
    return folder


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: 2 worker processes, 1 thread each (as the embedded default on 2 cores)."""
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40)
    client = Client(lc)
    yield client
    client.close()
    lc.close()


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    return _copy(SMALL, tmp_path_factory.mktemp("small"))


# --------------------------------------------------------------------------- inputs and store pieces (no cluster)


def test_inputs_names_lists_and_collisions(tmp_path):
    d = _copy(SMALL[:3], tmp_path / "d")
    (d / "sub").mkdir()
    shutil.copy(CAMPAIGN / f"{SMALL[3]}.pdb.gz", d / "sub" / "pdb1abc.ent.gz")
    shutil.copy(DATA / "1ake.cif", d / "sub" / "AF-P69441-F1-model_v4.cif")
    (d / "notes.md").write_text("not a structure")
    items = expand_inputs([d])
    names = sorted(i.name for i in items)
    assert names == sorted(SMALL[:3] + ["1abc", "AF-P69441-F1"])  # notes.md is not picked up
    lst = tmp_path / "inputs.txt"
    lst.write_text(f"# a comment\nd/{SMALL[0]}.pdb.gz\nd/missing.pdb\n")
    items = expand_inputs([lst])
    assert [i.kind for i in items] == ["file", "missing"]
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([tmp_path / "nothing_here.pdb"])
    other = tmp_path / "e"
    other.mkdir()
    shutil.copy(CAMPAIGN / f"{SMALL[0]}.pdb.gz", other / f"{SMALL[0]}.cif.gz")
    with pytest.raises(InputError, match="two inputs give the entry name"):
        expand_inputs([d, other])


def test_coupling_modes_and_band_taper_is_psd():
    assert parse_coupling("FULL") == "full" and parse_coupling("band:16") == "band:16"
    for bad in ("band:0", "band:x", "diag", "band"):
        with pytest.raises(InputError, match="--coupling"):
            parse_coupling(bad)
    dyn = dv.predict(CAMPAIGN / f"{MEDIUM[0]}.pdb.gz", model="anm")
    n = len(dyn)
    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    for k in (4, 16):
        cut = np.where(d <= k, dyn.coupling, 0.0)
        tapered = cut * band_taper(k, n)
        assert np.linalg.eigvalsh(tapered)[0] >= -1e-10 * np.abs(tapered).max()
        assert np.allclose(np.diag(tapered), np.diag(dyn.coupling))  # the diagonal is kept exactly


def test_store_refuses_other_options_busy_store_and_foreign_folder(tmp_path, small_dir):
    from dynaprot_viz.batch.store import BatchStore, StoreConfig

    cfg = StoreConfig("anm", "x", {}, "full")
    store = BatchStore.create_or_check(tmp_path / "s", cfg)
    with pytest.raises(InputError, match="coupling 'full' \\(asked 'none'\\)"):
        predict_many([small_dir], store=tmp_path / "s", coupling="none", progress=False)
    with store.lock():
        with pytest.raises(InputError, match="in use by another batch run"):
            predict_many([small_dir], store=tmp_path / "s", progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and not a batch store"):
        predict_many([small_dir], store=foreign, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["x.txt"]  # nothing written there
    with pytest.raises(InputError, match="unknown model"):
        predict_many([small_dir], model="nope", store=tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()


def _with_icodes(dyn, chain_id: str):
    """The same Dynamics with another chain id and an insertion code on every 7th residue."""
    res = [(chain_id, r.number, "B" if i % 7 == 3 else "", r.name) for i, r in enumerate(dyn.residues)]
    return dv.Dynamics(mean=dyn.mean, marginals=dyn.marginals, coupling=dyn.coupling, residues=res,
                       model_name=dyn.model_name)


@pytest.mark.parametrize("coupling", ["full", "band:4", "none"])
def test_task_group_round_trip_of_several_chains(tmp_path, monkeypatch, coupling):
    from dynaprot_viz.batch import store as store_mod
    from dynaprot_viz.batch.store import BatchStore, GroupWriter, StoreConfig

    monkeypatch.setattr(store_mod, "_COUPLING_CHUNK", 1000)  # a chain's coupling spans several chunks
    dyns = {f"{n}_A": dv.predict(CAMPAIGN / f"{n}.pdb.gz", model="anm") for n in (SMALL[0], MEDIUM[0], SMALL[1])}
    dyns["1ake_B"] = dv.predict(DATA / "1ake.cif", model="anm", chain="B")
    dyns["x_Q"] = _with_icodes(dv.predict(CAMPAIGN / f"{SMALL[2]}.pdb.gz", model="anm"), "Q")
    root = tmp_path / "s"
    store = BatchStore.create_or_check(root, StoreConfig("anm", "x", {}, coupling))
    writer = GroupWriter(root, coupling)
    rows = []
    for name, d in dyns.items():
        where = writer.add(name, d, {"file": f"/in/{name}.pdb", "chain": name[-1], "entry": ""})
        rows.append({"chain": name, "input": name, "n_residues": len(d), **where})
    gid = writer.flush()
    assert len(writer) == 0 and writer.flush() is None
    assert [r["slot"] for r in rows] == list(range(len(dyns))) and {r["group"] for r in rows} == {gid}
    store.write_part(rows, [])
    assert _groups(root) == {gid}  # five chains, one group
    got = open_store(root)
    for name, d in dyns.items():
        n = len(d)
        a = got.arrays(name)
        assert np.array_equal(a["mean"], d.mean.astype(np.float32))
        assert np.array_equal(a["marginals"], d.marginals.astype(np.float32))
        if coupling == "full":
            assert a.keys() == {"mean", "marginals", "coupling"}
            assert np.array_equal(a["coupling"], d.coupling.astype(np.float32))
        elif coupling == "band:4":
            assert a.keys() == {"mean", "marginals", "coupling_band"} and a["coupling_band"].shape == (5, n)
            for k in range(5):
                assert np.array_equal(a["coupling_band"][k, : n - k], np.diagonal(d.coupling, k).astype(np.float32))
                assert not a["coupling_band"][k, n - k:].any()  # zero past the chain's end
        else:
            assert a.keys() == {"mean", "marginals"}
        back = got[name]
        assert back.residues == d.residues and back.model_name == d.model_name
        np.testing.assert_allclose(back.marginals, d.marginals, rtol=1e-6, atol=1e-7 * np.abs(d.marginals).max())
        assert got.info(name) == {"id": name, "file": f"/in/{name}.pdb", "chain": name[-1], "entry": "",
                                  "model_name": d.model_name, "isotropic": False, "n_residues": n,
                                  "coupling": coupling}
    assert sum(r.icode == "B" for r in got["x_Q"].residues) > 3


def test_format_1_store_is_read_and_not_resumed(tmp_path, small_dir):
    """A store of the earlier layout (one group per chain under chains/) stays readable."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    root = tmp_path / "v1"
    d = dv.predict(small_dir / f"{SMALL[0]}.pdb.gz", model="anm")
    name = f"{SMALL[0]}_A"
    zarr.open_group(str(root), mode="w", attributes={
        "format": "dynaprot-viz batch store", "format_version": 1, "model": "anm", "model_version": "x",
        "model_options": {}, "coupling": "full"})
    res = d.residues
    g = zarr.open_group(str(root / "chains" / name), mode="w", attributes={
        "id": name, "file": "/in/x.pdb", "chain": "A", "entry": "", "model_name": "anm", "isotropic": False,
        "n_residues": len(d), "coupling": "full", "residue_chain": [r.chain for r in res],
        "residue_number": [r.number for r in res], "residue_icode": [r.icode for r in res],
        "residue_name": [r.name for r in res]})
    for k in ("mean", "marginals", "coupling"):
        g.create_array(k, data=getattr(d, k).astype(np.float32))
    for sub in ("summary", "failures"):
        (root / sub).mkdir()
    row = {"chain": name, "file": "/in/x.pdb", "entry": "", "n_residues": pa.array([len(d)], pa.int32()),
           "model": "anm", "mean_rmsf": 1.0, "max_rmsf": 2.0, "top5_mobile": "A:1", "best_pocket_score": 0.5,
           "seconds": 0.1, "status": "ok", "note": "", "worker": "w", "input": "/in/x.pdb"}
    pq.write_table(pa.table({k: v if isinstance(v, pa.Array) else [v] for k, v in row.items()}),
                   root / "summary" / "part-0000000000001-abcdef0123.parquet")
    store = open_store(root)
    assert store.format_version == 1 and store.keys() == [name] and store.summary["slot"].tolist() == [-1]
    back = store[name]
    assert back.residues == d.residues and store.info(name)["file"] == "/in/x.pdb"
    np.testing.assert_allclose(back.coupling, d.coupling, rtol=1e-6, atol=1e-7 * np.abs(d.coupling).max())
    with pytest.raises(InputError, match="store format 1 .*cannot be resumed.*give a new --out"):
        predict_many([small_dir], store=root, progress=False)


# --------------------------------------------------------------------------- on a real LocalCluster


def test_batch_on_local_cluster_with_bad_inputs(tmp_path, small_dir, cluster):
    inputs = tmp_path / "in"
    shutil.copytree(small_dir, inputs)
    shutil.copy(DATA / "1ake.cif", inputs / "1ake.cif")  # two protein chains
    (inputs / "corrupt.pdb").write_text("this is not a structure\n")
    (inputs / "empty.pdb.gz").write_bytes(gzip.compress(b""))
    lst = tmp_path / "more.txt"
    lst.write_text("in/gone.pdb\n")  # listed, does not exist
    result = predict_many([inputs, lst], store=tmp_path / "s", scheduler=cluster, batch_size=2, progress=False)
    store = open_store(tmp_path / "s")
    s, f = store.summary, store.failures
    expected = sorted([f"{n}_A" for n in SMALL] + ["1ake_A", "1ake_B"])
    assert sorted(s["chain"]) == expected and s["chain"].is_unique
    assert result.n_chains == 22 and result.n_failed == 3 and len(f) == 3
    reasons = dict(zip([Path(p).name for p in f["file"]], f["reason"]))
    assert "no atoms found" in reasons["corrupt.pdb"] or "cannot be read" in reasons["corrupt.pdb"]
    assert "empty" in reasons["empty.pdb.gz"] or "no atoms" in reasons["empty.pdb.gz"]
    assert "no such file" in reasons["gone.pdb"]
    assert all("\n" not in r for r in f["reason"])
    # processes, not threads: two worker pids did the work, each loaded the model once
    assert s["worker"].nunique() == 2
    assert sorted(result.model_loads.values()) == [1, 1]
    assert all(v > 50 for v in result.worker_peak_rss_mb.values())  # MB: a Python process with numpy
    # what the store holds is the prediction, to float32 precision
    for name in ("1ake_B", f"{SMALL[5]}_A"):
        got = store[name]
        src = DATA / "1ake.cif" if name.startswith("1ake") else small_dir / f"{SMALL[5]}.pdb.gz"
        ref = dv.predict(src, model="anm", chain=name.rsplit("_", 1)[1])
        assert got.residues == ref.residues and got.model_name == "anm"
        np.testing.assert_allclose(got.marginals, ref.marginals, rtol=1e-6, atol=1e-7 * np.abs(ref.marginals).max())
        np.testing.assert_allclose(got.coupling, ref.coupling, rtol=1e-6, atol=1e-7 * np.abs(ref.coupling).max())
        row = s.set_index("chain").loc[name]
        assert row["n_residues"] == len(ref)
        assert row["max_rmsf"] == pytest.approx(ref.rmsf.max(), rel=1e-9)
        top = np.argsort(-ref.rmsf, kind="stable")[:5]
        assert row["top5_mobile"].split(",")[0] == f"{ref.residues[top[0]].chain}:{ref.residues[top[0]].number}"
    assert store.info("1ake_A")["file"] == str((inputs / "1ake.cif").resolve())
    # a rerun of the same command has nothing to do
    again = predict_many([inputs, lst], store=tmp_path / "s", scheduler=cluster, batch_size=2, progress=False)
    assert again.n_skipped == 24 and again.n_chains == 0 and again.n_failed == 0
    assert len(open_store(tmp_path / "s").summary) == 22


def test_npz_backbones_as_input(tmp_path, cluster):
    if not ATLAS_NPZ.exists():
        pytest.skip(f"{ATLAS_NPZ} (the ATLAS backbone extract of datasets/pdb_backbones/extract.py) is absent")
    from dynaprot_viz.batch import subset_backbones

    small = subset_backbones(ATLAS_NPZ, tmp_path / "five.npz", n=5, seed=1)
    z = np.load(small)
    result = predict_many([small], store=tmp_path / "s", scheduler=cluster, coupling="band:8", progress=False)
    store = open_store(tmp_path / "s")
    assert result.n_chains == 5 and sorted(store.keys()) == sorted(str(i) for i in z["ids"])
    k = 0
    name = str(z["ids"][k])
    dyn = store[name]
    n = int(z["length"][k])
    ca = z["origin"][k] + 0.01 * z["coords"][z["offset"][k]:z["offset"][k + 1], 1].astype(float)
    np.testing.assert_allclose(dyn.mean, ca, atol=1e-4)  # Å, float32 storage
    assert [r.number for r in dyn.residues] == list(range(int(z["start_resnum"][k]), int(z["start_resnum"][k]) + n))
    band = store.coupling(name)
    assert np.count_nonzero(np.triu(band, 9)) == 0 and np.count_nonzero(np.diag(band, 8)) == n - 8
    assert store.coupling_mode == "band:8" and store.info(name)["entry"] == name


def test_cli_scheduler_of_a_cluster_started_here_and_view_store(tmp_path, small_dir, cluster, capsys):
    from dynaprot_viz.cli import main

    address = cluster.scheduler.address
    rc = main(["batch", str(small_dir), "--out", str(tmp_path / "s"), "--scheduler", address, "--coupling", "none",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "20 chains predicted" in out
    store = open_store(tmp_path / "s")
    dyn = store[f"{SMALL[0]}_A"]
    assert np.count_nonzero(dyn.coupling - np.diag(np.diag(dyn.coupling))) == 0  # none: independent residues
    np.testing.assert_allclose(np.diag(dyn.coupling), np.trace(dyn.marginals, axis1=1, axis2=2) / 3)
    html = tmp_path / "one.html"
    assert main(["view", "--store", str(tmp_path / "s"), "--chain", f"{SMALL[0]}_A", "--html", str(html),
                 "--samples", "0"]) == 0
    assert html.stat().st_size > 10_000
    assert main(["view", "--store", str(tmp_path / "s"), "--chain", "1xyz_Q", "--html", str(tmp_path / "x.html")]) == 2
    assert "is not a predicted chain" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    rc = main(["batch", str(small_dir), "--out", str(tmp_path / "s"), "--scheduler", address, "--workers", "2"])
    assert rc == 2 and "with --scheduler" in capsys.readouterr().err


def test_view_widget_takes_source_for_a_store_entry(tmp_path, small_dir, cluster):
    pytest.importorskip("ipywidgets")
    predict_many([small_dir / f"{SMALL[6]}.pdb.gz"], store=tmp_path / "s", scheduler=cluster, progress=False)
    store = open_store(tmp_path / "s")
    name = f"{SMALL[6]}_A"
    with_source = dv.view(store[name], source=store.info(name)["file"])
    ca_only = dv.view(store[name])
    n = len(store[name])
    assert ca_only._structure.count("\nATOM") + ca_only._structure.startswith("ATOM") == n
    assert with_source._structure.count("ATOM  ") > 3 * n  # the file's backbone and side chains


# --------------------------------------------------------------------------- kill -9 and resume


def _committed_parts(store: Path) -> int:
    folder = store / "summary"
    return len(list(folder.glob("part-*.parquet"))) if folder.is_dir() else 0


def _arrays(store: Path, name: str) -> dict:
    return open_store(store).arrays(name)


def _groups(store: Path) -> set[str]:
    return {p.name for p in (store / "tasks").iterdir() if p.is_dir()}


def test_sigkill_half_way_then_resume_equals_uninterrupted_run(tmp_path, cluster):
    inputs = _copy(MEDIUM, tmp_path / "in")
    (inputs / "broken.cif").write_text("data_x\n_atom_site.id 1\n")  # a bad input, in both runs
    reference = tmp_path / "ref"
    predict_many([inputs], store=reference, scheduler=cluster, coupling="band:16", batch_size=1, progress=False)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dynaprot_viz.cli", "batch", str(inputs), "--out", str(killed), "--coupling",
           "band:16", "--workers", "1", "--batch-size", "1", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _committed_parts(killed) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_before = _committed_parts(killed)
    assert 4 <= n_before < len(MEDIUM) + 1, "the kill did not land half-way"  # 25 inputs in all
    assert not any("-merged-" in p.name for p in (killed / "summary").glob("*.parquet"))
    time.sleep(1.0)  # the orphaned worker process notices its parent is gone and exits

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "chains predicted" in rerun.stdout

    ref, got = open_store(reference), open_store(killed)
    assert got.summary["chain"].is_unique and len(got.summary) == len(MEDIUM)
    assert not got.failures.duplicated(["input", "chain"]).any() and len(got.failures) == 1
    assert sorted(got.keys()) == sorted(ref.keys())
    cols = ["chain", "file", "n_residues", "model", "mean_rmsf", "max_rmsf", "top5_mobile", "best_pocket_score",
            "status", "input"]
    assert got.summary[cols].equals(ref.summary[cols])
    assert list(got.failures["reason"]) == list(ref.failures["reason"])
    for name in ref.keys():
        a, b = _arrays(reference, name), _arrays(killed, name)
        assert a.keys() == b.keys() == {"mean", "marginals", "coupling_band"}
        for k in a:
            assert a[k].dtype == np.float32 and np.array_equal(a[k], b[k]), (name, k)
    # nothing left behind: one merged part per table, no work in progress
    assert len(list((killed / "summary").glob("*.parquet"))) == 1
    assert not any((killed / ".tmp").iterdir())
    # one group per task of one input (--batch-size 1), each named by the summary: no orphan, no partial group
    assert _groups(killed) == set(got.summary["group"]) and len(_groups(killed)) == len(MEDIUM)
    assert (got.summary["slot"] == 0).all()


def test_uncommitted_task_leaves_no_group_after_resume(tmp_path, small_dir, cluster, monkeypatch):
    """A task whose groups were written but never committed (the run was killed before the
    client wrote its summary part), and a group killed half-way under .tmp/: the rerun
    removes both, redoes those inputs, and keeps the committed task's groups."""
    from dynaprot_viz.batch import store as store_mod
    from dynaprot_viz.batch.engine import run_task
    from dynaprot_viz.batch.store import BatchStore, StoreConfig

    root = tmp_path / "s"
    store = BatchStore.create_or_check(root, StoreConfig("anm", "x", {}, "band:4"))
    items = [it.as_dict() for it in expand_inputs([small_dir])]
    cfg = {"store": str(root.resolve()), "model": "anm", "options": {}, "coupling": "band:4"}
    monkeypatch.setattr(store_mod, "GROUP_BYTES", 1)  # in this process: one group per chain, several per task
    committed = run_task(items[:3], cfg)
    store.write_part(committed["rows"], committed["failures"])
    lost = run_task(items[3:6], cfg)  # never committed
    kept, orphans = {r["group"] for r in committed["rows"]}, {r["group"] for r in lost["rows"]}
    assert len(kept) == len(orphans) == 3 and _groups(root) == kept | orphans
    half = root / ".tmp" / "group-killed"
    half.mkdir()
    (half / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gr')

    result = predict_many([small_dir], store=root, scheduler=cluster, coupling="band:4", batch_size=4,
                          progress=False)
    got = open_store(root)
    assert result.n_skipped == 3 and result.n_chains == len(SMALL) - 3
    assert sorted(got.keys()) == sorted(f"{n}_A" for n in SMALL) and got.summary["chain"].is_unique
    assert kept <= _groups(root) and not orphans & _groups(root)
    assert _groups(root) == set(got.summary["group"]) and not any((root / ".tmp").iterdir())
    assert not got.summary.duplicated(["group", "slot"]).any()
    for row in lost["rows"][:1] + committed["rows"][:1]:  # redone elsewhere / kept where it was
        name = row["chain"]
        ref = dv.predict(small_dir / f"{name[:-2]}.pdb.gz", model="anm")
        band = got.arrays(name)["coupling_band"]
        assert np.array_equal(band[1, : len(ref) - 1], np.diagonal(ref.coupling, 1).astype(np.float32))
    assert got.summary.set_index("chain").loc[committed["rows"][0]["chain"], "group"] in kept
