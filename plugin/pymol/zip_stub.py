"""DynaProt plugin for PyMOL (Plugin Manager package).

This small package only forwards to ``dynaprot_viz.plugin.pymol``, which must be
installed into the Python that runs PyMOL.
"""

import sys


def __init_plugin__(app=None):
    try:
        from dynaprot_viz.plugin.pymol import __init_plugin__ as init
    except ImportError:
        print(
            "DynaProt: dynaprot_viz is not installed in PyMOL's Python; install it with: "
            f'"{sys.executable}" -m pip install "dynaprot-viz[pymol]"'
        )
        return
    init(app)
