"""The Gaussian description of residue dynamics (DESIGN.md section 1).

A structure of N residues is X ~ N(mu, Sigma_joint) over C-alpha positions.
:class:`Dynamics` stores the three learnable levels (marginals, coupling) plus the
mean and residue ids, and derives RMSF, correlation, the joint covariance (Eq. 3)
and samples.  All lengths in Å, all covariances in Å².
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, ShapeError
from .structure import Residue

__all__ = [
    "stack_dynamics",
    "read_npz",
    "RELATIVE_SUFFIX",
    "Dynamics",
    "as_residues",
    "check_symmetric",
    "bfactors_from_marginals",
    "anisou_from_marginals",
    "sqrtm_spd",
    "coupling_from_joint",
    "marginals_from_joint",
    "BFACTOR_PER_MSF",
    "ANISOU_SCALE",
]

#: B = (8 pi^2 / 3) tr(Sigma_i): Å² of B-factor per Å² of mean-square fluctuation
BFACTOR_PER_MSF = 8.0 * np.pi**2 / 3.0
#: a model_name ending in this marks amplitudes in relative units (e.g. "anm-relative")
RELATIVE_SUFFIX = "-relative"
#: PDB ANISOU records hold U (Å²) times 10^4 as integers
ANISOU_SCALE = 1.0e4

_SYM_RTOL = 1e-6
_SPD_RTOL = 1e-8


def bfactors_from_marginals(marginals: np.ndarray) -> np.ndarray:
    """Isotropic B-factors, shape (N,) Å², from marginals of shape (N, 3, 3) Å²."""
    return BFACTOR_PER_MSF * np.trace(marginals, axis1=1, axis2=2)


def anisou_from_marginals(marginals: np.ndarray) -> np.ndarray:
    """U tensors in PDB order U11 U22 U33 U12 U13 U23, shape (N, 6), Å² (not x 10^4)."""
    m = marginals
    return np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]], axis=1)


def sqrtm_spd(mats: np.ndarray) -> np.ndarray:
    """Symmetric square roots of a batch of SPD matrices, shape (..., d, d)."""
    w, v = np.linalg.eigh(mats)
    return (v * np.sqrt(np.clip(w, 0.0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def marginals_from_joint(joint: np.ndarray) -> np.ndarray:
    """The 3x3 diagonal blocks, shape (N, 3, 3), of a (3N, 3N) covariance."""
    n = joint.shape[0] // 3
    blocks = joint.reshape(n, 3, n, 3)
    idx = np.arange(n)
    return blocks[idx, :, idx, :]


def coupling_from_joint(joint: np.ndarray) -> np.ndarray:
    """Trace-pooled coupling C_ij = tr(Sigma_ij) / 3, shape (N, N), of a (3N, 3N) covariance."""
    n = joint.shape[0] // 3
    return np.einsum("iaja->ij", joint.reshape(n, 3, n, 3)) / 3.0


def _as_float_array(name, value, shape):
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ShapeError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ShapeError(f"{name} contains NaN or infinite values")
    return arr


def check_symmetric(name: str, arr: np.ndarray) -> np.ndarray:
    """Symmetrised ``arr`` (..., d, d); ShapeError naming ``name`` when |A - A^T| exceeds 1e-6 of its scale."""
    scale = max(np.abs(arr).max(), np.finfo(float).tiny)
    asym = np.abs(arr - np.swapaxes(arr, -1, -2)).max()
    if asym > _SYM_RTOL * scale:
        raise ShapeError(f"{name} is not symmetric (max |A - A^T| = {asym:.3g}, scale {scale:.3g})")
    return 0.5 * (arr + np.swapaxes(arr, -1, -2))


def _check_psd(name, mat, rtol: float = 1e-6):
    """Raise unless ``mat`` (symmetric) is PSD within ``rtol`` of its largest eigenvalue.

    A Cholesky factorisation of mat + rtol * max(diag) * I succeeds exactly for
    such matrices (up to round-off) and is several times cheaper than eigvalsh,
    which is only computed to report a failure.
    """
    shift = rtol * float(np.max(np.diag(mat)))
    try:
        np.linalg.cholesky(mat + shift * np.eye(len(mat)))
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(mat)
        raise ShapeError(f"{name} is not positive semi-definite (smallest eigenvalue {w[0]:.3g}, "
                         f"largest {w[-1]:.3g})") from None


def _is_isotropic(marginals, rtol: float = 1e-9) -> bool:
    """True when every 3x3 marginal is a multiple of the identity."""
    m = np.asarray(marginals, dtype=np.float64)
    iso = np.trace(m, axis1=1, axis2=2)[:, None, None] / 3.0 * np.eye(3)
    return bool(np.all(np.abs(m - iso) <= rtol * np.abs(iso).max()))


def as_residues(residues, n: int) -> tuple:
    """``n`` residue ids as a tuple of Residue (from Residue or (chain, number, icode, name) items)."""
    out = []
    for r in residues:
        if isinstance(r, Residue):
            out.append(r)
        else:
            chain, number, icode, name = r
            out.append(Residue(str(chain), int(number), str(icode), str(name)))
    if len(out) != n:
        raise ShapeError(f"residues has {len(out)} entries for {n} positions")
    return tuple(out)


def read_npz(path) -> dict:
    """All arrays of an ``.npz`` file (no pickles), ``{name: ndarray}``; FileNotFoundError
    or one-line InputError for a missing or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None


@dataclass(frozen=True, eq=False)
class Dynamics:
    """Residue-level Gaussian dynamics of one chain.

    Attributes
    ----------
    mean : ndarray, shape (N, 3), Å
        C-alpha positions of the input structure (never learned).
    marginals : ndarray, shape (N, 3, 3), Å²
        Sigma_i, the SPD covariance of each C-alpha.
    coupling : ndarray, shape (N, N), Å²
        C_ij = tr(Sigma_ij) / 3, symmetric positive semi-definite.
    residues : tuple[Residue, ...]
        N residue ids (chain, number, insertion code, name).
    model_name : str
        Which predictor produced this (``"anm"``, ``"dynaprot"``, ``"md"``, ...).
    isotropic : bool
        True when the predictor has no anisotropy (marginals are multiples of
        the identity); viewers say so instead of drawing spheres as ellipsoids.

    All arrays are validated on construction: shapes, finite values, symmetry,
    marginals positive definite, coupling positive semi-definite (relative
    tolerance 1e-8 on eigenvalues) with a positive diagonal.
    """

    mean: np.ndarray
    marginals: np.ndarray
    coupling: np.ndarray
    residues: tuple
    model_name: str = "unknown"
    isotropic: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.ndim != 2 or mean.shape[1] != 3 or mean.shape[0] < 1:
            raise ShapeError(f"mean must have shape (N, 3), got {mean.shape}")
        n = mean.shape[0]
        mean = _as_float_array("mean", mean, (n, 3))
        marg = check_symmetric("marginals", _as_float_array("marginals", self.marginals, (n, 3, 3)))
        coup = check_symmetric("coupling", _as_float_array("coupling", self.coupling, (n, n)))
        w = np.linalg.eigvalsh(marg)
        if np.any(w[:, 0] <= _SPD_RTOL * np.maximum(w[:, 2], np.finfo(float).tiny)):
            bad = int(np.argmin(w[:, 0] / np.maximum(w[:, 2], np.finfo(float).tiny)))
            raise ShapeError(f"marginals[{bad}] is not positive definite (eigenvalues {w[bad]})")
        if np.any(np.diag(coup) <= 0):
            raise ShapeError("coupling has a non-positive diagonal entry")
        _check_psd("coupling", coup)
        for k, v in (("mean", mean), ("marginals", marg), ("coupling", coup)):
            v.setflags(write=False)
            object.__setattr__(self, k, v)
        object.__setattr__(self, "residues", as_residues(self.residues, n))
        object.__setattr__(self, "model_name", str(self.model_name))
        object.__setattr__(self, "isotropic", bool(self.isotropic))

    # ------------------------------------------------------------------ derived
    def __len__(self) -> int:
        return self.mean.shape[0]

    @property
    def n_residues(self) -> int:
        return self.mean.shape[0]

    @property
    def rmsf(self) -> np.ndarray:
        """RMSF_i = sqrt(tr Sigma_i), shape (N,), Å."""
        return np.sqrt(np.trace(self.marginals, axis1=1, axis2=2))

    @property
    def relative_units(self) -> bool:
        """True when the amplitudes are relative (ANM's kT/gamma without calibration),
        marked by a ``model_name`` ending in ``"-relative"``; then only the profile's
        shape, not its size, means something."""
        return self.model_name.endswith(RELATIVE_SUFFIX)

    @property
    def rmsf_unit(self) -> str:
        """The unit of :attr:`rmsf` for labels: ``"Å"`` or ``"relative, kT/γ"``."""
        return "relative, kT/γ" if self.relative_units else "Å"

    @property
    def rmsf_label(self) -> str:
        """Axis / legend label of the RMSF: ``"RMSF (Å)"`` or ``"RMSF (relative, kT/γ)"``."""
        return f"RMSF ({self.rmsf_unit})"

    @property
    def bfactors(self) -> np.ndarray:
        """B_i = (8 pi^2 / 3) tr Sigma_i, shape (N,), Å²."""
        return bfactors_from_marginals(self.marginals)

    @property
    def correlation(self) -> np.ndarray:
        """DCCM C~_ij = C_ij / sqrt(C_ii C_jj), shape (N, N), dimensionless, unit diagonal."""
        if "corr" not in self._cache:
            d = np.sqrt(np.diag(self.coupling))
            corr = self.coupling / np.outer(d, d)
            np.fill_diagonal(corr, 1.0)
            corr.setflags(write=False)
            self._cache["corr"] = corr
        return self._cache["corr"]

    def marginal_factors(self) -> np.ndarray:
        """L_i with L_i L_i^T = Sigma_i, shape (N, 3, 3), Å.

        We use the symmetric square root rather than the Cholesky factor: both
        satisfy Eq. 3's identities (SPD joint, diagonal blocks = marginals), but
        only the symmetric root makes the off-diagonal blocks rotate with the
        structure (chol(R S R^T) != R chol(S)), so the joint stays SE(3)-equivariant.
        """
        if "L" not in self._cache:
            self._cache["L"] = sqrtm_spd(self.marginals)
        return self._cache["L"]

    def correlation_cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of the correlation C~, shape (N, N).

        C~ is only positive semi-definite in general; when the factorisation
        fails, a diagonal jitter (at most 1e-6 relative, raised tenfold each try)
        is added and the result rescaled to unit diagonal.
        """
        if "Lc" not in self._cache:
            corr = np.array(self.correlation)
            jitter = 0.0
            for _ in range(8):
                try:
                    lc = np.linalg.cholesky(corr + jitter * np.eye(len(corr)))
                    break
                except np.linalg.LinAlgError:
                    jitter = 1e-12 if jitter == 0 else jitter * 10
            else:
                w, v = np.linalg.eigh(corr)
                w = np.clip(w, 1e-10, None)
                c2 = (v * w) @ v.T
                d = np.sqrt(np.diag(c2))
                lc = np.linalg.cholesky(c2 / np.outer(d, d))
            if jitter:
                lc = lc / np.sqrt(1.0 + jitter)
            self._cache["Lc"] = lc
        return self._cache["Lc"]

    def joint(self) -> np.ndarray:
        """Full covariance Sigma_joint, shape (3N, 3N), Å² (DynaProt Eq. 3).

        Sigma_joint = L_blk (C~ kron I_3) L_blk^T with L_blk = diag(L_1..L_N), so
        the block (i, j) is C~_ij L_i L_j^T.  Rows and columns are ordered
        (residue, axis): index 3 i + a.
        """
        n = self.n_residues
        lm = self.marginal_factors()
        blocks = np.einsum("iab,ij,jcb->iajc", lm, self.correlation, lm)  # [N, 3, N, 3]
        return blocks.reshape(3 * n, 3 * n)

    def sample(self, n: int, seed=None, amplitude: float = 1.0) -> np.ndarray:
        """Draw conformations without forming the 3N x 3N covariance.

        E ~ N(0, I) of shape (N, 3), Z = chol(C~) E, x_i = mu_i + L_i z_i: one
        N x N Cholesky (cached), then O(N^2) per sample.

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        seed : int or numpy.random.Generator, optional
        amplitude : float
            Scales the displacements (1 = the predicted distribution); useful
            for exaggerated animations.

        Returns
        -------
        ndarray, shape (n, N, 3), Å
        """
        if int(n) != n or n < 1:
            raise InputError(f"n must be a positive integer, got {n!r}")
        if not np.isfinite(amplitude) or amplitude < 0:
            raise InputError(f"amplitude must be a finite number >= 0, got {amplitude!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n, n_res = int(n), self.n_residues
        e = rng.standard_normal((n_res, n * 3))  # [N, S*3]: one GEMM below, not S thin ones
        z = (self.correlation_cholesky() @ e).reshape(n_res, n, 3)  # [N, S, 3], rows coupled by C~
        dx = np.matmul(z, np.swapaxes(self.marginal_factors(), 1, 2))  # [N, S, 3]: x_i = L_i z_i
        return self.mean[None] + amplitude * np.swapaxes(dx, 0, 1)  # [S, N, 3]

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> Path:
        """Write a ``.npz`` with the arrays named in DESIGN.md section 6.

        The file is written to a temporary name and renamed, so a failure leaves
        no partial file.
        """
        path = Path(path)
        arrays = self.to_arrays()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def to_arrays(self) -> dict:
        """The arrays stored by :meth:`save`."""
        res = self.residues
        return {
            "mean": np.asarray(self.mean),
            "marginals": np.asarray(self.marginals),
            "coupling": np.asarray(self.coupling),
            "residue_chain": np.array([r.chain for r in res], dtype=str),
            "residue_number": np.array([r.number for r in res], dtype=np.int64),
            "residue_icode": np.array([r.icode for r in res], dtype=str),
            "residue_name": np.array([r.name for r in res], dtype=str),
            "model_name": np.array(self.model_name),
        }

    @classmethod
    def load(cls, path) -> "Dynamics":
        """Read a file written by :meth:`save`."""
        path = Path(path)
        data = read_npz(path)
        required = ["mean", "marginals", "coupling", "residue_chain", "residue_number",
                    "residue_icode", "residue_name", "model_name"]
        missing = [k for k in required if k not in data]
        if missing:
            raise InputError(f"{path}: not a Dynamics file, missing arrays {', '.join(missing)}")
        residues = tuple(
            Residue(str(c), int(n), str(i), str(r))
            for c, n, i, r in zip(data["residue_chain"], data["residue_number"],
                                  data["residue_icode"], data["residue_name"])
        )
        try:
            return cls(
                mean=data["mean"],
                marginals=data["marginals"],
                coupling=data["coupling"],
                residues=residues,
                model_name=str(data["model_name"]),
                # not stored (DESIGN fixes the array names): isotropy is read off the marginals
                isotropic=_is_isotropic(data["marginals"]),
            )
        except ShapeError as exc:
            raise InputError(f"{path}: invalid dynamics ({exc})") from None

    @classmethod
    def from_joint(cls, joint, mean, residues, model_name="joint", isotropic=False) -> "Dynamics":
        """Marginals and trace-pooled coupling of a full (3N, 3N) covariance in Å²."""
        joint = np.asarray(joint, dtype=np.float64)
        return cls(
            mean=mean,
            marginals=marginals_from_joint(joint),
            coupling=coupling_from_joint(joint),
            residues=residues,
            model_name=model_name,
            isotropic=isotropic,
        )

    def summary(self, top: int = 5) -> str:
        """A few lines for people: size, model, RMSF range, most mobile residues."""
        r = self.rmsf
        unit = self.rmsf_unit
        order = np.argsort(-r)[:top]
        lines = [
            f"model {self.model_name}: {self.n_residues} residues, chain(s) "
            + ",".join(sorted({x.chain for x in self.residues})),
            f"{self.rmsf_label}: min {r.min():.2f}  median {np.median(r):.2f}  max {r.max():.2f}",
            "most mobile: " + ", ".join(f"{self.residues[i].label()} ({r[i]:.2f}{' ' + unit if unit == 'Å' else ''})"
                                        for i in order),
        ]
        if self.isotropic:
            lines.append("note: isotropic model (no per-residue anisotropy)")
        return "\n".join(lines)


def stack_dynamics(parts, model_name: str | None = None) -> Dynamics:
    """Several chains' Dynamics side by side, without coupling between chains.

    Parameters
    ----------
    parts : sequence of Dynamics
        Usually the chains of one file, each predicted alone.

    Returns
    -------
    Dynamics
        mean (sum N, 3) Å, marginals (sum N, 3, 3) Å², block-diagonal coupling
        (sum N, sum N) Å² (inter-chain coupling 0: not predicted).
    """
    parts = list(parts)
    if not parts:
        raise InputError("stack_dynamics needs at least one Dynamics")
    n = sum(p.n_residues for p in parts)
    coupling = np.zeros((n, n))
    k = 0
    for p in parts:
        coupling[k:k + p.n_residues, k:k + p.n_residues] = p.coupling
        k += p.n_residues
    names = sorted({p.model_name for p in parts})
    return Dynamics(
        mean=np.concatenate([p.mean for p in parts]),
        marginals=np.concatenate([p.marginals for p in parts]),
        coupling=coupling,
        residues=sum((tuple(p.residues) for p in parts), ()),
        model_name=model_name or "+".join(names),
        isotropic=all(p.isotropic for p in parts),
    )
