"""Dynamics.sample(250) through the factorised form vs a dense 3N x 3N Cholesky.

Both paths start from the same Dynamics (marginals + coupling) and produce 250
samples from the same N(mean, Sigma_joint).  The factorised path does one N x N
Cholesky of the correlation and 3x3 roots; the dense path forms Sigma_joint and
factorises it.  Goal (issue 2): >= 20x at N = 1000.

Run: .venv/bin/python benchmarks/bench_sampling.py
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from _common import measure, real_ca
from dynaprot_viz.core.anm import predict_anm
from dynaprot_viz.core.gaussian import Dynamics
from dynaprot_viz.core.structure import ProteinChain, Residue

N_SAMPLES = 250


def dynamics_of_size(n: int) -> Dynamics:
    ca = real_ca(n)
    residues = tuple(Residue("A", i + 1, "", "ALA") for i in range(n))
    bb = np.repeat(ca[:, None, :], 3, axis=1)
    chain = ProteinChain("7cth", residues, "A" * n, bb, np.zeros(n))
    return predict_anm(chain)


def factorised(dyn: Dynamics):
    dyn._cache.clear()  # time the N x N Cholesky and the 3x3 roots too, not only the draws
    return dyn.sample(N_SAMPLES, seed=0)


def dense(dyn: Dynamics):
    joint = dyn.joint()
    chol = scipy.linalg.cholesky(joint + 1e-10 * np.eye(len(joint)) * np.trace(joint) / len(joint), lower=True)
    e = np.random.default_rng(0).standard_normal((len(joint), N_SAMPLES))
    return (dyn.mean.reshape(-1, 1) + chol @ e).T.reshape(N_SAMPLES, -1, 3)


def main():
    print(f"{'N':>6} {'factorised s':>13} {'dense s':>9} {'speed-up':>9} {'fact. MB':>9} {'dense MB':>9}  check")
    for n in (100, 300, 1000):
        dyn = dynamics_of_size(n)
        t_f, m_f, xf = measure(lambda: factorised(dyn), repeat=3)
        t_d, m_d, xd = measure(lambda: dense(dyn), repeat=2 if n >= 1000 else 3)
        # both draw from the same distribution: compare per-coordinate variances
        var_ratio = np.median(xf.var(axis=0) / xd.var(axis=0))
        print(f"{n:>6} {t_f:>13.4f} {t_d:>9.4f} {t_d / t_f:>8.1f}x {m_f:>9.1f} {m_d:>9.1f}  "
              f"median var ratio {var_ratio:.2f} (250 samples each)")
    print("goal: speed-up >= 20x at N = 1000")


if __name__ == "__main__":
    main()
