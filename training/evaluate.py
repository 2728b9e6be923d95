"""Evaluation of predictors against MD labels (DESIGN.md section 4).

For every chain of a label store and every registered predictor: rebuild the chain
from the stored reference (:meth:`ChainLabels.to_chain`), predict, and compute per
protein

* Gaussian metrics: RMSF Pearson r, RMWD variance term, symmetric-KL variance term
  (both over the 3x3 marginals, Å-dependent), band-wise coupling Pearson r of the
  DCCM for k = 1..50;
* AlphaFlow's ensemble metrics from ``n_samples`` (250) samples of the prediction
  (:meth:`Dynamics.sample`) against the MD conformations kept in the store
  (:attr:`ChainLabels.frames`), or - for stores without frames - against as many
  samples of the MD Gaussian (said in the notes);

then aggregate (median and quartiles over proteins; the band-wise curve is the
per-band median over proteins, its peak and its value at k = 1, 10, 50).

Records of other kinds than MD labels (:data:`~dynaprot_viz.training.store.LABEL_KINDS`)
are evaluated one kind at a time (``kind=``, default ``"md"``; chains of other kinds
are skipped with a note): ``"experimental-ensemble"`` gets the Gaussian metrics
(sym-KL over the residues whose conformer covariance is positive definite) but no
ensemble metrics (no frames are stored), ``"md-rmsf"`` the RMSF r only.

Separately, :func:`evaluate_mdcath_rmsf` compares predicted RMSF with real mdCATH
RMSF (replica average at 320 K) per domain, beside the replica-to-replica agreement
that bounds what any predictor can reach (the noise floor of the label).
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynaprot_viz.core import metrics as M
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.predictors import get_predictor

from .store import RMSF_ONLY_KINDS, LabelStore, check_kind

__all__ = [
    "EvaluationResult",
    "evaluate",
    "evaluate_mdcath_rmsf",
    "mdcath_rmsf_domains",
    "default_mdcath_rmsf_dir",
    "BANDS_REPORTED",
    "SCALE_NOTE",
]

BANDS_REPORTED = (1, 10, 50)
SCALE_NOTE = ("Pearson r values are scale-free; RMWD, sym-KL, pairwise RMSD and PCA W2 depend on the "
              "predicted amplitude in Å², which ANM gives only in relative units (kT/gamma, gamma = 1).")

_ENSEMBLE_KEYS = ("pairwise_rmsd_pred", "pairwise_rmsd_md", "ens_rmsf_r", "md_pca_w2", "joint_pca_w2",
                  "weak_contacts_j", "transient_contacts_j")


@dataclass
class EvaluationResult:
    """Per-protein rows, band-wise curves and the model summary of one evaluation.

    Attributes
    ----------
    models : list of str
    rows : list of dict
        One row per (model, key): ``n_residues``, ``rmsf_r``, ``rmwd_var`` (Å),
        ``sym_kl_var``, ``coupling_r_k1/k10/k50``, ``coupling_r_peak`` (per protein),
        ensemble metrics, ``predict_s``.
    bandwise : dict model -> ndarray (n_proteins, max_band)
    summary : dict model -> dict of aggregated values
    mdcath : list of dict or None
        Rows of :func:`evaluate_mdcath_rmsf`.
    failed : dict "model:key" -> one-line reason
    notes : list of str
        Footnotes for the table.
    """

    models: list
    rows: list = field(default_factory=list)
    bandwise: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    mdcath: list | None = None
    failed: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    max_band: int = 50

    # ------------------------------------------------------------ aggregation
    def _aggregate(self) -> None:
        self.summary = {}
        for m in self.models:
            rows = [r for r in self.rows if r["model"] == m]
            col = lambda k: np.array([r.get(k, math.nan) for r in rows], dtype=np.float64)  # noqa: E731
            s = {"n_proteins": len(rows)}
            for k in ("rmsf_r", "rmwd_var", "sym_kl_var", *_ENSEMBLE_KEYS):
                agg = M.summarize(col(k)) if rows else M.summarize(np.array([]))
                s[f"{k}_median"] = agg["median"]
                s[f"{k}_q25"] = agg["q25"]
                s[f"{k}_q75"] = agg["q75"]
            bands = self.bandwise.get(m)
            if bands is not None and len(bands):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    curve = np.nanmedian(bands, axis=0)
                s["coupling_curve"] = curve
                if np.all(np.isnan(curve)):
                    s["coupling_r_peak"], s["coupling_peak_k"] = math.nan, 0
                else:
                    kpk = int(np.nanargmax(curve))
                    s["coupling_r_peak"], s["coupling_peak_k"] = float(curve[kpk]), kpk + 1
                for k in BANDS_REPORTED:
                    s[f"coupling_r_k{k}"] = float(curve[k - 1]) if k <= len(curve) else math.nan
            else:
                s["coupling_curve"] = np.full(self.max_band, math.nan)
                s["coupling_r_peak"], s["coupling_peak_k"] = math.nan, 0
                for k in BANDS_REPORTED:
                    s[f"coupling_r_k{k}"] = math.nan
            ens_p = [r["_ens_rmsf_pred"] for r in rows if r.get("_ens_rmsf_pred") is not None]
            ens_t = [r["_ens_rmsf_md"] for r in rows if r.get("_ens_rmsf_md") is not None]
            s["ens_rmsf_r_global"] = M.rmsf_r_global(ens_p, ens_t) if ens_p else math.nan
            self.summary[m] = s

    # ------------------------------------------------------------ presentation
    def table(self) -> str:
        """The summary as a fixed-width text table with its footnotes."""
        def f(x, nd=3):
            return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

        head = ["model", "n", "RMSF r med", "RMSF r q75", "RMWD var", "symKL var",
                "coup r peak (k)", "k=1", "k=10", "k=50"]
        lines = []
        rows = []
        for m in self.models:
            s = self.summary[m]
            rows.append([m, str(s["n_proteins"]), f(s["rmsf_r_median"]), f(s["rmsf_r_q75"]),
                         f(s["rmwd_var_median"]), f(s["sym_kl_var_median"]),
                         f"{f(s['coupling_r_peak'])} ({s['coupling_peak_k']})",
                         f(s["coupling_r_k1"]), f(s["coupling_r_k10"]), f(s["coupling_r_k50"])])
        lines += _format_rows(head, rows)
        if any(not math.isnan(self.summary[m]["pairwise_rmsd_pred_median"]) for m in self.models):
            head2 = ["model", "pwRMSD pred", "pwRMSD MD", "RMSF r glob", "RMSF r/tgt", "MD PCA W2",
                     "joint W2", "weak J", "trans J"]
            rows2 = []
            for m in self.models:
                s = self.summary[m]
                rows2.append([m, f(s["pairwise_rmsd_pred_median"], 2), f(s["pairwise_rmsd_md_median"], 2),
                              f(s["ens_rmsf_r_global"]), f(s["ens_rmsf_r_median"]), f(s["md_pca_w2_median"], 2),
                              f(s["joint_pca_w2_median"], 2), f(s["weak_contacts_j_median"]),
                              f(s["transient_contacts_j_median"])])
            lines += ["", "ensemble metrics (medians over proteins; RMSD and W2 in Å):"]
            lines += _format_rows(head2, rows2)
        if self.mdcath:
            lines += ["", "mdCATH RMSF r at 320 K (vs replica average; noise floor = replica vs "
                      "mean of the other replicas):"]
            head3 = ["domain", "N"] + [f"r {m}" for m in self.models] + ["floor mean", "floor min"]
            rows3 = []
            by_dom: dict = {}
            for r in self.mdcath:
                by_dom.setdefault(r["domain"], {})[r["model"]] = r
            for dom, d in by_dom.items():
                any_r = next(iter(d.values()))
                rows3.append([dom, str(any_r["n_residues"])] + [f(d[m]["rmsf_r"]) if m in d else "   n/a"
                                                                for m in self.models]
                             + [f(any_r["floor_loo_r_mean"]), f(any_r["floor_loo_r_min"])])
            meds = ["median", ""] + [f(float(np.nanmedian([d[m]["rmsf_r"] for d in by_dom.values() if m in d]
                                                          or [math.nan]))) for m in self.models]
            meds += [f(float(np.nanmedian([next(iter(d.values()))["floor_loo_r_mean"] for d in by_dom.values()]))),
                     ""]
            lines += _format_rows(head3, rows3 + [meds])
        notes = [SCALE_NOTE] + self.notes
        if self.failed:
            notes.append(f"{len(self.failed)} prediction(s) failed: "
                         + "; ".join(f"{k} ({v})" for k, v in list(self.failed.items())[:3]))
        lines += [""] + [f"note: {n}" for n in notes]
        return "\n".join(lines)

    def per_protein_csv(self) -> str:
        cols = ["model", "key", "kind", "n_residues", "rmsf_r", "rmwd_var", "sym_kl_var"] + \
            [f"coupling_r_k{k}" for k in BANDS_REPORTED] + ["coupling_r_peak", "coupling_peak_k"] + \
            list(_ENSEMBLE_KEYS) + ["predict_s"]
        return _csv(cols, self.rows)

    def summary_csv(self) -> str:
        cols = ["model", "n_proteins", "rmsf_r_median", "rmsf_r_q25", "rmsf_r_q75", "rmwd_var_median",
                "sym_kl_var_median", "coupling_r_peak", "coupling_peak_k"] + \
            [f"coupling_r_k{k}" for k in BANDS_REPORTED] + \
            [f"{k}_median" for k in _ENSEMBLE_KEYS] + ["ens_rmsf_r_global"]
        return _csv(cols, [{"model": m, **self.summary[m]} for m in self.models])

    def bandwise_csv(self) -> str:
        rows = []
        for m in self.models:
            bands = self.bandwise.get(m)
            for k in range(1, self.max_band + 1):
                v = bands[:, k - 1] if bands is not None and len(bands) else np.array([])
                agg = M.summarize(v)
                rows.append({"model": m, "k": k, "median": agg["median"], "q25": agg["q25"],
                             "q75": agg["q75"], "n": agg["n"]})
        return _csv(["model", "k", "median", "q25", "q75", "n"], rows)

    def mdcath_csv(self) -> str:
        cols = ["domain", "model", "n_residues", "rmsf_r", "floor_loo_r_mean", "floor_loo_r_min",
                "floor_pairwise_r_mean", "temperature_K"]
        return _csv(cols, self.mdcath or [])

    def plot(self, path) -> None:
        """A figure (PNG/PDF/SVG by suffix): RMSF r per protein, band-wise coupling curve,
        and mdCATH RMSF r with its noise floor when evaluated."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        panels = 3 if self.mdcath else 2
        fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.8), constrained_layout=True)
        ax = axes[0]
        data = [[r["rmsf_r"] for r in self.rows if r["model"] == m and not math.isnan(r["rmsf_r"])]
                for m in self.models]
        ax.boxplot([d if d else [math.nan] for d in data], showmeans=False)
        ax.set_xticks(range(1, len(self.models) + 1), self.models)
        for i, d in enumerate(data, start=1):
            ax.plot(np.full(len(d), i) + np.linspace(-0.08, 0.08, len(d)) if d else [], d, "o", ms=3, alpha=0.6)
        ax.set_ylabel("RMSF Pearson r (per protein)")
        ax.set_title("RMSF vs MD labels")
        ax.set_ylim(-1.05, 1.05)
        ax = axes[1]
        k = np.arange(1, self.max_band + 1)
        for m in self.models:
            bands = self.bandwise.get(m)
            if bands is None or not len(bands):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(bands, axis=0)
                q25, q75 = np.nanpercentile(bands, [25, 75], axis=0)
            ax.plot(k, med, label=m)
            ax.fill_between(k, q25, q75, alpha=0.2)
        ax.set_xlabel("band |i - j| <= k")
        ax.set_ylabel("coupling (DCCM) Pearson r")
        ax.set_title("band-wise coupling")
        ax.legend(frameon=False)
        if self.mdcath:
            ax = axes[2]
            doms = list(dict.fromkeys(r["domain"] for r in self.mdcath))
            width = 0.8 / max(len(self.models), 1)
            x = np.arange(len(doms))
            for j, m in enumerate(self.models):
                vals = [next((r["rmsf_r"] for r in self.mdcath if r["domain"] == d and r["model"] == m), math.nan)
                        for d in doms]
                ax.bar(x + (j - (len(self.models) - 1) / 2) * width, vals, width, label=m)
            floor = [next(r["floor_loo_r_mean"] for r in self.mdcath if r["domain"] == d) for d in doms]
            ax.plot(x, floor, "k_", ms=18, mew=2, label="replica floor")
            ax.set_xticks(x, doms, rotation=45, ha="right", fontsize=8)
            ax.set_ylabel("RMSF Pearson r, 320 K")
            ax.set_title("mdCATH (held out)")
            ax.set_ylim(min(0.0, np.nanmin([r["rmsf_r"] for r in self.mdcath] + [0.0])) - 0.05, 1.05)
            ax.legend(frameon=False, fontsize=8)
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def write(self, out_dir) -> list[Path]:
        """Write ``evaluation_summary.csv``, ``evaluation_per_protein.csv``,
        ``evaluation_bandwise.csv``, ``evaluation.png`` (and ``mdcath_rmsf.csv``)
        into ``out_dir``, all or none."""
        from dynaprot_viz._io import AtomicOutputs

        out = Path(out_dir)
        files = {
            "evaluation_summary.csv": self.summary_csv(),
            "evaluation_per_protein.csv": self.per_protein_csv(),
            "evaluation_bandwise.csv": self.bandwise_csv(),
            "evaluation_table.txt": self.table() + "\n",
        }
        if self.mdcath:
            files["mdcath_rmsf.csv"] = self.mdcath_csv()
        written = []
        with AtomicOutputs(out) as outputs:
            for name, text in files.items():
                outputs.path(out / name).write_text(text, encoding="utf-8")
                written.append(out / name)
            png = out / "evaluation.png"
            self.plot(outputs.path(png))
            written.append(png)
        return written


def _format_rows(head, rows) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def _csv(cols, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        out = []
        for c in cols:
            v = r.get(c, "")
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{v:.6g}"
            out.append(v)
        w.writerow(out)
    return buf.getvalue()


# --------------------------------------------------------------------------- per protein


def _pd_residues(marginals: np.ndarray) -> np.ndarray:
    """Mask (N,) of residues whose 3x3 marginal is positive definite (relative 1e-9)."""
    w = np.linalg.eigvalsh(marginals)
    return w[:, 0] > 1e-9 * np.maximum(w[:, 2], np.finfo(float).tiny)


def _protein_metrics(pred, labels, max_band: int, n_samples: int, seed: int, true_ens) -> dict:
    row = {"rmsf_r": M.rmsf_pearson(pred.rmsf, labels.rmsf)}
    if labels.kind in RMSF_ONLY_KINDS:  # RMSF only: nothing else to compare with
        row.update({"rmwd_var": math.nan, "sym_kl_var": math.nan, "coupling_r_peak": math.nan,
                    "coupling_peak_k": "", "_bands": np.full(max_band, math.nan)})
        row.update({f"coupling_r_k{k}": math.nan for k in BANDS_REPORTED})
        return row
    row["rmwd_var"] = M.rmwd_variance(pred.marginals, labels.marginals)
    if labels.kind == "experimental-ensemble":
        # a residue seen in exactly 3 conformers has a rank-2 covariance: KL undefined there
        pd = _pd_residues(labels.marginals)
        row["sym_kl_var"] = (M.sym_kl_variance(pred.marginals[pd], labels.marginals[pd]) if pd.any()
                             else math.nan)
    else:
        row["sym_kl_var"] = M.sym_kl_variance(pred.marginals, labels.marginals)
    bands = M.bandwise_coupling_pearson(pred.correlation, labels.correlation, max_band=max_band)
    for k in BANDS_REPORTED:
        row[f"coupling_r_k{k}"] = float(bands[k - 1]) if k <= max_band else math.nan
    if np.all(np.isnan(bands)):
        row["coupling_r_peak"], row["coupling_peak_k"] = math.nan, ""
    else:
        kpk = int(np.nanargmax(bands))
        row["coupling_r_peak"], row["coupling_peak_k"] = float(bands[kpk]), kpk + 1
    row["_bands"] = bands
    if n_samples:
        ref = labels.ca
        ens = pred.sample(n_samples, seed=seed)
        row["pairwise_rmsd_pred"] = M.pairwise_rmsd(ens, ref=ref)
        row["pairwise_rmsd_md"] = M.pairwise_rmsd(true_ens, ref=ref)
        rp, rt = M.ensemble_rmsf(ens, ref=ref), M.ensemble_rmsf(true_ens, ref=ref)
        row["_ens_rmsf_pred"], row["_ens_rmsf_md"] = rp, rt
        row["ens_rmsf_r"] = M.rmsf_pearson(rp, rt)
        row["md_pca_w2"] = M.md_pca_w2(ens, true_ens, ref=ref) if len(true_ens) >= 2 else math.nan
        row["joint_pca_w2"] = M.joint_pca_w2(ens, true_ens, ref=ref)
        row["weak_contacts_j"] = M.weak_contacts_jaccard(ens, true_ens, ref)
        row["transient_contacts_j"] = M.transient_contacts_jaccard(ens, true_ens, ref)
    return row


def evaluate(store_path, models=("anm",), *, keys=None, max_band: int = 50, n_samples: int = 250,
             seed: int = 0, model_options: dict | None = None, mdcath_rmsf_dir=None,
             progress: bool = True, kind: str = "md") -> EvaluationResult:
    """Evaluate predictors on every chain of a label store.

    Parameters
    ----------
    store_path : path
        A :class:`~dynaprot_viz.training.store.LabelStore` file.
    models : sequence of str
        Registered predictor names (:func:`~dynaprot_viz.core.predictors.available_models`).
    keys : sequence of str, optional
        Only these chains (default all).
    max_band : int
        Band-wise coupling up to k = ``max_band``.
    n_samples : int
        Samples per prediction for the ensemble metrics (0: skip them).
    seed : int
        Sampling seed.
    model_options : dict, optional
        ``{model: {option: value}}`` passed to the predictor.
    mdcath_rmsf_dir : path, optional
        Also run :func:`evaluate_mdcath_rmsf` on this folder.
    progress : bool
        tqdm bar over chains (stderr).
    kind : str
        Evaluate the records of this kind only (default ``"md"``; see the module
        docstring); chains of other kinds, listed in ``keys`` or not, are skipped
        with a note.

    Returns
    -------
    EvaluationResult
    """
    from tqdm.auto import tqdm

    models = list(dict.fromkeys(models))
    if not models:
        raise InputError("models: at least one model is needed")
    predictors = {m: get_predictor(m) for m in models}  # unknown names fail here, before any work
    model_options = model_options or {}
    if int(max_band) < max(BANDS_REPORTED):
        raise InputError(f"max_band must be >= {max(BANDS_REPORTED)}, got {max_band!r}")
    if int(n_samples) < 0:
        raise InputError(f"n_samples must be >= 0, got {n_samples!r}")
    check_kind(kind)
    res = EvaluationResult(models=models, max_band=int(max_band))
    bands = {m: [] for m in models}
    gaussian_truth = 0
    with LabelStore(store_path, "r") as store:
        todo = store.keys() if keys is None else list(keys)
        missing = [k for k in todo if k not in store]
        if missing:
            raise InputError(f"{store_path}: no chain(s) {', '.join(missing[:5])} in the label store")
        if not todo:
            raise InputError(f"{store_path}: the label store holds no chains")
        kinds = store.kinds()
        other = [k for k in todo if kinds[k] != kind]
        if other:
            counts = Counter(kinds[k] for k in other)
            res.notes.append(f"{len(other)} chain(s) of other kinds skipped ("
                             + ", ".join(f"{n} {kd}" for kd, n in sorted(counts.items()))
                             + f"); this evaluation is of kind {kind!r}: evaluate each kind on its own.")
            todo = [k for k in todo if kinds[k] == kind]
        if not todo:
            raise InputError(f"{store_path}: no chain of kind {kind!r} to evaluate "
                             f"(kinds present: {', '.join(sorted(set(kinds.values()))) or 'none'})")
        if kind != "md" and n_samples:
            res.notes.append(f"kind {kind!r}: no ensemble metrics (the store keeps no frames for it).")
        if kind in RMSF_ONLY_KINDS:
            res.notes.append(f"kind {kind!r}: RMSF r only (the labels hold no marginals or coupling).")
        if kind == "experimental-ensemble":
            res.notes.append("kind 'experimental-ensemble': sym-KL over the residues whose conformer "
                             "covariance is positive definite (a residue seen in 3 conformers is rank 2).")
        for key in tqdm(todo, desc="evaluate", unit="chain", disable=not progress, dynamic_ncols=True):
            labels = store.get(key)
            chain = labels.to_chain()
            true_ens = None
            if n_samples and kind == "md":
                if labels.frames is not None and len(labels.frames) >= 2:
                    true_ens = np.asarray(labels.frames, dtype=np.float64)
                else:
                    true_ens = labels.to_dynamics().sample(n_samples, seed=seed + 1)
                    gaussian_truth += 1
            for m in models:
                t0 = time.perf_counter()
                try:
                    pred = predictors[m](chain, **model_options.get(m, {}))
                    elapsed = time.perf_counter() - t0
                    if pred.n_residues != labels.n_residues:
                        raise InputError(f"{m} predicted {pred.n_residues} residues for {labels.n_residues}")
                    row = _protein_metrics(pred, labels, int(max_band), int(n_samples) if true_ens is not None
                                           else 0, seed, true_ens)
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # one chain must not stop the evaluation
                    res.failed[f"{m}:{key}"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                    continue
                bands[m].append(row.pop("_bands"))
                res.rows.append({"model": m, "key": key, "kind": labels.kind, "n_residues": labels.n_residues,
                                 "predict_s": elapsed, **row})
    res.bandwise = {m: np.array(b) if b else np.zeros((0, int(max_band))) for m, b in bands.items()}
    if gaussian_truth:
        res.notes.append(f"{gaussian_truth} chain(s) have no MD conformations in the store: their ensemble "
                         f"metrics compare with {n_samples} samples of the MD Gaussian, not MD frames.")
    if n_samples and kind == "md":
        res.notes.append(f"ensemble metrics from {n_samples} samples per prediction (seed {seed}); "
                         "true frames resampled as AlphaFlow (seed 137).")
    if mdcath_rmsf_dir is not None:
        res.mdcath = evaluate_mdcath_rmsf(mdcath_rmsf_dir, models, model_options=model_options)
    res._aggregate()
    return res


# --------------------------------------------------------------------------- mdCATH RMSF


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the working directory or the source tree, if present (the
    project's read-only evaluation data; a user's clone does not have it)."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), here.parents[1]):
        cand = (base / ".." / "shared" / "data").resolve()
        if cand.is_dir():
            return cand
    return None


def default_mdcath_rmsf_dir() -> Path | None:
    """``../shared/data/mdcath_rmsf`` beside the working directory or the source tree, if present."""
    shared = shared_data_dir()
    cand = shared / "mdcath_rmsf" if shared is not None else None
    if cand is not None and (cand / "rmsf").is_dir() and (cand / "pdbs").is_dir():
        return cand
    return None


def _read_rmsf_csv(path: Path, column: str) -> dict:
    """``{domain: {resid: rmsf in nm}}`` from a mdcath-processor RMSF table (nm, as the tables
    hold: multiply by 10 for Å; Pearson r does not care)."""
    out: dict = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or column not in reader.fieldnames or "domain_id" not in reader.fieldnames:
            raise InputError(f"{path}: expected columns domain_id, resid, {column}; got {reader.fieldnames}")
        for row in reader:
            out.setdefault(row["domain_id"], {})[int(row["resid"])] = float(row[column])
    return out


def _mdcath_chain(pdb: Path):
    """The simulated domain as a ProteinChain (CHARMM names mapped; resid as in the tables)."""
    import MDAnalysis as mda

    from .readers import _reference_from_universe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(pdb))
    return _reference_from_universe(u, np.array(u.atoms.positions, dtype=np.float64), str(pdb), None).chain


def mdcath_rmsf_domains(folder, table: dict):
    """``(domain, chain, resids, RMSF (N,) in the table's unit)`` for each domain of an
    mdcath_rmsf folder whose ``pdbs/<domain>.pdb`` exists and matches ``table``
    (``{domain: {resid: rmsf}}``, :func:`_read_rmsf_csv`); others are skipped with a warning."""
    folder = Path(folder)
    for domain in sorted(table):
        pdb = folder / "pdbs" / f"{domain}.pdb"
        if not pdb.exists():
            warnings.warn(f"{pdb}: missing, domain {domain} skipped", stacklevel=3)
            continue
        chain = _mdcath_chain(pdb)
        resids = [r.number for r in chain.residues]
        if any(r not in table[domain] for r in resids):
            warnings.warn(f"{domain}: residues of {pdb.name} do not match the RMSF table, skipped", stacklevel=3)
            continue
        yield domain, chain, resids, np.array([table[domain][r] for r in resids])


def evaluate_mdcath_rmsf(folder, models=("anm",), temperature: int = 320, model_options=None) -> list[dict]:
    """Per-domain RMSF Pearson r of each model against mdCATH's replica-average RMSF.

    Layout (``/work/shared/data/mdcath_rmsf``, see its README): ``pdbs/<domain>.pdb``,
    ``rmsf/replica_average_<T>K.csv`` and ``rmsf/replica<r>_320K.csv`` (columns
    ``domain_id, resid, resname, rmsf_<T>``, nm).

    The noise floor beside each model: for every replica, the Pearson r of its RMSF
    with the mean RMSF of the other replicas (``floor_loo_r_mean``/``_min``), and the
    mean r over replica pairs (``floor_pairwise_r_mean``).  Replica tables exist at
    320 K only, so the floor is given at 320 K.

    Returns
    -------
    list of dict, one per (domain, model): ``domain``, ``model``, ``n_residues``,
    ``rmsf_r``, ``floor_loo_r_mean``, ``floor_loo_r_min``, ``floor_pairwise_r_mean``,
    ``temperature_K``.
    """
    folder = Path(folder)
    avg_path = folder / "rmsf" / f"replica_average_{int(temperature)}K.csv"
    if not avg_path.exists():
        raise FileNotFoundError(f"{avg_path}: no such file (expected the mdcath_rmsf layout)")
    col = f"rmsf_{int(temperature)}"
    avg = _read_rmsf_csv(avg_path, col)
    reps = []
    for p in sorted((folder / "rmsf").glob("replica[0-9]*_320K.csv")):
        reps.append(_read_rmsf_csv(p, "rmsf_320"))
    predictors = {m: get_predictor(m) for m in models}
    model_options = model_options or {}
    rows = []
    for domain, chain, resids, true in mdcath_rmsf_domains(folder, avg):
        floor_loo, floor_pairs = [], []
        rep_vals = [np.array([rep[domain][r] for r in resids]) for rep in reps
                    if domain in rep and all(r in rep[domain] for r in resids)]
        for i, v in enumerate(rep_vals):
            others = [w for j, w in enumerate(rep_vals) if j != i]
            if others:
                floor_loo.append(M.rmsf_pearson(v, np.mean(others, axis=0)))
            floor_pairs += [M.rmsf_pearson(v, w) for w in rep_vals[i + 1:]]
        for m in models:
            try:
                pred = predictors[m](chain, **model_options.get(m, {}))
                r = M.rmsf_pearson(pred.rmsf, true)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                warnings.warn(f"{m} on mdCATH {domain} failed: {exc}", stacklevel=2)
                r = math.nan
            rows.append({
                "domain": domain, "model": m, "n_residues": len(resids), "rmsf_r": float(r),
                "floor_loo_r_mean": float(np.mean(floor_loo)) if floor_loo else math.nan,
                "floor_loo_r_min": float(np.min(floor_loo)) if floor_loo else math.nan,
                "floor_pairwise_r_mean": float(np.mean(floor_pairs)) if floor_pairs else math.nan,
                "temperature_K": int(temperature),
            })
    if not rows:
        raise InputError(f"{folder}: no mdCATH domain could be evaluated")
    return rows
