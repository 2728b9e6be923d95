"""ResAxial: residue flexibility and correlation maps from a distance map (DESIGN.md section 3).

Monnier, Guo, Correia, Vandergheynst, "From static to dynamic: inferring protein
dynamics from structure and language embeddings".  The model reads like the paper:

1. input features (:func:`pair_features`): the C-alpha distance matrix, min-max
   normalised per protein over its valid residues, d~_ij = (d_ij - min d) /
   (max d - min d) [*, 1, N, N]; optionally per-residue embeddings e_i [*, N, D]
   (e.g. ESM-2, computed elsewhere) projected, p_i = W e_i, and summed pairwise,
   p_i + p_j [*, c_embed, N, N], concatenated to the distance channel (the paper's
   "combined" regime);
2. a residual U-Net encoder-decoder on that image (:class:`ResidualBlock`, masked
   2x2 average pooling, nearest up-sampling) with attention gates at the skips
   (:class:`AttentionGate`, Oktay et al. 2018);
3. axial attention on the final map (:class:`AxialAttention`): gated multi-head
   attention along rows, then along columns, each followed by a transition;
4. two heads on the symmetrised map z_ij = (z_ij + z_ji) / 2: per-residue RMSF
   (masked mean of z_ij over j, with the diagonal z_ii -> MLP -> softplus, Å) and
   the correlation map (linear -> tanh, unit diagonal).

Padding: a batch of proteins of different lengths is padded to a common
N_pad, a multiple of the U-Net's down-sampling factor 2^(levels - 1), with a
residue mask [*, N_pad].  Every layer zeroes the padded pixels, pooling and
attention ignore them, and convolution at the valid edge then sees the same
zeros as at the image border; a protein's prediction in a padded batch equals
its prediction alone (up to float rounding).  ``chunk_size`` bounds the memory
of the axial attention (rows attended at a time), so N = 1,000 runs on a CPU.

Everything here is invariant to rigid motions of the input: only distances enter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..primitives import Linear

__all__ = [
    "ResAxialConfig",
    "ResAxial",
    "ResidualBlock",
    "AttentionGate",
    "AxialAttention",
    "pair_features",
    "minmax_distances",
    "pad_to_multiple",
    "collate_resaxial",
    "count_parameters",
]

_MASK_BIAS = -1e9
_EPS = 1e-6


@dataclass
class ResAxialConfig:
    """Hyper-parameters of :class:`ResAxial`.

    channels : list of int
        U-Net widths per resolution level, finest first; ``len(channels) - 1``
        down-samplings, so inputs are padded to a multiple of 2^(len - 1).
    blocks_per_level : int
        Residual blocks per encoder and decoder level.
    embed_dim : int
        D of the optional per-residue embeddings (0: structure only).
    c_embed : int
        Channels of the projected embeddings summed pairwise.
    gate_channels : int
        Hidden channels of each attention gate.
    n_axial : int
        Axial layers (row attention + column attention + transition each).
    axial_heads, axial_c_hidden : int
        Heads and channels per head of the axial attention.
    transition_factor : int
        Hidden size multiplier of the per-pixel transitions.
    rmsf_hidden : int
        Hidden width of the RMSF MLP.
    rmsf_init : float
        RMSF (Å) the untrained head predicts (its output bias is softplus^-1 of it);
        only the initialisation, not the forward pass.
    chunk_size : int or None
        Rows of the map attended at a time in inference (None: all at once).
    """

    channels: list = field(default_factory=lambda: [16, 32, 64])
    blocks_per_level: int = 1
    embed_dim: int = 0
    c_embed: int = 16
    gate_channels: int = 8
    n_axial: int = 2
    axial_heads: int = 4
    axial_c_hidden: int = 8
    transition_factor: int = 2
    rmsf_hidden: int = 32
    rmsf_init: float = 1.0
    chunk_size: int | None = 64

    @classmethod
    def from_dict(cls, d: dict | None) -> "ResAxialConfig":
        """Build from a mapping (e.g. YAML); unknown keys raise ValueError naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ResAxial config keys: {', '.join(unknown)}")
        cfg = cls(**d)
        cfg.channels = [int(c) for c in cfg.channels]
        if not cfg.channels or min(cfg.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {d.get('channels')!r}")
        for name in ("blocks_per_level", "axial_heads", "axial_c_hidden", "transition_factor", "rmsf_hidden",
                     "c_embed", "gate_channels"):
            if int(getattr(cfg, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)!r}")
        if not float(cfg.rmsf_init) > 0:
            raise ValueError(f"rmsf_init must be > 0 Å, got {cfg.rmsf_init!r}")
        if int(cfg.embed_dim) < 0 or int(cfg.n_axial) < 0:
            raise ValueError("embed_dim and n_axial must be >= 0")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def multiple(self) -> int:
        """The down-sampling factor: inputs are padded to a multiple of it."""
        return 2 ** (len(self.channels) - 1)


# --------------------------------------------------------------------------- inputs


def minmax_distances(ca: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Min-max normalised C-alpha distance matrix (the paper's structure input).

    ca : [*, N, 3] Å; mask : [*, N] (1 residue, 0 padding).
    Returns d~ [*, N, N] in [0, 1] over valid pairs, 0 on padded pairs.  The
    minimum and maximum are taken per protein over valid pairs (the diagonal
    included, so the minimum is 0 for a real structure).
    """
    # centre first and take exact differences (no |x|^2 + |y|^2 - 2 x.y shortcut):
    # float32 distances then do not depend on where the structure sits in space
    centre = (ca * mask[..., None]).sum(-2, keepdim=True) / mask.sum(-1)[..., None, None].clamp_min(1.0)
    x = (ca - centre) * mask[..., None]  # [*, N, 3]
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")  # [*, N, N] Å
    pm = mask[..., :, None] * mask[..., None, :]  # [*, N, N]
    big = torch.finfo(d.dtype).max
    dmin = torch.where(pm > 0, d, torch.full_like(d, big)).amin(dim=(-1, -2), keepdim=True)
    dmax = torch.where(pm > 0, d, torch.full_like(d, -big)).amax(dim=(-1, -2), keepdim=True)
    return (d - dmin) / (dmax - dmin).clamp_min(_EPS) * pm


def pad_to_multiple(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= n (and >= multiple)."""
    return max(multiple, int(math.ceil(n / multiple)) * multiple)


def collate_resaxial(items: list[dict], multiple: int = 1) -> dict:
    """Pad examples to a common length (a multiple of ``multiple``) and stack them.

    items : dicts with ``ca`` [N, 3] Å and optionally ``embeddings`` [N, D],
    ``rmsf`` [N] Å, ``correlation`` [N, N].
    Returns a batch with ``ca`` [B, N_pad, 3], ``mask`` [B, N_pad] and the other
    keys padded with zeros ([B, N_pad, D], [B, N_pad], [B, N_pad, N_pad]).
    """
    n_max = pad_to_multiple(max(len(it["ca"]) for it in items), multiple)
    out: dict = {}
    b = len(items)
    ca0 = torch.as_tensor(items[0]["ca"])
    dtype = ca0.dtype if ca0.is_floating_point() else torch.float32
    out["ca"] = torch.zeros(b, n_max, 3, dtype=dtype)
    out["mask"] = torch.zeros(b, n_max, dtype=dtype)
    for key in ("embeddings", "rmsf", "correlation"):
        if all(key in it for it in items):
            shape = torch.as_tensor(items[0][key]).shape
            tail = shape[1:] if key == "embeddings" else (n_max,) * (len(shape) - 1)
            out[key] = torch.zeros((b, n_max) + tuple(tail), dtype=dtype)
    for i, it in enumerate(items):
        n = len(it["ca"])
        out["ca"][i, :n] = torch.as_tensor(it["ca"], dtype=dtype)
        out["mask"][i, :n] = 1.0
        if "embeddings" in out:
            out["embeddings"][i, :n] = torch.as_tensor(it["embeddings"], dtype=dtype)
        if "rmsf" in out:
            out["rmsf"][i, :n] = torch.as_tensor(it["rmsf"], dtype=dtype)
        if "correlation" in out:
            out["correlation"][i, :n, :n] = torch.as_tensor(it["correlation"], dtype=dtype)
    return out


def pair_features(ca, mask, embeddings=None, embed_proj: nn.Module | None = None) -> torch.Tensor:
    """The U-Net's input image.

    ca : [*, N, 3] Å; mask : [*, N]; embeddings : [*, N, D] or None;
    embed_proj : Linear(D, c_embed) when embeddings are used.
    Returns [*, 1 + c_embed, N, N] (channels first): d~_ij, then p_i + p_j
    with p = embed_proj(e), zero on padded pairs.
    """
    pm = mask[..., :, None] * mask[..., None, :]  # [*, N, N]
    feats = [minmax_distances(ca, mask)[..., None, :, :]]  # [*, 1, N, N]
    if embeddings is not None:
        p = embed_proj(embeddings) * mask[..., None]  # [*, N, c_embed]
        pair = p[..., :, None, :] + p[..., None, :, :]  # [*, N, N, c_embed]: p_i + p_j
        feats.append((pair * pm[..., None]).movedim(-1, -3))  # [*, c_embed, N, N]
    return torch.cat(feats, dim=-3)


# --------------------------------------------------------------------------- U-Net parts


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of a [B, C, H, W] image."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).pow(2).mean(dim=1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + 1e-5)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, v2), masked.

    x : [B, c_in, H, W]; pm : [B, 1, H, W] pixel mask.
    h = conv3x3(m * relu(norm(x))); h = conv3x3(m * relu(norm(h)));
    out = m * (skip(x) + h), skip = identity or a 1x1 convolution.
    Masking before every convolution keeps padded pixels at zero, so a
    convolution at the protein's edge sees the same zeros as at the image border.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1 = ChannelLayerNorm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = ChannelLayerNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as (close to) its skip path
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, pm):
        h = self.conv1(F.relu(self.norm1(x)) * pm)
        h = self.conv2(F.relu(self.norm2(h)) * pm)
        return (self.skip(x) + h) * pm


class AttentionGate(nn.Module):
    """Additive attention gate at a U-Net skip (Oktay et al. 2018, Attention U-Net).

    x : [B, c_x, H, W] skip features; g : [B, c_g, H, W] gating signal from the
    coarser decoder level (already up-sampled); pm : [B, 1, H, W].
    alpha = sigmoid(psi(relu(W_x x + W_g g))) [B, 1, H, W]; returns alpha * x.
    """

    def __init__(self, c_x: int, c_g: int, c_hidden: int):
        super().__init__()
        self.w_x = nn.Conv2d(c_x, c_hidden, 1, bias=False)
        self.w_g = nn.Conv2d(c_g, c_hidden, 1)
        self.psi = nn.Conv2d(c_hidden, 1, 1)

    def forward(self, x, g, pm):
        alpha = torch.sigmoid(self.psi(F.relu(self.w_x(x) + self.w_g(g))))  # [B, 1, H, W]
        return alpha * x * pm


def _masked_avg_pool(x, pm):
    """2x2 average over valid pixels.  x : [B, C, H, W] (zero where pm = 0); pm : [B, 1, H, W].
    Returns ([B, C, H/2, W/2], coarse mask [B, 1, H/2, W/2] = any valid pixel in the window)."""
    s = F.avg_pool2d(x, 2) * 4.0  # [B, C, H/2, W/2]: window sums
    cnt = F.avg_pool2d(pm, 2) * 4.0  # [B, 1, H/2, W/2]: valid pixels per window
    pm2 = (cnt > 0).to(x.dtype)
    return s / cnt.clamp_min(1.0) * pm2, pm2


# --------------------------------------------------------------------------- axial attention


class AxialAttention(nn.Module):
    """Gated multi-head self-attention along the rows of a pair map (AlphaFold2
    Alg. 13 without the triangle bias); column attention is the same module
    applied to the transposed map.

    z : [B, N, N, c_z]; mask : [B, N].  For each row i:
    a_ijk = softmax_k(q_ij . k_ik / sqrt(c) + bias_k), o_ij = g_ij * sum_k a_ijk v_ik,
    with bias_k = -1e9 on padded k.  Returns the update [B, N, N, c_z].
    ``chunk_size`` rows at a time (None: all), same result.
    """

    def __init__(self, c_z: int, c_hidden: int, n_heads: int):
        super().__init__()
        self.c_hidden, self.n_heads = c_hidden, n_heads
        self.layer_norm = nn.LayerNorm(c_z)
        self.linear_q = Linear(c_z, c_hidden * n_heads, bias=False, init="glorot")
        self.linear_k = Linear(c_z, c_hidden * n_heads, bias=False, init="glorot")
        self.linear_v = Linear(c_z, c_hidden * n_heads, bias=False, init="glorot")
        self.linear_g = Linear(c_z, c_hidden * n_heads, init="gating")
        self.linear_o = Linear(c_hidden * n_heads, c_z, init="final")

    def forward(self, z, mask, chunk_size=None):
        b, n = z.shape[0], z.shape[1]
        h, c = self.n_heads, self.c_hidden
        bias = ((1.0 - mask) * _MASK_BIAS).to(z.dtype)  # [B, K]
        # pieces of rows: at most chunk_size (memory) and about 2^19 numbers of
        # q, k, v per piece (cache); the fused kernel only takes 4-d inputs (with
        # 5-d ones it falls back to materialising every [N, N] logit map at once)
        step = max(1, min(n if not chunk_size else int(chunk_size), (1 << 19) // max(1, 3 * h * c * n)))
        out = []
        for start in range(0, n, step):
            zr = self.layer_norm(z[:, start:start + step])  # [B, R, N, c_z]
            r = zr.shape[1]

            def heads(t):  # [B, R, N, H*C] -> [B*R, H, N, C]
                return t.view(b, r, n, h, c).transpose(-2, -3).reshape(b * r, h, n, c)

            q = heads(self.linear_q(zr)) / math.sqrt(c)
            k, v = heads(self.linear_k(zr)), heads(self.linear_v(zr))
            rows_bias = bias[:, None, None, None, :].expand(b, r, 1, 1, n).reshape(b * r, 1, 1, n)
            # softmax(q k^T + bias) v, fused (q is already scaled: scale=1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=rows_bias.to(q.dtype), scale=1.0)  # [B*R, H, N, C]
            o = o.view(b, r, h, n, c).transpose(-2, -3).reshape(b, r, n, h * c)  # [B, R, N, H*C]
            o = torch.sigmoid(self.linear_g(zr)) * o
            out.append(self.linear_o(o))
        return torch.cat(out, dim=1)


class PairTransition(nn.Module):
    """Per-pixel two-layer MLP: z -> W2 relu(W1 LN(z)).  z : [B, N, N, c_z]."""

    def __init__(self, c_z: int, factor: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_z)
        self.linear_1 = Linear(c_z, factor * c_z, init="relu")
        self.linear_2 = Linear(factor * c_z, c_z, init="final")

    def forward(self, z):
        return self.linear_2(F.relu(self.linear_1(self.layer_norm(z))))


class AxialLayer(nn.Module):
    """Row attention, column attention, transition, each residual and masked.
    z : [B, N, N, c_z]; mask : [B, N]."""

    def __init__(self, c_z: int, c_hidden: int, n_heads: int, factor: int):
        super().__init__()
        self.row = AxialAttention(c_z, c_hidden, n_heads)
        self.col = AxialAttention(c_z, c_hidden, n_heads)
        self.transition = PairTransition(c_z, factor)

    def forward(self, z, mask, chunk_size=None):
        pm = (mask[:, :, None] * mask[:, None, :])[..., None]  # [B, N, N, 1]
        z = (z + self.row(z, mask, chunk_size)) * pm
        zt = z.transpose(1, 2)  # columns become rows
        z = (zt + self.col(zt, mask, chunk_size)).transpose(1, 2) * pm
        return (z + self.transition(z)) * pm


# --------------------------------------------------------------------------- model


class ResAxial(nn.Module):
    """Residual U-Net with attention gates + axial attention -> RMSF and correlation.

    forward(ca [B, N, 3] Å, mask [B, N], embeddings [B, N, D] or None, chunk_size)
    -> dict:
      ``rmsf`` [B, N] Å (softplus, > 0; 0 on padding),
      ``correlation`` [B, N, N] (tanh, symmetric, unit diagonal on valid residues,
      0 on padded pairs),
      ``pair`` [B, N, N, c] the final symmetrised map.

    N must be a multiple of ``config.multiple`` (use :func:`collate_resaxial`).
    """

    def __init__(self, config: ResAxialConfig | dict | None = None):
        super().__init__()
        cfg = config if isinstance(config, ResAxialConfig) else ResAxialConfig.from_dict(config)
        self.config = cfg
        ch = cfg.channels
        c_in = 1 + (cfg.c_embed if cfg.embed_dim else 0)
        self.embed_proj = Linear(cfg.embed_dim, cfg.c_embed) if cfg.embed_dim else None
        self.stem = nn.Conv2d(c_in, ch[0], 3, padding=1)
        # encoder: level l works at resolution N / 2^l with ch[l] channels
        self.encoder = nn.ModuleList()
        for lvl, c in enumerate(ch):
            c_prev = ch[max(lvl - 1, 0)]
            blocks = [ResidualBlock(c_prev if i == 0 else c, c) for i in range(cfg.blocks_per_level)]
            self.encoder.append(nn.ModuleList(blocks))
        # decoder: from level l + 1 up to level l
        self.up_proj = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for lvl in range(len(ch) - 1):
            self.up_proj.append(nn.Conv2d(ch[lvl + 1], ch[lvl], 1))
            self.gates.append(AttentionGate(ch[lvl], ch[lvl + 1], cfg.gate_channels))
            blocks = [ResidualBlock(2 * ch[lvl] if i == 0 else ch[lvl], ch[lvl]) for i in range(cfg.blocks_per_level)]
            self.decoder.append(nn.ModuleList(blocks))
        c_z = ch[0]
        self.axial = nn.ModuleList(
            AxialLayer(c_z, cfg.axial_c_hidden, cfg.axial_heads, cfg.transition_factor) for _ in range(cfg.n_axial)
        )
        self.final_norm = nn.LayerNorm(c_z)
        self.corr_head = Linear(c_z, 1, init="default")
        self.rmsf_head = nn.Sequential(Linear(2 * c_z, cfg.rmsf_hidden, init="relu"), nn.ReLU(),
                                       Linear(cfg.rmsf_hidden, 1, init="default"))
        with torch.no_grad():  # softplus(b) = rmsf_init
            self.rmsf_head[-1].bias.fill_(math.log(math.expm1(float(cfg.rmsf_init))))

    # ----------------------------------------------------------------- trunk
    def _unet(self, x, pm):
        """x : [B, c_in, N, N]; pm : [B, 1, N, N].  Returns [B, ch[0], N, N]."""
        x = self.stem(x) * pm
        skips, masks = [], []
        for lvl, blocks in enumerate(self.encoder):
            if lvl > 0:
                skips.append(x)
                masks.append(pm)
                x, pm = _masked_avg_pool(x, pm)  # [B, C, H/2, W/2]
            for blk in blocks:
                x = blk(x, pm)
        for lvl in reversed(range(len(self.decoder))):
            skip, pm = skips[lvl], masks[lvl]
            g = F.interpolate(x, scale_factor=2, mode="nearest") * pm  # [B, ch[l+1], H, W]
            gated = self.gates[lvl](skip, g, pm)  # [B, ch[l], H, W]
            x = torch.cat([self.up_proj[lvl](g) * pm, gated], dim=1)  # [B, 2 ch[l], H, W]
            for blk in self.decoder[lvl]:
                x = blk(x, pm)
        return x

    def forward(self, ca, mask, embeddings=None, chunk_size: int | None = None):
        cfg = self.config
        b, n = mask.shape
        if n % cfg.multiple:
            raise ValueError(f"padded length {n} is not a multiple of {cfg.multiple}; use collate_resaxial")
        if (embeddings is None) != (self.embed_proj is None):
            want = f"embeddings of dimension {cfg.embed_dim}" if cfg.embed_dim else "no embeddings"
            raise ValueError(f"this ResAxial model takes {want}")
        if embeddings is not None and embeddings.shape[-1] != cfg.embed_dim:
            raise ValueError(f"embeddings have dimension {embeddings.shape[-1]}, the model takes {cfg.embed_dim}")
        if chunk_size is None and not self.training:
            chunk_size = cfg.chunk_size
        mask = mask.to(ca.dtype)
        pm2 = mask[:, :, None] * mask[:, None, :]  # [B, N, N]
        x = pair_features(ca, mask, embeddings, self.embed_proj)  # [B, c_in, N, N]
        x = self._unet(x, pm2[:, None])  # [B, c_z, N, N]
        z = x.permute(0, 2, 3, 1)  # [B, N, N, c_z] channels last
        for layer in self.axial:
            z = layer(z, mask, chunk_size)
        z = self.final_norm(z)
        z = 0.5 * (z + z.transpose(1, 2)) * pm2[..., None]  # symmetrise
        # correlation head: tanh, symmetric, unit diagonal on valid residues
        corr = torch.tanh(self.corr_head(z)[..., 0])  # [B, N, N]
        eye = torch.eye(n, dtype=corr.dtype, device=corr.device)
        corr = (corr * (1 - eye) + eye) * pm2
        # RMSF head: pool row i over valid j, with the diagonal
        cnt = mask.sum(-1).clamp_min(1.0)[:, None, None]  # [B, 1, 1]
        pooled = z.sum(dim=2) / cnt  # [B, N, c_z]
        diag = torch.diagonal(z, dim1=1, dim2=2).transpose(1, 2)  # [B, N, c_z]
        rmsf = F.softplus(self.rmsf_head(torch.cat([pooled, diag], dim=-1))[..., 0]) * mask  # [B, N] Å
        return {"rmsf": rmsf, "correlation": corr, "pair": z}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
