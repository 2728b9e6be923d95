"""DynaProt in PyMOL: the ``dynaprot`` and ``dynaprot_coupling`` commands and a Plugin menu entry.

A thin converter between :class:`dynaprot_viz.Dynamics` and PyMOL objects: it
exports the selection as PDB text, runs :func:`dynaprot_viz.plugin.options.compute`
(prediction, ensemble, pockets) and loads the results back.

Install either way:

- ``pip install "dynaprot-viz[pymol]"`` into PyMOL's Python, then in PyMOL (or
  ``~/.pymolrc.py``): ``from dynaprot_viz.plugin.pymol import __init_plugin__; __init_plugin__()``
- or Plugin > Plugin Manager > Install New Plugin with the zip made by
  ``python plugin/pymol/build_zip.py`` (it still needs dynaprot_viz installed; it
  says how in one line when it is missing).

What ``dynaprot obj`` leaves in the session (``obj`` = the selection's object;
when ``obj`` holds several protein chains, the chain joins the names, ``obj_B_dynaprot``,
``obj_B_ensemble``, ``obj_B_pocket1``, so that running on chain A then chain B keeps
both sets; an object with one protein chain, or a blank chain id, keeps the short names):

- ``obj_dynaprot``: the predicted chain, B-factor column = RMSF_i (Å), coloured
  with ``spectrum b``; anisotropic U = Sigma_i (Å²) on the C-alpha atoms, drawn
  with ``show ellipsoids`` at ``ellipsoid_probability`` = the chosen probability.
- ``obj_ensemble``: K sampled C-alpha conformations, one state each (play them
  with the movie controls).
- ``obj_pocket1``, ``obj_pocket2``...: one named selection per pocket patch, best first.
- ``dynaprot_coupling residue`` colours ``obj_dynaprot`` by the correlation
  C~_ij (DCCM, -1..1) of every residue j with the chosen residue i.

The Qt dialog is created only when PyMOL has Qt; headless PyMOL (``pymol -cq``,
``pymol2``) still gets both commands.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ...core.errors import InputError
from ..options import PredictionResult, ViewerOptions, compute, parse_options, residue_index

__all__ = [
    "__init_plugin__",
    "register",
    "dynaprot",
    "dynaprot_coupling",
    "dynaprot_compare",
    "collect",
    "apply_result",
    "BackgroundJob",
    "result_for",
    "DEFAULT_PALETTE",
    "COUPLING_PALETTE",
]

#: PyMOL ``spectrum`` palette for RMSF (low = blue, high = red)
DEFAULT_PALETTE = "blue_white_red"
#: colours interpolated over correlation -1 .. 1 by ``dynaprot_coupling``
COUPLING_PALETTE = "blue white red"
DEFAULT_SAMPLES = 20

_RESULTS: dict[str, PredictionResult] = {}  # result object name -> result
_LOCK = threading.Lock()


def _cmd(_self):
    if _self is not None:
        return _self
    from pymol import cmd

    return cmd


def _error(message: str):
    from pymol import CmdException

    return CmdException(message)


# ----------------------------------------------------------------------------- checks
def _check_palette(palette: str, cmd) -> str:
    """A ``spectrum`` palette name or a list of at least two colour names."""
    from pymol.constants_palette import palette_dict

    palette = palette.strip() or DEFAULT_PALETTE
    if palette in palette_dict:
        return palette
    colours = re.split(r"[\s_]+", palette)
    known = len(colours) >= 2 and all(_colour_tuple(c, cmd) is not None for c in colours)
    if not known:
        raise InputError(
            f"palette must be a PyMOL spectrum palette (e.g. blue_white_red, rainbow) "
            f"or at least two colour names, got {palette!r}"
        )
    return " ".join(colours)


def _colour_tuple(name: str, cmd):
    """RGB in 0..1 of a PyMOL colour name, or None when PyMOL does not know it."""
    from pymol import CmdException

    try:
        if cmd.get_color_index(name) < 0:
            return None
        return cmd.get_color_tuple(name)
    except CmdException:
        return None


def _object_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "dynaprot"


def _resi_selector(chain: str, number: int, icode: str) -> str:
    resi = f"{number}{icode}".replace("-", "\\-")
    chain_sel = f"chain {chain}" if chain.strip() else "chain ''"
    return f"({chain_sel} and resi {resi})"


# ----------------------------------------------------------------------------- the three steps
def collect(selection: str, _self=None) -> tuple[str, str]:
    """PDB text of ``selection`` (current state) and the base name for the results.

    The base name is the selection's object, ``obj``, or ``obj_<chain>`` when that
    object holds several protein chains (and the chain id is not blank): results of
    two chains of one object never overwrite each other.

    Runs on PyMOL's thread.  Raises InputError when the selection is empty.  A
    selection spanning several protein chains is one complex (see
    :func:`dynaprot_viz.plugin.options.compute`); the base name is then ``obj`` when
    all of the object's protein chains are selected, else ``obj_<chains>`` (``obj_AB``).
    """
    cmd = _cmd(_self)
    selection = str(selection).strip() or "(all)"
    try:
        n = cmd.count_atoms(f"({selection}) and polymer.protein")
    except Exception:  # PyMOL raises its own error type for a bad selection expression
        raise InputError(f"selection {selection!r} is not a valid PyMOL selection") from None
    if n == 0:
        raise InputError(f"selection {selection!r} holds no protein atoms")
    chains = sorted(set(cmd.get_chains(f"({selection}) and polymer.protein")))
    objects = cmd.get_object_list(f"({selection})") or []
    base = _object_name(objects[0] if len(objects) == 1 else selection)
    if len(objects) == 1 and chains and all(c.strip() for c in chains):
        object_chains = set(cmd.get_chains(f"({objects[0]}) and polymer.protein"))
        if len(object_chains) > 1 and set(chains) != object_chains:
            # some chains of a multi-chain object: they join the name (obj_B, obj_AB)
            base = _object_name(f"{objects[0]}_{''.join(chains)}")
    pdb = cmd.get_pdbstr(f"({selection}) and not solvent", state=-1)
    return pdb, base


def apply_result(result: PredictionResult, base: str, _self=None, quiet: int = 1) -> str:
    """Load a :class:`PredictionResult` into PyMOL; returns the result object's name.

    Runs on PyMOL's thread.  See the module docstring for what is created.
    """
    import os
    import tempfile

    cmd = _cmd(_self)
    opts = result.options
    dyn = result.dynamics
    name, ens_name = f"{base}_dynaprot", f"{base}_ensemble"
    palette = _check_palette(opts.palette, cmd)
    index = residue_index(dyn)
    rmsf = dyn.rmsf
    lookup = {(c, f"{n}{i}"): float(rmsf[k]) for (c, n, i), k in index.items()}
    with tempfile.TemporaryDirectory(prefix="dynaprot-pymol-") as tmp:
        ann = os.path.join(tmp, "annotated.pdb")
        with open(ann, "w", encoding="utf-8") as fh:
            fh.write(result.annotated_pdb)
        cmd.delete(name)
        cmd.load(ann, name, format="pdb", quiet=1)
        if result.ensemble_pdb:
            ens = os.path.join(tmp, "ensemble.pdb")
            with open(ens, "w", encoding="utf-8") as fh:
                fh.write(result.ensemble_pdb)
            cmd.delete(ens_name)
            cmd.load(ens, ens_name, format="pdb", quiet=1, multiplex=0)
    # B column = RMSF (Å); the U tensors read from ANISOU are untouched
    space = {"lookup": lookup}
    cmd.alter(name, "b = lookup.get((chain, resi), b)", space=space)
    cmd.hide("everything", name)
    cmd.show("cartoon", name)
    cmd.show("ellipsoids", f"{name} and name CA")
    cmd.set("ellipsoid_probability", opts.probability, name)
    lo, hi = float(rmsf.min()), float(rmsf.max())
    cmd.spectrum("b", palette, name, minimum=lo, maximum=hi)
    if result.ensemble_pdb:
        cmd.alter(ens_name, "b = lookup.get((chain, resi), b)", space=space)
        cmd.set("ribbon_trace_atoms", 1, ens_name)
        cmd.hide("everything", ens_name)
        cmd.show("ribbon", ens_name)
        cmd.spectrum("b", palette, ens_name, minimum=lo, maximum=hi)
    for old in cmd.get_names("selections"):
        if re.fullmatch(rf"{re.escape(base)}_pocket\d+", old):
            cmd.delete(old)
    for k, pocket in enumerate(result.pockets, start=1):
        parts = [_resi_selector(*_key(dyn.residues[i])) for i in pocket.residues]
        cmd.select(f"{base}_pocket{k}", f"{name} and ({' or '.join(parts)})", enable=0)
    with _LOCK:
        _RESULTS[name] = result
    if not int(quiet):
        print(" DynaProt: " + dyn.summary().replace("\n", "\n DynaProt: "))
        print(f" DynaProt: object {name}: B = RMSF ({lo:.2f}-{hi:.2f} {dyn.rmsf_unit}), U on C-alpha, "
              f"ellipsoids at p = {opts.probability:g}")
        if result.ensemble_pdb:
            print(f" DynaProt: object {ens_name}: {len(result.ensemble)} states (use the movie controls)")
        for k, pocket in enumerate(result.pockets, start=1):
            print(f" DynaProt: selection {base}_pocket{k}: {len(pocket)} residues, score {pocket.score:.2f}")
        for w in result.warnings:
            print(f" DynaProt-Warning: {w}")
    return name


def _split_resi(resi: str) -> tuple[int, str]:
    """PyMOL ``resi`` ('42', '42B', '-3') -> (number, insertion code)."""
    m = re.fullmatch(r"(-?\d+)(.*)", resi.strip())
    if m is None:
        raise InputError(f"residue number {resi!r} is not understood")
    return int(m.group(1)), m.group(2).strip()


def _key(residue) -> tuple[str, int, str]:
    return residue.chain, int(residue.number), residue.icode.strip()


def _result_name(object_name: str, chain: str = "") -> str:
    """The result object for ``object_name``: itself, ``<obj>_<chain>_dynaprot`` (a chain
    of a multi-chain object) or ``<obj>_dynaprot``."""
    candidates = [object_name]
    if chain.strip():
        candidates.append(f"{_object_name(f'{object_name}_{chain}')}_dynaprot")
    candidates.append(f"{object_name}_dynaprot")
    with _LOCK:
        for name in candidates:
            if name in _RESULTS:
                return name
    raise InputError(f"no DynaProt result for object {object_name!r}; run 'dynaprot {object_name}' first")


def result_for(object_name: str) -> PredictionResult:
    """The prediction loaded as ``object_name`` (``X_dynaprot`` or ``X_B_dynaprot``), or for the
    object ``X`` (when it has one predicted chain)."""
    return _RESULTS[_result_name(object_name)]


# ----------------------------------------------------------------------------- commands
def dynaprot(selection="(all)", model="", probability="0.5", samples=str(DEFAULT_SAMPLES),
             palette=DEFAULT_PALETTE, chain="", seed="0", weights="", quiet=0, *, _self=None):
    """
DESCRIPTION

    "dynaprot" predicts residue-level Gaussian dynamics of one protein chain
    and shows them: B-factors = RMSF (Å) with spectrum colours, anisotropic
    ellipsoids on the C-alpha atoms, a multi-state sampled ensemble and one
    named selection per pocket patch.

USAGE

    dynaprot selection [, model [, probability [, samples [, palette ]]]]

ARGUMENTS

    selection = str: protein atoms; several chains are predicted as one complex
                (ANM couples them) {default: (all)}
    model = str: predictor (anm, dynaprot, resaxial, ...) {default: the
            winner of the shipped held-out evaluation, today anm; see
            dynaprot-viz --help}
    probability = float in (0, 1): probability enclosed by each ellipsoid
            (sets ellipsoid_probability) {default: 0.5}
    samples = int: number K of sampled conformations, 0 for none {default: 20}
    palette = str: spectrum palette for RMSF {default: blue_white_red}
    weights = str: learned models only, a weights file from
            dynaprot-viz train --export {default: the shipped weights}

RESULT

    obj_dynaprot (B = RMSF, U = Sigma_i on CA), obj_ensemble (K states),
    selections obj_pocket1, obj_pocket2, ... (best first).  When obj holds
    several protein chains the chain is part of every name (obj_B_dynaprot,
    obj_B_ensemble, obj_B_pocket1): running on chain A, then B, keeps both.

EXAMPLES

    dynaprot 1ubi, anm
    dynaprot 1ake and chain A, anm, 0.9, 50, rainbow
    show ellipsoids, 1ubi_dynaprot and name CA

SEE ALSO

    dynaprot_coupling, spectrum, ellipsoid_probability
    """
    cmd = _cmd(_self)
    try:
        opts = parse_options(model, probability, samples, palette, chain=chain, seed=seed, weights=weights)
        _check_palette(opts.palette or DEFAULT_PALETTE, cmd)
        pdb, base = collect(selection, _self=cmd)
        result = compute(pdb, opts)
        return apply_result(result, base, _self=cmd, quiet=quiet)
    except (InputError, FileNotFoundError) as exc:
        raise _error(f"dynaprot: {exc}") from None


def dynaprot_coupling(residue, palette=COUPLING_PALETTE, quiet=0, *, _self=None):
    """
DESCRIPTION

    "dynaprot_coupling" colours a DynaProt result by the dynamic
    cross-correlation (DCCM, C~_ij = C_ij / sqrt(C_ii C_jj), -1 .. 1) of every
    residue with the chosen one: blue = moves against it, white = independent,
    red = moves with it.

USAGE

    dynaprot_coupling residue [, palette ]

ARGUMENTS

    residue = str: a selection naming ONE residue of an object that
              'dynaprot' produced (obj_dynaprot) or of the object it was run on
    palette = str: at least two colour names from -1 to 1 {default: blue white red}

EXAMPLES

    dynaprot_coupling 1ubi_dynaprot and resi 23
    dynaprot_coupling 1ubi and chain A and resi 48, blue_white_red
    """
    cmd = _cmd(_self)
    try:
        return _coupling(cmd, residue, palette, int(quiet))
    except InputError as exc:
        raise _error(f"dynaprot_coupling: {exc}") from None


def _coupling(cmd, residue, palette, quiet):
    colours = [c for c in re.split(r"[\s_]+", str(palette).strip() or COUPLING_PALETTE) if c]
    tuples = [_colour_tuple(c, cmd) for c in colours]
    if len(colours) < 2 or any(t is None for t in tuples):
        raise InputError(f"palette must be at least two colour names, got {palette!r}")
    found = []
    try:
        cmd.iterate(f"({residue}) and name CA", "found.append((model, chain, resi))", space={"found": found})
    except Exception:  # PyMOL's own error type for a bad selection expression
        raise InputError(f"selection {residue!r} is not a valid PyMOL selection") from None
    keys = set()
    for model, chain, resi in found:
        try:
            target = _result_name(model, chain)
        except InputError:
            continue  # an object without a prediction (e.g. the ensemble)
        keys.add((target, chain) + _split_resi(resi))
    if not keys:
        models = sorted({m for m, _, _ in found})
        if not models:
            raise InputError(f"selection {residue!r} holds no C-alpha atom")
        raise InputError(f"no DynaProt result for object {models[0]!r}; run 'dynaprot {models[0]}' first")
    if len(keys) != 1:
        raise InputError(f"selection {residue!r} must name exactly one residue, found {len(keys)}")
    target, chain, number, icode = keys.pop()
    result = _RESULTS[target]
    dyn = result.dynamics
    idx = residue_index(dyn).get((chain, int(number), icode))
    if idx is None:
        raise InputError(f"residue {chain}:{number}{icode} is not part of the DynaProt prediction")
    corr = np.asarray(dyn.correlation[idx])
    rgb = np.array(tuples, dtype=float)  # [M, 3] colours at -1 .. 1
    pos = (np.clip(corr, -1.0, 1.0) + 1.0) / 2.0 * (len(rgb) - 1)
    lo = np.minimum(pos.astype(int), len(rgb) - 2)
    frac = (pos - lo)[:, None]
    mixed = rgb[lo] * (1.0 - frac) + rgb[lo + 1] * frac  # [N, 3] in 0..1
    codes = {}
    for (c, n, i), k in residue_index(dyn).items():
        r, g, b = (int(round(255 * v)) for v in mixed[k])
        codes[(c, f"{n}{i}")] = 0x40000000 + (r << 16) + (g << 8) + b
    cmd.alter(target, "color = codes.get((chain, resi), color)", space={"codes": codes})
    cmd.recolor(target)
    if not quiet:
        label = dyn.residues[idx].label()
        order = np.argsort(corr)
        print(f" DynaProt: {target} coloured by correlation with {label} "
              f"({colours[0]} = -1, {colours[-1]} = +1)")
        print(f" DynaProt: most anti-correlated: {dyn.residues[order[0]].label()} ({corr[order[0]]:+.2f})")
    return corr


def dynaprot_compare(object_a, object_b, model="", palette=COUPLING_PALETTE, arrows="1", quiet=0, *, _self=None):
    """
DESCRIPTION

    "dynaprot_compare" predicts the dynamics of two chains of one protein
    (apo/holo, open/closed, mutant/wild type), aligns them by sequence and
    colours BOTH objects by delta RMSF = RMSF(B) - RMSF(A) (Å) on a symmetric
    diverging scale (blue: stiffer in B, white: no change, red: more flexible
    in B; grey: no partner in the alignment).  When the two differ in
    conformation, the displacement A -> B (after superposition) is drawn as
    CGO arrows on A, and the overlap of that displacement with each side's
    predicted motion is printed.

USAGE

    dynaprot_compare object_a, object_b [, model [, palette [, arrows ]]]

ARGUMENTS

    object_a, object_b = str: selections of ONE protein chain each
    model = str: predictor {default: the package's default model}
    palette = str: at least two colour names from -v to +v {default: blue white red}
    arrows = 0/1: draw displacement arrows {default: 1}

RESULT

    both objects recoloured; CGO object <a>_<b>_displacement.

EXAMPLES

    fetch 1ake 4ake, async=0
    dynaprot_compare 1ake and chain A, 4ake and chain A
    """
    cmd = _cmd(_self)
    try:
        return _compare(cmd, object_a, object_b, model, palette, arrows, int(quiet))
    except (InputError, FileNotFoundError) as exc:
        raise _error(f"dynaprot_compare: {exc}") from None


def _palette_rgb(palette, cmd) -> np.ndarray:
    colours = [c for c in re.split(r"[\s_]+", str(palette).strip() or COUPLING_PALETTE) if c]
    tuples = [_colour_tuple(c, cmd) for c in colours]
    if len(colours) < 2 or any(t is None for t in tuples):
        raise InputError(f"palette must be at least two colour names, got {palette!r}")
    return np.array(tuples, dtype=float)


def _mix(rgb: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Colours (N, 3) at positions t in 0..1 along the palette ``rgb`` (M, 3)."""
    pos = np.clip(t, 0.0, 1.0) * (len(rgb) - 1)
    lo = np.minimum(pos.astype(int), len(rgb) - 2)
    frac = (pos - lo)[:, None]
    return rgb[lo] * (1.0 - frac) + rgb[lo + 1] * frac


def _compare(cmd, object_a, object_b, model, palette, arrows, quiet):
    import os
    import tempfile

    from ...api import predict
    from ...compare_view import arrow_segments, color_scale
    from ...core.compare import compare

    opts = parse_options(model)
    rgb = _palette_rgb(palette, cmd)
    sides = []
    for sel in (object_a, object_b):
        pdb, base = collect(sel, _self=cmd)
        with tempfile.TemporaryDirectory(prefix="dynaprot-cmp-") as tmp:
            path = os.path.join(tmp, "selection.pdb")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(pdb)
            sides.append((sel, base, predict(path, model=opts.model)))
    (sel_a, base_a, dyn_a), (sel_b, base_b, dyn_b) = sides
    cmp = compare(dyn_a, dyn_b, name_a=base_a, name_b=base_b)
    scale = color_scale(cmp, "delta_rmsf").vmax
    grey = np.array(_colour_tuple("grey70", cmd) or (0.7, 0.7, 0.7))
    for sel, idx, residues in ((sel_a, cmp.index_a, cmp.residues_a), (sel_b, cmp.index_b, cmp.residues_b)):
        mixed = np.tile(grey, (len(residues), 1))
        mixed[idx] = _mix(rgb, (np.asarray(cmp.delta_rmsf) / scale + 1.0) / 2.0)
        codes = {}
        for r, c in zip(residues, mixed):
            red, green, blue = (int(round(255 * v)) for v in c)
            codes[(r.chain, f"{r.number}{r.icode.strip()}")] = 0x40000000 + (red << 16) + (green << 8) + blue
        cmd.alter(f"({sel})", "color = codes.get((chain, resi), color)", space={"codes": codes})
    cmd.recolor()
    name = _object_name(f"{base_a}_{base_b}_displacement")
    cmd.delete(name)
    start, end, _ = arrow_segments(cmp, "a")
    if int(float(str(arrows).strip() or 1)) and len(start):
        from pymol.cgo import CONE, CYLINDER

        obj = []
        for s, e in zip(start, end):
            head = e - 0.25 * (e - s) if np.linalg.norm(e - s) > 4 else s + 0.6 * (e - s)
            obj += [CYLINDER, *s, *head, 0.3, 0.1, 0.25, 0.9, 0.1, 0.25, 0.9]
            obj += [CONE, *head, *e, 0.7, 0.0, 0.1, 0.25, 0.9, 0.1, 0.25, 0.9, 1.0, 0.0]
        cmd.load_cgo(obj, name)
    with _LOCK:
        _COMPARISONS[name] = cmp
    if not quiet:
        print(" DynaProt: " + cmp.summary().replace("\n", "\n DynaProt: "))
        print(f" DynaProt: {sel_a} and {sel_b} coloured by delta RMSF (B - A), ±{scale:.2f} {cmp.rmsf_unit}")
    return cmp


_COMPARISONS: dict = {}  # displacement object name -> DynamicsComparison


# ----------------------------------------------------------------------------- background work
class BackgroundJob:
    """Run :func:`compute` on a worker thread; poll from the GUI thread.

    PyMOL's API is not called from the worker: :func:`collect` runs before and
    :func:`apply_result` after, both on the caller's thread.
    """

    _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynaprot")

    def __init__(self, pdb_text: str, options: ViewerOptions):
        self.future: Future = self._pool.submit(compute, pdb_text, options)

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> PredictionResult:
        """The result (re-raises the worker's exception)."""
        return self.future.result()


# ----------------------------------------------------------------------------- registration
def register(_self=None) -> None:
    """Add the ``dynaprot`` and ``dynaprot_coupling`` commands (no GUI needed)."""
    cmd = _cmd(_self)
    cmd.extend("dynaprot", dynaprot)
    cmd.extend("dynaprot_coupling", dynaprot_coupling)
    cmd.extend("dynaprot_compare", dynaprot_compare)
    try:
        cmd.auto_arg[0]["dynaprot"] = cmd.auto_arg[0]["zoom"]
        cmd.auto_arg[0]["dynaprot_coupling"] = cmd.auto_arg[0]["zoom"]
    except (AttributeError, KeyError, IndexError, TypeError):
        pass  # tab completion is optional


def __init_plugin__(app=None):
    """PyMOL plugin entry point: commands always, the menu entry when Qt is there."""
    register()
    try:
        from pymol.plugins import QtNotAvailableError, addmenuitemqt
    except ImportError:
        return
    try:
        addmenuitemqt("DynaProt...", _open_dialog)
    except QtNotAvailableError:
        pass  # headless or Tk-only PyMOL: the commands are enough


# The open dialog.  Not named ``_dialog``: importing the submodule ``._dialog``
# binds that name in this package's namespace to the module itself.
_DIALOG = None


def _open_dialog():
    """Menu callback of Plugin > DynaProt...: show the one dialog (created on first use)."""
    global _DIALOG
    from ._dialog import DynaProtDialog, _main_window

    if _DIALOG is None:
        _DIALOG = DynaProtDialog(_main_window())  # stays above PyMOL's window
    _DIALOG.show()
    _DIALOG.raise_()
    return _DIALOG
