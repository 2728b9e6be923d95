"""Virtual backbone N and C atoms from a C-alpha trace, for approximate residue frames.

The learned models read residue frames built from N, CA, C (AlphaFold convention,
:func:`dynaprot_viz.core.structure.local_frames`: e1 along CA->C, e2 in the N-CA-C
plane).  A C-alpha-only input (coarse models, CA-only PDB files, experimental
ensembles, CA trajectories) has no N or C; this module places a virtual N and C
for each residue from the local C-alpha geometry, so that ``local_frames`` of the
virtual atoms approximates the true frame.

Construction (the idea of CA-to-backbone reconstruction: Purisima & Scheraga 1984;
Milik, Kolinski & Skolnick, J. Comput. Chem. 18:80, 1997; PULCHRA, Rotkiewicz &
Skolnick, J. Comput. Chem. 29:1460, 2008, whose backbone fragments are looked up
by the C-alpha distances r13 and r14, i.e. the virtual bond angle and dihedral):

1. Chain breaks: consecutive C-alpha atoms not between ``CA_BOND_RANGE`` (2.0 to
   4.2 Å) apart are not bonded; the trace is cut there.
2. Trace frame of residue i, when CA_{i-1} and CA_{i+1} are in its segment and the
   three are not collinear: a = unit(CA_{i-1} - CA_i), b = unit(CA_{i+1} - CA_i);
   u1 = unit(a + b) (bisector), u2 = unit(b - a), u3 = u1 x u2 (right-handed).
3. Features of residue i (``FEATURES``): 1, cos(theta_i), cos^2(theta_i), with
   theta_i the virtual bond angle (a . b), and the first and second Fourier terms
   of the virtual dihedrals tau_a = dih(CA_{i-2}, CA_{i-1}, CA_i, CA_{i+1}) and
   tau_b = dih(CA_{i-1}, CA_i, CA_{i+1}, CA_{i+2}) where those C-alpha exist
   (a smooth, linear stand-in for PULCHRA's (r13, r14) lookup table).
4. Local coordinates of the virtual atoms in the trace frame are linear in the
   features: [N_loc, C_loc] (6 numbers, Å) = features @ W, one fitted table W per
   case (``CA_TRACE_MODELS``): both dihedrals, only tau_a, only tau_b, neither
   (three-residue segments), and the segment ends ("start": the first residue of a
   segment, placed in the trace frame of the next residue and with that residue's
   features; "end": the last one, with the previous residue's frame and features).
   A residue with no usable neighbour in its segment (a segment of one or two
   residues, a collinear triple) borrows the frame of the nearest residue that has
   one, anywhere in the chain.
5. N_i = CA_i + U_i N_loc, C_i = CA_i + U_i C_loc (U_i = [u1 u2 u3]).

Only C-alpha differences enter, so the construction is exactly equivariant under
rotations and translations of the trace (not under reflections: the dihedrals
carry the chirality, as they should).

Fit and accuracy.  The tables were fitted by least squares with
``datasets/ca_frames/fit.py`` on 836 of the 1,046 real PDB backbones of
``shared/data/mdcath_train/pdbs`` (the domains whose index in sorted order is not a
multiple of 5).  Measured on 223 held-out chains never fitted (the other 210 mdcath
domains, the ten ATLAS start structures, examples/data/1ubi.pdb, 1ake_A.pdb,
4ake_A.pdb), the rotation angle between the CA-trace frame and the true N-CA-C frame
over all 31,309 residues is median 6.2 deg, 95th percentile 24.0 deg (residues with
both dihedrals: 6.1 / 22.6 deg).  Segment ends are poorly determined by the trace
(the first residue's N and the last residue's C can turn freely about the CA-CA
bond): median 50 deg at a segment start, 32 deg at its end.  For comparison, one
fixed set of coefficients in the trace frame (no features) gives a median of 17.9
deg and cos(theta) alone 9.7 deg.  Command: ``.venv/bin/python datasets/ca_frames/fit.py``.

Effect on the predictions (``datasets/ca_frames/measure_models.py``, shipped
preview weights, 13 real chains: examples/data 1ubi, 1ake_A, 4ake_A and the ten
ATLAS start structures, each predicted from the file and from a copy stripped to
C-alpha): DynaProt RMSF Pearson r median 0.976 (min 0.928), correlation-map r
median 0.981 (min 0.944); ResAxial reads only C-alpha distances, r = 1 exactly.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = [
    "CA_BOND_RANGE",
    "CA_TRACE_MODELS",
    "CASE_FEATURES",
    "FEATURES",
    "ca_segments",
    "trace_geometry",
    "virtual_backbone",
]

#: consecutive C-alpha atoms are bonded when their distance (Å) lies in this range
#: (trans peptides ~3.8 Å, cis ~2.9 Å); outside it the trace is cut (chain break,
#: missing residues, or duplicated atoms)
CA_BOND_RANGE = (2.0, 4.2)

#: names of the per-residue features, in the column order of the coefficient tables
FEATURES = (
    "1", "cos_theta", "cos_theta^2",
    "cos_tau_a", "sin_tau_a", "cos_tau_b", "sin_tau_b",
    "cos_2tau_a", "sin_2tau_a", "cos_2tau_b", "sin_2tau_b",
)

#: collinearity threshold on sin(theta) below which a trace frame is not defined
_MIN_SIN = 1e-3

#: feature columns used by each case (indices into FEATURES)
CASE_FEATURES = {
    "ab": tuple(range(11)),
    "a": (0, 1, 2, 3, 4, 7, 8),
    "b": (0, 1, 2, 5, 6, 9, 10),
    "bend": (0, 1, 2),
    "start": (0, 1, 2, 5, 6, 9, 10),  # features of the next residue (tau_a does not exist)
    "end": (0, 1, 2, 3, 4, 7, 8),  # features of the previous residue (tau_b does not exist)
}

# Coefficient tables W (len(CASE_FEATURES[case]) x 6, Å): columns N_u1, N_u2, N_u3,
# C_u1, C_u2, C_u3 (virtual N and C in the trace frame of step 2).  Least-squares fit
# by datasets/ca_frames/fit.py on real PDB backbones (see the module docstring);
# regenerate with `.venv/bin/python datasets/ca_frames/fit.py --write`.
# BEGIN FITTED CONSTANTS
CA_TRACE_MODELS = {
    'ab': np.array([
        [ 0.8937, -1.0886,  0.1461,  0.7559,  1.2778, -0.0380],
        [ 0.6084,  0.3704, -0.4091, -0.1262,  0.3034, -0.9094],
        [ 0.3694,  0.1930, -0.4227,  0.0293,  0.2150, -0.7831],
        [ 0.0154,  0.0145, -0.0746, -0.0172,  0.0096, -0.0416],
        [ 0.0323,  0.0215,  0.0903, -0.0217,  0.0224, -0.0609],
        [ 0.0025,  0.0007,  0.0036,  0.0243, -0.0233, -0.2407],
        [ 0.0495,  0.0318,  0.0325, -0.0716,  0.0427, -0.0893],
        [ 0.0626,  0.0440, -0.0040, -0.0539,  0.0406, -0.0293],
        [ 0.0044,  0.0055,  0.0619,  0.0039, -0.0021, -0.0328],
        [-0.0153, -0.0136, -0.0029,  0.0070, -0.0240,  0.0390],
        [-0.0256, -0.0191,  0.1165,  0.0347, -0.0307, -0.0598],
    ]),
    'a': np.array([
        [ 0.9174, -1.0742,  0.2239,  0.7345,  1.2870, -0.2208],
        [ 0.7433,  0.4600, -0.2119, -0.2154,  0.3627, -1.9238],
        [ 0.4364,  0.2405, -0.2555,  0.0296,  0.2305, -1.5845],
        [ 0.0213,  0.0187, -0.0793, -0.0205,  0.0131, -0.0771],
        [ 0.0307,  0.0199,  0.1164, -0.0161,  0.0164, -0.1092],
        [ 0.0672,  0.0469, -0.0116, -0.0622,  0.0450, -0.0219],
        [ 0.0020,  0.0033,  0.0828,  0.0057, -0.0062, -0.0446],
    ]),
    'b': np.array([
        [ 0.8949, -1.0859,  0.1889,  0.7600,  1.2758, -0.0728],
        [ 0.6569,  0.4099, -0.3271, -0.1589,  0.3334, -1.0802],
        [ 0.4759,  0.2696, -0.3179, -0.0550,  0.2871, -0.9654],
        [ 0.0070,  0.0042,  0.0018,  0.0205, -0.0201, -0.2545],
        [ 0.0617,  0.0409,  0.0445, -0.0810,  0.0504, -0.1090],
        [-0.0131, -0.0123,  0.0009,  0.0054, -0.0228,  0.0431],
        [-0.0213, -0.0158,  0.1373,  0.0330, -0.0283, -0.0756],
    ]),
    'bend': np.array([
        [ 0.9309, -1.0625,  0.3171,  0.7336,  1.2878, -0.3382],
        [ 0.8496,  0.5422,  0.0127, -0.2723,  0.4109, -2.4894],
        [ 0.5822,  0.3461, -0.0410, -0.0678,  0.3118, -2.0989],
    ]),
    'start': np.array([
        [ 0.3935, -0.1363,  0.4017, -0.9404,  1.0762, -0.2335],
        [ 0.7263,  1.5825,  2.4895, -0.9707, -0.6555,  0.6064],
        [-0.0248,  1.1698,  2.7566, -0.8630, -0.5417,  0.6156],
        [ 0.1051,  0.1317,  0.2437,  0.0108,  0.0131, -0.0037],
        [ 0.0208,  0.1128,  0.1994, -0.0346, -0.0142, -0.0589],
        [-0.0620, -0.0988, -0.1193,  0.0046,  0.0012,  0.0008],
        [-0.0241,  0.0639,  0.2903,  0.0217,  0.0188, -0.1911],
    ]),
    'end': np.array([
        [-0.8001, -1.1842,  0.1768,  0.6442,  0.0789, -0.9851],
        [ 0.0237, -0.0849,  1.4573,  2.6148, -2.5816, -3.4638],
        [ 0.1561, -0.1498,  1.2083,  1.4994, -2.2685, -1.6874],
        [ 0.0230, -0.0145,  0.0594,  0.1346, -0.1041, -0.0600],
        [ 0.0107, -0.0114,  0.0700,  0.0525, -0.1038, -0.1134],
        [ 0.0434, -0.0317,  0.0049, -0.0063,  0.0308, -0.1278],
        [-0.0034,  0.0031,  0.0319, -0.0702, -0.0094, -0.1727],
    ]),
}
# END FITTED CONSTANTS


def ca_segments(ca: np.ndarray) -> np.ndarray:
    """Segment index of each residue, shape (N,) int: it grows by one after every
    pair of consecutive C-alpha atoms whose distance is outside ``CA_BOND_RANGE``.

    ca : ndarray, shape (N, 3), Å.
    """
    ca = np.asarray(ca, dtype=np.float64)
    d = np.linalg.norm(np.diff(ca, axis=0), axis=1)
    brk = (d < CA_BOND_RANGE[0]) | (d > CA_BOND_RANGE[1])
    return np.concatenate([[0], np.cumsum(brk)]).astype(np.int64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _dihedral(p0, p1, p2, p3) -> np.ndarray:
    """Dihedral angle (radians, (-pi, pi]) of four points, arrays of shape (M, 3)."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = _unit(b1)
    v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, axis=-1), np.sum(v * w, axis=-1))


def trace_geometry(ca: np.ndarray) -> dict:
    """Trace frames, features and case of every residue of a C-alpha trace.

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
        C-alpha coordinates in chain order, finite.

    Returns
    -------
    dict with
        ``frame`` (N, 3, 3): the trace frame used for residue i (columns u1, u2, u3;
        the neighbour's for borrowed ones); ``features`` (N, 11); ``case`` (N,) str,
        a key of ``CASE_FEATURES``; ``segment`` (N,) int; ``borrowed`` (N,) int,
        the residue whose trace frame residue i uses (i itself when it has one).

    Raises
    ------
    InputError
        When no residue has a trace frame (fewer than three C-alpha atoms in one
        bonded, bent stretch): the frames are then undefined.
    """
    ca = np.asarray(ca, dtype=np.float64)
    n = len(ca)
    if ca.ndim != 2 or ca.shape[1] != 3:
        raise InputError(f"C-alpha trace must have shape (N, 3), got {ca.shape}")
    if not np.all(np.isfinite(ca)):
        raise InputError("C-alpha trace has non-finite coordinates")
    seg = ca_segments(ca) if n > 1 else np.zeros(n, dtype=np.int64)
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = seg[1:] == seg[:-1]
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = same_next[:-1]

    own = np.zeros((n, 3, 3))
    valid = np.zeros(n, dtype=bool)
    cos_t = np.zeros(n)
    inner = np.flatnonzero(same_prev & same_next)
    if len(inner):
        a = _unit(ca[inner - 1] - ca[inner])
        b = _unit(ca[inner + 1] - ca[inner])
        c = np.sum(a * b, axis=-1)
        ok = np.sqrt(np.clip(1.0 - c**2, 0.0, None)) > _MIN_SIN
        u1 = _unit(a + b)
        u2 = _unit(b - a)
        own[inner] = np.stack([u1, u2, np.cross(u1, u2)], axis=-1)
        valid[inner] = ok
        cos_t[inner] = c
    if not valid.any():
        raise InputError(
            f"C-alpha trace of {n} residues has no three consecutive bonded, non-collinear C-alpha atoms: "
            "residue frames cannot be built from it"
        )

    # dihedral availability: tau_a needs a trace frame at i-1, tau_b at i+1
    has_a = np.zeros(n, dtype=bool)
    has_a[1:] = valid[1:] & valid[:-1]
    has_b = np.zeros(n, dtype=bool)
    has_b[:-1] = valid[:-1] & valid[1:]
    tau_a = np.zeros(n)
    tau_b = np.zeros(n)
    ia = np.flatnonzero(has_a)
    if len(ia):
        tau_a[ia] = _dihedral(ca[ia - 2], ca[ia - 1], ca[ia], ca[ia + 1])
    ib = np.flatnonzero(has_b)
    if len(ib):
        tau_b[ib] = _dihedral(ca[ib - 1], ca[ib], ca[ib + 1], ca[ib + 2])

    # borrowed frames: the next residue's (start), else the previous one's (end),
    # else the nearest residue with a frame anywhere in the chain
    idx = np.arange(n)
    borrowed = idx.copy()
    case = np.empty(n, dtype=object)
    case[valid & has_a & has_b] = "ab"
    case[valid & has_a & ~has_b] = "a"
    case[valid & ~has_a & has_b] = "b"
    case[valid & ~has_a & ~has_b] = "bend"
    vidx = np.flatnonzero(valid)
    for i in np.flatnonzero(~valid):
        if i + 1 < n and same_next[i] and valid[i + 1]:
            borrowed[i], case[i] = i + 1, "start"
        elif i > 0 and same_prev[i] and valid[i - 1]:
            borrowed[i], case[i] = i - 1, "end"
        else:
            j = vidx[np.argmin(np.abs(vidx - i))]  # ties: the lower index
            borrowed[i], case[i] = j, ("start" if j > i else "end")

    feats = np.stack([
        np.ones(n), cos_t, cos_t**2,
        np.cos(tau_a), np.sin(tau_a), np.cos(tau_b), np.sin(tau_b),
        np.cos(2 * tau_a), np.sin(2 * tau_a), np.cos(2 * tau_b), np.sin(2 * tau_b),
    ], axis=-1)
    feats[np.ix_(~has_a, [3, 4, 7, 8])] = 0.0
    feats[np.ix_(~has_b, [5, 6, 9, 10])] = 0.0
    # a residue that borrows a frame also takes that residue's features
    return {"frame": own[borrowed], "features": feats[borrowed], "case": case.astype(str), "segment": seg,
            "borrowed": borrowed}


def virtual_backbone(ca: np.ndarray, models: dict | None = None) -> np.ndarray:
    """Backbone with virtual N and C placed from the C-alpha trace (module docstring).

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
        C-alpha coordinates in chain order.
    models : dict, optional
        ``case -> W`` coefficient tables (Å), shapes (len(CASE_FEATURES[case]), 6);
        default ``CA_TRACE_MODELS`` (the fitting script passes its own).

    Returns
    -------
    ndarray, shape (N, 3, 3), Å
        [N_virtual, CA (as given), C_virtual] per residue.

    Raises
    ------
    InputError
        Bad shape, non-finite coordinates, or no residue with a trace frame.
    """
    models = CA_TRACE_MODELS if models is None else models
    geo = trace_geometry(ca)
    ca = np.asarray(ca, dtype=np.float64)
    local = np.zeros((len(ca), 6))
    for name, cols in CASE_FEATURES.items():
        sel = geo["case"] == name
        if sel.any():
            local[sel] = geo["features"][sel][:, cols] @ np.asarray(models[name], dtype=np.float64)
    frame = geo["frame"]
    n_at = ca + np.einsum("nij,nj->ni", frame, local[:, :3])
    c_at = ca + np.einsum("nij,nj->ni", frame, local[:, 3:])
    return np.stack([n_at, ca, c_at], axis=1)
