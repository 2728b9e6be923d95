"""The four-panel comparison figure (``dynaprot-viz compare --png``) and the delta-RMSF PDB.

Panels (headless matplotlib, no PyMOL needed):

a. **structure**: A's C-alpha trace projected on its principal plane, residues
   coloured by Delta RMSF = RMSF_B - RMSF_A (Å) on a diverging palette with a
   symmetric colour bar (grey: unaligned), B superposed in grey and the largest
   displacements as arrows A -> B (true to scale, Å);
b. **RMSF profiles** of A and B on the aligned residues (numbered as in A) with
   Delta RMSF as bars;
c. **Delta correlation** C~_B - C~_A (DCCM, aligned residues), residue 1 at the top
   left, symmetric colour bar;
d. **motion overlap** (two conformations): overlap of the displacement with each of
   the top K principal modes of A's and B's predicted motion, the cumulative
   overlaps and the random-direction level; for one conformation, the band-wise
   Pearson r of the two correlation maps and the mean |Delta C~| per band.
"""

from __future__ import annotations

import numpy as np

from .core.compare import DynamicsComparison
from .core.gaussian import Dynamics

__all__ = ["make_compare_figure", "delta_rmsf_structure"]


def _style(font_size: float) -> dict:
    """Journal-page rc settings (as the single figure's): small fonts, thin axes, no top/right spines."""
    return {"font.size": font_size, "axes.titlesize": font_size, "axes.labelsize": font_size,
            "xtick.labelsize": font_size - 1, "ytick.labelsize": font_size - 1, "legend.fontsize": font_size - 1,
            "axes.linewidth": 0.6, "lines.linewidth": 1.0, "axes.spines.top": False, "axes.spines.right": False,
            "savefig.facecolor": "white", "figure.facecolor": "white", "svg.fonttype": "none", "pdf.fonttype": 42}


def _pixel_box(fig, ax) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixels of ``ax`` in an image saved at the figure's dpi."""
    bb = ax.get_window_extent()
    height = fig.bbox.height
    return (int(np.floor(bb.x0)), int(np.floor(height - bb.y1)), int(np.ceil(bb.x1)), int(np.ceil(height - bb.y0)))


def delta_rmsf_structure(cmp: DynamicsComparison, dynamics_a: Dynamics, source_a=None):
    """A's structure (all atoms of the source when given, else C-alpha) as a gemmi.Structure with
    the B-factor column = Delta RMSF (RMSF_B - RMSF_A, Å) of each residue, 0 where unaligned;
    no ANISOU; REMARKs say what the column holds."""
    import gemmi

    from .export import annotated_structure, ensemble_structure
    from .core.errors import InputError

    st = None
    if source_a is not None:
        try:
            st = annotated_structure(dynamics_a, source_a)
        except (InputError, TypeError):
            st = None
    if st is None:
        st = ensemble_structure(dynamics_a, np.asarray(dynamics_a.mean)[None])
    delta = {}
    for p, i in enumerate(cmp.index_a):
        r = cmp.residues_a[i]
        delta[(r.number, r.icode.strip())] = float(cmp.delta_rmsf[p])
    chains = {r.chain for r in cmp.residues_a}
    for model in st:
        for ch in model:
            for res in ch:
                value = delta.get((res.seqid.num, res.seqid.icode.strip()), 0.0) if len(chains) == 1 or \
                    ch.name in chains else 0.0
                for atom in res:
                    atom.b_iso = round(value, 2)
                    atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    st.raw_remarks = [
        "REMARK 250 DYNAPROT-VIZ COMPARE: B COLUMN = DELTA RMSF (A) = RMSF(B) - RMSF(A)",
        f"REMARK 250  A = {cmp.name_a[:50]} ({cmp.model_a})",
        f"REMARK 250  B = {cmp.name_b[:50]} ({cmp.model_b})",
        f"REMARK 250  {cmp.n_aligned} ALIGNED RESIDUES, IDENTITY {100 * cmp.identity:.1f}%; UNALIGNED: B = 0",
    ]
    return st


def make_compare_figure(cmp: DynamicsComparison, dynamics_a: Dynamics | None = None,
                        dynamics_b: Dynamics | None = None, *, width_mm: float = 180.0, dpi: float = 200,
                        font_size: float = 8.0, title: str | None = None, n_arrows: int = 40):
    """Compose the four-panel comparison figure.

    Parameters
    ----------
    cmp : DynamicsComparison
    dynamics_a, dynamics_b : Dynamics, optional
        Used for the grey trace of B's unaligned residues (default: aligned ones only).

    Returns
    -------
    dynaprot_viz.figure.FigureResult
        ``panels`` holds the pixel boxes of ``structure``, ``rmsf``, ``correlation`` and
        ``overlap`` (or ``bands`` for one conformation); ``renderer`` is ``"projection"``.
    """
    import matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from .compare_view import DIVERGING_CMAP, arrow_segments, color_scale, _heat_range
    from .figure import MM_PER_INCH, FigureResult
    from .render.scales import HEATMAP_ORIGIN

    w_in = width_mm / MM_PER_INCH
    with matplotlib.rc_context(_style(font_size)):
        fig = Figure(figsize=(w_in, w_in * 0.78), dpi=dpi)
        gs = fig.add_gridspec(2, 2, left=0.07, right=0.95, top=0.86, bottom=0.08,
                              wspace=0.55, hspace=0.38)
        ax_s, ax_r = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
        ax_c, ax_d = fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])
        cmap = matplotlib.colormaps[DIVERGING_CMAP]
        lg = color_scale(cmp, "delta_rmsf")
        norm = Normalize(lg.vmin, lg.vmax)
        unit = cmp.rmsf_unit
        # a. structure, projected on A's principal plane
        xa, xb = np.asarray(cmp.mean_a), np.asarray(cmp.mean_b)
        centre = xa.mean(axis=0)
        _, _, vt = np.linalg.svd(xa - centre, full_matrices=False)
        proj = vt[:2]
        pa, pb = (xa - centre) @ proj.T, (xb - centre) @ proj.T
        ax_s.add_collection(LineCollection(np.stack([pb[:-1], pb[1:]], axis=1), colors="0.75", linewidths=0.8,
                                           zorder=1))
        ax_s.add_collection(LineCollection(np.stack([pa[:-1], pa[1:]], axis=1), colors="0.35", linewidths=0.6,
                                           zorder=2))
        sc = ax_s.scatter(pa[:, 0], pa[:, 1], c=cmp.delta_rmsf, cmap=cmap, norm=norm, s=9, zorder=3,
                          edgecolors="none")
        start, end, _ = arrow_segments(cmp, "a", n_arrows)
        if len(start):
            s2, e2 = (start - centre) @ proj.T, (end - centre) @ proj.T
            ax_s.quiver(s2[:, 0], s2[:, 1], (e2 - s2)[:, 0], (e2 - s2)[:, 1], angles="xy", scale_units="xy",
                        scale=1.0, width=0.004, color="#1f3fbf", zorder=4)
        pts = np.concatenate([pa, pb])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.05 * float((hi - lo).max())
        ax_s.set_xlim(lo[0] - pad, hi[0] + pad)
        ax_s.set_ylim(lo[1] - pad, hi[1] + pad)
        ax_s.set_aspect("equal", adjustable="box")
        ax_s.set_xticks([])
        ax_s.set_yticks([])
        for side in ("left", "bottom"):
            ax_s.spines[side].set_visible(False)
        fig.colorbar(sc, ax=ax_s, fraction=0.046, pad=0.02, label=f"ΔRMSF, B − A ({unit})",
                     extend="both" if lg.note.startswith("colours span") else "neither")
        what = ("A (dark), B superposed (grey), arrows A → B"
                if cmp.two_conformations else f"RMSD {cmp.rmsd:.2f} Å: one conformation")
        ax_s.set_title(what, fontsize=font_size - 1)
        # b. RMSF profiles
        num = np.array([r.number for r in cmp.aligned_a])
        x = np.arange(cmp.n_aligned)
        ax_r.bar(x, cmp.delta_rmsf, width=1.0, color=cmap(norm(cmp.delta_rmsf)), label="Δ (B − A)")
        ax_r.plot(x, cmp.rmsf_a, color="k", lw=0.9, label=f"A: {cmp.model_a}")
        ax_r.plot(x, cmp.rmsf_b, color="#d62728", lw=0.9, label=f"B: {cmp.model_b}")
        ax_r.axhline(0, color="0.5", lw=0.5)
        ticks = x[:: max(1, cmp.n_aligned // 6)]
        ax_r.set_xticks(ticks, [str(num[t]) for t in ticks])
        ax_r.set_xlabel("residue (numbered as in A)")
        ax_r.set_ylabel(f"RMSF ({unit})")
        ax_r.legend(frameon=False, loc="upper left", ncol=3)
        # c. delta correlation
        v = _heat_range(np.asarray(cmp.delta_correlation))
        m = cmp.n_aligned
        im = ax_c.imshow(cmp.delta_correlation, cmap=DIVERGING_CMAP, vmin=-v, vmax=v, origin=HEATMAP_ORIGIN,
                         interpolation="nearest", extent=(-0.5, m - 0.5, m - 0.5, -0.5))
        ax_c.set_xticks(ticks, [str(num[t]) for t in ticks])
        ax_c.set_yticks(ticks, [str(num[t]) for t in ticks])
        ax_c.set_xlabel("residue j")
        ax_c.set_ylabel("residue i")
        fig.colorbar(im, ax=ax_c, fraction=0.046, pad=0.03, label="ΔC~ = C~_B − C~_A")
        ax_c.set_title(f"Δ correlation (DCCM), ±{v:.2f} = 98th pct of |ΔC~|", fontsize=font_size - 1)
        # d. overlap (two conformations) or band-wise summary
        if cmp.two_conformations:
            k = np.arange(1, cmp.n_modes + 1)
            ax_d.bar(k - 0.2, cmp.overlap_a, width=0.4, color="0.3", label=f"A: cumulative {cmp.cumulative_overlap_a:.2f}")
            ax_d.bar(k + 0.2, cmp.overlap_b, width=0.4, color="#d62728",
                     label=f"B: cumulative {cmp.cumulative_overlap_b:.2f}")
            ax_d.axhline(cmp.overlap_baseline, color="0.5", lw=0.6, ls="--",
                         label=f"random direction, {cmp.n_modes} modes: {cmp.overlap_baseline:.2f}")
            ax_d.set_xlabel("predicted mode (largest variance first)")
            ax_d.set_ylabel("|overlap| with the displacement")
            ax_d.set_ylim(0, 1)
            ax_d.set_xticks(k)
            ax_d.legend(frameon=False, loc="upper right")
            key_d = "overlap"
        else:
            kk = np.arange(1, len(cmp.band_r) + 1)
            ax_d.plot(kk, cmp.band_r, color="k", label="band-wise r (|i−j| ≤ k)")
            ax_d.plot(kk, cmp.band_delta, color="#d62728", label="mean |ΔC~| on band k")
            ax_d.set_xlabel("band k (aligned residues)")
            ax_d.set_ylabel("r / |ΔC~|")
            ax_d.legend(frameon=False)
            key_d = "bands"
        for ax, letter in zip((ax_s, ax_r, ax_c, ax_d), "abcd"):
            ax.text(-0.12, 1.06, letter, transform=ax.transAxes, fontsize=font_size + 2, fontweight="bold",
                    va="bottom")
        fig.suptitle(title or f"{cmp.name_a} → {cmp.name_b}: {cmp.n_aligned} aligned residues, identity "
                     f"{100 * cmp.identity:.0f}%", fontsize=font_size + 1, y=0.985)
        panels = {"structure": _pixel_box(fig, ax_s), "rmsf": _pixel_box(fig, ax_r),
                  "correlation": _pixel_box(fig, ax_c), key_d: _pixel_box(fig, ax_d)}
    del dynamics_a, dynamics_b
    return FigureResult(figure=fig, panels=panels, renderer="projection", dpi=float(dpi))
