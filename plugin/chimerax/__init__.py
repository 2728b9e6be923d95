"""DynaProt in ChimeraX: the viewer-free half of the ``dynaprot`` command.

Everything here is plain Python (no ``chimerax`` import), so it is tested
without ChimeraX: attribute-assignment (defattr) text, atom specs, the list of
ChimeraX commands a run issues.  :mod:`dynaprot_viz.plugin.chimerax.adapter`
is the thin part that talks to a ChimeraX session; ``dynaprot_chimerax.py``
registers it when ChimeraX opens the file (``open dynaprot_chimerax.py``), and
``bundle/`` packages it as a ChimeraX bundle.

Targets ChimeraX 1.6 or later (Python 3.9+, ``Atom.aniso_u6``, ``aniso``,
``color byattribute``, ``.defattr`` files read by ``open``).
"""

from __future__ import annotations

import re

import numpy as np

from ...core.errors import InputError
from ..options import ellipsoid_scale

__all__ = [
    "DEFAULT_PALETTE",
    "COUPLING_PALETTE",
    "RMSF_ATTRIBUTE",
    "COUPLING_ATTRIBUTE",
    "residue_spec",
    "residues_spec",
    "defattr_text",
    "check_palette",
    "model_tag",
    "display_commands",
    "pocket_commands",
]

#: RMSF colours, low to high (ChimeraX palette syntax: colours joined by colons)
DEFAULT_PALETTE = "blue:white:red"
#: correlation -1 .. 1
COUPLING_PALETTE = "-1,blue:0,white:1,red"
RMSF_ATTRIBUTE = "dynaprot_rmsf"
COUPLING_ATTRIBUTE = "dynaprot_coupling"

_NAMED_PALETTE = re.compile(r"^\^?[A-Za-z][A-Za-z0-9_\-]*$")
_COLOUR = re.compile(r"^(-?[0-9.]+,)?(#[0-9A-Fa-f]{3,8}|[A-Za-z][A-Za-z ]*)$")


def residue_spec(model_spec: str, chain: str, number: int, icode: str = "") -> str:
    """ChimeraX spec of one residue, e.g. ``#1/A:42`` or ``#1/A:42B``; ``#1:42`` for a blank
    chain id (MD files), which the ``/`` syntax cannot name."""
    chain_part = f"/{chain.strip()}" if chain.strip() else ""
    return f"{model_spec}{chain_part}:{int(number)}{icode.strip()}"


def residues_spec(model_spec: str, residues) -> str:
    """One spec for several residues (Residue tuples), grouped by chain: ``#1/A:8,9,10 #1/B:3``."""
    by_chain: dict[str, list[str]] = {}
    for r in residues:
        by_chain.setdefault(r.chain, []).append(f"{int(r.number)}{r.icode.strip()}")
    return " ".join(f"{model_spec}{'/' + c.strip() if c.strip() else ''}:{','.join(nums)}"
                    for c, nums in by_chain.items())


def defattr_text(attribute: str, values, residues, model_spec: str, comment: str = "") -> str:
    """Attribute-assignment file text giving each residue one float value.

    Format (ChimeraX "Attribute Assignment Files"): control lines
    ``attribute:``, ``match mode: 1-to-1``, ``recipient: residues``, then one
    line per residue: a tab, the atom spec, a tab, the value.

    Parameters
    ----------
    attribute : str
        Attribute name: letters, digits, underscores, not starting with a digit.
    values : array, shape (N,)
    residues : sequence of N Residue (chain, number, icode, name)
    model_spec : str
        E.g. ``#1``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", attribute):
        raise InputError(f"attribute name {attribute!r} must be letters, digits and underscores")
    values = np.asarray(values, dtype=float)
    if values.shape != (len(residues),):
        raise InputError(f"values must have shape ({len(residues)},), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InputError("values must be finite")
    lines = [f"# {comment}"] if comment else []
    lines += [f"attribute: {attribute}", "match mode: 1-to-1", "recipient: residues"]
    lines += [f"\t{residue_spec(model_spec, r.chain, r.number, r.icode)}\t{v:.6g}" for r, v in zip(residues, values)]
    return "\n".join(lines) + "\n"


def check_palette(palette: str) -> str:
    """A ChimeraX palette: a name (``viridis``, ``^RdBu``) or colours joined by ``:``."""
    palette = (palette or "").strip() or DEFAULT_PALETTE
    if ":" in palette:
        parts = palette.split(":")
        if len(parts) >= 2 and all(_COLOUR.match(p.strip()) for p in parts):
            return palette
    elif _NAMED_PALETTE.match(palette):
        return palette
    raise InputError(f"palette must be a ChimeraX palette name or colours joined by ':' "
                     f"(e.g. blue:white:red), got {palette!r}")


def model_tag(model_spec: str) -> str:
    """``#1`` -> ``1``, ``#1.2`` -> ``1_2`` (for selection names)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", model_spec).strip("_") or "0"


def display_commands(model_spec: str, defattr_path: str, palette: str, probability: float,
                     vmin: float, vmax: float) -> list[str]:
    """ChimeraX commands that show the RMSF colours and the ellipsoids of one structure."""
    scale = ellipsoid_scale(probability)
    path = str(defattr_path).replace('"', '\\"')
    return [
        f'open "{path}" format defattr',
        f"color byattribute r:{RMSF_ATTRIBUTE} {model_spec} palette {check_palette(palette)} "
        f"range {vmin:.4g},{vmax:.4g}",
        f"show {model_spec}@CA atoms",
        f"aniso style {model_spec} scale {scale:.5f}",
        f"aniso {model_spec}@CA",
    ]


def pocket_commands(model_spec: str, dynamics, pockets) -> list[str]:
    """``name frozen dpN_pocketK <spec>`` per pocket patch, best first."""
    tag = model_tag(model_spec)
    return [
        f"name frozen dp{tag}_pocket{k} {residues_spec(model_spec, [dynamics.residues[i] for i in p.residues])}"
        for k, p in enumerate(pockets, start=1)
    ]
