"""The ChimeraX side of ``dynaprot``: session in, ChimeraX objects and commands out.

Thin on purpose: the structure goes out as PDB text, :func:`dynaprot_viz.plugin.options.compute`
predicts, and the result comes back as

- ``aniso_u6`` = Sigma_i (Å², U11 U22 U33 U12 U13 U23) on each C-alpha, drawn by
  ``aniso`` at the chosen probability (``aniso style`` scale sqrt(chi2_3.ppf(p)));
- a residue attribute ``dynaprot_rmsf`` (Å) read from a defattr file, and
  ``color byattribute`` with the chosen palette;
- the sampled ensemble opened as one model with K coordinate sets
  (``open ... coordsets true``; play with ``coordset``);
- ``name frozen dpN_pocketK`` per pocket patch.

A structure with several protein chains is predicted as one complex (one ANM
network over all chains, :func:`~dynaprot_viz.plugin.options.compute`), attributes and
aniso set on every chain, each residue named by its own chain (``#1/A:12``,
``#1/B:12``); ``chain A`` / ``chain A,B`` / ``chain all`` chooses the chains.

``dynaprot coupling <residue>`` colours the structure by the correlation
(DCCM, -1..1) with that residue.  ChimeraX is imported only inside functions.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ...core.errors import InputError
from ...core.gaussian import anisou_from_marginals
from ..options import compute, parse_options, residue_index
from . import (
    COUPLING_ATTRIBUTE,
    COUPLING_PALETTE,
    DEFAULT_PALETTE,
    RMSF_ATTRIBUTE,
    check_palette,
    defattr_text,
    display_commands,
    model_tag,
    pocket_commands,
)

__all__ = [
    "structure_pdb_text", "dynaprot", "dynaprot_coupling", "dynaprot_compare", "compare_commands", "command_descriptions", "register_command",
    "register_commands", "DEFAULT_SAMPLES",
]

DEFAULT_SAMPLES = 20


def _run(session, command: str):
    from chimerax.core.commands import run

    return run(session, command, log=False)


def _user_error(message: str):
    try:
        from chimerax.core.errors import UserError
    except ImportError:  # only outside ChimeraX (tests)
        return InputError(message)
    return UserError(message)


def _results(session) -> dict:
    store = getattr(session, "_dynaprot_results", None)
    if store is None:
        store = {}
        setattr(session, "_dynaprot_results", store)
    return store


def structure_pdb_text(structure) -> str:
    """PDB text of a ChimeraX atomic structure's residues (untransformed coordinates, Å)."""
    import gemmi

    st = gemmi.Structure()
    model = gemmi.Model("1")
    chains: dict[str, gemmi.Chain] = {}
    for res in structure.residues:
        cid = str(res.chain_id).strip()  # a blank id may come as " "; gemmi reads it back as ""
        if cid not in chains:
            chains[cid] = gemmi.Chain(cid)
        gr = gemmi.Residue()
        gr.name = str(res.name)
        gr.seqid = gemmi.SeqId(int(res.number), (str(res.insertion_code).strip() or " "))
        for atom in res.atoms:
            ga = gemmi.Atom()
            ga.name = str(atom.name)
            ga.element = gemmi.Element(str(atom.element.name))
            ga.pos = gemmi.Position(*map(float, atom.coord))
            ga.b_iso = float(atom.bfactor)
            ga.occ = float(atom.occupancy)
            gr.add_atom(ga)
        chains[cid].add_residue(gr)
    for ch in chains.values():
        model.add_chain(ch)
    st.add_model(model)
    st.setup_entities()
    return st.make_pdb_string()


def _structure_name(structure) -> str:
    return f"{getattr(structure, 'name', 'structure')} {structure.atomspec}"


def dynaprot(session, structures, model=None, chain=None, probability=0.5, samples=DEFAULT_SAMPLES,
             palette=DEFAULT_PALETTE, seed=0, weights=None):
    """``dynaprot`` command: predict and show dynamics of each given structure.

    Every protein chain of a structure is predicted together as one complex unless
    ``chain`` names some (``"A"``, ``"A,B"``; ``"all"`` = every protein chain)."""
    try:
        opts = parse_options(model, probability, samples, palette, chain=chain, seed=seed, weights=weights)
        check_palette(opts.palette)
    except InputError as exc:
        raise _user_error(f"dynaprot: {exc}") from None
    for s in structures:
        try:
            _one_structure(session, s, opts)
        except InputError as exc:
            raise _user_error(f"dynaprot {s.atomspec}: {exc}") from None


def _one_structure(session, s, opts):
    result = compute(structure_pdb_text(s), opts)
    dyn = result.dynamics
    spec = s.atomspec
    by_key = {(str(r.chain_id).strip(), int(r.number), str(r.insertion_code).strip()): r for r in s.residues}
    u6 = anisou_from_marginals(dyn.marginals).astype(np.float32)
    missing = []
    for (chain, number, icode), i in residue_index(dyn).items():
        res = by_key.get((chain, number, icode))
        ca = res.find_atom("CA") if res is not None else None
        if ca is None:
            missing.append(dyn.residues[i].label())
            continue
        ca.aniso_u6 = u6[i]
    if missing:
        session.logger.warning(f"dynaprot: no C-alpha for {len(missing)} residues (first {missing[0]})")
    rmsf = dyn.rmsf
    with tempfile.TemporaryDirectory(prefix="dynaprot-cx-") as tmp:
        attr = os.path.join(tmp, f"{RMSF_ATTRIBUTE}.defattr")
        with open(attr, "w", encoding="utf-8") as fh:
            fh.write(defattr_text(RMSF_ATTRIBUTE, rmsf, dyn.residues, spec, comment=f"RMSF (A), {dyn.model_name}"))
        for command in display_commands(spec, attr, opts.palette, opts.probability, float(rmsf.min()), float(rmsf.max())):
            _run(session, command)
        ensemble_spec = None
        if result.ensemble_pdb:
            ens = os.path.join(tmp, "ensemble.pdb")
            with open(ens, "w", encoding="utf-8") as fh:
                fh.write(result.ensemble_pdb)
            models = _run(session, f'open "{ens}" coordsets true') or []
            if models:
                ensemble_spec = models[0].atomspec
                _run(session, f"rename {ensemble_spec} dynaprot_ensemble_{model_tag(spec)}")
    for command in pocket_commands(spec, dyn, result.pockets):
        _run(session, command)
    _results(session)[spec] = result
    log = session.logger
    log.info(dyn.summary())
    chains = list(dict.fromkeys(r.chain for r in dyn.residues))
    if len(chains) > 1:
        log.info(f"dynaprot {spec}: chains {', '.join(c or '(blank)' for c in chains)} predicted as one complex "
                 f"({dyn.n_residues} residues)")
    log.info(f"dynaprot {_structure_name(s)}: attribute {RMSF_ATTRIBUTE} ({dyn.rmsf_unit}), "
             f"aniso at p = {opts.probability:g}")
    if ensemble_spec:
        log.info(f"dynaprot: ensemble {ensemble_spec} with {len(result.ensemble)} coordinate sets (coordset {ensemble_spec})")
    for k, p in enumerate(result.pockets, start=1):
        log.info(f"dynaprot: pocket dp{model_tag(spec)}_pocket{k}: {len(p)} residues, score {p.score:.2f}")
    for w in result.warnings:
        log.warning(f"dynaprot: {w}")
    return result


def dynaprot_coupling(session, residues, palette=COUPLING_PALETTE):
    """``dynaprot coupling`` command: colour by correlation (DCCM) with one residue."""
    residues = list(residues)
    if len(residues) != 1:
        raise _user_error(f"dynaprot coupling: give exactly one residue, got {len(residues)}")
    res = residues[0]
    spec = res.structure.atomspec
    result = _results(session).get(spec)
    if result is None:
        raise _user_error(f"dynaprot coupling: run 'dynaprot {spec}' first")
    dyn = result.dynamics
    i = residue_index(dyn).get((str(res.chain_id).strip(), int(res.number), str(res.insertion_code).strip()))
    if i is None:
        raise _user_error(f"dynaprot coupling: residue {res} is not part of the prediction")
    try:
        palette = check_palette(palette)
    except InputError as exc:
        raise _user_error(f"dynaprot coupling: {exc}") from None
    corr = np.asarray(dyn.correlation[i])
    with tempfile.TemporaryDirectory(prefix="dynaprot-cx-") as tmp:
        attr = os.path.join(tmp, f"{COUPLING_ATTRIBUTE}.defattr")
        with open(attr, "w", encoding="utf-8") as fh:
            fh.write(defattr_text(COUPLING_ATTRIBUTE, corr, dyn.residues, spec,
                                  comment=f"correlation with {dyn.residues[i].label()}"))
        _run(session, f'open "{attr}" format defattr')
    _run(session, f"color byattribute r:{COUPLING_ATTRIBUTE} {spec} palette {palette}")
    session.logger.info(f"dynaprot: {spec} coloured by correlation with {dyn.residues[i].label()}")
    return corr


#: residue attribute holding delta RMSF (B - A, Å) after ``dynaprot compare``
DELTA_ATTRIBUTE = "dynaprot_delta_rmsf"


def compare_commands(spec_a: str, spec_b: str, attr_a: str, attr_b: str, scale: float, start, end,
                     palette: str = "blue:white:red") -> list[str]:
    """ChimeraX commands of ``dynaprot compare``: delta RMSF colours on both structures
    (symmetric -scale..scale, grey where unaligned) and displacement arrows (cylinder + cone
    per arrow, Å, in A's coordinates) grouped in one model ``dynaprot_displacement``."""
    low, mid, high = (palette.split(":") + ["blue", "white", "red"])[:3] if palette.count(":") == 2 else \
        ("blue", "white", "red")
    pal = f"{-scale:.4g},{low}:0,{mid}:{scale:.4g},{high}"
    out = []
    for spec, path in ((spec_a, attr_a), (spec_b, attr_b)):
        p = str(path).replace('"', '\\"')
        out += [f"color {spec} grey", f'open "{p}" format defattr',
                f"color byattribute r:{DELTA_ATTRIBUTE} {spec} palette {pal} noValueColor grey"]
    for s, e in zip(np.asarray(start), np.asarray(end)):
        head = e - 0.25 * (e - s) if np.linalg.norm(e - s) > 4 else s + 0.6 * (e - s)
        xyz = lambda v: ",".join(f"{c:.2f}" for c in v)  # noqa: E731
        out.append(f"shape cylinder fromPoint {xyz(s)} toPoint {xyz(head)} radius 0.3 color #1a40e6 "
                   "name dynaprot_displacement")
        out.append(f"shape cone fromPoint {xyz(head)} toPoint {xyz(e)} radius 0.7 color #1a40e6 "
                   "name dynaprot_displacement")
    return out


def dynaprot_compare(session, structures, model=None, palette="blue:white:red", arrows=True):
    """``dynaprot compare #1 #2``: delta RMSF (B - A) on both structures, displacement arrows on A."""
    from ...api import predict
    from ...compare_view import arrow_segments, color_scale
    from ...core.compare import compare

    structures = list(structures)
    if len(structures) != 2:
        raise _user_error(f"dynaprot compare: give exactly two structures (e.g. #1 #2), got {len(structures)}")
    try:
        opts = parse_options(model)
        dyns = []
        with tempfile.TemporaryDirectory(prefix="dynaprot-cx-") as tmp:
            for k, s in enumerate(structures):
                path = os.path.join(tmp, f"side{k}.pdb")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(structure_pdb_text(s))
                dyns.append(predict(path, model=opts.model))
            a, b = structures
            cmp = compare(dyns[0], dyns[1], name_a=a.atomspec, name_b=b.atomspec)
            scale = color_scale(cmp, "delta_rmsf").vmax
            paths = []
            for s, idx, residues in ((a, cmp.index_a, cmp.residues_a), (b, cmp.index_b, cmp.residues_b)):
                path = os.path.join(tmp, f"{DELTA_ATTRIBUTE}_{model_tag(s.atomspec)}.defattr")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(defattr_text(DELTA_ATTRIBUTE, cmp.delta_rmsf, [residues[i] for i in idx], s.atomspec,
                                          comment="delta RMSF (A), B - A"))
                paths.append(path)
            start, end, _ = arrow_segments(cmp, "a") if arrows else (np.zeros((0, 3)), np.zeros((0, 3)), None)
            for command in compare_commands(a.atomspec, b.atomspec, paths[0], paths[1], scale, start, end, palette):
                _run(session, command)
    except InputError as exc:
        raise _user_error(f"dynaprot compare: {exc}") from None
    _results(session)[f"compare {a.atomspec} {b.atomspec}"] = cmp
    for line in cmp.summary().splitlines():
        session.logger.info(f"dynaprot compare: {line}")
    return cmp


def command_descriptions() -> dict:
    """``{command name: (CmdDesc, function)}`` for ChimeraX's ``register``."""
    from chimerax.atomic import AtomicStructuresArg, ResiduesArg
    from chimerax.core.commands import BoolArg, CmdDesc, FloatArg, IntArg, StringArg

    return {
        "dynaprot": (CmdDesc(
            required=[("structures", AtomicStructuresArg)],
            keyword=[("model", StringArg), ("chain", StringArg), ("probability", FloatArg),
                     ("samples", IntArg), ("palette", StringArg), ("seed", IntArg), ("weights", StringArg)],
            synopsis="predict residue dynamics: RMSF colours, ellipsoids, ensemble, pockets",
        ), dynaprot),
        "dynaprot coupling": (CmdDesc(
            required=[("residues", ResiduesArg)],
            keyword=[("palette", StringArg)],
            synopsis="colour a dynaprot result by correlation with one residue",
        ), dynaprot_coupling),
        "dynaprot compare": (CmdDesc(
            required=[("structures", AtomicStructuresArg)],
            keyword=[("model", StringArg), ("palette", StringArg), ("arrows", BoolArg)],
            synopsis="compare the dynamics of two structures: delta RMSF colours, displacement arrows",
        ), dynaprot_compare),
    }


def register_command(name: str, logger) -> None:
    """Register one command (``dynaprot``, ``dynaprot coupling`` or ``dynaprot compare``) with ChimeraX."""
    from chimerax.core.commands import register

    desc, func = command_descriptions()[name]
    register(name, desc, func, logger=logger)


def register_commands(logger) -> None:
    """Register ``dynaprot`` and ``dynaprot coupling`` with ChimeraX."""
    for name in command_descriptions():
        register_command(name, logger)
