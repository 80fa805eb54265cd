"""How far apart two sets of frames are in a network's feature space: FID and KID.

DESIGN §1.3 asks for realism measured on the family's own features, and the same two numbers
judge generated extras. The maintained implementations (clean-fid, torch-fidelity,
torchmetrics) need PyTorch and an Inception network; these are the published estimators on
any features, in numpy, so the family's own pooled features can be used
(:meth:`cnn_family.Family.features`).

* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to the two sets
  (Heusel et al. 2017). Biased upwards for small sets: compare figures of equal set sizes.
* :func:`kernel_distance`: the squared MMD with the cubic polynomial kernel
  ``(x·y / d + 1)^3``, unbiased, averaged over random subsets (Bińkowski et al. 2018); about 0
  for two samples of one distribution, whatever their size.

>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
>>> abs(kernel_distance(a, b, subsets=20)[0]) < 0.01
True
>>> kernel_distance(a, b + 1.0, subsets=20)[0] > 0.1
True
"""

from __future__ import annotations

import numpy as np


def _check(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features: expected two (N, D) arrays of equal D, got {a.shape} and {b.shape}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"features: expected at least 2 rows each, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features: found NaN or inf")
    return a, b


def frechet_distance(a, b) -> float:
    """||mu_a - mu_b||² + tr(S_a + S_b - 2 (S_a^½ S_b S_a^½)^½) for features a (N, D), b (M, D).

    The matrix square root goes through two symmetric eigendecompositions, which stay real
    and stable where the covariances are singular (fewer frames than feature dimensions).

    >>> rng = np.random.default_rng(0)
    >>> round(frechet_distance(rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2)) + 3))
    18
    """
    a, b = _check(a, b)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    sa, sb = np.atleast_2d(sa), np.atleast_2d(sb)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ sb @ root_a)
    tr_cross = float(np.sqrt(np.clip(cross, 0, None)).sum())
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * tr_cross)


def kernel_distance(
    a, b, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) over ``subsets`` draws of the unbiased squared MMD, cubic polynomial kernel.

    Each draw takes ``min(subset_size, len(a), len(b))`` rows of each set without replacement.
    """
    a, b = _check(a, b)
    if subsets < 1:
        raise ValueError(f"subsets: expected a positive number, got {subsets}")
    rng = np.random.default_rng(seed)
    m, d = min(subset_size, len(a), len(b)), a.shape[1]
    vals = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        # Unbiased: the diagonals (each row against itself) are left out of the within-set sums.
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals[i] = within - 2.0 * kxy.mean()
    return float(vals.mean()), float(vals.std())
