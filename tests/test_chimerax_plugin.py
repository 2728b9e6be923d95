"""The ChimeraX command, without ChimeraX.

ChimeraX does not run here (the PyPI ``chimerax`` wheel cannot start a session),
so the pure parts are tested directly and the command file is run against a
stub session whose ``chimerax`` modules record every registration and command.
The structure inside the stub is the real 1ubi.pdb (read with gemmi), the
prediction is the real ANM.
"""

import re
import runpy
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.core.gaussian import anisou_from_marginals
from dynaprot_viz.core.pockets import find_pockets
from dynaprot_viz.core.structure import Residue
from dynaprot_viz.plugin import chimerax as cx
from dynaprot_viz.plugin.options import ellipsoid_scale, parse_options

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "tests" / "data" / "1ubi.pdb"
COMMAND_FILE = ROOT / "plugin" / "chimerax" / "dynaprot_chimerax.py"


# ----------------------------------------------------------------------------- pure parts
def test_defattr_text_format():
    residues = [Residue("A", 1, "", "MET"), Residue("A", 52, "B", "GLY"), Residue("B", -3, "", "ALA")]
    text = cx.defattr_text("dynaprot_rmsf", [0.5, 1.25, 3.0], residues, "#1", comment="RMSF (A)")
    lines = text.splitlines()
    assert lines[:4] == ["# RMSF (A)", "attribute: dynaprot_rmsf", "match mode: 1-to-1", "recipient: residues"]
    assert lines[4:] == ["\t#1/A:1\t0.5", "\t#1/A:52B\t1.25", "\t#1/B:-3\t3"]
    with pytest.raises(dv.InputError, match="attribute name"):
        cx.defattr_text("1bad", [1.0], residues[:1], "#1")
    with pytest.raises(dv.InputError, match="shape"):
        cx.defattr_text("ok", [1.0, 2.0], residues[:1], "#1")
    with pytest.raises(dv.InputError, match="finite"):
        cx.defattr_text("ok", [np.nan], residues[:1], "#1")


def test_specs_and_palettes():
    res = [Residue("A", 8, "", "X"), Residue("A", 9, "", "X"), Residue("B", 3, "A", "X")]
    assert cx.residues_spec("#2", res) == "#2/A:8,9 #2/B:3A"
    assert cx.model_tag("#1.2") == "1_2"
    for ok in ("viridis", "^RdYlBu", "blue:white:red", "-1,blue:0,white:1,red", "#ff0000:#0000ff"):
        assert cx.check_palette(ok) == ok
    assert cx.check_palette("") == cx.DEFAULT_PALETTE
    for bad in ("blue:", "not a palette", "12abc"):
        with pytest.raises(dv.InputError, match="palette must be"):
            cx.check_palette(bad)


def test_option_parsing_shared_with_pymol():
    opts = parse_options("anm", "0.9", "12", "viridis", chain="A")
    assert (opts.model, opts.probability, opts.samples, opts.palette, opts.chain) == ("anm", 0.9, 12, "viridis", "A")
    assert parse_options("anm", 0.5, 3.0).samples == 3  # ChimeraX passes numbers
    with pytest.raises(dv.InputError, match="probability must be between 0 and 1"):
        parse_options("anm", "0")
    with pytest.raises(dv.InputError, match="samples must be a whole number"):
        parse_options("anm", "0.5", "100000")
    with pytest.raises(dv.InputError, match="seed must be an integer"):
        parse_options("anm", "0.5", "1", seed="x")
    # ChimeraX's documented aniso scale for 50 % probability is 1.53818
    assert ellipsoid_scale(0.5) == pytest.approx(1.53818, abs=1e-5)


def test_display_commands():
    cmds = cx.display_commands("#1", "/tmp/a b/r.defattr", "blue:white:red", 0.5, 0.4, 5.4)
    assert cmds[0] == 'open "/tmp/a b/r.defattr" format defattr'
    assert cmds[1] == "color byattribute r:dynaprot_rmsf #1 palette blue:white:red range 0.4,5.4"
    assert cmds[2] == "show #1@CA atoms"
    assert cmds[3] == "aniso style #1 scale 1.53817"  # sqrt(chi2_3.ppf(0.5)) = 1.538172; docs: 1.53818
    assert cmds[4] == "aniso #1@CA"


# ----------------------------------------------------------------------------- stub ChimeraX
class StubAtom:
    def __init__(self, atom):
        self.name = atom.name
        self.element = SimpleNamespace(name=atom.element.name)
        self.coord = np.array(atom.pos.tolist())
        self.bfactor = atom.b_iso
        self.occupancy = atom.occ
        self.aniso_u6 = None


class StubResidue:
    def __init__(self, structure, chain, res):
        self.structure = structure
        self.chain_id = chain
        self.number = res.seqid.num
        self.insertion_code = res.seqid.icode.strip()
        self.name = res.name
        self.atoms = [StubAtom(a) for a in res]

    def find_atom(self, name):
        return next((a for a in self.atoms if a.name == name), None)

    def __str__(self):
        return f"{self.structure.atomspec}/{self.chain_id}:{self.number}"


class StubStructure:
    def __init__(self, path, atomspec="#1"):
        import gemmi

        st = gemmi.read_structure(str(path))
        st.remove_waters()
        self.atomspec = atomspec
        self.name = Path(path).stem
        self.residues = [StubResidue(self, ch.name, r) for ch in st[0] for r in ch]


class StubLogger:
    def __init__(self):
        self.messages = []

    def info(self, msg):
        self.messages.append(("info", msg))

    def warning(self, msg):
        self.messages.append(("warning", msg))

    def error(self, msg):
        self.messages.append(("error", msg))


class StubSession:
    def __init__(self):
        self.logger = StubLogger()
        self.calls = []  # (command, file text read by the command or None)
        self.registered = {}
        self.next_model = 2


class UserError(Exception):
    pass


@pytest.fixture
def chimerax_stub(monkeypatch):
    """Fake chimerax modules that record registrations and commands on the session."""

    def run(session, text, log=True):
        m = re.match(r'open "([^"]+)"(.*)', text)
        content = Path(m.group(1)).read_text() if m else None
        session.calls.append((text, content))
        if m and "coordsets true" in m.group(2):
            spec = f"#{session.next_model}"
            session.next_model += 1
            return [SimpleNamespace(atomspec=spec)]
        return None

    def register(name, desc, func, logger=None):
        logger.registry[name] = (desc, func)

    def arg(name):
        return type(name, (), {})

    class CmdDesc:
        def __init__(self, required=(), optional=(), keyword=(), synopsis=None):
            self.required, self.optional, self.keyword, self.synopsis = required, optional, keyword, synopsis

    commands = types.ModuleType("chimerax.core.commands")
    commands.run, commands.register, commands.CmdDesc = run, register, CmdDesc
    for n in ("StringArg", "FloatArg", "IntArg", "BoolArg"):
        setattr(commands, n, arg(n))
    atomic = types.ModuleType("chimerax.atomic")
    atomic.AtomicStructuresArg, atomic.ResiduesArg = arg("AtomicStructuresArg"), arg("ResiduesArg")
    errors = types.ModuleType("chimerax.core.errors")
    errors.UserError = UserError
    root, core = types.ModuleType("chimerax"), types.ModuleType("chimerax.core")
    for name, mod in (("chimerax", root), ("chimerax.core", core), ("chimerax.core.commands", commands),
                      ("chimerax.atomic", atomic), ("chimerax.core.errors", errors)):
        monkeypatch.setitem(sys.modules, name, mod)
    session = StubSession()
    session.logger.registry = session.registered
    return session


@pytest.fixture
def registered(chimerax_stub):
    """`open dynaprot_chimerax.py`: ChimeraX runs the file with `session` in its globals."""
    runpy.run_path(str(COMMAND_FILE), init_globals={"session": chimerax_stub})
    return chimerax_stub


def test_command_file_registers_both_commands(registered):
    assert set(registered.registered) == {"dynaprot", "dynaprot coupling", "dynaprot compare"}
    desc, func = registered.registered["dynaprot"]
    assert [n for n, _ in desc.required] == ["structures"]
    assert {n for n, _ in desc.keyword} >= {"model", "probability", "samples", "palette", "chain"}
    from dynaprot_viz.core.predictors import default_model

    infos = [m for level, m in registered.logger.messages if level == "info"]
    assert any(m.startswith("dynaprot: commands 'dynaprot' and 'dynaprot coupling' registered; "
                            f"default model {default_model()}: ") for m in infos), infos


def test_command_file_without_dynaprot_viz(chimerax_stub, monkeypatch):
    monkeypatch.setitem(sys.modules, "dynaprot_viz.plugin.chimerax.adapter", None)
    runpy.run_path(str(COMMAND_FILE), init_globals={"session": chimerax_stub})
    errors = [m for kind, m in chimerax_stub.logger.messages if kind == "error"]
    assert len(errors) == 1 and "pip install dynaprot-viz" in errors[0]
    assert not chimerax_stub.registered


def test_dynaprot_command_through_stub_session(registered):
    session = registered
    structure = StubStructure(UBQ)
    _, dynaprot = session.registered["dynaprot"]
    dynaprot(session, [structure], model="anm", probability=0.7, samples=5, palette="viridis")
    expected = dv.predict(UBQ, model="anm")
    u6 = anisou_from_marginals(expected.marginals)
    # aniso_u6 on every C-alpha = Sigma_i (float32), nothing on other atoms
    by_key = {(r.chain_id, r.number): r for r in structure.residues}
    for i, r in enumerate(expected.residues):
        res = by_key[(r.chain, r.number)]
        np.testing.assert_allclose(res.find_atom("CA").aniso_u6, u6[i], rtol=1e-6, atol=1e-9)
        assert all(a.aniso_u6 is None for a in res.atoms if a.name != "CA")
    commands = [c for c, _ in session.calls]
    # RMSF attribute file, colouring, ellipsoids at p = 0.7
    text = session.calls[0][1]
    assert commands[0].endswith('dynaprot_rmsf.defattr" format defattr')
    values = {line.split("\t")[1]: float(line.split("\t")[2]) for line in text.splitlines() if line.startswith("\t")}
    assert len(values) == len(expected.residues)
    np.testing.assert_allclose([values[f"#1/A:{r.number}"] for r in expected.residues], expected.rmsf, rtol=1e-5)
    assert commands[1].startswith("color byattribute r:dynaprot_rmsf #1 palette viridis range ")
    assert f"aniso style #1 scale {ellipsoid_scale(0.7):.5f}" in commands
    assert "aniso #1@CA" in commands
    # ensemble as one model with 5 coordinate sets
    (ens_call,) = [(c, t) for c, t in session.calls if "coordsets true" in c]
    assert ens_call[1].count("\nMODEL") + ens_call[1].startswith("MODEL") == 5
    assert "rename #2 dynaprot_ensemble_1" in commands
    # one named selection per pocket, best first
    pockets = find_pockets(expected)
    names = [c for c in commands if c.startswith("name frozen ")]
    assert len(names) == len(pockets) > 0
    for k, (cmd, pocket) in enumerate(zip(names, pockets), start=1):
        assert cmd.startswith(f"name frozen dp1_pocket{k} #1/A:")
        listed = cmd.split("#1/A:")[1].split(",")
        assert listed == [str(expected.residues[i].number) for i in pocket.residues]


def test_coupling_command_through_stub_session(registered):
    session = registered
    structure = StubStructure(UBQ)
    _, dynaprot = session.registered["dynaprot"]
    _, coupling = session.registered["dynaprot coupling"]
    with pytest.raises(UserError, match="run 'dynaprot #1' first"):
        coupling(session, [structure.residues[22]])
    dynaprot(session, [structure], model="anm", samples=0)
    assert not any("coordsets" in c for c, _ in session.calls)
    corr = coupling(session, [structure.residues[22]])
    expected = dv.predict(UBQ, model="anm")
    np.testing.assert_allclose(corr, expected.correlation[22])
    cmd, text = [(c, t) for c, t in session.calls if "dynaprot_coupling.defattr" in c][0]
    assert "attribute: dynaprot_coupling" in text and "\t#1/A:23\t1\n" in text
    assert session.calls[-1][0] == "color byattribute r:dynaprot_coupling #1 palette -1,blue:0,white:1,red"
    with pytest.raises(UserError, match="exactly one residue"):
        coupling(session, structure.residues[:2])


def test_command_errors_are_user_errors(registered):
    session = registered
    _, dynaprot = session.registered["dynaprot"]
    structure = StubStructure(UBQ)
    with pytest.raises(UserError, match="probability must be between 0 and 1"):
        dynaprot(session, [structure], model="anm", probability=1.5)
    with pytest.raises(UserError, match="model must be one of"):
        dynaprot(session, [structure], model="nosuch")
    with pytest.raises(UserError, match="palette must be"):
        dynaprot(session, [structure], model="anm", palette="blue:")
    adk = StubStructure(ROOT / "tests" / "data" / "1ake.cif", atomspec="#3")
    dynaprot(session, [adk], model="anm", chain="B", samples=0)  # second chain of a 2-chain file
    assert any(c.startswith("aniso #3@CA") for c, _ in session.calls)
    cas = [r.find_atom("CA") for r in adk.residues if r.chain_id == "B" and r.find_atom("CA")]
    assert all(a.aniso_u6 is not None for a in cas)
    assert all(r.find_atom("CA").aniso_u6 is None for r in adk.residues if r.chain_id == "A" and r.find_atom("CA"))


def test_bundle_pyproject_lists_commands():
    import tomllib

    data = tomllib.loads((ROOT / "plugin" / "chimerax" / "bundle" / "pyproject.toml").read_text())
    assert data["build-system"]["build-backend"] == "chimerax.bundle_builder.cx_pep517"
    assert data["project"]["name"].startswith("ChimeraX-")
    assert set(data["tool"]["chimerax"]["command"]) == {"dynaprot", "dynaprot coupling", "dynaprot compare"}
    src = (ROOT / "plugin" / "chimerax" / "bundle" / "src" / "__init__.py").read_text()
    assert "bundle_api" in src and "register_command(ci.name, logger)" in src


ATLAS_1AB1 = ROOT.parent / "shared" / "data" / "atlas_chains" / "1ab1_A.pdb"


def test_blank_chain_through_stub_session(registered):
    """An MD file with blank chain ids (ChimeraX may report the id as " "): U on every
    C-alpha, and residue specs without a chain part (``#1:12``), which '/' cannot name."""
    if not ATLAS_1AB1.exists():
        pytest.skip("../shared/data/atlas_chains/1ab1_A.pdb not present (blank chain ids)")
    session = registered
    structure = StubStructure(ATLAS_1AB1)
    for r in structure.residues:
        r.chain_id = " "
    _, dynaprot = session.registered["dynaprot"]
    dynaprot(session, [structure], model="anm", samples=0)
    expected = dv.predict(ATLAS_1AB1, model="anm")
    cas = [r.find_atom("CA") for r in structure.residues]
    assert len(cas) == 46 and all(a.aniso_u6 is not None for a in cas)
    text = session.calls[0][1]
    values = {line.split("\t")[1]: float(line.split("\t")[2]) for line in text.splitlines() if line.startswith("\t")}
    np.testing.assert_allclose([values[f"#1:{r.number}"] for r in expected.residues], expected.rmsf, rtol=1e-5)
    names = [c for c, _ in session.calls if c.startswith("name frozen ")]
    assert names and all(" #1:" in c and "/" not in c for c in names)


# ----------------------------------------------------------------------------- complexes (issue 14)
def _hvr():
    import gemmi

    site = Path(gemmi.__file__).resolve().parent
    site = site if (site / "MDAnalysisTests").exists() else site.parent
    path = site / "MDAnalysisTests" / "data" / "1hvr.pdb"  # HIV-1 protease dimer, chains A and B
    if not path.exists():
        pytest.skip("1hvr.pdb not installed (it comes with the test dependency MDAnalysisTests)")
    return path


def _defattr_values(text):
    return {line.split("\t")[1]: float(line.split("\t")[2]) for line in text.splitlines() if line.startswith("\t")}


def test_two_chain_structure_is_one_complex_through_stub_session(registered):
    """`dynaprot #1` on a dimer: one prediction over both chains (the complex's ANM, not two
    monomers), aniso on the C-alphas of both chains, attribute specs naming each residue's chain."""
    path = _hvr()
    session = registered
    structure = StubStructure(path)
    _, dynaprot = session.registered["dynaprot"]
    dynaprot(session, [structure], model="anm", samples=0)
    expected = dv.predict(path, model="anm", chain="all")
    assert [c for c in dict.fromkeys(r.chain for r in expected.residues)] == ["A", "B"]
    result = session._dynaprot_results["#1"]
    assert result.dynamics.n_residues == expected.n_residues == 198
    np.testing.assert_allclose(result.dynamics.coupling, expected.coupling, rtol=1e-8, atol=1e-10)
    # inter-chain coupling is there: one network, not two separate monomers
    chains = np.array([r.chain for r in result.dynamics.residues])
    assert np.abs(result.dynamics.coupling[np.ix_(chains == "A", chains == "B")]).max() > 1e-3
    u6 = anisou_from_marginals(expected.marginals)
    by_key = {(r.chain_id, r.number): r for r in structure.residues}
    for i, r in enumerate(expected.residues):
        np.testing.assert_allclose(by_key[(r.chain, r.number)].find_atom("CA").aniso_u6, u6[i], rtol=1e-6, atol=1e-9)
    infos = [m for level, m in session.logger.messages if level == "info"]
    assert "dynaprot #1: chains A, B predicted as one complex (198 residues)" in infos
    values = _defattr_values(session.calls[0][1])
    assert {k.split(":")[0] for k in values} == {"#1/A", "#1/B"}
    np.testing.assert_allclose([values[f"#1/{r.chain}:{r.number}"] for r in expected.residues], expected.rmsf,
                               rtol=1e-5)
    # coupling command on a residue of chain B reads the complex's row
    _, coupling = session.registered["dynaprot coupling"]
    b_res = next(r for r in structure.residues if r.chain_id == "B" and r.number == 50)
    corr = coupling(session, [b_res])
    i = next(k for k, r in enumerate(expected.residues) if (r.chain, r.number) == ("B", 50))
    np.testing.assert_allclose(corr, expected.correlation[i], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("chain, chains", [("A,B", {"A", "B"}), ("all", {"A", "B"}), ("B", {"B"})])
def test_chain_option_selects_chains_through_stub_session(registered, chain, chains):
    path = _hvr()
    session = registered
    structure = StubStructure(path, atomspec="#4")
    _, dynaprot = session.registered["dynaprot"]
    dynaprot(session, [structure], model="anm", chain=chain, samples=0)
    dyn = session._dynaprot_results["#4"].dynamics
    assert {r.chain for r in dyn.residues} == chains
    with_u = {r.chain_id for r in structure.residues if r.find_atom("CA") is not None
              and r.find_atom("CA").aniso_u6 is not None}
    assert with_u == chains
    assert {k.split(":")[0] for k in _defattr_values(session.calls[0][1])} == {f"#4/{c}" for c in chains}
