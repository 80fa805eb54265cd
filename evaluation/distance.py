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


def distances_to_real(
    real_features,
    real_sessions,
    other_features,
    *,
    real_labels=None,
    other_labels=None,
    categories=(),
    other: str = "other",
    seed: int = 0,
) -> dict:
    """FID and KID of a set of frames against real ones, beside real against real for scale.

    The real frames' sessions are split in two seeded halves, A and B; A is compared with B
    and with as many of the other frames, so the two FIDs (biased by the set size) compare.
    With labels, KID per category compares the frames carrying that label. Keys:
    ``n_per_set``, ``real_vs_real``, ``real_vs_<other>`` ({fid, kid, kid_std}) and
    ``kid_per_category``.

    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(200, 4)), rng.normal(size=(100, 4)) + 2.0
    >>> d = distances_to_real(real, np.arange(200) % 10, fake, other="fake")
    >>> d["real_vs_fake"]["fid"] > d["real_vs_real"]["fid"]
    True
    """
    fr, fo = np.asarray(real_features), np.asarray(other_features)
    rs = np.asarray(real_sessions).astype(str)
    if len(rs) != len(fr):
        raise ValueError(f"real_sessions: expected {len(fr)} rows, got {len(rs)}")
    rng = np.random.default_rng(seed)
    sessions = np.unique(rs)
    if len(sessions) < 2:
        raise ValueError(f"real frames: expected 2 or more sessions to split, got {len(sessions)}")
    rng.shuffle(sessions)
    in_a = np.isin(rs, sessions[: len(sessions) // 2])
    n = int(min(in_a.sum(), (~in_a).sum(), len(fo)))
    if n < 2:
        raise ValueError(f"expected at least 2 frames in each real half and of the others, got {n}")
    a = rng.choice(np.flatnonzero(in_a), n, replace=False)
    b = rng.choice(np.flatnonzero(~in_a), n, replace=False)
    s = rng.choice(len(fo), n, replace=False)

    def pair(x, y) -> dict:
        kid, kid_std = kernel_distance(x, y, seed=seed)
        return {"fid": frechet_distance(x, y), "kid": kid, "kid_std": kid_std}

    out = {
        "n_per_set": n,
        "real_vs_real": pair(fr[a], fr[b]),
        f"real_vs_{other}": pair(fr[a], fo[s]),
        "kid_per_category": {},
    }
    if real_labels is None or other_labels is None:
        return out
    yr, yo = np.asarray(real_labels), np.asarray(other_labels)
    for j, c in enumerate(categories):
        ra, rb, oc = fr[in_a & (yr[:, j] == 1)], fr[~in_a & (yr[:, j] == 1)], fo[yo[:, j] == 1]
        if min(len(ra), len(rb), len(oc)) < 2:
            continue
        out["kid_per_category"][c] = {
            "real_vs_real": kernel_distance(ra, rb, seed=seed)[0],
            f"real_vs_{other}": kernel_distance(ra, oc, seed=seed)[0],
        }
    return out
