"""The Plugin > DynaProt... dialog (imported only when PyMOL has Qt).

The selection is exported on the GUI thread, the prediction runs in a
:class:`~dynaprot_viz.plugin.pymol.BackgroundJob` (worker thread), and a QTimer
polls it and loads the result on the GUI thread: PyMOL's API is never called
from the worker.
"""

from __future__ import annotations

from pymol import cmd
from pymol.Qt import QtCore, QtWidgets

from ...core.errors import InputError
from ...core.predictors import available_models
from ..options import default_model, parse_options
from . import DEFAULT_PALETTE, DEFAULT_SAMPLES, BackgroundJob, apply_result, collect

__all__ = ["DynaProtDialog"]

_PALETTES = ["blue_white_red", "rainbow", "blue_red", "red_white_blue", "green_white_magenta",
             "yellow_white_blue", "cyan_white_magenta"]


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
        self.run_button = buttons.addButton("Run", QtWidgets.QDialogButtonBox.AcceptRole)
        close = buttons.addButton("Close", QtWidgets.QDialogButtonBox.RejectRole)
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
        if self._job is not None:
            return
        try:
            opts = parse_options(self.model.currentText(), self.probability.value(), self.samples.value(),
                                 self.palette.currentText())
            pdb, self._base = collect(self.selection.currentText() or "(all)")
        except InputError as exc:
            self.status.setText(f"Error: {exc}")
            return
        self.status.setText(f"Predicting with {opts.model}...")
        self.run_button.setEnabled(False)
        self._job = BackgroundJob(pdb, opts)
        self._timer.start()

    def _poll(self):
        if self._job is None or not self._job.done():
            return
        self._timer.stop()
        job, self._job = self._job, None
        self.run_button.setEnabled(True)
        try:
            name = apply_result(job.result(), self._base, quiet=0)
        except (InputError, FileNotFoundError) as exc:
            self.status.setText(f"Error: {exc}")
            return
        self.status.setText(f"Done: {name} (show ellipsoids), {self._base}_ensemble, {self._base}_pocket*")
