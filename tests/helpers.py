"""Small test helpers shared by several test files (import as `from helpers import ...`)."""

import numpy as np


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation, shape (3, 3)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def randomize_parameters(module, seed: int, scale: float = 0.3):
    """``module`` with ``scale`` * N(0, 1) noise added to every parameter, in eval mode.

    AlphaFold-style 'final' and 'gating' initialisations are zeros and constants,
    which would make equivariance and formula tests pass trivially.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.eval()
