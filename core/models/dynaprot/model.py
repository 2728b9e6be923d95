"""DynaProt-M (per-residue marginals) and DynaProt-J (coupling), DESIGN.md section 3.

Both read the same inputs, built by :func:`featurize`:

- ``aatype`` [*, N] long: amino-acid index (20 standard + 1 unknown);
- ``rot`` [*, N, 3, 3]: residue frames (columns = axes, AlphaFold Gram-Schmidt);
- ``trans`` [*, N, 3] Å: C-alpha positions;
- ``residue_index`` [*, N] long: position along the chain;
- ``mask`` [*, N] float: 1 for residues, 0 for padding.

DynaProt-M: one-hot embedding -> 8 IPA blocks (d = 128) on the fixed frames ->
6 numbers per residue -> lower-triangular L (softplus diagonal) in the local
frame -> Sigma_i = R_i L L^T R_i^T + eps I (Å²).  SE(3)-equivariant: rotating
the input rotates every Sigma_i.

DynaProt-J: the same kind of IPA trunk -> pair features (concatenated residue
embeddings, i.e. a linear map of [s_i, s_j], plus relative position and a radial
basis of C-alpha distances) -> Evoformer-style pair blocks -> scalar z_ij ->
lower-triangular L (softplus diagonal) -> C = L L^T + eps I (Å²).  Invariant.

Two variants, chosen by :attr:`DynaProtConfig.prior`:

- ``prior=None`` (default): the paper's **pure** DynaProt above (what the shipped
  weights and the existing configs are);
- ``prior="anm"``: the **physics-prior** DynaProt, a learned correction on top of
  the Anisotropic Network Model (:mod:`dynaprot_viz.core.anm`).  One ANM
  factorisation per chain (:func:`anm_prior_features`: relative covariance
  Sigma^ANM (3N x 3N) -> marginals, coupling, amplitude scale s_A) feeds both the
  inputs and the outputs:

  * inputs: per residue, the 6 entries of A_i = logm(R_i^T s_A Sigma_i^ANM R_i)
    (the ANM marginal in the residue's own frame, log Å²: rotation invariant),
    added to the single representation; per pair, ANM's correlation C~_ij and
    log(s_A |C_ij| + 1e-3 Å²), added to the IPA pair bias (M and J) and to J's
    pair representation;
  * M: a symmetric 3x3 log-space residual Delta_i (6 numbers, local frame) and a
    per-chain log-scale g_M:  Sigma_i = R_i expm(A_i + Delta_i + g_M I) R_i^T;
  * J: per-residue log-amplitudes delta_i (D = diag exp(delta_i)), a symmetric
    N x N residual S (pair readout) and a per-chain log-scale g_J:
    C = s_A e^{g_J} D F expm(S) F D + eps I, with F = (C^ANM)^{1/2} the PSD
    square root of ANM's (relative) coupling and S = sym(z_ij) / N (N = chain
    length, which bounds ||S||_2 by max |z_ij|).  PSD for any output; the affine-
    invariant geodesic through ANM's coupling, so S changes its correlation
    structure and D, g_J its amplitudes;
  * every last layer is ``init="final"`` (zero): an untrained prior model
    returns exactly s_A Sigma^ANM and s_A C^ANM (+ eps I on C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from ..ipa import IPABlock
from ..pair import PairBlock
from ..primitives import NM_PER_ANGSTROM, Linear, embed_relative_position, rbf_distances

__all__ = [
    "DynaProt",
    "DynaProtConfig",
    "DynaProtM",
    "DynaProtJ",
    "featurize",
    "featurize_arrays",
    "collate",
    "AMINO_ACIDS",
    "count_parameters",
    "PRIORS",
    "anm_prior_features",
    "add_anm_features",
    "ANM_FEATURE_KEYS",
]

#: values of :attr:`DynaProtConfig.prior`: None = the paper's pure model, "anm" = physics prior
PRIORS = (None, "anm")
#: batch keys of the ANM inputs of the physics-prior variant (see :func:`anm_prior_features`)
ANM_FEATURE_KEYS = ("anm_marginals", "anm_coupling", "anm_log_scale")
#: the prior's ANM: cutoff (Å) and spring constant (kT/Å²) of the shipped amplitude model
ANM_PRIOR_CUTOFF = 15.0

#: one-letter codes, index = aatype; anything else is 20 (unknown)
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_AA_INDEX = {a: i for i, a in enumerate(AMINO_ACIDS)}
N_AATYPE = len(AMINO_ACIDS) + 1


@dataclass
class DynaProtConfig:
    """Hyper-parameters of both models (defaults = the paper-sized models).

    Trunk (both): ``c_s`` single channels, ``c_z`` relative-position pair channels
    seen by IPA, ``n_blocks`` IPA blocks, IPA heads / channels / points,
    ``transition_factor`` (M) and ``j_transition_factor`` (J) hidden-size
    multipliers.  J only: ``j_n_blocks``, ``c_pair`` pair channels,
    ``n_pair_blocks``, triangle update / attention widths, ``n_rbf`` distance bins.
    ``eps_marginal`` / ``eps_coupling`` (Å²) are added to the diagonals so that
    every prediction is SPD (the prior variant's marginals are SPD by construction
    and get no eps).  ``chunk_size``: rows of the pair map processed at a time in
    J (None = all).

    ``prior``: ``None`` (default) = the paper's **pure** DynaProt; ``"anm"`` = the
    **physics-prior** DynaProt, a correction on top of ANM (module docstring).
    :meth:`to_dict` leaves ``prior`` out when it is None, so configs and weights
    files written before the field existed read and compare unchanged.
    """

    c_s: int = 128
    c_z: int = 16
    n_blocks: int = 8
    ipa_heads: int = 4
    ipa_c_hidden: int = 16
    ipa_qk_points: int = 4
    ipa_v_points: int = 4
    transition_factor: int = 2
    relpos_max: int = 32
    j_n_blocks: int = 8
    j_transition_factor: int = 4
    c_pair: int = 16
    n_pair_blocks: int = 2
    pair_c_hidden_mul: int = 16
    # one attention head of 16 channels: the parameters of 2 x 8, half the softmax
    # (N^3 exponentials per head), which bounds triangle attention on a CPU
    pair_c_hidden_att: int = 16
    pair_heads: int = 1
    n_rbf: int = 16
    eps_marginal: float = 1e-4
    eps_coupling: float = 1e-4
    chunk_size: int | None = None
    prior: str | None = None

    def __post_init__(self):
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(map(repr, PRIORS))}, got {self.prior!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "DynaProtConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["prior"] is None:  # the pure model's dict is what it was before `prior` existed
            del d["prior"]
        return d


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- inputs


def anm_prior_features(ca: np.ndarray) -> dict:
    """The ANM inputs of the physics-prior DynaProt for one chain, from ONE factorisation.

    ca : ndarray, shape (N, 3), Å (N >= 3), finite.

    Returns a dict of float64 tensors (no batch axis):

    - ``anm_marginals`` [N, 3, 3]: Sigma_i^ANM in kT/gamma units (gamma = 1, cutoff
      15 Å; relative, not Å²);
    - ``anm_coupling`` [N, N]: C^ANM_ij = tr(Sigma^ANM_ij) / 3, same units;
    - ``anm_log_scale`` [N]: log s_A (every entry the same), s_A the amplitude
      model's factor (Å² per relative unit, :func:`~dynaprot_viz.core.anm.amplitude_scale`),
      so s_A Sigma^ANM is calibrated ANM in Å².

    Raises :class:`~dynaprot_viz.core.errors.InputError` when the ANM is undefined.
    """
    from ...anm import amplitude_scale, anm_covariance
    from ...errors import InputError
    from ...gaussian import coupling_from_joint, marginals_from_joint

    ca = np.asarray(ca, dtype=np.float64)
    if ca.ndim != 2 or ca.shape[1] != 3 or not np.all(np.isfinite(ca)):
        raise InputError(f"the ANM prior needs finite C-alpha coordinates of shape (N, 3), got {ca.shape}")
    cov = anm_covariance(ca, cutoff=ANM_PRIOR_CUTOFF, gamma=1.0)  # the one factorisation
    marg = marginals_from_joint(cov)
    coup = coupling_from_joint(cov)
    if np.any(np.linalg.eigvalsh(marg) <= 0):
        raise InputError(f"the ANM of these {len(ca)} residues has a singular marginal; "
                         "too few contacts for the physics prior")
    log_s = math.log(amplitude_scale(ca, marg, cutoff=ANM_PRIOR_CUTOFF, gamma=1.0))
    return {
        "anm_marginals": torch.from_numpy(np.ascontiguousarray(marg)),
        "anm_coupling": torch.from_numpy(np.ascontiguousarray(0.5 * (coup + coup.T))),
        "anm_log_scale": torch.full((len(ca),), log_s, dtype=torch.float64),
    }


def add_anm_features(batch: dict) -> dict:
    """``batch`` with the ANM inputs (:data:`ANM_FEATURE_KEYS`) added where missing.

    batch : a collated batch (leading batch axis; padding at the end of each chain,
    as :func:`collate` makes it).  Each chain's ANM comes from its valid C-alpha
    positions ``trans`` [*, N, 3] Å; padded entries are 0.  Returns a new dict (the
    input is not modified); when the keys are already there it is returned as is.
    Used by the physics-prior model at inference, where no data loader cached them.
    """
    if all(k in batch for k in ANM_FEATURE_KEYS):
        return batch
    trans, mask = batch["trans"], batch["mask"]
    b, n = trans.shape[:2]
    marg = torch.zeros(b, n, 3, 3, dtype=torch.float64)
    coup = torch.zeros(b, n, n, dtype=torch.float64)
    log_s = torch.zeros(b, n, dtype=torch.float64)
    for k in range(b):
        m = int((mask[k] > 0.5).sum())
        feats = anm_prior_features(trans[k, :m].detach().double().cpu().numpy())
        marg[k, :m], coup[k, :m, :m], log_s[k, :m] = (feats[key] for key in ANM_FEATURE_KEYS)
    dev, dt = trans.device, trans.dtype
    return {**batch, "anm_marginals": marg.to(dev, dt), "anm_coupling": coup.to(dev, dt),
            "anm_log_scale": log_s.to(dev, dt)}


def featurize_arrays(sequence: str, backbone: np.ndarray, frames=None, anm: bool = False) -> dict:
    """Model inputs of one chain as float64/long tensors (no batch axis).

    sequence : str of N one-letter codes; backbone : (N, 3, 3) Å [N, CA, C], finite.
    frames : (rotations (N, 3, 3), translations (N, 3) Å), optional
        Frames to use instead of those of ``backbone`` (e.g. approximate ones from
        :func:`~dynaprot_viz.core.structure.frames_for_model`); ``backbone`` may
        then hold NaN for N and C.
    anm : bool
        Also the physics-prior inputs of :func:`anm_prior_features` (the C-alpha
        ANM of this chain; default False: the pure model's five inputs only).
    """
    from ...structure import local_frames

    bb = np.asarray(backbone, dtype=np.float64)
    if bb.ndim != 3 or bb.shape[1:] != (3, 3) or len(sequence) != bb.shape[0]:
        raise ValueError(f"backbone must have shape ({len(sequence)}, 3, 3), got {bb.shape}")
    if frames is not None:
        rot, trans = (np.asarray(x, dtype=np.float64) for x in frames)
        if rot.shape != (len(sequence), 3, 3) or trans.shape != (len(sequence), 3):
            raise ValueError(f"frames must have shapes ({len(sequence)}, 3, 3) and ({len(sequence)}, 3), "
                             f"got {rot.shape} and {trans.shape}")
        if not (np.all(np.isfinite(rot)) and np.all(np.isfinite(trans))):
            raise ValueError("frames are not all finite")
    else:
        if not np.all(np.isfinite(bb)):
            raise ValueError("backbone has missing (NaN) N or C atoms; DynaProt needs full N, CA, C")
        rot, trans = local_frames(bb[:, 0], bb[:, 1], bb[:, 2])
    n = len(sequence)
    out = {
        "aatype": torch.tensor([_AA_INDEX.get(a, 20) for a in sequence.upper()], dtype=torch.long),
        "rot": torch.from_numpy(rot),
        "trans": torch.from_numpy(trans),
        "residue_index": torch.arange(n, dtype=torch.long),
        "mask": torch.ones(n, dtype=torch.float64),
    }
    if anm:
        out.update(anm_prior_features(trans))
    return out


def featurize(chain, frames=None, anm: bool = False) -> dict:
    """Model inputs of a :class:`~dynaprot_viz.core.structure.ProteinChain` (see module doc).

    frames : (rotations (N, 3, 3), translations (N, 3) Å), optional
        Default ``chain.frames()`` (exact; InputError naming the residues without N
        or C).  The predictor passes ``frames_for_model(chain)``, which falls back to
        approximate frames from the C-alpha trace for those residues.
    """
    if frames is None:
        frames = chain.frames()  # raises InputError naming the residues without N or C
    return featurize_arrays(chain.sequence, chain.backbone, frames=frames, anm=anm)


def collate(items: list[dict]) -> dict:
    """Pad a list of per-chain dicts to the longest chain; adds a leading batch axis.

    Padding: aatype 20, identity frames at the origin, mask 0.  Keys other
    than the five inputs are padded with zeros along every axis of length N
    (e.g. labels ``marginals`` [N, 3, 3] or ``coupling`` [N, N]).
    """
    n_max = max(len(it["aatype"]) for it in items)
    out = {}
    for key in items[0]:
        vals = []
        for it in items:
            v = it[key]
            n = len(it["aatype"])
            if not torch.is_tensor(v):
                vals.append(v)
                continue
            pad_shape = [n_max if (d == n and ax < 2) else d for ax, d in enumerate(v.shape)]
            if key == "aatype":
                p = torch.full(pad_shape, 20, dtype=v.dtype)
            elif key == "rot":
                p = torch.eye(3, dtype=v.dtype).expand(pad_shape).clone()
            else:
                p = torch.zeros(pad_shape, dtype=v.dtype)
            p[tuple(slice(0, s) for s in v.shape)] = v
            vals.append(p)
        out[key] = torch.stack(vals) if torch.is_tensor(vals[0]) else vals
    return out


# ----------------------------------------------------------------------------- trunk


#: number of per-residue / per-pair ANM input features of the physics prior
N_ANM_SINGLE = 6
N_ANM_PAIR = 2
#: Å²: floor inside log(s_A |C_ij| + floor), the log-coupling pair feature
_LOG_COUPLING_FLOOR = 1e-3


def _anm_inputs(batch) -> dict:
    """The physics prior's invariant inputs, computed without gradient in float64.

    Returns ``local_log`` [*, N, 3, 3] = A_i = logm(R_i^T s_A Sigma_i^ANM R_i) (log Å²;
    padding: 0), ``single`` [*, N, 6] (A_11, A_22, A_33, sqrt2 A_12, sqrt2 A_13,
    sqrt2 A_23: the orthonormal coordinates of A_i), ``pair`` [*, N, N, 2]
    (correlation C~_ij, log(s_A |C_ij| + 1e-3 Å²); padding: 0) and ``log_scale`` [*]
    (log s_A per chain).
    """
    missing = [k for k in ANM_FEATURE_KEYS if k not in batch]
    if missing:
        raise ValueError(f"the physics-prior DynaProt needs the ANM inputs {', '.join(missing)} "
                         "(featurize(..., anm=True) or add_anm_features(batch))")
    with torch.no_grad():
        mask = batch["mask"].detach().to(torch.float64)
        valid = mask[..., None, None]
        eye = torch.eye(3, dtype=torch.float64, device=mask.device)
        rot = batch["rot"].detach().to(torch.float64)
        sig = batch["anm_marginals"].detach().to(torch.float64)
        loc = rot.transpose(-1, -2) @ sig @ rot  # R^T Sigma R: the marginal in the residue frame
        loc = 0.5 * (loc + loc.transpose(-1, -2)) * valid + eye * (1.0 - valid)
        w, v = torch.linalg.eigh(loc)
        w = torch.clamp(w, min=1e-12 * float(w.abs().max().clamp(min=1e-300)))
        log_scale_res = batch["anm_log_scale"].detach().to(torch.float64) * mask  # [*, N]
        local_log = (v * torch.log(w)[..., None, :]) @ v.transpose(-1, -2)
        local_log = (local_log + log_scale_res[..., None, None] * eye) * valid  # log(s_A R^T Sigma R)
        r2 = math.sqrt(2.0)
        single = torch.stack([local_log[..., 0, 0], local_log[..., 1, 1], local_log[..., 2, 2],
                              r2 * local_log[..., 0, 1], r2 * local_log[..., 0, 2], r2 * local_log[..., 1, 2]], -1)
        coup = batch["anm_coupling"].detach().to(torch.float64)
        pm = mask[..., :, None] * mask[..., None, :]
        d = torch.sqrt(torch.clamp(torch.diagonal(coup, dim1=-2, dim2=-1), min=1e-300))  # [*, N]
        corr = coup / (d[..., :, None] * d[..., None, :]) * pm
        n_valid = mask.sum(-1).clamp(min=1.0)
        log_scale = log_scale_res.sum(-1) / n_valid  # [*]
        log_coup = torch.log(torch.exp(log_scale)[..., None, None] * coup.abs() + _LOG_COUPLING_FLOOR) * pm
        pair = torch.stack([corr, log_coup], -1)
    return {"local_log": local_log, "single": single, "pair": pair, "log_scale": log_scale}


def _masked_mean(x, mask):
    """Mean of x [*, N, C] over the valid residues of mask [*, N] -> [*, C]."""
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(-2) / m.sum(-2).clamp(min=1.0)


class IPATrunk(nn.Module):
    """Embedding (one-hot amino acid -> c_s; relative position -> c_z) + IPA blocks.

    With ``prior=True`` (physics-prior variant) the ANM features of
    :func:`_anm_inputs` are added: ``single`` [*, N, 6] -> c_s, ``pair`` [*, N, N, 2] -> c_z.
    """

    def __init__(self, c_s, c_z, n_blocks, transition_factor, relpos_max, ipa_kwargs, prior: bool = False):
        super().__init__()
        self.relpos_max = relpos_max
        self.embed_aatype = Linear(N_AATYPE, c_s)
        self.embed_relpos = Linear(2 * relpos_max + 1, c_z)
        if prior:
            self.embed_anm_single = Linear(N_ANM_SINGLE, c_s)
            self.embed_anm_pair = Linear(N_ANM_PAIR, c_z)
        self.blocks = nn.ModuleList(
            IPABlock(c_s, c_z, transition_factor=transition_factor, **ipa_kwargs) for _ in range(n_blocks)
        )

    def forward(self, batch, anm=None):
        """Returns s [*, N, c_s] and the relative-position pair features [*, N, N, c_z]
        (plus the ANM pair features when ``anm``, the dict of :func:`_anm_inputs`, is given)."""
        dtype = batch["rot"].dtype
        s = self.embed_aatype(nn.functional.one_hot(batch["aatype"], N_AATYPE).to(dtype))  # [*, N, c_s]
        z = embed_relative_position(self.embed_relpos, batch["residue_index"], self.relpos_max).to(dtype)
        if anm is not None:
            s = s + self.embed_anm_single(anm["single"].to(dtype))
            z = z + self.embed_anm_pair(anm["pair"].to(dtype))
        trans_nm = batch["trans"] * NM_PER_ANGSTROM  # IPA works in nm (AlphaFold convention)
        mask = batch["mask"].to(dtype)
        for block in self.blocks:
            s = block(s, z, batch["rot"], trans_nm, mask)
        return s, z


def _ipa_kwargs(cfg: DynaProtConfig) -> dict:
    return dict(c_hidden=cfg.ipa_c_hidden, no_heads=cfg.ipa_heads,
                no_qk_points=cfg.ipa_qk_points, no_v_points=cfg.ipa_v_points)


_SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(x) = 1 at this x


def _readout_precision(x):
    """(x in at least float32, a context with autocast off): the Cholesky readouts
    run outside bf16 autocast, where eps = 1e-4 Å² would round away next to 1 Å²."""
    wide = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
    return wide, torch.autocast(device_type=x.device.type, enabled=False)


def _symmetric_from_6(a):
    """[*, 6] orthonormal coordinates (d1, d2, d3, sqrt2 o12, sqrt2 o13, sqrt2 o23) -> [*, 3, 3]."""
    r = 1.0 / math.sqrt(2.0)
    o12, o13, o23 = a[..., 3] * r, a[..., 4] * r, a[..., 5] * r
    return torch.stack([
        torch.stack([a[..., 0], o12, o13], -1),
        torch.stack([o12, a[..., 1], o23], -1),
        torch.stack([o13, o23, a[..., 2]], -1),
    ], dim=-2)


def _psd_sqrt(mats, rel_tol: float = 1e-12):
    """PSD square root of symmetric [*, N, N], float64.

    Eigenvalues below ``rel_tol`` times the largest (round-off around the exact null
    modes, e.g. ANM coupling's rigid translation) are set to 0: the square root is
    not Lipschitz there, and round-off of 1e-16 would become 1e-8 in the root.
    """
    w, v = torch.linalg.eigh(0.5 * (mats + mats.transpose(-1, -2)))
    w = torch.where(w > rel_tol * w.amax(-1, keepdim=True), w, torch.zeros_like(w))
    return (v * torch.sqrt(w)[..., None, :]) @ v.transpose(-1, -2)


class DynaProtM(nn.Module):
    """DynaProt-M: per-residue 3x3 covariances from IPA on the input frames.

    ``forward(batch)`` returns ``marginals`` [*, N, 3, 3] Å² (SPD; rows of
    padding positions are meaningless).

    Pure (``cfg.prior=None``): Sigma_i = R_i L_i L_i^T R_i^T + eps I, L_i from 6 numbers.
    Physics prior (``cfg.prior="anm"``): the same 6 numbers are a symmetric log-space
    residual Delta_i in the residue frame and a per-chain log-scale g_M (mean-pooled
    head): Sigma_i = R_i expm(logm(R_i^T s_A Sigma_i^ANM R_i) + Delta_i + g_M I) R_i^T,
    SPD for any output and equal to s_A Sigma_i^ANM when both heads output zero (their
    last layers start at zero).  The batch needs the ANM inputs (added on the fly by
    :func:`add_anm_features` when missing).
    """

    def __init__(self, cfg: DynaProtConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DynaProtConfig()
        self.prior = cfg.prior
        self.trunk = IPATrunk(cfg.c_s, cfg.c_z, cfg.n_blocks, cfg.transition_factor, cfg.relpos_max, _ipa_kwargs(cfg),
                              prior=cfg.prior is not None)
        self.readout = nn.Sequential(
            nn.LayerNorm(cfg.c_s), Linear(cfg.c_s, cfg.c_s, init="relu"), nn.ReLU(), Linear(cfg.c_s, 6, init="final")
        )
        if cfg.prior is None:
            # the softplus diagonal starts at 1 Å (Sigma = 1 Å^2 I)
            self.diag_offset = nn.Parameter(torch.tensor(_SOFTPLUS_INV_1))
        else:
            # per-chain log-scale g_M from the mean-pooled single representation
            self.scale_head = nn.Sequential(nn.LayerNorm(cfg.c_s), Linear(cfg.c_s, 1, init="final"))

    def _forward_prior(self, batch):
        batch = add_anm_features(batch)
        anm = _anm_inputs(batch)
        s, _ = self.trunk(batch, anm)
        a, full_precision = _readout_precision(self.readout(s))  # [*, N, 6]
        g = self.scale_head(_masked_mean(s, batch["mask"]))  # [*, 1]
        with full_precision:
            g = g.to(a.dtype)
            eye = torch.eye(3, dtype=a.dtype, device=a.device)
            log_local = anm["local_log"].to(a.dtype) + _symmetric_from_6(a) + g[..., None, None] * eye
            local = torch.linalg.matrix_exp(log_local)  # [*, N, 3, 3], SPD in the residue frame
            rot = batch["rot"].to(a.dtype)
            sig = rot @ local @ rot.transpose(-1, -2)  # local -> global
            return 0.5 * (sig + sig.transpose(-1, -2))

    def forward(self, batch):
        if self.prior is not None:
            return self._forward_prior(batch)
        s, _ = self.trunk(batch)
        a, full_precision = _readout_precision(self.readout(s))  # [*, N, 6]
        with full_precision:
            diag = nn.functional.softplus(a[..., :3] + self.diag_offset)  # [*, N, 3]
            zero = torch.zeros_like(a[..., 0])
            # lower-triangular L in the local frame: rows (d1 0 0), (l21 d2 0), (l31 l32 d3)
            L = torch.stack([
                torch.stack([diag[..., 0], zero, zero], -1),
                torch.stack([a[..., 3], diag[..., 1], zero], -1),
                torch.stack([a[..., 4], a[..., 5], diag[..., 2]], -1),
            ], dim=-2)  # [*, N, 3, 3]
            rl = batch["rot"].to(L.dtype) @ L  # R L: local -> global
            eye = torch.eye(3, dtype=L.dtype, device=L.device)
            return rl @ rl.transpose(-1, -2) + self.cfg.eps_marginal * eye  # R L L^T R^T + eps I


class DynaProtJ(nn.Module):
    """DynaProt-J: residue-residue coupling C (N x N, Å²) from an IPA trunk and pair blocks.

    ``forward(batch, chunk_size=None)`` returns ``coupling`` [*, N, N] Å² (SPD;
    padding rows/columns hold (1 + eps) I, so the valid block equals the
    unpadded prediction).

    Pure (``cfg.prior=None``): C = L L^T + eps I, L lower-triangular from the pair
    readout.  Physics prior (``cfg.prior="anm"``): C = s_A e^{g_J} D F expm(S) F D + eps I
    with F = (C^ANM)^{1/2} (PSD square root, float64, no gradient), S = sym(pair
    readout) / N [*, N, N], D = diag(exp delta_i) (per-residue head) and g_J (per-chain
    head); PSD for any output, s_A C^ANM + eps I when the heads output zero.
    """

    def __init__(self, cfg: DynaProtConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DynaProtConfig()
        self.prior = cfg.prior
        self.trunk = IPATrunk(cfg.c_s, cfg.c_z, cfg.j_n_blocks, cfg.j_transition_factor, cfg.relpos_max,
                              _ipa_kwargs(cfg), prior=cfg.prior is not None)
        self.norm_s = nn.LayerNorm(cfg.c_s)
        # Linear([s_i, s_j]) written as left(s_i) + right(s_j)
        self.pair_left = Linear(cfg.c_s, cfg.c_pair)
        self.pair_right = Linear(cfg.c_s, cfg.c_pair)
        self.pair_relpos = Linear(cfg.c_z, cfg.c_pair)
        self.pair_rbf = Linear(cfg.n_rbf, cfg.c_pair)
        self.pair_blocks = nn.ModuleList(
            PairBlock(cfg.c_pair, cfg.pair_c_hidden_mul, cfg.pair_c_hidden_att, cfg.pair_heads)
            for _ in range(cfg.n_pair_blocks)
        )
        self.readout = nn.Sequential(nn.LayerNorm(cfg.c_pair), Linear(cfg.c_pair, 1, init="final"))
        if cfg.prior is None:
            self.diag_offset = nn.Parameter(torch.tensor(_SOFTPLUS_INV_1))
        else:
            self.pair_anm = Linear(N_ANM_PAIR, cfg.c_pair)
            # per-residue log-amplitudes delta_i and the per-chain log-scale g_J
            self.delta_head = Linear(cfg.c_s, 1, init="final")
            self.scale_head = Linear(cfg.c_s, 1, init="final")

    def _pair_trunk(self, batch, chunk_size, anm=None):
        """s [*, N, c_s] (normed) and the pair blocks' output z [*, N, N, c_pair]."""
        s, zrel = self.trunk(batch, anm)
        s = self.norm_s(s)
        mask = batch["mask"].to(s.dtype)
        z = (self.pair_left(s)[..., :, None, :] + self.pair_right(s)[..., None, :, :]
             + self.pair_relpos(zrel) + self.pair_rbf(rbf_distances(batch["trans"].to(s.dtype), n_bins=self.cfg.n_rbf)))
        if anm is not None:
            z = z + self.pair_anm(anm["pair"].to(s.dtype))
        for block in self.pair_blocks:
            z = block(z, mask, chunk_size)  # [*, N, N, c_pair]
        return s, z

    def _forward_prior(self, batch, chunk_size):
        """C = s_A e^{g_J} D F expm(S) F D (+ eps I), F = (C^ANM)^{1/2}, D = diag(exp delta_i)."""
        batch = add_anm_features(batch)
        anm = _anm_inputs(batch)
        s, z = self._pair_trunk(batch, chunk_size, anm)
        x, full_precision = _readout_precision(self.readout(z)[..., 0])  # [*, N, N]
        delta = self.delta_head(s)[..., 0]  # [*, N]
        g = self.scale_head(_masked_mean(s, batch["mask"]))[..., 0]  # [*]
        with full_precision:
            n = x.shape[-1]
            mask = batch["mask"].to(x.dtype)
            pm = mask[..., :, None] * mask[..., None, :]
            eye = torch.eye(n, dtype=x.dtype, device=x.device)
            with torch.no_grad():
                pm64 = pm.detach().to(torch.float64)
                coup = batch["anm_coupling"].detach().to(torch.float64) * pm64 + torch.eye(
                    n, dtype=torch.float64, device=x.device) * (1.0 - pm64)  # padding: identity
                root = _psd_sqrt(coup).to(x.dtype)  # F, [*, N, N]
            # S, zero on padding, divided by the chain length so that ||S||_2 <= max |x_ij|
            # (expm stays well conditioned at any N, crops of 128 or whole chains)
            n_valid = mask.sum(-1).clamp(min=1.0)[..., None, None]
            sym = 0.5 * (x + x.transpose(-1, -2)) * pm / n_valid
            core = root @ torch.linalg.matrix_exp(sym) @ root  # F expm(S) F, PSD
            d = torch.exp(delta.to(x.dtype) * mask)  # [*, N]
            log_amp = anm["log_scale"].to(x.dtype) + g.to(x.dtype)  # [*]
            c = torch.exp(log_amp)[..., None, None] * (d[..., :, None] * core * d[..., None, :])
            c = 0.5 * (c + c.transpose(-1, -2))
            return c * pm + eye * (1.0 - pm) + self.cfg.eps_coupling * eye  # padding: (1 + eps) I

    def forward(self, batch, chunk_size=None):
        chunk_size = chunk_size if chunk_size is not None else self.cfg.chunk_size
        if self.prior is not None:
            return self._forward_prior(batch, chunk_size)
        s, z = self._pair_trunk(batch, chunk_size)
        mask = batch["mask"].to(s.dtype)
        x, full_precision = _readout_precision(self.readout(z)[..., 0])  # [*, N, N]
        with full_precision:
            n = x.shape[-1]
            mask = mask.to(x.dtype)
            pair_mask = mask[..., :, None] * mask[..., None, :]
            diag = nn.functional.softplus(torch.diagonal(x, dim1=-2, dim2=-1) + self.diag_offset)  # [*, N]
            diag = diag * mask + (1.0 - mask)  # padding: 1 on the diagonal
            L = torch.tril(x, diagonal=-1) * pair_mask + torch.diag_embed(diag)  # lower-triangular
            eye = torch.eye(n, dtype=x.dtype, device=x.device)
            return L @ L.transpose(-1, -2) + self.cfg.eps_coupling * eye


class DynaProt(nn.Module):
    """DynaProt-M and DynaProt-J together (one checkpoint, one optimiser).

    ``forward(batch)`` returns ``{"marginals": [*, N, 3, 3], "coupling": [*, N, N]}``
    in Å² (only the parts that are enabled).
    """

    def __init__(self, cfg: DynaProtConfig | None = None, use_m: bool = True, use_j: bool = True):
        super().__init__()
        self.cfg = cfg or DynaProtConfig()
        if not (use_m or use_j):
            raise ValueError("DynaProt needs at least one of use_m, use_j")
        self.m = DynaProtM(self.cfg) if use_m else None
        self.j = DynaProtJ(self.cfg) if use_j else None

    def forward(self, batch, chunk_size=None):
        if self.cfg.prior is not None:
            batch = add_anm_features(batch)  # one ANM per chain, shared by M and J
        out = {}
        if self.m is not None:
            out["marginals"] = self.m(batch)
        if self.j is not None:
            out["coupling"] = self.j(batch, chunk_size=chunk_size)
        return out
