"""Training ANM-GBM (issue 12): gradient-boosted trees that correct ANM per residue, from mdCATH.

    python -m dynaprot_viz.training.train_anm_gbm                 # features, CV, fit, export, evaluate
    python -m dynaprot_viz.training.train_anm_gbm --no-export     # everything but writing the weights

Data: ``../shared/data/mdcath_train`` (1,046 mdCATH domains: backbone PDB + per-residue C-alpha
RMSF at 320 K, mean of five replicas, nm), split by ``datasets/mdcath_split`` (family-aware,
30% identity; only ``train.txt`` is fitted on, ``heldout.txt`` only evaluated).

Steps (deterministic).  Time on the shared 2-core machine at a load average of about 8 (other
engineers' jobs): features 10 min (1,028 domains, once; cached), grouped CV 6 fits x ~3.4 min,
final fit, ridge and evaluation 3 min: 17.4 min with the feature cache, ~28 min from scratch.
On an idle 2-core machine expect well under half of that.

1. Features (:func:`dynaprot_viz.core.models.anm_gbm.residue_features`) for every domain of the
   split, one ANM per domain, cached in ``runs/anm_gbm/features.npz`` (tqdm bar).
   Target y = ln RMSF (Å); rows are the residues with both coordinates and a label.
2. Hyper-parameters of scikit-learn's ``HistGradientBoostingRegressor`` (squared error on y,
   no early stopping, ``random_state`` 0) by cross-validation on the TRAIN domains only,
   folds grouped by sequence family (``split.json``'s ``family_of``): the score is the
   median over validation domains of the Pearson r of exp(y_pred) with the true RMSF (Å), the
   metric the issue is judged on; the number of trees is chosen on a staged grid, and among
   settings within :data:`CV_TIE` of the best score the one with the fewest trees wins.
3. Fit on all training domains, export the trees to arrays
   (:meth:`~dynaprot_viz.core.models.anm_gbm.TreeEnsemble.from_sklearn`), and check that the
   numpy evaluator reproduces the library on every training row (max |diff| < 1e-9, else stop).
4. Ablation: ridge regression (standardised features, alpha by the same grouped CV) on the
   same features and target.
5. Evaluate ANM, ridge and GBM on the held-out domains and on the seven ``mdcath_rmsf``
   domains (the DANCE test and campaign sets are evaluated through the registered predictor
   by :mod:`.model_selection`); write ``runs/anm_gbm/report.json``.
6. Export ``dynaprot_viz/weights/anm-gbm.safetensors`` + ``anm-gbm.json`` (atomic writes).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import platform
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from dynaprot_viz.core.anm import anm_covariance
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import marginals_from_joint
from dynaprot_viz.core.models.anm_gbm import FEATURE_NAMES, TreeEnsemble, residue_features
from dynaprot_viz.core.structure import load_chain

from .evaluate import shared_data_dir

__all__ = ["read_split", "mdcath_train_labels", "mdcath_train_case", "domain_features", "build_feature_table",
           "per_protein_r", "fit_gbm", "fit_ridge", "evaluate_registered", "main", "GBM_GRID", "SPLIT_DIR"]

ROOT = Path(__file__).resolve().parents[1]
SPLIT_DIR = ROOT / "datasets" / "mdcath_split"
RUN_DIR = ROOT / "runs" / "anm_gbm"
ANM_CUTOFF, ANM_GAMMA = 15.0, 1.0
NM_TO_ANGSTROM = 10.0
#: hyper-parameter grid; the number of trees is picked from STAGES on each fit's staged predictions
GBM_GRID = [
    {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40, "l2_regularization": 1.0},
    {"learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 40, "l2_regularization": 1.0},
]
STAGES = (200, 400, 600, 800)
#: CV scores within this of the best count as ties; the tie with the fewest trees wins
CV_TIE = 5e-4
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
N_FOLDS = 3


def read_split(split_dir=SPLIT_DIR) -> dict:
    """``{"train": [...], "heldout": [...], "family_of": {domain: int}}`` from the committed split."""
    split_dir = Path(split_dir)
    out = {}
    for part in ("train", "heldout"):
        path = split_dir / f"{part}.txt"
        if not path.exists():
            raise InputError(f"{path}: missing; run python datasets/mdcath_split/make_split.py")
        out[part] = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    meta = split_dir / "split.json"
    out["family_of"] = json.loads(meta.read_text())["family_of"] if meta.exists() else {}
    return out


def mdcath_train_labels(folder) -> dict:
    """``{domain: {resid: RMSF Å}}`` for the residues that have coordinates (``rmsf_320K.csv``)."""
    path = Path(folder) / "rmsf_320K.csv"
    if not path.exists():
        raise InputError(f"{path}: not found (expected the mdcath_train layout)")
    out: dict = defaultdict(dict)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["has_coordinates"] == "1":
                out[row["domain_id"]][int(row["resid"])] = NM_TO_ANGSTROM * float(row["rmsf_320_nm"])
    return dict(out)


def mdcath_train_case(folder, domain: str, labels: dict):
    """``(chain, keep, rmsf)``: the domain's chain, the indices of its labelled residues (K,)
    and their RMSF (K,) Å."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = load_chain(Path(folder) / "pdbs" / f"{domain}.pdb.gz")
    lab = labels.get(domain, {})
    keep = np.array([i for i, r in enumerate(chain.residues) if r.number in lab], dtype=np.int64)
    rmsf = np.array([lab[chain.residues[i].number] for i in keep])
    return chain, keep, rmsf


def domain_features(chain) -> tuple[np.ndarray, np.ndarray]:
    """``(X, rmsf_anm)``: features (N, F) and ANM RMSF (N,) (relative Å) of one chain, one ANM."""
    cov = anm_covariance(chain.ca, cutoff=ANM_CUTOFF, gamma=ANM_GAMMA)
    msf = np.trace(marginals_from_joint(cov), axis1=1, axis2=2)
    return residue_features(chain.ca, chain.sequence, msf), np.sqrt(msf)


def build_feature_table(folder, domains, cache=RUN_DIR / "features.npz", progress=True) -> dict:
    """Rows of every labelled residue of ``domains``: X (R, F), y = ln RMSF Å (R,), rmsf_anm (R,),
    domain index (R,); cached in ``cache`` (recomputed when the domain list or features change)."""
    from tqdm.auto import tqdm

    domains = list(domains)
    if cache is not None and Path(cache).exists():
        data = np.load(cache, allow_pickle=False)
        if list(data["domains"]) == domains and list(data["feature_names"]) == list(FEATURE_NAMES):
            return {k: data[k] for k in data.files}
    labels = mdcath_train_labels(folder)
    xs, ys, anm, dom = [], [], [], []
    for k, d in enumerate(tqdm(domains, desc="ANM-GBM features", unit="domain", disable=not progress)):
        chain, keep, rmsf = mdcath_train_case(folder, d, labels)
        x, ra = domain_features(chain)
        xs.append(x[keep])
        ys.append(np.log(rmsf))
        anm.append(ra[keep])
        dom.append(np.full(len(keep), k, dtype=np.int64))
    table = {"X": np.concatenate(xs), "y": np.concatenate(ys), "rmsf_anm": np.concatenate(anm),
             "domain": np.concatenate(dom), "domains": np.array(domains), "feature_names": np.array(FEATURE_NAMES)}
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache).with_suffix(".tmp.npz")
        np.savez(tmp, **table)
        tmp.replace(cache)
    return table


def per_protein_r(pred_rmsf, true_rmsf, domain) -> np.ndarray:
    """Pearson r of predicted and true RMSF within each domain id, shape (D,) in order of first appearance."""
    out = []
    for d in dict.fromkeys(domain.tolist()):
        m = domain == d
        a, b = pred_rmsf[m], true_rmsf[m]
        out.append(np.corrcoef(a, b)[0, 1] if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else math.nan)
    return np.array(out)


def _quartiles(r) -> dict:
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    q1, med, q3 = np.percentile(r, [25, 50, 75]) if len(r) else (math.nan,) * 3
    return {"n": int(len(r)), "median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(np.mean(r))}


def _folds(domain, families, n_folds=N_FOLDS):
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(families)[domain]
    return list(GroupKFold(n_splits=n_folds).split(np.zeros(len(domain)), groups=groups))


def fit_gbm(X, y, params, max_iter):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=max_iter, early_stopping=False, random_state=0, **params)
    return model.fit(X, y)


def cv_gbm(table, rows, families, progress=True) -> list[dict]:
    """Grouped CV of :data:`GBM_GRID` x :data:`STAGES` on ``rows``: one dict per setting."""
    from tqdm.auto import tqdm

    X, y, dom = table["X"][rows], table["y"][rows], table["domain"][rows]
    folds = _folds(dom, families)
    scores = defaultdict(list)
    mse = defaultdict(list)
    with tqdm(total=len(GBM_GRID) * len(folds), desc="GBM grouped CV", unit="fit", disable=not progress) as bar:
        for gi, params in enumerate(GBM_GRID):
            for tr, va in folds:
                model = fit_gbm(X[tr], y[tr], params, max(STAGES))
                for stage, pred in enumerate(model.staged_predict(X[va]), start=1):
                    if stage in STAGES:
                        r = per_protein_r(np.exp(pred), np.exp(y[va]), dom[va])
                        scores[(gi, stage)].append(np.nanmedian(r))
                        mse[(gi, stage)].append(float(np.mean((pred - y[va]) ** 2)))
                bar.update(1)
    return [{"params": GBM_GRID[gi], "max_iter": stage, "cv_median_r": float(np.mean(v)),
             "cv_mse_log": float(np.mean(mse[(gi, stage)]))} for (gi, stage), v in scores.items()]


def fit_ridge(X, y, alpha):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X, y)


def cv_ridge(table, rows, families) -> list[dict]:
    X, y, dom = table["X"][rows], table["y"][rows], table["domain"][rows]
    out = []
    for alpha in RIDGE_ALPHAS:
        meds = []
        for tr, va in _folds(dom, families):
            pred = fit_ridge(X[tr], y[tr], alpha).predict(X[va])
            meds.append(np.nanmedian(per_protein_r(np.exp(pred), np.exp(y[va]), dom[va])))
        out.append({"alpha": alpha, "cv_median_r": float(np.mean(meds))})
    return out


def _evaluate_rows(pred_log: dict, y, rmsf_anm, dom) -> dict:
    """Per-model per-protein r quartiles and per-chain mean-RMSF error (Å)."""
    true = np.exp(y)
    res = {}
    ids = list(dict.fromkeys(dom.tolist()))
    true_mean = np.array([true[dom == d].mean() for d in ids])
    for name, pl in pred_log.items():
        pred = rmsf_anm if pl is None else np.exp(pl)
        r = per_protein_r(pred, true, dom)
        pred_mean = np.array([pred[dom == d].mean() for d in ids])
        err = np.abs(pred_mean - true_mean)
        res[name] = {**_quartiles(r), "mean_rmsf_abs_err_A_median": float(np.median(err)),
                     "mean_rmsf_abs_err_A_mean": float(np.mean(err)), "per_protein_r": [float(v) for v in r]}
    res["true_mean_rmsf_A_median"] = float(np.median(true_mean))
    return res


def mdcath7_rows(models: dict, anm_scale: float) -> dict | None:
    """The seven held-out ``mdcath_rmsf`` domains: r and mean-RMSF error for ANM (raw and with the
    training set's global scale), ridge and GBM, from features computed as at prediction time."""
    from .evaluate import _mdcath_chain, _read_rmsf_csv, default_mdcath_rmsf_dir

    folder = default_mdcath_rmsf_dir()
    if folder is None:
        return None
    avg = _read_rmsf_csv(folder / "rmsf" / "replica_average_320K.csv", "rmsf_320")
    Xs, ys, anms, doms, names = [], [], [], [], []
    for k, domain in enumerate(sorted(avg)):
        pdb = folder / "pdbs" / f"{domain}.pdb"
        if not pdb.exists():
            continue
        chain = _mdcath_chain(pdb)
        resids = [r.number for r in chain.residues]
        if any(r not in avg[domain] for r in resids):
            continue
        x, ra = domain_features(chain)
        Xs.append(x)
        ys.append(np.log(NM_TO_ANGSTROM * np.array([avg[domain][r] for r in resids])))
        anms.append(ra)
        doms.append(np.full(len(resids), k))
        names.append(domain)
    X, y, ra, dom = np.concatenate(Xs), np.concatenate(ys), np.concatenate(anms), np.concatenate(doms)
    preds = {"anm": None, "anm_global_scale": np.log(anm_scale * ra)}
    preds.update({m: f(X) for m, f in models.items()})
    out = _evaluate_rows(preds, y, ra, dom)
    out["domains"] = names
    return out


def evaluate_registered(models=("anm", "anm-gbm"), progress=True) -> dict:
    """Every registered model as users get it (``get_predictor(m)(chain)``, default options) on the
    held-out split and on the seven ``mdcath_rmsf`` domains: per set and model, the quartiles of
    the per-protein RMSF r and the median |mean RMSF predicted - mean RMSF true| (Å)."""
    from tqdm.auto import tqdm

    from dynaprot_viz.core.predictors import get_predictor

    from .evaluate import _mdcath_chain, _read_rmsf_csv, default_mdcath_rmsf_dir

    cases = []
    shared = shared_data_dir()
    if shared is not None and (shared / "mdcath_train" / "rmsf_320K.csv").exists():
        labels = mdcath_train_labels(shared / "mdcath_train")
        for d in read_split()["heldout"]:
            cases.append(("mdcath-split-heldout", d, lambda d=d: mdcath_train_case(shared / "mdcath_train", d, labels)))
    folder = default_mdcath_rmsf_dir()
    if folder is not None:
        avg = _read_rmsf_csv(folder / "rmsf" / "replica_average_320K.csv", "rmsf_320")

        def seven(domain):
            chain = _mdcath_chain(folder / "pdbs" / f"{domain}.pdb")
            true = NM_TO_ANGSTROM * np.array([avg[domain][r.number] for r in chain.residues])
            return chain, np.arange(len(chain)), true

        cases += [("mdcath-7", d, lambda d=d: seven(d)) for d in sorted(avg)]
    rows = defaultdict(lambda: defaultdict(list))
    for set_name, _, load in tqdm(cases, desc="registered models", unit="chain", disable=not progress):
        chain, keep, true = load()
        for m in models:
            pred = get_predictor(m)(chain).rmsf[keep]
            rows[set_name][m].append((float(np.corrcoef(pred, true)[0, 1]), abs(pred.mean() - true.mean())))
    out = {}
    for set_name, per_model in rows.items():
        out[set_name] = {m: {**_quartiles([r for r, _ in v]),
                             "mean_rmsf_abs_err_A_median": float(np.median([e for _, e in v]))}
                         for m, v in per_model.items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train ANM-GBM (ANM corrected by gradient-boosted trees) on mdCATH")
    p.add_argument("--data", default=None, help="mdcath_train folder (default ../shared/data/mdcath_train)")
    p.add_argument("--split", default=str(SPLIT_DIR), help="folder with train.txt, heldout.txt, split.json")
    p.add_argument("--out", default=str(ROOT / "dynaprot_viz" / "weights"), help="where anm-gbm.* are written")
    p.add_argument("--run-dir", default=str(RUN_DIR), help="feature cache and report.json")
    p.add_argument("--no-export", action="store_true", help="do not write the weights")
    p.add_argument("--params", default=None, help="JSON of GBM parameters incl. max_iter: skip the CV")
    p.add_argument("--evaluate-registered", nargs="*", metavar="MODEL", default=None,
                   help="only evaluate these registered models (default anm anm-gbm) as users get them "
                        "on the held-out split and the seven mdcath_rmsf domains; train nothing")
    args = p.parse_args(argv)
    if args.evaluate_registered is not None:
        res = evaluate_registered(args.evaluate_registered or ("anm", "anm-gbm"))
        for set_name, per in res.items():
            for m, s in per.items():
                print(f"{set_name:22s} {m:10s} n {s['n']:3d} r median {s['median']:.3f} [{s['q1']:.3f}, "
                      f"{s['q3']:.3f}] mean {s['mean']:.3f}; |mean RMSF error| median "
                      f"{s['mean_rmsf_abs_err_A_median']:.2f} Å")
        return 0
    try:
        import sklearn
    except ImportError:
        print("error: training ANM-GBM needs scikit-learn: pip install 'dynaprot-viz[train]' "
              "(or pip install scikit-learn)", file=sys.stderr)
        return 2
    shared = shared_data_dir()
    folder = Path(args.data) if args.data else (shared / "mdcath_train" if shared else None)
    if folder is None or not (folder / "rmsf_320K.csv").exists():
        print(f"error: mdcath_train data not found at {folder}", file=sys.stderr)
        return 2
    t0 = time.time()
    run_dir = Path(args.run_dir)
    split = read_split(args.split)
    domains = split["train"] + split["heldout"]
    table = build_feature_table(folder, domains, cache=run_dir / "features.npz")
    n_train = len(split["train"])
    train_rows = table["domain"] < n_train
    held_rows = ~train_rows
    fam = split["family_of"]
    families = np.array([fam.get(d, -1 - i) for i, d in enumerate(domains)])
    X, y = table["X"], table["y"]
    print(f"{n_train} training domains ({int(train_rows.sum())} residues), {len(split['heldout'])} held-out "
          f"({int(held_rows.sum())} residues), {X.shape[1]} features")

    if args.params:
        best = json.loads(args.params)
        cv = []
    else:
        cv = cv_gbm(table, train_rows, families)
        top = max(c["cv_median_r"] for c in cv)
        best_row = min((c for c in cv if c["cv_median_r"] >= top - CV_TIE),
                       key=lambda c: (c["max_iter"], c["params"]["max_leaf_nodes"]))
        best = {**best_row["params"], "max_iter": best_row["max_iter"]}
        print(f"GBM CV best: {best} median r {best_row['cv_median_r']:.4f}")
    params = {k: v for k, v in best.items() if k != "max_iter"}
    gbm = fit_gbm(X[train_rows], y[train_rows], params, int(best["max_iter"]))
    trees = TreeEnsemble.from_sklearn(gbm)
    diff = float(np.max(np.abs(trees.predict(X[train_rows]) - gbm.predict(X[train_rows]))))
    print(f"numpy trees vs scikit-learn on {int(train_rows.sum())} training rows: max |diff| {diff:.2e}")
    if not diff < 1e-9:
        print("error: the exported trees do not reproduce scikit-learn", file=sys.stderr)
        return 1

    ridge_cv = cv_ridge(table, train_rows, families)
    alpha = max(ridge_cv, key=lambda c: c["cv_median_r"])["alpha"]
    ridge = fit_ridge(X[train_rows], y[train_rows], alpha)
    # ANM with one global scale from the training set (the median ratio), for the absolute-Å comparison
    anm_scale = float(np.exp(np.median(y[train_rows] - np.log(table["rmsf_anm"][train_rows]))))

    held = _evaluate_rows({"anm": None, "anm_global_scale": np.log(anm_scale * table["rmsf_anm"][held_rows]),
                           "ridge": ridge.predict(X[held_rows]), "anm-gbm": trees.predict(X[held_rows])},
                          y[held_rows], table["rmsf_anm"][held_rows], table["domain"][held_rows])
    seven = mdcath7_rows({"ridge": ridge.predict, "anm-gbm": trees.predict}, anm_scale)
    for name, res in (("mdCATH split held-out", held), ("mdcath_rmsf 7 domains", seven)):
        if res is None:
            continue
        print(f"{name}:")
        for m in ("anm", "anm_global_scale", "ridge", "anm-gbm"):
            s = res[m]
            print(f"  {m:17s} r median {s['median']:.3f} [{s['q1']:.3f}, {s['q3']:.3f}] mean {s['mean']:.3f}; "
                  f"|mean RMSF error| median {s['mean_rmsf_abs_err_A_median']:.2f} Å")
    elapsed = time.time() - t0
    report = {
        "gbm_params": best, "gbm_cv": cv, "ridge_alpha": alpha, "ridge_cv": ridge_cv,
        "ridge_coef_standardised": dict(zip(FEATURE_NAMES, map(float, ridge[-1].coef_))),
        "anm_global_scale_A": anm_scale, "export_max_abs_diff": diff, "heldout": held, "mdcath7": seven,
        "seconds": elapsed,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    from dynaprot_viz._io import atomic_write_bytes, atomic_write_text

    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=1) + "\n")
    print(f"report: {run_dir / 'report.json'} ({elapsed / 60:.1f} min)")
    if args.no_export:
        return 0
    from safetensors.numpy import save

    config = {
        "format": "dynaprot-viz-anm-gbm", "version": 1, "model": "anm-gbm",
        "features": list(FEATURE_NAMES),
        "target": "ln RMSF (Å) of the C-alpha, mdCATH 320 K, mean of five replicas",
        "anm": {"cutoff_A": ANM_CUTOFF, "gamma": ANM_GAMMA},
        "trees": {"n_trees": trees.n_trees, "n_nodes": int(len(trees.value)), "library": f"scikit-learn {sklearn.__version__}",
                  "estimator": "HistGradientBoostingRegressor", "params": best, "export_max_abs_diff": diff},
        "training": {
            "data": "mdCATH (Mirarchi et al. 2024) via ../shared/data/mdcath_train: 320 K RMSF, 5 replicas",
            "split": "datasets/mdcath_split (train.txt; 30% identity families; heldout.txt never fitted)",
            "n_domains": n_train, "n_residues": int(train_rows.sum()),
            "cv": f"{N_FOLDS}-fold GroupKFold by family on the training domains, score = median per-domain RMSF r",
            "command": "python -m dynaprot_viz.training.train_anm_gbm",
            "date": _dt.date.today().isoformat(), "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "heldout_median_r": {m: held[m]["median"] for m in ("anm", "ridge", "anm-gbm")},
        "mdcath7_median_r": {m: seven[m]["median"] for m in ("anm", "ridge", "anm-gbm")} if seven else None,
    }
    out = Path(args.out)
    atomic_write_bytes(out / "anm-gbm.safetensors", save(trees.to_arrays(), metadata={"format": "anm-gbm"}))
    atomic_write_text(out / "anm-gbm.json", json.dumps(config, indent=1) + "\n")
    print(f"wrote {out / 'anm-gbm.safetensors'} and anm-gbm.json")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
