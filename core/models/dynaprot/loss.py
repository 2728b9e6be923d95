"""Log-Euclidean loss for SPD covariances (DESIGN.md section 3).

d(S, T)^2 = || log S - log T ||_F^2, with the matrix logarithm taken by a float64
eigendecomposition and the eigenvalues floored (``floor``, Å²).  Its gradient
comes from the Daleckii-Krein formula,

    d log(S)[E] = V (F o (V^T E V)) V^T,
    F_ij = (f(w_i) - f(w_j)) / (w_i - w_j),  F_ii = f'(w_i),  f(w) = log max(w, floor),

evaluated with a safe divided difference, so that it stays finite and exact for
equal or nearly equal eigenvalues (where the eigenvectors themselves, and
torch.linalg.eigh's backward, are ill-defined).  MSE is kept as an ablation.
"""

from __future__ import annotations

import torch

__all__ = ["spd_logm", "log_euclidean_distance", "log_euclidean_loss", "mse_loss", "dynaprot_loss",
           "rmsf_from_marginals", "rmsf_from_coupling", "log_rmsf_loss",
           "FLOOR_MARGINAL", "FLOOR_COUPLING", "FLOOR_RMSF"]

#: default eigenvalue floors, Å² (MD marginal eigenvalues are ~0.01-10 Å²;
#: C from a finite trajectory has rank <= frames - 1, the rest are floored)
FLOOR_MARGINAL = 1e-3
FLOOR_COUPLING = 1e-3
#: Å: RMSF labels and predictions are floored here before the log (mdCATH RMSF >= ~0.3 Å)
FLOOR_RMSF = 1e-2


def _log_divided_difference(w: torch.Tensor, floor: float) -> torch.Tensor:
    """F_ij for f(w) = log(max(w, floor)); w : [*, d] float64 -> [*, d, d]."""
    a = w[..., :, None]
    b = w[..., None, :]
    fa = torch.log(torch.clamp(a, min=floor))
    fb = torch.log(torch.clamp(b, min=floor))
    diff = a - b
    scale = torch.maximum(torch.maximum(a.abs(), b.abs()), torch.full_like(a, floor))
    near = diff.abs() <= 1e-12 * scale
    both_above = (a > floor) & (b > floor)
    safe_diff = torch.where(near, torch.ones_like(diff), diff)
    # both above the floor: log(a/b) = log1p((a - b)/b), accurate for small differences
    dd_above = torch.log1p(safe_diff / torch.clamp(b, min=floor)) / safe_diff
    dd_general = (fa - fb) / safe_diff
    mid = 0.5 * (a + b)
    deriv = torch.where(mid > floor, 1.0 / torch.clamp(mid, min=floor), torch.zeros_like(mid))
    return torch.where(near, deriv, torch.where(both_above, dd_above, dd_general))


class _SPDLog(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mats, floor):
        s = mats.detach().to(torch.float64)
        s = 0.5 * (s + s.transpose(-1, -2))
        w, v = torch.linalg.eigh(s)
        logm = (v * torch.log(torch.clamp(w, min=floor))[..., None, :]) @ v.transpose(-1, -2)
        ctx.save_for_backward(w, v)
        ctx.floor = floor
        ctx.in_dtype = mats.dtype
        return logm

    @staticmethod
    def backward(ctx, grad):
        w, v = ctx.saved_tensors
        g = grad.to(torch.float64)
        g = 0.5 * (g + g.transpose(-1, -2))
        f = _log_divided_difference(w, ctx.floor)
        inner = f * (v.transpose(-1, -2) @ g @ v)
        return (v @ inner @ v.transpose(-1, -2)).to(ctx.in_dtype), None


def spd_logm(mats: torch.Tensor, floor: float = FLOOR_MARGINAL) -> torch.Tensor:
    """Matrix logarithm of symmetric matrices [*, d, d] with eigenvalues floored at ``floor``.

    Returns float64 [*, d, d]; differentiable (Daleckii-Krein backward).
    """
    if mats.shape[-1] != mats.shape[-2]:
        raise ValueError(f"mats must be square in the last two axes, got shape {tuple(mats.shape)}")
    return _SPDLog.apply(mats, float(floor))


def log_euclidean_distance(pred: torch.Tensor, true: torch.Tensor, floor: float = FLOOR_MARGINAL) -> torch.Tensor:
    """||log pred - log true||_F^2 per matrix: [*, d, d] x [*, d, d] -> [*] float64."""
    with torch.no_grad():
        log_true = spd_logm(true, floor)
    diff = spd_logm(pred, floor) - log_true
    return (diff**2).sum((-1, -2))


def _masked_identity(mats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Padded rows/columns of [*, N, N] replaced by the identity (log I = 0)."""
    pm = mask[..., :, None] * mask[..., None, :]
    eye = torch.eye(mats.shape[-1], dtype=mats.dtype, device=mats.device)
    return mats * pm + eye * (1.0 - pm)


def log_euclidean_loss(pred, true, mask=None, floor=FLOOR_MARGINAL, per_residue=True):
    """Masked log-Euclidean loss.

    per_residue=True: pred/true [B, N, 3, 3] marginals (Å²), mask [B, N];
    mean over valid residues of ||log S_pred,i - log S_true,i||_F^2.
    per_residue=False: pred/true [B, N, N] couplings (Å²), mask [B, N]; padded
    rows/columns set to the identity, ||log C_pred - log C_true||_F^2 divided by
    the chain's number of residues, mean over the batch.
    """
    if mask is None:
        mask = torch.ones(pred.shape[:2], dtype=torch.float64, device=pred.device)
    mask = mask.to(torch.float64)
    if per_residue:
        d = log_euclidean_distance(pred, true, floor)  # [B, N]
        return (d * mask).sum() / mask.sum().clamp(min=1.0)
    p = _masked_identity(pred.to(torch.float64), mask)
    t = _masked_identity(true.to(torch.float64), mask)
    d = log_euclidean_distance(p, t, floor)  # [B]
    return (d / mask.sum(-1).clamp(min=1.0)).mean()


def mse_loss(pred, true, mask=None, per_residue=True):
    """The MSE ablation with the same masking and normalisation as :func:`log_euclidean_loss`."""
    if mask is None:
        mask = torch.ones(pred.shape[:2], dtype=torch.float64, device=pred.device)
    mask = mask.to(torch.float64)
    diff2 = (pred.to(torch.float64) - true.to(torch.float64)) ** 2
    if per_residue:
        return (diff2.sum((-1, -2)) * mask).sum() / mask.sum().clamp(min=1.0)
    pm = mask[..., :, None] * mask[..., None, :]
    return ((diff2 * pm).sum((-1, -2)) / mask.sum(-1).clamp(min=1.0)).mean()


def dynaprot_loss(kind="log_euclidean", *, marginals=None, marginals_true=None, coupling=None,
                  coupling_true=None, mask=None, floor_marginal=FLOOR_MARGINAL, floor_coupling=FLOOR_COUPLING):
    """Total loss and its terms.

    kind : {"log_euclidean", "mse"}
    marginals, marginals_true : [B, N, 3, 3] Å² (optional, for DynaProt-M)
    coupling, coupling_true : [B, N, N] Å² (optional, for DynaProt-J)
    mask : [B, N]

    Returns (total, {"marginal": ..., "coupling": ...}) with float64 scalars.
    """
    if kind not in ("log_euclidean", "mse"):
        raise ValueError(f"kind must be 'log_euclidean' or 'mse', got {kind!r}")
    terms = {}
    if marginals is not None:
        terms["marginal"] = (log_euclidean_loss(marginals, marginals_true, mask, floor_marginal, True)
                             if kind == "log_euclidean" else mse_loss(marginals, marginals_true, mask, True))
    if coupling is not None:
        terms["coupling"] = (log_euclidean_loss(coupling, coupling_true, mask, floor_coupling, False)
                             if kind == "log_euclidean" else mse_loss(coupling, coupling_true, mask, False))
    if not terms:
        raise ValueError("dynaprot_loss needs marginals and/or coupling")
    return sum(terms.values()), terms


# ----------------------------------------------------------------------------- RMSF-only labels


def rmsf_from_marginals(marginals: torch.Tensor) -> torch.Tensor:
    """RMSF_i = sqrt(tr Sigma_i): [*, N, 3, 3] Å² -> [*, N] Å (float64)."""
    tr = torch.diagonal(marginals.to(torch.float64), dim1=-2, dim2=-1).sum(-1)
    return torch.sqrt(torch.clamp(tr, min=FLOOR_RMSF**2))


def rmsf_from_coupling(coupling: torch.Tensor) -> torch.Tensor:
    """RMSF_i = sqrt(3 C_ii) (C_ii = tr(Sigma_i) / 3): [*, N, N] Å² -> [*, N] Å (float64)."""
    diag = torch.diagonal(coupling.to(torch.float64), dim1=-2, dim2=-1)
    return torch.sqrt(torch.clamp(3.0 * diag, min=FLOOR_RMSF**2))


def log_rmsf_loss(rmsf_pred: torch.Tensor, rmsf_true: torch.Tensor, mask: torch.Tensor,
                  floor: float = FLOOR_RMSF) -> torch.Tensor:
    """Masked MSE of log RMSF, the loss of RMSF-only labels (kind ``"md-rmsf"``).

    rmsf_pred, rmsf_true : [B, N] Å; mask : [B, N] (1 = a labelled residue).
    Mean over labelled residues of (log max(pred, floor) - log max(true, floor))²;
    a float64 scalar (0 when no residue is labelled).  Residues whose label is not
    finite or not positive should be masked out by the caller.
    """
    if rmsf_pred.shape != rmsf_true.shape or rmsf_pred.shape != mask.shape:
        raise ValueError(f"rmsf_pred, rmsf_true and mask must have one shape, got {tuple(rmsf_pred.shape)}, "
                         f"{tuple(rmsf_true.shape)} and {tuple(mask.shape)}")
    m = mask.to(torch.float64)
    true = torch.where(m > 0, rmsf_true.to(torch.float64), torch.ones_like(m))
    d = torch.log(torch.clamp(rmsf_pred.to(torch.float64), min=floor)) - torch.log(torch.clamp(true, min=floor))
    return (d**2 * m).sum() / m.sum().clamp(min=1.0)
