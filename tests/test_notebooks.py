"""The example notebooks (examples/*.ipynb) run top to bottom on CPU (issue 5, item 6).

Each notebook is executed with nbclient in a fresh kernel of *this* interpreter, with
``examples/`` as working directory and its output files sent to a temporary folder
(``DYNAPROT_VIZ_EXAMPLES_OUT``).  The kernel is a kernelspec written to a temporary
folder placed first on ``JUPYTER_PATH``: a fresh virtual environment may have no
kernelspec at all, and a user-level ``python3`` spec may point at another Python.

About 1.5 minutes for the four notebooks on two shared cores (each well under 60 s);
a cell that runs past ``CELL_TIMEOUT_S`` fails the test instead of hanging it.
Set ``DYNAPROT_VIZ_SKIP_NOTEBOOKS=1`` to skip them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")
pytest.importorskip("py3Dmol")

pytestmark = pytest.mark.skipif(os.environ.get("DYNAPROT_VIZ_SKIP_NOTEBOOKS") == "1",
                                reason="DYNAPROT_VIZ_SKIP_NOTEBOOKS=1")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KERNEL_NAME = "dynaprot-viz-test-python"
#: no cell of the examples needs more than a few seconds (whole notebooks run in under
#: 30 s on the 2-core CI machine); a cell that waits longer is a hang, not slowness
CELL_TIMEOUT_S = 45
#: a cell slower than this counts as a hang that nbclient only noticed at the timeout
CELL_HANG_S = 30
STARTUP_TIMEOUT_S = 90

#: per notebook: modules it needs beyond the test extra, texts its stdout must hold,
#: the least number of PNG images, whether a widget is displayed, files it writes
EXPECT = {
    "01_quickstart": dict(
        needs=[], texts=["RMSF: min", "ANISOU lines: 76", "models: 20", "round trip identical: True"],
        images=2, widget=True,
        files=["1ubi.annotated.pdb", "1ubi.ensemble.pdb", "1ubi.dynamics.npz", "1ubi.figure.png"]),
    "02_compare_predictors": dict(
        needs=[], texts=["RMSF Pearson r", "band 1 r ="], images=2, widget=True, files=[]),
    "03_pocket_hunting": dict(
        needs=[], texts=["candidate patches", "Ap5A contacts", "axis agreement"], images=1, widget=True,
        files=[]),
    "04_md_vs_prediction": dict(
        needs=["MDAnalysis", "MDAnalysisTests"], texts=["'n_frames': 98", "band-wise coupling r"],
        images=2, widget=True, files=[]),
    "05_compare": dict(
        needs=[], texts=["in LID or NMP: 20 of 20", "overlap with predicted motion", "round trip identical: True"],
        images=2, widget=True, files=["compare.png", "compare.html", "1ake_vs_4ake.compare.npz"]),
}


def test_every_notebook_is_covered():
    found = sorted(p.stem for p in EXAMPLES.glob("*.ipynb"))
    assert found == sorted(EXPECT), "add the new notebook to EXPECT in tests/test_notebooks.py"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_committed_without_outputs(name):
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name}: no code cells"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{name}: strip the outputs of cells {dirty} before committing"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for sys.executable first on JUPYTER_PATH; outputs to a temporary folder."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dynaprot-viz tests", "language": "python",
    }), encoding="utf-8")
    out = tmp_path_factory.mktemp("examples-out")
    with pytest.MonkeyPatch.context() as mp:
        old = os.environ.get("JUPYTER_PATH")
        mp.setenv("JUPYTER_PATH", str(root) + (os.pathsep + old if old else ""))
        mp.setenv("DYNAPROT_VIZ_EXAMPLES_OUT", str(out))
        # connection files and IPython profile in temporary folders: works with a read-only
        # home and keeps a user's IPython start-up scripts out of the run
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.delenv("MPLBACKEND", raising=False)  # let the kernel use the inline backend
        yield out


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.output_type == "stream" and o.get("name") == "stdout")


def _count(nb, mime: str) -> int:
    return sum(mime in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []) if o.output_type in ("display_data", "execute_result"))


def _run(name: str):
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S, startup_timeout=STARTUP_TIMEOUT_S,
        allow_errors=False, resources={"metadata": {"path": str(EXAMPLES)}}, record_timing=True,
    )
    client.execute()
    # nbclient can miss a cell's "idle" reply (jupyter/nbclient#312: widget messages during a
    # `with Output():` block) and find it only when the timeout fires: the cell then "passes"
    # after CELL_TIMEOUT_S.  A cell that took most of the timeout is such a hang.
    slow = []
    for i, cell in enumerate(nb.cells):
        t = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and "iopub.status.busy" in t and "shell.execute_reply" in t:
            from datetime import datetime

            start = datetime.fromisoformat(t["iopub.status.busy"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
            if (end - start).total_seconds() > CELL_HANG_S:
                slow.append(f"cell {i}: {(end - start).total_seconds():.0f} s")
    assert not slow, f"{name}: cells that ran into the hang window: {', '.join(slow)}"
    return nb


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_notebook_runs(name, kernel_env):
    expect = EXPECT[name]
    for module in expect["needs"]:
        pytest.importorskip(module, reason=f"{name} needs {module}")
    nb = _run(name)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    text = _stdout(nb)
    for t in expect["texts"]:
        assert t in text, f"{name}: expected {t!r} in the printed output"
    assert _count(nb, "image/png") >= expect["images"], f"{name}: too few images"
    if expect["widget"]:
        assert _count(nb, "application/vnd.jupyter.widget-view+json") >= 1, f"{name}: no widget displayed"
    folder = kernel_env / name
    for f in expect["files"]:
        assert (folder / f).is_file() and (folder / f).stat().st_size > 0, f"{name}: {f} not written"
    # a couple of numbers, read back from the printed output
    if name == "01_quickstart":
        lo, med, hi = map(float, re.search(r"RMSF: min ([\d.]+) Å, median ([\d.]+) Å, max ([\d.]+) Å", text).groups())
        assert 0 < lo <= med <= hi < 10  # Å, ANM scaled to ubiquitin's B-factors
    if name == "04_md_vs_prediction":
        r = float(re.search(r"ANM relative\s+(-?[\d.]+)", text).group(1))
        assert -1 <= r <= 1
