"""A spectral companion: a fourth voter per category from 85 hand-made features of each frame.

The CNN members trained on simulated frames pick up cues that only the simulator has; six
logistic regressions on coarse statistics (the radially averaged power spectrum, its
anisotropy and peakiness per ring, line-to-line jumps, grey-level shape) cannot, and they err
elsewhere. Voting beside a sim-only family as one more member in each category they lift its
mean ROC-AUC on the real frames by about 0.02 (``benchmarks/spectral_companion.py``).
Training takes about 90 s on 20,000 simulated frames and needs no real frame; the fitted
model is a JSON file of coefficients (no pickle).

>>> import numpy as np
>>> spectral_features(np.zeros((2, 128, 128), np.uint8)).shape
(2, 85)
>>> comp = fit_companion(frames, labels)                      # doctest: +SKIP
>>> comp.save("models/my_family")                             # doctest: +SKIP
>>> fam.vote(frames, companion=SpectralCompanion.load("models/my_family"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from training.data import CATEGORIES, check_images

FEATURE_VERSION = 1
FILE_NAME = "spectral_companion.json"
SIZE = 128
_RING_EDGES = np.arange(1.0, 40.0, 1.5)  # 25 rings from 1 to 38.5 cycles per frame
_SECTORS = 12  # over 180 degrees: a power spectrum of a real image is point-symmetric
_QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
N_FEATURES = 3 * (len(_RING_EDGES) - 1) + 5 + 5


class CompanionFormatError(ValueError):
    """A companion file is missing pieces or was made for other features."""


@lru_cache(maxsize=1)
def _geometry():
    k = np.fft.fftfreq(SIZE) * SIZE
    ky, kx = np.meshgrid(k, k, indexing="ij")
    kr = np.hypot(kx, ky).ravel()
    ang = (np.arctan2(ky, kx) % np.pi).ravel()
    sector = np.minimum((ang / np.pi * _SECTORS).astype(int), _SECTORS - 1)
    rings, cells = [], np.zeros((SIZE * SIZE, (len(_RING_EDGES) - 1) * _SECTORS))
    for r, (lo, hi) in enumerate(itertools.pairwise(_RING_EDGES)):
        idx = np.flatnonzero((kr >= lo) & (kr < hi))
        rings.append(idx)
        cells[idx, r * _SECTORS + sector[idx]] = 1.0
    counts = cells.sum(axis=0)
    present = counts > 0
    cells[:, present] /= counts[present]  # a product with P gives each cell's mean power
    window = np.outer(np.hanning(SIZE), np.hanning(SIZE))
    return rings, cells, present.reshape(-1, _SECTORS), window


def spectral_features(images, *, batch_size: int = 256) -> np.ndarray:
    """(N, 128, 128) frames -> (N, 85) float64 features; numpy only, about 3 ms a frame on 2 cores.

    Per ring of the windowed power spectrum of the standardised frame (25 rings, 1-38.5
    cycles): log share of the power, log anisotropy (strongest of 12 angular sectors over
    their mean), log peakiness (strongest pixel over the ring's mean). Then line statistics
    along the slow axis (largest and top-5 jumps between neighbouring lines over the median
    jump, the mean roughness along and across lines and their ratio) and the grey levels'
    shape (log inter-quartile range, upper and lower tails over it, skewness, kurtosis).

    >>> x = np.tile((127 + 100 * np.sin(2 * np.pi * np.arange(128) / 16)).astype(np.uint8), (1, 128, 1))
    >>> f = spectral_features(x)
    >>> int(np.argmax(f[0, 0:75:3]))  # the ring holding 8 cycles per frame: 7 to 8.5
    4
    """
    x = check_images(images)
    if x.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"spectral features: expected {SIZE}x{SIZE} frames, got {x.shape[1:]}")
    rings, cells, present, window = _geometry()
    out = []
    for i in range(0, len(x), batch_size):
        f = x[i : i + batch_size].astype(np.float64) / 255.0
        f -= f.mean(axis=(1, 2), keepdims=True)
        fn = f / (f.std(axis=(1, 2), keepdims=True) + 1e-6)
        p = (np.abs(np.fft.fft2(fn * window)) ** 2).reshape(len(f), -1)
        total = p.sum(axis=1, keepdims=True) + 1e-12
        sect = (p @ cells).reshape(len(f), -1, _SECTORS)
        cols = []
        for r, idx in enumerate(rings):
            ring = p[:, idx]
            mean = ring.mean(axis=1) + 1e-12
            s = sect[:, r, present[r]]
            cols += [
                np.log(mean / total[:, 0] + 1e-12),
                np.log(s.max(axis=1) / (s.mean(axis=1) + 1e-12) + 1e-12),
                np.log(ring.max(axis=1) / mean + 1e-12),
            ]
        jumps = np.abs(np.diff(fn, axis=1)).mean(axis=2)  # (N, 127): line to line
        med = np.median(jumps, axis=1) + 1e-6
        across = jumps.mean(axis=1) + 1e-6
        along = np.abs(np.diff(fn, axis=2)).mean(axis=(1, 2)) + 1e-6
        cols += [
            np.log(jumps.max(axis=1) / med + 1e-6),
            np.log(np.sort(jumps, axis=1)[:, -5:].mean(axis=1) / med + 1e-6),
            np.log(along),
            np.log(across),
            np.log(along / across),
        ]
        q = np.quantile(f.reshape(len(f), -1), _QUANTILES, axis=1)
        iqr = q[3] - q[1] + 1e-6
        cols += [
            np.log(iqr),
            (q[4] - q[2]) / iqr,
            (q[2] - q[0]) / iqr,
            (fn**3).mean(axis=(1, 2)),
            (fn**4).mean(axis=(1, 2)),
        ]
        out.append(np.column_stack(cols))
    if not out:
        return np.zeros((0, N_FEATURES))
    return np.nan_to_num(np.concatenate(out), nan=0.0, posinf=30.0, neginf=-30.0)


@dataclasses.dataclass(frozen=True)
class SpectralCompanion:
    """Six standardised logistic regressions on :func:`spectral_features`, one per category."""

    categories: tuple[str, ...]
    mean: np.ndarray  # (F,) feature means of the training frames
    scale: np.ndarray  # (F,) their standard deviations
    coef: np.ndarray  # (C, F)
    intercept: np.ndarray  # (C,)
    about: dict = dataclasses.field(default_factory=dict)

    def predict(self, images) -> np.ndarray:
        """(N, C) probabilities, one per category, in ``categories`` order."""
        z = (spectral_features(images) - self.mean) / self.scale
        logits = np.clip(z @ self.coef.T + self.intercept, -50.0, 50.0)  # exp stays finite
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/spectral_companion.json`` atomically; return its path."""
        from training.io import write_json_atomic

        doc = {
            "kind": "spectral_companion",
            "feature_version": FEATURE_VERSION,
            "categories": list(self.categories),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            **self.about,
        }
        return write_json_atomic(Path(folder) / FILE_NAME, doc)

    @classmethod
    def load(cls, path: str | Path) -> SpectralCompanion:
        """Read a companion from its JSON file, or from the folder holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.exists():
            raise FileNotFoundError(
                f"spectral companion: expected {FILE_NAME} at {path}; found nothing "
                "(make one with `python -m cnn_family.spectral fit FOLDER`)"
            )
        doc = json.loads(path.read_text())
        if doc.get("feature_version") != FEATURE_VERSION:
            raise CompanionFormatError(
                f"{path}: expected feature_version {FEATURE_VERSION}, got "
                f"{doc.get('feature_version')!r}; fit it again"
            )
        keys = ("categories", "mean", "scale", "coef", "intercept")
        missing = [k for k in keys if k not in doc]
        if missing:
            raise CompanionFormatError(f"{path}: expected {list(keys)}, missing {missing}")
        comp = cls(
            tuple(doc["categories"]),
            np.asarray(doc["mean"], np.float64),
            np.asarray(doc["scale"], np.float64),
            np.asarray(doc["coef"], np.float64),
            np.asarray(doc["intercept"], np.float64),
            {k: v for k, v in doc.items() if k not in keys},
        )
        n_cat = len(comp.categories)
        if comp.coef.shape != (n_cat, N_FEATURES) or comp.mean.shape != (N_FEATURES,):
            raise CompanionFormatError(
                f"{path}: expected coef ({n_cat}, {N_FEATURES}) and mean ({N_FEATURES},), got "
                f"{comp.coef.shape} and {comp.mean.shape}"
            )
        return comp


def fit_companion(
    images,
    labels,
    *,
    categories: Sequence[str] = CATEGORIES,
    c: float = 0.01,
    about: dict | None = None,
) -> SpectralCompanion:
    """Fit one balanced, strongly regularised logistic regression per category.

    ``labels`` (N, C) 0/1. ``c`` is scikit-learn's inverse regularisation strength; 0.01
    keeps the weights small, so no single statistic the simulator gets wrong dominates.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels)
    if y.ndim != 2 or y.shape[1] != len(categories):
        raise ValueError(f"labels: expected (N, {len(categories)}) 0/1, got shape {y.shape}")
    x = spectral_features(images)
    if len(x) != len(y):
        raise ValueError(f"labels: expected one row per frame ({len(x)}), got {len(y)}")
    for j, name in enumerate(categories):
        if len(np.unique(y[:, j])) < 2:
            raise ValueError(f"labels: {name!r} needs positive and negative frames")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    coef, intercept = [], []
    for j in range(len(categories)):
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(z, y[:, j])
        coef.append(m.coef_[0])
        intercept.append(m.intercept_[0])
    info = {"frames": len(x), "c": c, "class_weight": "balanced", **(about or {})}
    return SpectralCompanion(
        tuple(categories), mean, scale, np.array(coef), np.array(intercept), info
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cnn_family.spectral fit FOLDER [--data H5 | --sim N]``."""
    import argparse
    import sys

    from training.io import USER_ERRORS, cli_error

    ap = argparse.ArgumentParser(prog="python -m cnn_family.spectral", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fit", help="fit a companion and write FOLDER/spectral_companion.json")
    p.add_argument("folder", help="where to write it (a family's folder, say)")
    p.add_argument("--data", help="labelled frames (default: --sim simulated frames)")
    p.add_argument("--sim", type=int, default=20000, help="simulated frames (default 20000)")
    p.add_argument("--seed", type=int, default=11, help="simulator seed")
    args = ap.parse_args(argv)
    try:
        if args.data:
            from training.data import load_frames

            fs = load_frames(args.data)
            fs = fs.subset(fs.labelled)
            source = {"data": str(args.data)}
        else:
            from stm_sim.dataset import make_frameset

            fs = make_frameset(args.sim, seed=args.seed, progress=True)
            source = {"simulated": {"frames": args.sim, "seed": args.seed}}
        from cnn_family.backend import versions

        comp = fit_companion(fs.images, fs.labels(), about={**source, "versions": versions()})
        print(f"spectral companion ({len(fs)} frames) -> {comp.save(args.folder)}")
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
