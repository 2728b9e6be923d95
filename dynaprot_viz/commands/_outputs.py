"""Output paths checked before any work: a folder that cannot be created or a file that
cannot be written is refused in one line (exit 2) before a prediction runs, and
nothing is written (issue 13: ``--out`` under a regular file failed with a bare
``[Errno 2]`` after the prediction)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..core.errors import InputError

__all__ = ["check_output_folder", "check_output_file"]


def _writable(folder: Path) -> bool:
    """True when a file can be created in ``folder`` (tried: os.access says yes to root
    even on a read-only file system); the probe leaves nothing behind."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (or ``path``) that exists on disk."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_folder(folder, option: str = "--out") -> Path:
    """Check that ``folder`` is, or can be created as, a writable folder; create nothing.

    Raises
    ------
    InputError
        ``folder`` is a file, lies under a file, or its nearest existing ancestor is
        not writable.  The message names ``option`` and the path.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise InputError(f"{option} {folder}: exists and is not a folder")
        if not _writable(folder):
            raise InputError(f"{option} {folder}: the folder is not writable")
        return folder
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise InputError(f"{option} {folder}: cannot create the folder: {base} is a file, not a folder")
    if not _writable(base):
        raise InputError(f"{option} {folder}: cannot create the folder: {base} is not writable")
    return folder


def check_output_file(path, option: str, create_folder: bool = False) -> Path:
    """Check that the file ``path`` can be written (atomically: a temporary file beside it,
    then a rename); create nothing.  Its folder must exist, or with ``create_folder``
    be creatable (:func:`check_output_folder`).

    Raises
    ------
    InputError
        ``path`` is a folder, its folder is missing, is a file or is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder, expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if create_folder and not parent.exists():
        check_output_folder(parent, f"{option} {path}: folder")
        return path
    if not parent.exists():
        base = _existing_ancestor(parent)
        if not base.is_dir():
            raise InputError(f"{option} {path}: cannot write there: {base} is a file, not a folder")
        raise InputError(f"{option} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: cannot write there: {parent} is a file, not a folder")
    if not _writable(parent):
        raise InputError(f"{option} {path}: the folder {parent} is not writable")
    return path
