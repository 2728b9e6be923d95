"""ANM-GBM: ANM corrected per residue by gradient-boosted trees learned from mdCATH (issue 12).

The physics (ANM, :mod:`dynaprot_viz.core.anm`) gives the shape of every marginal and the
correlations; a tree ensemble trained on real explicit-solvent MD (1,046 mdCATH domains,
320 K, mean of five replicas) gives each residue's amplitude.

Model
-----
1. ANM covariance of the C-alpha trace (cutoff 15 Å, gamma 1 kT/Å², one factorisation):
   marginals Sigma_i^ANM (N, 3, 3) and coupling C^ANM (N, N), relative units.
2. Per-residue features x_i (:data:`FEATURE_NAMES`, all from C-alpha coordinates and the
   sequence, so C-alpha-only inputs work): log ANM MSF and its chain-centred value, contact
   numbers, distances to the centroid, to the termini and to chain breaks, chain length and
   size, local C-alpha geometry (virtual bond angle, dihedral, i+-2 / i+-3 spans), half-sphere
   exposure, and the amino-acid type (one-hot of 20); then sequence-window means of some of
   them (+-2 and +-5 residues) and glycine / proline / hydrophobic counts in +-3 residues.
3. Target: **y_i = ln RMSF_i in Å** at mdCATH's 320 K scale (absolute, not relative to ANM;
   ln ANM MSF is a feature). A tree ensemble gives y_i = b + sum_t f_t(x_i), evaluated here in
   numpy from arrays (:class:`TreeEnsemble`); no scikit-learn at run time.
4. Gaussian: with r_i = exp(y_i) and s_i = r_i / RMSF_i^ANM,
   Sigma_i = s_i^2 Sigma_i^ANM,  C = D C^ANM D,  D = diag(s).
   So RMSF_i = r_i (Å), the correlation matrix and the shape and orientation of each marginal
   are ANM's, C stays positive semi-definite, and the prediction is SE(3)-equivariant (every
   feature is rotation and translation invariant; Sigma_i^ANM rotates with the input).

Weights: ``dynaprot_viz/weights/anm-gbm.safetensors`` (the trees as flat arrays) and
``anm-gbm.json`` (feature order, target, provenance); ``anm-gbm-MODEL_CARD.md`` has the
held-out evaluation.  Trained by ``python -m dynaprot_viz.training.train_anm_gbm``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..anm import anm_covariance
from ..ca_trace import ca_segments
from ..errors import InputError, ShapeError
from ..gaussian import Dynamics, coupling_from_joint, marginals_from_joint
from ..structure import ProteinChain

__all__ = [
    "FEATURE_NAMES",
    "BASE_FEATURE_NAMES",
    "base_features",
    "window_features",
    "AMINO_ACIDS",
    "TreeEnsemble",
    "residue_features",
    "anm_gbm_from_anm",
    "load_anm_gbm",
    "predict_anm_gbm",
    "WEIGHTS_NAME",
]

WEIGHTS_NAME = "anm-gbm.safetensors"
CONFIG_NAME = "anm-gbm.json"
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: half-sphere exposure radius (Å), C-alpha only (Hamelryck 2005, HSE-alpha)
HSE_RADIUS = 13.0

_GEOMETRY_NAMES = [
    "log_msf_anm",  # ln tr Sigma_i^ANM, ANM at gamma = 1 kT/Å² (Å²)
    "log_msf_anm_centred",  # minus the chain mean of ln MSF
    "log_msf_anm_chain_mean",  # chain mean of ln MSF
    "wcn",  # weighted contact number sum_j 1/d_ij^2 (Å^-2)
    "wcn_relative",  # wcn / chain mean wcn
    "contacts_8",  # C-alpha atoms within 8 Å (excluding i)
    "contacts_12",
    "contacts_15",
    "dist_centroid",  # Å
    "dist_centroid_over_rg",
    "seq_from_n_terminus",  # ln(1 + i)
    "seq_from_c_terminus",  # ln(1 + N - 1 - i)
    "seq_from_terminus",  # ln(1 + min(i, N-1-i))
    "seq_from_segment_end",  # ln(1 + residues to the nearest chain break or terminus)
    "log_length",  # ln N
    "radius_of_gyration",  # Å
    "rg_over_n_cuberoot",  # Rg / N^(1/3), Å (compactness)
    "cos_bond_angle",  # cos of the C-alpha virtual bond angle at i (0 where undefined)
    "cos_dihedral",  # dihedral CA(i-1) CA(i) CA(i+1) CA(i+2) (0 where undefined)
    "sin_dihedral",
    "span_i-2_i+2",  # |CA(i+2) - CA(i-2)| Å (0 where undefined)
    "span_i-3_i+3",
    "hse_up",  # C-alpha half-sphere exposure, 13 Å
    "hse_down",
]
#: per-residue features before the sequence windows
BASE_FEATURE_NAMES = tuple(_GEOMETRY_NAMES + [f"aa_{a}" for a in AMINO_ACIDS])
#: base features averaged over the sequence window [i - w, i + w] (cut at the chain ends)
WINDOWED = ("log_msf_anm_centred", "wcn_relative", "contacts_12", "hse_up", "cos_bond_angle", "span_i-2_i+2")
WINDOW_HALF_WIDTHS = (2, 5)
#: residue groups counted in the window [i - 3, i + 3]
COUNTED = (("gly_count7", "G"), ("pro_count7", "P"), ("hydrophobic_count7", "AILMFVW"))
#: feature order of the model's input columns
FEATURE_NAMES = BASE_FEATURE_NAMES + tuple(
    [f"{name}_mean{w}" for name in WINDOWED for w in WINDOW_HALF_WIDTHS] + [name for name, _ in COUNTED])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _window_sum(v: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of v over [i - w, i + w] cut at the ends, and the window's size, shapes (N,)."""
    n = len(v)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(n)
    lo, hi = np.maximum(idx - w, 0), np.minimum(idx + w + 1, n)
    return csum[hi] - csum[lo], (hi - lo).astype(np.float64)


def window_features(base: np.ndarray) -> np.ndarray:
    """Sequence-window features of one whole chain from its base features.

    Parameters
    ----------
    base : ndarray, shape (N, len(BASE_FEATURE_NAMES))
        :func:`base_features` of every residue of the chain, in chain order.

    Returns
    -------
    ndarray, shape (N, len(FEATURE_NAMES) - len(BASE_FEATURE_NAMES))
        Window means of :data:`WINDOWED` (half-widths :data:`WINDOW_HALF_WIDTHS`), then the
        counts of :data:`COUNTED` residue groups in [i - 3, i + 3].
    """
    base = np.asarray(base, dtype=np.float64)
    cols = []
    for name in WINDOWED:
        v = base[:, BASE_FEATURE_NAMES.index(name)]
        for w in WINDOW_HALF_WIDTHS:
            total, size = _window_sum(v, w)
            cols.append(total / size)
    for _, letters in COUNTED:
        v = base[:, [BASE_FEATURE_NAMES.index(f"aa_{a}") for a in letters]].sum(axis=1)
        cols.append(_window_sum(v, 3)[0])
    return np.stack(cols, axis=1)


def residue_features(ca: np.ndarray, sequence: str, msf_anm: np.ndarray) -> np.ndarray:
    """Per-residue input features of ANM-GBM, in :data:`FEATURE_NAMES` order: the
    :func:`base_features` followed by their :func:`window_features`.

    Parameters and invariance as :func:`base_features`; shape (N, len(FEATURE_NAMES)).
    """
    base = base_features(ca, sequence, msf_anm)
    return np.concatenate([base, window_features(base)], axis=1)


def base_features(ca: np.ndarray, sequence: str, msf_anm: np.ndarray) -> np.ndarray:
    """Per-residue base features of ANM-GBM, in :data:`BASE_FEATURE_NAMES` order.

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
        C-alpha coordinates in chain order.
    sequence : str
        N one-letter codes (anything outside the 20 standard letters gets no one-hot bit).
    msf_anm : ndarray, shape (N,)
        ANM mean-square fluctuation tr Sigma_i^ANM at gamma = 1 kT/Å² (Å², relative), > 0.

    Returns
    -------
    ndarray, shape (N, len(BASE_FEATURE_NAMES)), float64, finite
        Invariant under rotation and translation of ``ca``.
    """
    ca = np.asarray(ca, dtype=np.float64)
    msf = np.asarray(msf_anm, dtype=np.float64)
    n = len(ca)
    if ca.shape != (n, 3) or msf.shape != (n,) or len(sequence) != n:
        raise ShapeError(f"features need ca (N, 3), msf (N,) and N letters; got {ca.shape}, {msf.shape}, "
                         f"{len(sequence)}")
    if not (np.all(np.isfinite(ca)) and np.all(np.isfinite(msf)) and np.all(msf > 0)):
        raise InputError("ANM-GBM features need finite C-alpha coordinates and positive ANM fluctuations")
    idx = np.arange(n)
    log_msf = np.log(msf)

    d = np.linalg.norm(ca[:, None, :] - ca[None, :, :], axis=-1)  # [N, N] Å
    np.fill_diagonal(d, np.inf)
    wcn = np.sum(1.0 / d**2, axis=1)
    contacts = [np.sum(d <= c, axis=1).astype(np.float64) for c in (8.0, 12.0, 15.0)]
    centre = ca.mean(axis=0)
    dc = np.linalg.norm(ca - centre, axis=1)
    rg = float(np.sqrt(np.mean(dc**2)))

    seg = ca_segments(ca) if n > 1 else np.zeros(n, dtype=np.int64)
    seg_first = np.zeros(n, dtype=np.int64)
    seg_last = np.zeros(n, dtype=np.int64)
    for s in np.unique(seg):
        members = np.flatnonzero(seg == s)
        seg_first[members] = members[0]
        seg_last[members] = members[-1]
    from_seg_end = np.minimum(idx - seg_first, seg_last - idx)

    # local C-alpha geometry, only within a bonded segment
    def same(k):  # residue i and i+k in one segment
        ok = np.zeros(n, dtype=bool)
        lo, hi = max(0, -k), min(n, n - k)
        ok[lo:hi] = seg[lo:hi] == seg[lo + k:hi + k]
        return ok

    cos_angle = np.zeros(n)
    m = np.flatnonzero(same(-1) & same(1))
    if len(m):
        cos_angle[m] = np.sum(_unit(ca[m - 1] - ca[m]) * _unit(ca[m + 1] - ca[m]), axis=-1)
    cos_dih = np.zeros(n)
    sin_dih = np.zeros(n)
    m = np.flatnonzero(same(-1) & same(2))
    if len(m):
        b0, b1, b2 = ca[m - 1] - ca[m], _unit(ca[m + 1] - ca[m]), ca[m + 2] - ca[m + 1]
        v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
        w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
        ang = np.arctan2(np.sum(np.cross(b1, v) * w, axis=-1), np.sum(v * w, axis=-1))
        cos_dih[m], sin_dih[m] = np.cos(ang), np.sin(ang)
    spans = []
    for k in (2, 3):
        s = np.zeros(n)
        m = np.flatnonzero(same(-k) & same(k))
        if len(m):
            s[m] = np.linalg.norm(ca[m + k] - ca[m - k], axis=-1)
        spans.append(s)

    # HSE-alpha: the side-chain direction is approximated by (CA_i - CA_{i-1}) + (CA_i - CA_{i+1})
    up = np.zeros(n)
    down = np.zeros(n)
    m = np.flatnonzero(same(-1) & same(1))
    if len(m):
        u = _unit((ca[m] - ca[m - 1]) + (ca[m] - ca[m + 1]))  # [M, 3]
        for row, i in enumerate(m):
            nb = np.flatnonzero(d[i] <= HSE_RADIUS)
            side = (ca[nb] - ca[i]) @ u[row]
            up[i] = float(np.sum(side > 0))
            down[i] = float(np.sum(side <= 0))

    aa = np.zeros((n, len(AMINO_ACIDS)))
    lookup = {a: k for k, a in enumerate(AMINO_ACIDS)}
    for i, letter in enumerate(sequence.upper()):
        k = lookup.get(letter)
        if k is not None:
            aa[i, k] = 1.0

    geom = np.stack([
        log_msf, log_msf - log_msf.mean(), np.full(n, log_msf.mean()),
        wcn, wcn / wcn.mean(), *contacts,
        dc, dc / max(rg, 1e-6),
        np.log1p(idx), np.log1p(n - 1 - idx), np.log1p(np.minimum(idx, n - 1 - idx)), np.log1p(from_seg_end),
        np.full(n, np.log(n)), np.full(n, rg), np.full(n, rg / n ** (1.0 / 3.0)),
        cos_angle, cos_dih, sin_dih, *spans, up, down,
    ], axis=1)
    out = np.concatenate([geom, aa], axis=1)
    if out.shape[1] != len(BASE_FEATURE_NAMES) or not np.all(np.isfinite(out)):  # pragma: no cover - a bug
        raise RuntimeError("ANM-GBM features are not finite or have the wrong width")
    return out


# --------------------------------------------------------------------------- the trees


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A sum of regression trees stored as flat arrays (the layout of scikit-learn's
    HistGradientBoostingRegressor predictors, concatenated).

    Attributes
    ----------
    feature : ndarray, shape (M,), int64
        Feature column tested at each node (ignored at leaves).
    threshold : ndarray, shape (M,), float64
        Go left when ``x[feature] <= threshold``.
    left, right : ndarray, shape (M,), int64
        Child node indices, *local* to the node's tree.
    value : ndarray, shape (M,), float64
        Leaf value (already multiplied by the learning rate).
    is_leaf : ndarray, shape (M,), bool
    missing_left : ndarray, shape (M,), bool
        Where a NaN feature goes (scikit-learn's ``missing_go_to_left``).
    tree_start : ndarray, shape (T,), int64
        Index of each tree's root in the flat arrays.
    baseline : float
        Added to the sum of the trees.

    prediction(x) = baseline + sum over trees, in tree order, of the leaf value reached by x.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray
    missing_left: np.ndarray
    tree_start: np.ndarray
    baseline: float
    n_features: int

    def __post_init__(self):
        m = len(self.value)
        for name in ("feature", "threshold", "left", "right", "is_leaf", "missing_left"):
            if np.asarray(getattr(self, name)).shape != (m,):
                raise ShapeError(f"tree array {name} must have shape ({m},)")
        starts = np.asarray(self.tree_start, dtype=np.int64)
        if starts.ndim != 1 or len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= m:
            raise ShapeError("tree_start must be increasing indices starting at 0")
        ends = np.append(starts[1:], m)
        sizes = np.repeat(ends - starts, ends - starts)
        inner = ~np.asarray(self.is_leaf, dtype=bool)
        feat = np.asarray(self.feature, dtype=np.int64)
        left = np.asarray(self.left, dtype=np.int64)
        right = np.asarray(self.right, dtype=np.int64)
        if np.any((feat[inner] < 0) | (feat[inner] >= self.n_features)):
            raise ShapeError("a tree node tests a feature outside the model's inputs")
        if np.any((left[inner] <= 0) | (left[inner] >= sizes[inner]) | (right[inner] <= 0) |
                  (right[inner] >= sizes[inner])):
            raise ShapeError("a tree node points outside its tree")
        if not (np.all(np.isfinite(np.asarray(self.value)[~inner])) and np.isfinite(self.baseline)):
            raise ShapeError("tree leaf values must be finite")
        object.__setattr__(self, "feature", feat)
        object.__setattr__(self, "threshold", np.asarray(self.threshold, dtype=np.float64))
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)
        object.__setattr__(self, "value", np.asarray(self.value, dtype=np.float64))
        object.__setattr__(self, "is_leaf", np.asarray(self.is_leaf, dtype=bool))
        object.__setattr__(self, "missing_left", np.asarray(self.missing_left, dtype=bool))
        object.__setattr__(self, "tree_start", starts)
        object.__setattr__(self, "baseline", float(self.baseline))

    @property
    def n_trees(self) -> int:
        return len(self.tree_start)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Global index of the leaf reached in every tree, shape (R, T), for x of shape (R, F)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ShapeError(f"tree input must have shape (R, {self.n_features}), got {x.shape}")
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.tree_start, (len(x), self.n_trees)).copy()  # [R, T] global index
        root = np.broadcast_to(self.tree_start, node.shape)
        active = ~self.is_leaf[node]
        while active.any():
            r, t = np.nonzero(active)
            g = node[r, t]
            v = x[rows[r, 0], self.feature[g]]
            go_left = np.where(np.isnan(v), self.missing_left[g], v <= self.threshold[g])
            node[r, t] = root[r, t] + np.where(go_left, self.left[g], self.right[g])
            active[r, t] = ~self.is_leaf[node[r, t]]
        return node

    def predict(self, x: np.ndarray) -> np.ndarray:
        """baseline + the trees' leaf values summed in tree order, shape (R,)."""
        vals = self.value[self.leaves(x)]  # [R, T]
        out = np.full(len(vals), self.baseline)
        for t in range(self.n_trees):  # the library's summation order, for exact agreement
            out += vals[:, t]
        return out

    def to_arrays(self) -> dict:
        """Flat arrays for safetensors (``tree_*`` names, baseline and n_features as 1-element arrays)."""
        return {
            "tree_feature": self.feature.astype(np.int64), "tree_threshold": self.threshold,
            "tree_left": self.left.astype(np.int64), "tree_right": self.right.astype(np.int64),
            "tree_value": self.value, "tree_is_leaf": self.is_leaf.astype(np.uint8),
            "tree_missing_left": self.missing_left.astype(np.uint8), "tree_start": self.tree_start,
            "baseline": np.array([self.baseline]), "n_features": np.array([self.n_features], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> "TreeEnsemble":
        try:
            return cls(
                feature=arrays["tree_feature"], threshold=arrays["tree_threshold"], left=arrays["tree_left"],
                right=arrays["tree_right"], value=arrays["tree_value"],
                is_leaf=arrays["tree_is_leaf"].astype(bool), missing_left=arrays["tree_missing_left"].astype(bool),
                tree_start=arrays["tree_start"], baseline=float(arrays["baseline"][0]),
                n_features=int(arrays["n_features"][0]),
            )
        except KeyError as exc:
            raise InputError(f"ANM-GBM weights lack the array {exc.args[0]!r}") from None

    @classmethod
    def from_sklearn(cls, model) -> "TreeEnsemble":
        """The trees of a fitted ``sklearn.ensemble.HistGradientBoostingRegressor`` (numeric
        features only; the library's private ``_predictors`` / ``_baseline_prediction``)."""
        feats, thr, left, right, val, leaf, miss, starts = [], [], [], [], [], [], [], []
        offset = 0
        for (pred,) in model._predictors:
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported by the numpy evaluator")
            starts.append(offset)
            feats.append(nodes["feature_idx"].astype(np.int64))
            thr.append(nodes["num_threshold"].astype(np.float64))
            left.append(nodes["left"].astype(np.int64))
            right.append(nodes["right"].astype(np.int64))
            val.append(nodes["value"].astype(np.float64))
            leaf.append(nodes["is_leaf"].astype(bool))
            miss.append(nodes["missing_go_to_left"].astype(bool))
            offset += len(nodes)
        return cls(np.concatenate(feats), np.concatenate(thr), np.concatenate(left), np.concatenate(right),
                   np.concatenate(val), np.concatenate(leaf), np.concatenate(miss), np.array(starts),
                   float(np.ravel(model._baseline_prediction)[0]), int(model.n_features_in_))


# --------------------------------------------------------------------------- loading and predicting


def _weights_dir() -> Path:
    try:
        from importlib.resources import files

        return Path(str(files("dynaprot_viz") / "weights"))
    except Exception:  # pragma: no cover - source tree without the package installed
        return Path(__file__).resolve().parents[2] / "dynaprot_viz" / "weights"


_LOADED: dict = {}


def load_anm_gbm(path=None) -> tuple[TreeEnsemble, dict]:
    """The tree ensemble and its config (``anm-gbm.json`` beside the ``.safetensors``).

    Parameters
    ----------
    path : str or Path, optional
        A ``.safetensors`` file; default the shipped ``dynaprot_viz/weights/anm-gbm.safetensors``.

    Raises
    ------
    InputError
        Missing or unreadable file, or a feature list that differs from :data:`FEATURE_NAMES`.
    """
    path = Path(path) if path is not None else _weights_dir() / WEIGHTS_NAME
    key = str(path.resolve())
    if key in _LOADED:
        return _LOADED[key]
    cfg_path = path.with_name(path.name.replace(".safetensors", ".json"))
    if not path.exists() or not cfg_path.exists():
        raise InputError(f"{path}: ANM-GBM weights (and {cfg_path.name} beside them) not found")
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
        config = json.loads(cfg_path.read_text())
    except Exception as exc:
        raise InputError(f"{path}: unreadable ANM-GBM weights ({exc})") from None
    if tuple(config.get("features", ())) != FEATURE_NAMES:
        raise InputError(f"{cfg_path}: its feature list does not match this version of ANM-GBM")
    model = TreeEnsemble.from_arrays(arrays)
    if model.n_features != len(FEATURE_NAMES):
        raise InputError(f"{path}: trees expect {model.n_features} features, not {len(FEATURE_NAMES)}")
    _LOADED[key] = (model, config)
    return _LOADED[key]


def anm_gbm_from_anm(chain: ProteinChain, marginals: np.ndarray, coupling: np.ndarray, log_rmsf: np.ndarray,
                     model_name: str = "anm-gbm") -> Dynamics:
    """ANM's Gaussian rescaled per residue to the RMSF exp(log_rmsf).

    Parameters
    ----------
    chain : ProteinChain
    marginals : ndarray, shape (N, 3, 3), relative Å²
        ANM's Sigma_i.
    coupling : ndarray, shape (N, N), relative Å²
        ANM's C.
    log_rmsf : ndarray, shape (N,)
        ln of the wanted RMSF in Å.

    Returns
    -------
    Dynamics
        Sigma_i = s_i^2 Sigma_i^ANM, C = D C^ANM D with s_i = exp(log_rmsf_i) / RMSF_i^ANM.
    """
    rmsf_anm = np.sqrt(np.trace(marginals, axis1=1, axis2=2))
    s = np.exp(np.asarray(log_rmsf, dtype=np.float64)) / rmsf_anm  # [N]
    coup = coupling * s[:, None] * s[None, :]
    coup = 0.5 * (coup + coup.T)
    return Dynamics(mean=chain.ca, marginals=marginals * (s**2)[:, None, None], coupling=coup,
                    residues=chain.residues, model_name=model_name)


def predict_anm_gbm(chain: ProteinChain, weights=None, cutoff: float = 15.0, gamma: float = 1.0) -> Dynamics:
    """ANM-GBM dynamics of a chain: ANM's Gaussian with mdCATH-learned per-residue RMSF.

    Parameters
    ----------
    chain : ProteinChain
        C-alpha coordinates are all it uses (a C-alpha-only chain works).  A complex
        (residues of several chains) is one ANM network; the tree features are
        computed chain by chain (contact numbers count the residue's own chain only),
        the ln ANM MSF feature comes from the complex.
    weights : str or Path, optional
        ``.safetensors`` trees (config json beside it); default the shipped ones.
    cutoff : float, Å
        ANM cutoff; the shipped trees were trained at 15 Å (change it only with trees
        trained for it).
    gamma : float, kT / Å²
        ANM spring constant; the trees were trained at 1. It does not change the result
        (the tree output sets the amplitude) except through the ln MSF feature.

    Returns
    -------
    Dynamics
        ``marginals`` (N, 3, 3) Å², ``coupling`` (N, N) Å², RMSF in Å at mdCATH's 320 K
        scale; ``model_name`` ``"anm-gbm"``.
    """
    model, _ = load_anm_gbm(weights)
    cov = anm_covariance(chain.ca, cutoff=cutoff, gamma=gamma)
    marg = marginals_from_joint(cov)
    coup = coupling_from_joint(cov)
    del cov
    msf = np.trace(marg, axis1=1, axis2=2)
    if not np.all(msf > 0):
        raise InputError(f"{chain.source}: the ANM of these {len(chain)} residues leaves some residues "
                         "without fluctuation; too few contacts for a 3D elastic network")
    # a complex (residues of several chains, :func:`~dynaprot_viz.core.structure.load_chains`):
    # one ANM network for all of it (inter-chain coupling included, msf from the complex), but the
    # per-residue features (termini, chain length, windows, contacts) per chain, as in training
    x = np.concatenate([residue_features(chain.ca[sl], chain.sequence[sl], msf[sl])
                        for _, sl in chain.chain_slices()])
    try:
        return anm_gbm_from_anm(chain, marg, coup, model.predict(x))
    except ShapeError as exc:
        raise InputError(
            f"{chain.source}: the ANM of these {len(chain)} residues is degenerate ({exc}); "
            "too few residues or contacts for a 3D elastic network"
        ) from None
