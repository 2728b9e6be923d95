"""`dynaprot-viz figure`: multi-panel figure rendered headless (Agg + PyMOL ray tracing)."""

from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.cli import main
from dynaprot_viz.figure import MM_PER_INCH, make_figure, pymol_scene_script, save_figure

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "data" / "1ubi.pdb"
DPI = 100


@pytest.fixture(scope="module")
def ubq():
    return dv.predict(EXAMPLE, model="anm")


def _image(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def _ink(img, box):
    """Fraction of non-white pixels inside a (left, top, right, bottom) box."""
    left, top, right, bottom = box
    region = img[top:bottom, left:right]
    return float(np.any(region < 235, axis=2).mean())


def test_png_has_all_panels_with_pymol(ubq, tmp_path):
    pytest.importorskip("pymol2")
    result = make_figure(ubq, EXAMPLE, dpi=DPI)
    assert result.renderer == "pymol"
    assert set(result.panels) == {"structure", "coupling", "rmsf"}
    assert result.pockets, "ANM on ubiquitin has pocket patches to mark"
    (png,) = save_figure(result, png=tmp_path / "fig.png")
    img = _image(png)
    w = round(180 / MM_PER_INCH * DPI)
    h = round(180 * 0.72 / MM_PER_INCH * DPI)
    assert abs(img.shape[1] - w) <= 1 and abs(img.shape[0] - h) <= 1
    for name, box in result.panels.items():
        left, top, right, bottom = box
        assert 0 <= left < right <= img.shape[1] and 0 <= top < bottom <= img.shape[0], name
        assert (right - left) > 0.2 * w or name != "rmsf"
        assert _ink(img, box) > 0.03, f"panel {name} is blank"
    # the ray-traced structure is coloured (viridis), not grey
    left, top, right, bottom = result.panels["structure"]
    region = img[top:bottom, left:right]
    assert ((region.max(axis=2) - region.min(axis=2)) > 60).mean() > 0.01
    # panels do not overlap
    boxes = list(result.panels.values())
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_cli_with_reference_svg_pdf(ubq, tmp_path, capsys):
    ref = dv.predict(EXAMPLE, model="anm", cutoff=10.0)
    ref_path = ref.save(tmp_path / "md.dynamics.npz")
    out = tmp_path / "out"
    rc = main(["figure", str(EXAMPLE), "--model", "anm", "--reference", str(ref_path),
               "--png", str(out / "f.png"), "--svg", str(out / "f.svg"), "--pdf", str(out / "f.pdf"),
               "--renderer", "projection", "--dpi", str(DPI), "--width-mm", "170"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "band-wise coupling r" in text
    assert (out / "f.svg").read_text()[:200].lstrip().startswith(("<?xml", "<svg"))
    assert (out / "f.pdf").read_bytes()[:4] == b"%PDF"
    img = _image(out / "f.png")
    assert abs(img.shape[1] - round(170 / MM_PER_INCH * DPI)) <= 1
    assert not list(out.glob(".part-*"))
    result = make_figure(ubq, EXAMPLE, reference=ref, renderer="projection", dpi=DPI)
    assert set(result.panels) == {"structure", "coupling", "rmsf", "bandwise"}
    assert result.bandwise.shape == (50,) and np.all(np.isfinite(result.bandwise))
    assert np.all(np.abs(result.bandwise) <= 1)
    img = _image(save_figure(result, png=tmp_path / "g.png")[0])
    for name, box in result.panels.items():
        assert _ink(img, box) > 0.03, f"panel {name} is blank"


def test_bad_inputs_exit_2_without_outputs(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["figure", str(EXAMPLE), "--model", "anm"]) == 2
    assert "at least one output" in capsys.readouterr().err
    assert main(["figure", str(tmp_path / "missing.pdb"), "--model", "anm", "--png", str(out / "a.png")]) == 2
    assert main(["figure", str(EXAMPLE), "--model", "anm", "--png", str(out / "a.svg")]) == 2
    assert "must end in .png" in capsys.readouterr().err
    assert main(["figure", str(EXAMPLE), "--model", "anm", "--cmap", "nosuchmap", "--png", str(out / "a.png")]) == 2
    assert "colour map" in capsys.readouterr().err
    # a reference of another protein: refused before anything is written
    other = dv.predict(ROOT / "tests" / "data" / "1ejg.pdb", model="anm")
    ref = other.save(tmp_path / "other.dynamics.npz")
    assert main(["figure", str(EXAMPLE), "--model", "anm", "--reference", str(ref), "--renderer", "none",
                 "--png", str(out / "a.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another sequence" in err[0]
    # the second output's folder is a file: the first output must not appear either
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert main(["figure", str(EXAMPLE), "--model", "anm", "--renderer", "none", "--dpi", "60",
                 "--png", str(out / "a.png"), "--svg", str(blocker / "a.svg")]) == 2
    assert not out.exists() or not any(out.iterdir())


def test_options_checked(ubq):
    with pytest.raises(dv.InputError, match="renderer must be one of"):
        make_figure(ubq, EXAMPLE, renderer="povray")
    with pytest.raises(dv.InputError, match="heatmap must be"):
        make_figure(ubq, EXAMPLE, heatmap="dccm")
    with pytest.raises(dv.InputError, match="probability"):
        make_figure(ubq, EXAMPLE, probability=1.0, renderer="none")


def test_scene_script_colours_and_probability(tmp_path):
    script = pymol_scene_script(tmp_path / "s.pdb", tmp_path / "s.png", width=300, height=200,
                                vmin=0.4, vmax=1.0, probability=0.9, cmap="viridis")
    assert "set ellipsoid_probability, 0.9000" in script
    assert "show ellipsoids, dpv_prot and name CA" in script
    assert "minimum=0.400000, maximum=1.000000" in script
    assert "width=300, height=200" in script and "ray=1" in script
    assert script.count("set_color dpv_c") == 21
