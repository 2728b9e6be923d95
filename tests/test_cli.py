"""The dynaprot-viz command line: predict, exit codes, no partial outputs."""

import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest

from dynaprot_viz.cli import main
from dynaprot_viz.core.gaussian import Dynamics


def test_predict_writes_three_files(tmp_path, ubq_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(ubq_path), "--model", "anm", "--samples", "5", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["1ubi.annotated.pdb", "1ubi.dynamics.npz", "1ubi.ensemble.pdb"]
    dyn = Dynamics.load(out / "1ubi.dynamics.npz")
    assert dyn.n_residues == 76 and dyn.model_name == "anm"
    assert len(gemmi.read_structure(str(out / "1ubi.ensemble.pdb"))) == 5
    text = capsys.readouterr().out
    assert "76 residues" in text and "RMSF" in text


def test_predict_cif_gz_chain_and_bfactor_scale(tmp_path, data_dir):
    src = tmp_path / "1ake.cif.gz"
    import gzip

    src.write_bytes(gzip.compress((data_dir / "1ake.cif").read_bytes()))
    out = tmp_path / "o"
    assert main(["predict", str(src), "--model", "anm", "--chain", "B", "--cif",
                 "--anm-scale", "bfactors", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["1ake.annotated.cif", "1ake.annotated.pdb",
                                                      "1ake.dynamics.npz"]
    dyn = Dynamics.load(out / "1ake.dynamics.npz")
    assert {r.chain for r in dyn.residues} == {"B"}
    # fitted to crystal B-factors: same order of magnitude as the file's
    assert 5 < np.median(dyn.bfactors) < 200


def test_predict_device_reaches_the_learned_model(tmp_path, ubq_path):
    out = tmp_path / "out"
    assert main(["predict", str(ubq_path), "--model", "resaxial", "--device", "cpu", "--out", str(out)]) == 0
    assert Dynamics.load(out / "1ubi.dynamics.npz").model_name == "resaxial"


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize("case, match", [
    ("missing", "no such file"),
    ("empty", "file is empty"),
    ("garbage", "cannot be read|no atoms"),
    ("nonprotein", "no protein chain found"),
    ("nan", "non-finite coordinates"),
    ("chain", "no chain 'Q'"),
    ("model", "unknown model 'nope'"),
    ("samples", "expected an integer >= 0"),
    ("device", "device must be 'auto', 'cpu'"),
    ("anm_device", "--device applies only to the learned models"),
])
def test_bad_input_exit_2_one_line_no_files(tmp_path, ubq_path, data_dir, capsys, case, match):
    src = ubq_path
    extra = []
    if case == "missing":
        src = tmp_path / "absent.pdb"
    elif case == "empty":
        src = _write(tmp_path, "empty.pdb", b"")
    elif case == "garbage":
        src = _write(tmp_path, "garbage.cif", bytes(range(256)) * 10)
    elif case == "nonprotein":
        src = data_dir / "nucleic_only.pdb"
    elif case == "nan":
        lines = ubq_path.read_text().splitlines()
        i = next(k for k, l in enumerate(lines) if l.startswith("ATOM") and l[12:16] == " CA ")
        lines[i] = lines[i][:38] + "     nan" + lines[i][46:]
        src = _write(tmp_path, "nan.pdb", ("\n".join(lines) + "\n").encode())
    elif case == "chain":
        extra = ["--chain", "Q"]
    elif case == "model":
        extra = ["--model", "nope"]
    elif case == "samples":
        extra = ["--samples", "-3"]
    elif case == "device":
        extra = ["--model", "resaxial", "--device", "banana"]
    elif case == "anm_device":
        extra = ["--device", "cpu"]
    out = tmp_path / "out"
    args = ["predict", str(src), "--out", str(out)] + (extra if "--model" in extra else ["--model", "anm"] + extra)
    with pytest.raises(SystemExit) if case == "samples" else _nullcontext() as exc:
        code = main(args)
    code = exc.value.code if case == "samples" else code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert __import__("re").search(match, err), err
    if case != "samples":
        assert len(err.splitlines()) == 1, err
        assert err.startswith("dynaprot-viz predict: error: ")
    assert not out.exists(), "no output folder or partial files on failure"


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_failure_after_some_outputs_leaves_existing_folder_clean(tmp_path, ubq_path, monkeypatch, capsys):
    """A failure while writing the last file removes the files already written."""
    import dynaprot_viz.export as export

    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("user file")

    def boom(*a, **k):
        raise export.InputError("simulated failure while writing the ensemble")

    monkeypatch.setattr(export, "write_ensemble", boom)
    code = main(["predict", str(ubq_path), "--model", "anm", "--samples", "3", "--out", str(out)])
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_console_script_runs(tmp_path, ubq_path):
    exe = Path(sys.executable).with_name("dynaprot-viz")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    r = subprocess.run([str(exe), "predict", str(ubq_path), "--model", "anm", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe), "predict", str(tmp_path / "none.pdb"), "--model", "anm", "--out",
                        str(tmp_path / "p")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
