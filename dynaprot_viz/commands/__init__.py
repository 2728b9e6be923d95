"""Sub-commands of ``dynaprot-viz``: one module each (see dynaprot_viz.cli)."""
