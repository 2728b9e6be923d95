"""Our ANM (Cholesky pseudo-inverse) vs ProDy's ANM (all modes + calcCovariance).

Time and peak memory at N = 100, 271, 500, 1000 on real C-alpha coordinates,
with the covariances shown to agree.  Goal (issue 2): >= 10x faster at N = 271
and 1000.

Run: .venv/bin/python benchmarks/bench_anm.py
"""

from __future__ import annotations

from _common import measure, real_ca  # first: sets BLAS threads before numpy loads

import numpy as np

from dynaprot_viz.core.anm import anm_covariance


def prody_covariance(ca):
    import prody

    prody.confProDy(verbosity="none")
    anm = prody.ANM("bench")
    anm.buildHessian(ca, cutoff=15.0, gamma=1.0)
    anm.calcModes(n_modes=None, zeros=False)
    return prody.calcCovariance(anm)


def main():
    print(f"{'N':>6} {'ours s':>8} {'ProDy s':>8} {'speed-up':>9} {'ours MB':>8} {'ProDy MB':>9} {'max |diff|/max':>15}")
    for n in (100, 271, 500, 1000):
        ca = real_ca(n)
        t_o, m_o, c_o = measure(lambda: anm_covariance(ca), repeat=3)
        t_p, m_p, c_p = measure(lambda: prody_covariance(ca), repeat=1)
        diff = np.abs(c_o - c_p).max() / np.abs(c_p).max()
        print(f"{n:>6} {t_o:>8.3f} {t_p:>8.3f} {t_p / t_o:>8.1f}x {m_o:>8.1f} {m_p:>9.1f} {diff:>15.1e}")
    print("goal: speed-up >= 10x at N = 271 and 1000; memory = tracemalloc peak of one call")


if __name__ == "__main__":
    main()
