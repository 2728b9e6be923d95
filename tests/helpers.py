"""Small test helpers shared by several test files (import as `from helpers import ...`)."""

import numpy as np


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation, shape (3, 3)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
