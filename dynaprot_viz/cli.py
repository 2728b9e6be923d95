"""The ``dynaprot-viz`` command line.

Each sub-command lives in ``dynaprot_viz/commands/<name>.py`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; this
module finds them, so adding a command touches no other file.

Exit codes: 0 success, 2 bad input (one line on stderr, no partial outputs),
1 an unexpected internal error (with the traceback, because it is a bug).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from . import __version__, commands
from .core.errors import InputError

__all__ = ["main", "build_parser"]

#: order in --help; commands not listed come after, alphabetically
_ORDER = ["predict", "view", "figure", "ingest", "train", "evaluate", "simulate", "batch", "compare"]


def _command_modules():
    found = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    ordered = [n for n in _ORDER if n in found] + sorted(n for n in found if n not in _ORDER)
    return {n: importlib.import_module(f"{commands.__name__}.{n}") for n in ordered}


def _default_model_line() -> str:
    from .core.predictors import default_model, default_model_reason

    return f"default model: {default_model()} - {default_model_reason()}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynaprot-viz",
        description="Residue-level protein dynamics as Gaussians, from one structure.",
        epilog=_default_model_line(),
    )
    parser.add_argument("--version", action="version", version=f"dynaprot-viz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    if isinstance(exc, FileNotFoundError) and exc.filename and exc.filename not in text:
        text = f"{exc.filename}: no such file"
    return text or type(exc).__name__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        # restored by catch_warnings on exit (formatwarning would not be)
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        try:
            return int(args._run(args) or 0)
        except (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            print(f"dynaprot-viz {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except ImportError as exc:
            print(f"dynaprot-viz {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"dynaprot-viz {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
