"""Atomic file output: write to a temporary name beside the target, rename on success.

A failure anywhere leaves no partial file: :class:`AtomicOutputs` collects several
outputs and renames them all only when every one was written.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["AtomicOutputs", "atomic_write_text", "atomic_write_bytes"]


def _tmp_name(path: Path) -> Path:
    # the final name stays at the end so that format detection by suffix still works
    return path.with_name(f".part-{os.getpid()}-{path.name}")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class AtomicOutputs:
    """Several output files that appear together or not at all.

    Use as a context manager; :meth:`path` gives the temporary path to write for
    a final path.  On a clean exit every temporary file is renamed to its final
    name; on an exception all are removed (and the output folder too, when this
    object created it and it is left empty).
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._pending: dict[Path, Path] = {}
        self._created_folder = False

    def __enter__(self):
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            self._created_folder = True
        elif not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder}: exists and is not a folder")
        return self

    def path(self, final) -> Path:
        final = Path(final)
        tmp = _tmp_name(final)
        self._pending[final] = tmp
        return tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            for final, tmp in self._pending.items():
                if not tmp.exists():
                    raise FileNotFoundError(f"{final}: was never written")
            for final, tmp in self._pending.items():
                os.replace(tmp, final)
            return False
        for tmp in self._pending.values():
            if tmp.exists():
                tmp.unlink()
        if self._created_folder and not any(self.folder.iterdir()):
            self.folder.rmdir()
        return False
