"""The Plugin > DynaProt... dialog, driven for real: Qt offscreen + PyMOL's global ``cmd`` in-process.

PyMOL's Qt GUI itself needs an OpenGL window, so the test rebuilds only the part
the plugin touches: the ``PluginQt`` menu that ``pmg_qt`` hands to
``addmenuitemqt`` (``pmg_qt.mimic_pmg_tk.PmwMenuBar`` on a real ``QMenu``),
triggers the "DynaProt..." action, fills the dialog's widgets, clicks Run and
runs the Qt event loop until the worker thread's result is loaded.
Needs a Qt binding that ``pymol.Qt`` accepts (``pip install PyQt5``).
"""

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

pymol2 = pytest.importorskip("pymol2")
try:
    from pymol.Qt import QtCore, QtWidgets
except ImportError as exc:  # no binding, or its system libraries (libGL, libfontconfig...) missing
    pytest.skip(f"no Qt binding usable by pymol.Qt ({exc}); pip install PyQt5", allow_module_level=True)

import pymol  # noqa: E402
from pymol import plugins  # noqa: E402

import dynaprot_viz as dv  # noqa: E402
from dynaprot_viz.core.gaussian import anisou_from_marginals  # noqa: E402
from dynaprot_viz.core.pockets import find_pockets  # noqa: E402
from dynaprot_viz.plugin import pymol as plugin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "tests" / "data" / "1ubi.pdb"
K = 5
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def qapp():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["pytest"])
    yield app


@pytest.fixture(scope="module")
def gcmd(qapp):
    """PyMOL's global ``cmd`` (what the dialog and the GUI use), started in-process."""
    started = None
    if pymol.cmd._COb is None:
        started = pymol2.SingletonPyMOL()
        started.start()
    pymol.cmd.load(str(UBQ), "ubq")
    yield pymol.cmd
    pymol.cmd.delete("all")
    if started is not None:
        started.stop()


@pytest.fixture(scope="module")
def menu(gcmd, qapp):
    """The Plugin menu as PyMOL's Qt GUI builds it, with __init_plugin__ run on it."""
    from pmg_qt import mimic_pmg_tk

    qmenu = QtWidgets.QMenu()
    app = mimic_pmg_tk.PMGApp()
    app.menuBar = mimic_pmg_tk.PmwMenuBar({"PluginQt": qmenu})
    saved = pymol._ext_gui, plugins.HAVE_QT, plugin._DIALOG
    pymol._ext_gui, plugins.HAVE_QT, plugin._DIALOG = app, True, None
    try:
        plugin.__init_plugin__(app)
        yield qmenu
    finally:
        if plugin._DIALOG is not None:
            plugin._DIALOG.hide()
            plugin._DIALOG.deleteLater()
        pymol._ext_gui, plugins.HAVE_QT, plugin._DIALOG = saved


@pytest.fixture()
def critical(monkeypatch):
    """Message boxes the menu wrapper would show on an exception (modal: recorded instead)."""
    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "critical", staticmethod(lambda *a: shown.append(a)))
    return shown


@pytest.fixture()
def dialog(menu, critical, qapp):
    """Plugin > DynaProt...: trigger the menu action, as a user's click does."""
    actions = {a.text(): a for a in menu.actions()}
    assert "DynaProt..." in actions
    actions["DynaProt..."].trigger()
    qapp.processEvents()
    assert critical == []
    dlg = plugin._DIALOG
    assert dlg is not None and dlg.isVisible()
    yield dlg
    assert dlg._job is None, "a test left a prediction running"
    assert critical == []


def _fill(dlg, selection, model="anm", probability=0.7, samples=K, palette="blue_white_red"):
    dlg.selection.setCurrentText(selection)
    dlg.model.setCurrentText(model)
    dlg.probability.setValue(probability)
    dlg.samples.setValue(samples)
    dlg.palette.setCurrentText(palette)


def _pump_until(qapp, done, timeout=TIMEOUT_S):
    """Run the Qt event loop until done() is true; False on timeout."""
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            return False
        qapp.processEvents(QtCore.QEventLoop.AllEvents, 20)
        time.sleep(0.002)
    return True


def _ca(cmd, obj):
    return {(a.chain, a.resi): a for a in cmd.get_model(f"{obj} and name CA").atom}


def _key(r):
    return (r.chain, f"{r.number}{r.icode}")


def test_menu_entry_lists_objects_and_defaults(dialog):
    items = [dialog.selection.itemText(i) for i in range(dialog.selection.count())]
    assert "ubq" in items
    models = [dialog.model.itemText(i) for i in range(dialog.model.count())]
    assert "anm" in models
    assert dialog.samples.value() == plugin.DEFAULT_SAMPLES
    assert dialog.palette.currentText() == plugin.DEFAULT_PALETTE


def test_run_in_dialog_matches_command_path(dialog, gcmd, qapp):
    _fill(dialog, "ubq")
    # Hold the worker pool busy so the prediction provably waits off the GUI thread;
    # the event loop must keep firing a timer meanwhile.
    release = threading.Event()
    blocker = plugin.BackgroundJob._pool.submit(release.wait, TIMEOUT_S)
    ticks = []
    timer = QtCore.QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(dialog._job is not None and not dialog._job.done()))
    timer.start()
    try:
        dialog.run_button.click()  # returns at once: the job is queued on the worker
        assert dialog._job is not None and not dialog.run_button.isEnabled()
        assert dialog.status.text().startswith("Predicting with anm")
        assert _pump_until(qapp, lambda: sum(ticks) >= 5), "GUI event loop blocked while the job waited"
        release.set()
        assert _pump_until(qapp, lambda: dialog._job is None), "prediction did not finish in time"
    finally:
        release.set()
        timer.stop()
        blocker.result(timeout=TIMEOUT_S)
    assert dialog.status.text().startswith("Done: ubq_dynaprot"), dialog.status.text()
    assert dialog.run_button.isEnabled()

    # the same prediction through the command, on a second copy of the structure
    gcmd.load(str(UBQ), "ref")
    gcmd.do(f"dynaprot ref, anm, 0.7, {K}, blue_white_red, quiet=1")
    expected = dv.predict(UBQ, model="anm")
    u6 = anisou_from_marginals(expected.marginals)
    got, ref = _ca(gcmd, "ubq_dynaprot"), _ca(gcmd, "ref_dynaprot")
    assert len(got) == len(expected.residues) == len(ref)
    for i, r in enumerate(expected.residues):
        atom = got[_key(r)]
        assert atom.b == pytest.approx(expected.rmsf[i], abs=1e-2)  # B = RMSF (Å), PDB precision
        np.testing.assert_allclose(atom.u_aniso, u6[i], atol=0.6e-4)  # U = Sigma_i (Å²), ANISOU rounding
        assert atom.b == ref[_key(r)].b
        np.testing.assert_array_equal(atom.u_aniso, ref[_key(r)].u_aniso)
    assert float(gcmd.get("ellipsoid_probability", "ubq_dynaprot")) == pytest.approx(0.7)
    # ensemble: K states, identical to the command's (same seed)
    assert gcmd.count_states("ubq_ensemble") == K
    for state in (1, K):
        np.testing.assert_array_equal(gcmd.get_coords("ubq_ensemble", state=state),
                                      gcmd.get_coords("ref_ensemble", state=state))
    # pockets: one selection per patch, the same residues as the command's
    pockets = find_pockets(expected)
    assert pockets
    names = set(gcmd.get_names("selections"))
    for k, pocket in enumerate(pockets, start=1):
        sel = set()
        gcmd.iterate(f"ubq_pocket{k} and name CA", "sel.add((chain, resi))", space={"sel": sel})
        assert sel == {_key(expected.residues[i]) for i in pocket.residues}
        assert f"ref_pocket{k}" in names
    assert f"ubq_pocket{len(pockets) + 1}" not in names
    assert plugin.result_for("ubq").options.samples == K
    gcmd.delete("ref*")


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"selection": "ubq and resi 9999"}, "Error: selection 'ubq and resi 9999' holds no protein atoms"),
        ({"selection": "no_such_object"}, "Error: selection 'no_such_object' is not a valid PyMOL selection"),
        ({"selection": "ubq", "palette": "not_a_colour"}, "Error: palette must be"),
    ],
)
def test_bad_input_shows_error_in_dialog(dialog, gcmd, qapp, fields, match):
    before = set(gcmd.get_names("all"))
    _fill(dialog, **fields)
    dialog.run_button.click()  # must not raise
    qapp.processEvents()
    assert dialog._job is None and dialog.run_button.isEnabled()
    assert dialog.status.text().startswith(match), dialog.status.text()
    assert set(gcmd.get_names("all")) == before  # nothing loaded or deleted


def test_probability_field_cannot_leave_0_1(dialog):
    """The spin box clamps: an out-of-range probability never reaches the prediction."""
    dialog.probability.setValue(1.5)
    assert dialog.probability.value() == pytest.approx(0.99)
    dialog.probability.setValue(0.0)
    assert dialog.probability.value() == pytest.approx(0.01)
    dialog.probability.lineEdit().setText("1.5")
    dialog.probability.interpretText()
    assert 0.0 < dialog.probability.value() < 1.0


def test_worker_failure_shows_error_and_dialog_recovers(dialog, gcmd, qapp):
    """A prediction that fails on the worker thread ends in the status line, and the dialog recovers."""
    _fill(dialog, "ubq and resi 1-3", samples=0)  # 3 residues: refused before any prediction
    dialog.run_button.click()
    assert _pump_until(qapp, lambda: dialog._job is None)
    assert dialog.status.text().startswith("Error: "), dialog.status.text()
    assert "has 3 residues; dynamics need at least 5" in dialog.status.text()
    assert dialog.run_button.isEnabled()
    # the dialog still works afterwards
    _fill(dialog, "ubq", samples=0)
    dialog.run_button.click()
    assert _pump_until(qapp, lambda: dialog._job is None)
    assert dialog.status.text().startswith("Done: ubq_dynaprot"), dialog.status.text()
    assert "ensemble" not in dialog.status.text()


def test_menu_reopens_the_same_dialog(menu, dialog, qapp):
    dialog.hide()
    {a.text(): a for a in menu.actions()}["DynaProt..."].trigger()
    qapp.processEvents()
    assert plugin._DIALOG is dialog and dialog.isVisible()
