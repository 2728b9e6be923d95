"""Build the zip that PyMOL's Plugin Manager installs (Plugin > Plugin Manager > Install New Plugin).

Usage::

    python plugin/pymol/build_zip.py [--out dist/dynaprot-pymol-plugin.zip]

The zip holds one package, ``dynaprot/__init__.py`` (a copy of ``zip_stub.py``),
whose ``__init_plugin__`` imports ``dynaprot_viz.plugin.pymol`` or prints one line
saying how to install dynaprot_viz into PyMOL's Python.  The zip is written
atomically (temporary name, then rename).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "dynaprot"


def _version() -> str:
    text = (HERE.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip().startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0"


def build(out) -> Path:
    """Write the plugin zip to ``out`` and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stub = (HERE / "zip_stub.py").read_text(encoding="utf-8")
    stub = stub.replace('"""DynaProt plugin', f'"""DynaProt plugin {_version()}', 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{PACKAGE}/__init__.py", stub)
    tmp = out.with_name(f".part-{os.getpid()}-{out.name}")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the DynaProt PyMOL plugin zip.")
    parser.add_argument("--out", default=str(HERE.parents[1] / "dist" / "dynaprot-pymol-plugin.zip"),
                        help="output zip (default dist/dynaprot-pymol-plugin.zip)")
    args = parser.parse_args(argv)
    print(f"wrote {build(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
