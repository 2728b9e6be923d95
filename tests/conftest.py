"""Shared fixtures: real structures shipped in tests/data (public PDB entries)."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def ubq_path() -> Path:
    return DATA / "1ubi.pdb"


@pytest.fixture(scope="session")
def ubq_chain(ubq_path):
    from dynaprot_viz.core.structure import load_chain

    return load_chain(ubq_path)


@pytest.fixture(scope="session")
def ubq_anm(ubq_chain):
    from dynaprot_viz.core.anm import predict_anm

    return predict_anm(ubq_chain, scale="relative")  # kT/gamma, as ProDy gives


@pytest.fixture
def pymol_cmd():
    """A fresh headless PyMOL (pymol2) with the dynaprot commands registered; its ``cmd``."""
    pymol2 = pytest.importorskip("pymol2")
    from dynaprot_viz.plugin import pymol as plugin

    p = pymol2.PyMOL()
    p.start()
    try:
        plugin.register(p.cmd)
        yield p.cmd
    finally:
        p.stop()
