"""Vendored JavaScript (3Dmol.js, BSD-3-Clause) and dynaprot-viz helpers; see README.md."""
