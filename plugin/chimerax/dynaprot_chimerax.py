"""Register the ``dynaprot`` command in ChimeraX: ``open dynaprot_chimerax.py``.

ChimeraX runs this file with ``session`` defined.  dynaprot_viz must be
installed in ChimeraX's Python (ChimeraX command line:
``pip install dynaprot-viz``).  Then, for example::

    open 1ubq
    dynaprot #1 model anm probability 0.5 samples 20 palette blue:white:red
    dynaprot coupling #1/A:23
"""

import sys


def _register(session):
    try:
        from dynaprot_viz.plugin.chimerax.adapter import register_commands
    except ImportError:
        session.logger.error(
            "dynaprot: dynaprot_viz is not installed in ChimeraX's Python; install it with the "
            "ChimeraX command: pip install dynaprot-viz"
        )
        return False
    register_commands(session.logger)
    from dynaprot_viz.core.predictors import default_model, default_model_reason

    session.logger.info("dynaprot: commands 'dynaprot' and 'dynaprot coupling' registered; "
                        f"default model {default_model()}: {default_model_reason()}")
    return True


if "session" in globals():  # run by ChimeraX's `open`
    _register(globals()["session"])
elif __name__ == "__main__":
    print("open this file from ChimeraX: open dynaprot_chimerax.py", file=sys.stderr)
