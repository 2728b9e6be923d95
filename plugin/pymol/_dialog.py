"""The Plugin > DynaProt... dialog (imported only when PyMOL has Qt).

The selection is exported on the GUI thread, the prediction runs in a
:class:`~dynaprot_viz.plugin.pymol.BackgroundJob` (worker thread), and a QTimer
polls it and loads the result on the GUI thread: PyMOL's API is never called
from the worker.  Every failure (bad input, a predictor error on the worker,
a failed load) ends up as one "Error: ..." line in the dialog's status label:
nothing raises out of a Qt slot, which would abort PyQt5 applications.
"""

from __future__ import annotations

import sys

from pymol import cmd
from pymol.Qt import QtCore, QtWidgets

from ...core.errors import InputError
from ...core.predictors import available_models
from ..options import default_model, parse_options
from . import DEFAULT_PALETTE, DEFAULT_SAMPLES, BackgroundJob, _check_palette, apply_result, collect

__all__ = ["DynaProtDialog"]

_PALETTES = ["blue_white_red", "rainbow", "blue_red", "red_white_blue", "green_white_magenta",
             "yellow_white_blue", "cyan_white_magenta"]

# Qt 6 bindings (PyQt6) only know the scoped enum; Qt 5 bindings have both spellings
_ROLES = getattr(QtWidgets.QDialogButtonBox, "ButtonRole", QtWidgets.QDialogButtonBox)


def _main_window():
    """PyMOL's Qt main window when the PyMOL GUI runs, else None (no import side effects)."""
    gui = sys.modules.get("pmg_qt.pymol_qt_gui")
    return getattr(gui, "window", None)


def _message(exc: BaseException) -> str:
    """One status line: InputError messages as they are, others prefixed with their type."""
    if isinstance(exc, (InputError, FileNotFoundError)):
        return f"Error: {exc}"
    return f"Error: {type(exc).__name__}: {exc}"


class DynaProtDialog(QtWidgets.QDialog):
    """Object/selection, model, probability, samples, colour map; Run; status line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("DynaProt: residue dynamics")
        form = QtWidgets.QFormLayout(self)
        self.selection = QtWidgets.QComboBox(editable=True)
        self.model = QtWidgets.QComboBox()
        self.model.addItems(available_models())
        self.model.setCurrentText(default_model())
        names = available_models()
        self.model.setToolTip(f"default {names.default}: {names.reason}")
        self.probability = QtWidgets.QDoubleSpinBox(decimals=2, minimum=0.01, maximum=0.99, singleStep=0.05)
        self.probability.setValue(0.5)
        self.samples = QtWidgets.QSpinBox(minimum=0, maximum=500)
        self.samples.setValue(DEFAULT_SAMPLES)
        self.palette = QtWidgets.QComboBox(editable=True)
        self.palette.addItems(_PALETTES)
        self.palette.setCurrentText(DEFAULT_PALETTE)
        form.addRow("Object / selection", self.selection)
        form.addRow("Model", self.model)
        form.addRow("Ellipsoid probability", self.probability)
        form.addRow("Ensemble samples", self.samples)
        form.addRow("Colour map (RMSF)", self.palette)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        form.addRow(self.status)
        buttons = QtWidgets.QDialogButtonBox()
        self.run_button = buttons.addButton("Run", _ROLES.AcceptRole)
        close = buttons.addButton("Close", _ROLES.RejectRole)
        self.run_button.clicked.connect(self.start)
        close.clicked.connect(self.hide)
        form.addRow(buttons)
        self._job = None
        self._base = ""
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)

    def showEvent(self, event):  # refresh the object list each time the dialog opens
        current = self.selection.currentText()
        self.selection.clear()
        self.selection.addItems(cmd.get_names("public_objects") + cmd.get_names("public_selections"))
        if current:
            self.selection.setCurrentText(current)
        super().showEvent(event)

    def start(self):
        """Run button: check the fields, export the selection, start the worker (GUI thread)."""
        if self._job is not None:
            return
        try:
            opts = parse_options(self.model.currentText(), self.probability.value(), self.samples.value(),
                                 self.palette.currentText())
            _check_palette(opts.palette or DEFAULT_PALETTE, cmd)  # before the prediction, as the command does
            pdb, self._base = collect(self.selection.currentText() or "(all)")
            job = BackgroundJob(pdb, opts)
        except Exception as exc:  # noqa: BLE001  (shown in the dialog, never raised out of a Qt slot)
            self.status.setText(_message(exc))
            return
        self.status.setText(f"Predicting with {opts.model}...")
        self.run_button.setEnabled(False)
        self._job = job
        self._timer.start()

    def _poll(self):
        """Timer tick (GUI thread): when the worker is done, load its result into PyMOL."""
        if self._job is None or not self._job.done():
            return
        self._timer.stop()
        job, self._job = self._job, None
        self.run_button.setEnabled(True)
        try:
            result = job.result()
            name = apply_result(result, self._base, quiet=0)
        except Exception as exc:  # noqa: BLE001  (worker or load failure: shown, never raised out of a slot)
            if not isinstance(exc, (InputError, FileNotFoundError)):
                from pymol import colorprinting

                colorprinting.print_exc()  # unexpected: the traceback goes to PyMOL's log
            self.status.setText(_message(exc))
            return
        made = [f"{name} (B = RMSF, ellipsoids on CA)"]
        if result.ensemble_pdb:
            made.append(f"{self._base}_ensemble ({len(result.ensemble)} states)")
        if result.pockets:
            made.append(f"{self._base}_pocket1..{len(result.pockets)}")
        self.status.setText("Done: " + ", ".join(made))
