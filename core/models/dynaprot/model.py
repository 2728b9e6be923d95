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
]

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
    every prediction is SPD.  ``chunk_size``: rows of the pair map processed at
    a time in J (None = all).
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

    @classmethod
    def from_dict(cls, d: dict) -> "DynaProtConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- inputs


def featurize_arrays(sequence: str, backbone: np.ndarray, frames=None) -> dict:
    """Model inputs of one chain as float64/long tensors (no batch axis).

    sequence : str of N one-letter codes; backbone : (N, 3, 3) Å [N, CA, C], finite.
    frames : (rotations (N, 3, 3), translations (N, 3) Å), optional
        Frames to use instead of those of ``backbone`` (e.g. approximate ones from
        :func:`~dynaprot_viz.core.structure.frames_for_model`); ``backbone`` may
        then hold NaN for N and C.
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
    return {
        "aatype": torch.tensor([_AA_INDEX.get(a, 20) for a in sequence.upper()], dtype=torch.long),
        "rot": torch.from_numpy(rot),
        "trans": torch.from_numpy(trans),
        "residue_index": torch.arange(n, dtype=torch.long),
        "mask": torch.ones(n, dtype=torch.float64),
    }


def featurize(chain, frames=None) -> dict:
    """Model inputs of a :class:`~dynaprot_viz.core.structure.ProteinChain` (see module doc).

    frames : (rotations (N, 3, 3), translations (N, 3) Å), optional
        Default ``chain.frames()`` (exact; InputError naming the residues without N
        or C).  The predictor passes ``frames_for_model(chain)``, which falls back to
        approximate frames from the C-alpha trace for those residues.
    """
    if frames is None:
        frames = chain.frames()  # raises InputError naming the residues without N or C
    return featurize_arrays(chain.sequence, chain.backbone, frames=frames)


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


class IPATrunk(nn.Module):
    """Embedding (one-hot amino acid -> c_s; relative position -> c_z) + IPA blocks."""

    def __init__(self, c_s, c_z, n_blocks, transition_factor, relpos_max, ipa_kwargs):
        super().__init__()
        self.relpos_max = relpos_max
        self.embed_aatype = Linear(N_AATYPE, c_s)
        self.embed_relpos = Linear(2 * relpos_max + 1, c_z)
        self.blocks = nn.ModuleList(
            IPABlock(c_s, c_z, transition_factor=transition_factor, **ipa_kwargs) for _ in range(n_blocks)
        )

    def forward(self, batch):
        """Returns s [*, N, c_s] and the relative-position pair features [*, N, N, c_z]."""
        dtype = batch["rot"].dtype
        s = self.embed_aatype(nn.functional.one_hot(batch["aatype"], N_AATYPE).to(dtype))  # [*, N, c_s]
        z = embed_relative_position(self.embed_relpos, batch["residue_index"], self.relpos_max).to(dtype)
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


class DynaProtM(nn.Module):
    """DynaProt-M: per-residue 3x3 covariances from IPA on the input frames.

    ``forward(batch)`` returns ``marginals`` [*, N, 3, 3] Å² (SPD; rows of
    padding positions are meaningless).
    """

    def __init__(self, cfg: DynaProtConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DynaProtConfig()
        self.trunk = IPATrunk(cfg.c_s, cfg.c_z, cfg.n_blocks, cfg.transition_factor, cfg.relpos_max, _ipa_kwargs(cfg))
        self.readout = nn.Sequential(
            nn.LayerNorm(cfg.c_s), Linear(cfg.c_s, cfg.c_s, init="relu"), nn.ReLU(), Linear(cfg.c_s, 6, init="final")
        )
        # the softplus diagonal starts at 1 Å (Sigma = 1 Å^2 I)
        self.diag_offset = nn.Parameter(torch.tensor(_SOFTPLUS_INV_1))

    def forward(self, batch):
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
    """

    def __init__(self, cfg: DynaProtConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DynaProtConfig()
        self.trunk = IPATrunk(cfg.c_s, cfg.c_z, cfg.j_n_blocks, cfg.j_transition_factor, cfg.relpos_max,
                              _ipa_kwargs(cfg))
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
        self.diag_offset = nn.Parameter(torch.tensor(_SOFTPLUS_INV_1))

    def forward(self, batch, chunk_size=None):
        chunk_size = chunk_size if chunk_size is not None else self.cfg.chunk_size
        s, zrel = self.trunk(batch)
        s = self.norm_s(s)
        mask = batch["mask"].to(s.dtype)
        z = (self.pair_left(s)[..., :, None, :] + self.pair_right(s)[..., None, :, :]
             + self.pair_relpos(zrel) + self.pair_rbf(rbf_distances(batch["trans"].to(s.dtype), n_bins=self.cfg.n_rbf)))
        for block in self.pair_blocks:
            z = block(z, mask, chunk_size)  # [*, N, N, c_pair]
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
        out = {}
        if self.m is not None:
            out["marginals"] = self.m(batch)
        if self.j is not None:
            out["coupling"] = self.j(batch, chunk_size=chunk_size)
        return out
