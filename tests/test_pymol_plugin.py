"""The PyMOL plugin, run in a real headless PyMOL (pymol-open-source, no Qt)."""

import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

pymol2 = pytest.importorskip("pymol2")
from pymol import CmdException  # noqa: E402

import dynaprot_viz as dv  # noqa: E402
from dynaprot_viz.core.gaussian import anisou_from_marginals  # noqa: E402
from dynaprot_viz.core.pockets import find_pockets  # noqa: E402
from dynaprot_viz.plugin import pymol as plugin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "tests" / "data" / "1ubi.pdb"
K = 6


@pytest.fixture(scope="module")
def pm():
    p = pymol2.PyMOL()
    p.start()
    plugin.register(p.cmd)
    yield p.cmd
    p.stop()


@pytest.fixture(scope="module")
def expected():
    return dv.predict(UBQ, model="anm")


@pytest.fixture(scope="module")
def loaded(pm):
    pm.load(str(UBQ), "ubq")
    pm.do(f"dynaprot ubq, anm, 0.7, {K}, blue_white_red, quiet=1")
    return pm


def _ca_records(cmd, obj):
    """{(chain, resi): chempy atom} of the C-alpha atoms of an object."""
    return {(a.chain, a.resi): a for a in cmd.get_model(f"{obj} and name CA").atom}


def _key(r):
    return (r.chain, f"{r.number}{r.icode}")


def test_module_has_no_qt_and_commands_registered(pm):
    from pymol import plugins

    assert not plugins.HAVE_QT  # headless PyMOL has no Qt GUI (a Qt binding may still be installed)
    assert "dynaprot" in pm.keyword and "dynaprot_coupling" in pm.keyword


def test_bfactors_are_rmsf_and_u_on_calpha_match(loaded, expected):
    cas = _ca_records(loaded, "ubq_dynaprot")
    assert len(cas) == len(expected.residues)
    u6 = anisou_from_marginals(expected.marginals)
    for i, r in enumerate(expected.residues):
        atom = cas[_key(r)]
        assert atom.b == pytest.approx(expected.rmsf[i], abs=1e-2)  # PDB/float32 precision
        # ANISOU carries U x 10^4 as integers: 0.5e-4 Å² rounding
        np.testing.assert_allclose(atom.u_aniso, u6[i], atol=0.6e-4)
    assert float(loaded.get("ellipsoid_probability", "ubq_dynaprot")) == pytest.approx(0.7)
    # every atom of the residue carries the residue's RMSF in the B column
    bs = []
    loaded.iterate("ubq_dynaprot and resi 10", "bs.append(b)", space={"bs": bs})
    assert len(bs) > 1 and np.allclose(bs, expected.rmsf[9], atol=1e-2)


def test_ensemble_has_k_states(loaded, expected):
    assert loaded.count_states("ubq_ensemble") == K
    assert loaded.count_atoms("ubq_ensemble") == len(expected.residues)
    xyz1 = loaded.get_coords("ubq_ensemble", state=1)
    xyz2 = loaded.get_coords("ubq_ensemble", state=2)
    assert xyz1.shape == (len(expected.residues), 3) and not np.allclose(xyz1, xyz2)
    # samples scatter around the C-alpha mean by about the predicted RMSF
    assert np.abs(xyz1 - expected.mean).max() < 10 * expected.rmsf.max()


def test_pocket_selections_exist(loaded, expected):
    pockets = find_pockets(expected)
    assert pockets, "ANM on ubiquitin has pocket patches"
    names = set(loaded.get_names("selections"))
    for k, pocket in enumerate(pockets, start=1):
        name = f"ubq_pocket{k}"
        assert name in names
        got = set()
        loaded.iterate(f"{name} and name CA", "got.add((chain, resi))", space={"got": got})
        assert got == {_key(expected.residues[i]) for i in pocket.residues}
    assert f"ubq_pocket{len(pockets) + 1}" not in names


def test_ray_traced_png_is_not_blank(loaded, tmp_path):
    from PIL import Image

    loaded.disable("all")
    loaded.enable("ubq_dynaprot")
    loaded.bg_color("white")
    loaded.orient("ubq_dynaprot")
    out = tmp_path / "ubq.png"
    loaded.png(str(out), width=320, height=240, ray=1)
    img = np.asarray(Image.open(out).convert("RGB"), dtype=float)
    assert img.shape == (240, 320, 3)
    drawn = np.any(np.abs(img - 255.0) > 30, axis=2)  # not background
    assert 0.05 < drawn.mean() < 0.95
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 60).mean() > 0.01  # spectrum colours, not grey
    loaded.enable("all")


def test_coupling_command_colours_by_correlation(loaded, expected):
    corr = plugin.dynaprot_coupling("ubq and resi 23", quiet=1, _self=loaded)
    np.testing.assert_allclose(corr, expected.correlation[22])
    colours = {}
    loaded.iterate("ubq_dynaprot and name CA", "colours[(chain, resi)] = color", space={"colours": colours})
    rgb = {k: np.array(loaded.get_color_tuple(v)) for k, v in colours.items()}
    np.testing.assert_allclose(rgb[("A", "23")], [1, 0, 0], atol=0.01)  # itself: +1 = red
    j = int(np.argmin(corr))
    low = rgb[_key(expected.residues[j])]
    assert low[2] >= low[0]  # the most anti-correlated residue is on the blue side
    with pytest.raises(CmdException, match="exactly one residue"):
        plugin.dynaprot_coupling("ubq_dynaprot and resi 23-24", _self=loaded)
    with pytest.raises(CmdException, match="palette"):
        plugin.dynaprot_coupling("ubq and resi 23", palette="blue", _self=loaded)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "nosuchmodel"}, "model must be one of"),
        ({"probability": "1.5"}, "probability must be between 0 and 1"),
        ({"probability": "half"}, "probability must be a number"),
        ({"samples": "-2"}, "samples must be a whole number"),
        ({"samples": "2.5"}, "samples must be a whole number"),
        ({"palette": "not_a_colour"}, "palette must be"),
    ],
)
def test_argument_checking(loaded, kwargs, match):
    with pytest.raises(CmdException, match=match):
        plugin.dynaprot("ubq", **{"model": "anm", **kwargs}, _self=loaded)


def test_selection_checks(pm, tmp_path):
    with pytest.raises(CmdException, match="not a valid PyMOL selection"):
        plugin.dynaprot("no_such_object", "anm", _self=pm)
    pm.load(str(ROOT / "tests" / "data" / "1ake.cif"), "adk")
    # a selection spanning chains is one complex (issue 14; it was refused before)
    assert plugin.dynaprot("adk", "anm", "0.5", "0", quiet=1, _self=pm) == "adk_dynaprot"
    assert set(pm.get_chains("adk_dynaprot and name CA")) == {"A", "B"}
    assert pm.count_atoms("adk_dynaprot and name CA and polymer.protein") == 428
    name = plugin.dynaprot("adk and chain B", "anm", "0.5", "0", quiet=1, _self=pm)
    assert name == "adk_B_dynaprot"  # a chain of a two-chain object: the chain is in the name
    chains = set(pm.get_chains("adk_B_dynaprot"))
    assert chains == {"B"}
    assert "adk_B_ensemble" not in pm.get_names("objects")  # samples 0: no ensemble
    pm.delete("adk*")


def test_background_job_matches_direct_compute(pm):
    from dynaprot_viz.plugin.options import compute, parse_options

    pm.load(str(UBQ), "bg")
    pdb, base = plugin.collect("bg", _self=pm)
    assert base == "bg"
    opts = parse_options("anm", "0.5", "3")
    job = plugin.BackgroundJob(pdb, opts)
    result = job.future.result(timeout=60)
    assert job.done()
    assert any(t.name.startswith("dynaprot") for t in threading.enumerate())
    direct = compute(pdb, opts)
    np.testing.assert_allclose(result.dynamics.marginals, direct.dynamics.marginals)
    np.testing.assert_allclose(result.ensemble, direct.ensemble)  # same seed
    assert plugin.apply_result(result, base, _self=pm) == "bg_dynaprot"
    assert pm.count_states("bg_ensemble") == 3
    pm.delete("bg*")


def test_annotated_pdb_ellipsoids_in_pymol(pm, tmp_path):
    """Issue 2 export check: PyMOL reads write_annotated's U values for `show ellipsoids`
    (relative units: no B-factor reaches the PDB column's 999.99 cap)."""
    expected = dv.predict(UBQ, model="anm", scale="relative")
    path = dv.write_annotated(expected, UBQ, tmp_path / "ubq.annotated.pdb")
    pm.load(str(path), "annot")
    pm.show("ellipsoids", "annot and name CA")
    cas = _ca_records(pm, "annot")
    u6 = anisou_from_marginals(expected.marginals)
    got = np.array([cas[_key(r)].u_aniso for r in expected.residues])
    assert np.all(got[:, :3] > 0)
    np.testing.assert_allclose(got, u6, atol=0.6e-4)
    bexp = expected.bfactors
    np.testing.assert_allclose([cas[_key(r)].b for r in expected.residues], bexp, atol=0.01)
    pm.delete("annot")


def _run_pymol(script_text, tmp_path, env_extra=None):
    script = tmp_path / "run.py"
    script.write_text(script_text)
    env = dict(os.environ, **(env_extra or {}))
    exe = Path(sys.executable).with_name("pymol")
    cmdline = [str(exe), "-cq", str(script)] if exe.exists() else [sys.executable, "-m", "pymol", "-cq", str(script)]
    return subprocess.run(cmdline, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_init_plugin_in_headless_pymol_process(tmp_path):
    """`pymol -cq`: __init_plugin__ registers the command without Qt; the command runs."""
    out = _run_pymol(
        "from pymol import cmd\n"
        "from dynaprot_viz.plugin.pymol import __init_plugin__\n"
        "__init_plugin__()\n"
        f"cmd.load({str(UBQ)!r}, 'ubq')\n"
        "cmd.do('dynaprot ubq, anm, 0.5, 4, quiet=1')\n"
        "print('STATES', cmd.count_states('ubq_ensemble'))\n",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "STATES 4" in out.stdout


def test_build_zip_and_stub(tmp_path):
    sys.path.insert(0, str(ROOT / "plugin" / "pymol"))
    try:
        import build_zip
    finally:
        sys.path.pop(0)
    zpath = build_zip.build(tmp_path / "dist" / "dynaprot-pymol-plugin.zip")
    with zipfile.ZipFile(zpath) as zf:
        assert zf.namelist() == ["dynaprot/__init__.py"]
        zf.extractall(tmp_path / "plugins")
    assert not list((tmp_path / "dist").glob(".part-*"))
    # stub with dynaprot_viz importable: registers the commands
    out = _run_pymol(
        "import sys; sys.path.insert(0, 'plugins')\n"
        "from pymol import cmd\n"
        "import dynaprot\n"
        "dynaprot.__init_plugin__()\n"
        "print('HAS', 'dynaprot' in cmd.keyword)\n",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "HAS True" in out.stdout
    # stub without dynaprot_viz: one line saying how to install it
    out = _run_pymol(
        "import sys; sys.path.insert(0, 'plugins'); sys.modules['dynaprot_viz'] = None\n"
        "import dynaprot\n"
        "dynaprot.__init_plugin__()\n",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "DynaProt" in ln]
    assert len(lines) == 1 and "pip install" in lines[0] and "dynaprot-viz[pymol]" in lines[0]
