"""A spectral companion: a fourth voter per category from 85 hand-made features of each frame.

The CNN members pick up cues of their training frames that other frames lack (the simulator's,
or a few sessions'); six logistic regressions on coarse statistics (the radially averaged power
spectrum, its anisotropy and peakiness per ring, line-to-line jumps, grey-level shape) cannot,
and they err elsewhere. ``train_family`` fits one on the family's training frames and saves it
in the family's folder; :meth:`cnn_family.Family.vote` then lets it vote as one more member in
each category (``companion=False``: the members alone). Measured on the real frames: beside a
sim-only family (fitted on simulated frames only) mean ROC-AUC +0.02
(``benchmarks/spectral_companion.py``); beside families trained on real frames, better on every
fold of the session-grouped CV (``benchmarks/companion_folds.py``). Fitting takes seconds per
thousand frames; the fitted model is a JSON file of coefficients (no pickle).

>>> import numpy as np
>>> spectral_features(np.zeros((2, 128, 128), np.uint8)).shape
(2, 85)
>>> FEATURE_NAMES[0], FEATURE_NAMES[75], len(FEATURE_NAMES)
('share 1-2.5c', 'largest line jump', 85)
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


def _feature_names() -> tuple[str, ...]:
    names = []
    for lo, hi in itertools.pairwise(_RING_EDGES):
        ring = f"{lo:g}-{hi:g}c"  # cycles per frame
        names += [f"share {ring}", f"anisotropy {ring}", f"peakiness {ring}"]
    names += ["largest line jump", "top-5 line jumps", "roughness along lines"]
    names += ["roughness across lines", "roughness along/across"]
    return (*names, "grey iqr", "upper tail", "lower tail", "skewness", "kurtosis")


# What each column of spectral_features holds, for reading a companion's weights or a screen.
FEATURE_NAMES = _feature_names()
N_FEATURES = len(FEATURE_NAMES)


class CompanionFormatError(ValueError):
    """A companion file is missing pieces or was made for other features."""


@lru_cache(maxsize=1)
def _geometry():
    """Index tables for the ring and sector statistics of a 128 x 128 power spectrum.

    Each frequency inside the rings belongs to one (ring, sector) cell; ``order`` lists them
    cell by cell (cells ring by ring), so every statistic is one ``reduceat`` over a gathered
    row instead of a (16384 x 288) matrix product.
    """
    k = np.fft.fftfreq(SIZE) * SIZE
    ky, kx = np.meshgrid(k, k, indexing="ij")
    kr = np.hypot(kx, ky).ravel()
    ang = (np.arctan2(ky, kx) % np.pi).ravel()
    sector = np.minimum((ang / np.pi * _SECTORS).astype(int), _SECTORS - 1)
    ring = np.searchsorted(_RING_EDGES, kr, side="right") - 1
    inside = (kr >= _RING_EDGES[0]) & (kr < _RING_EDGES[-1])
    cell = np.where(inside, ring * _SECTORS + sector, -1)
    order = np.flatnonzero(inside)
    order = order[np.argsort(cell[order], kind="stable")]
    cells, cell_starts, cell_counts = np.unique(cell[order], return_index=True, return_counts=True)
    cell_ring = cells // _SECTORS
    ring_cell_starts = np.searchsorted(cell_ring, np.arange(len(_RING_EDGES) - 1))
    ring_pix_starts = cell_starts[ring_cell_starts]
    ring_counts = np.add.reduceat(cell_counts, ring_cell_starts)
    ring_cells = np.diff(np.append(ring_cell_starts, len(cells)))
    # The power spectrum of a real frame is point-symmetric: the half plane rfft2 computes
    # (columns 0..64) holds every value; full-plane (row, col) reads half-plane (-row, -col).
    rows, cols = np.divmod(order, SIZE)
    flip = cols > SIZE // 2
    rows = np.where(flip, (-rows) % SIZE, rows)
    cols = np.where(flip, SIZE - cols, cols)
    half_index = rows * (SIZE // 2 + 1) + cols
    window = np.outer(np.hanning(SIZE), np.hanning(SIZE))
    return {
        "half_index": half_index,
        "cell_starts": cell_starts,
        "cell_counts": cell_counts,
        "ring_cell_starts": ring_cell_starts,
        "ring_pix_starts": ring_pix_starts,
        "ring_counts": ring_counts,
        "ring_cells": ring_cells,
        "window": window,
    }


def spectral_features(images, *, batch_size: int = 256) -> np.ndarray:
    """(N, 128, 128) frames -> (N, 85) float64 features; numpy only, under 1 ms a frame on 2 cores.

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
    g = _geometry()
    out = []
    for i in range(0, len(x), batch_size):
        f = x[i : i + batch_size].astype(np.float64) / 255.0
        f -= f.mean(axis=(1, 2), keepdims=True)
        fn = f / (f.std(axis=(1, 2), keepdims=True) + 1e-6)
        ph = np.abs(np.fft.rfft2(fn * g["window"])) ** 2
        # the total over the full plane: the half plane's columns 1..63 stand for two each
        total = (
            ph[:, :, 0].sum(axis=1)
            + ph[:, :, SIZE // 2].sum(axis=1)
            + 2 * ph[:, :, 1 : SIZE // 2].sum(axis=(1, 2))
        ) + 1e-12
        q = ph.reshape(len(f), -1)[:, g["half_index"]]  # ring frequencies, cell by cell
        cell_mean = np.add.reduceat(q, g["cell_starts"], axis=1) / g["cell_counts"]
        rcs = g["ring_cell_starts"]
        ring_mean = np.add.reduceat(cell_mean * g["cell_counts"], rcs, axis=1) / g["ring_counts"]
        ring_mean += 1e-12
        sect_max = np.maximum.reduceat(cell_mean, rcs, axis=1)
        sect_mean = np.add.reduceat(cell_mean, rcs, axis=1) / g["ring_cells"]
        ring_max = np.maximum.reduceat(q, g["ring_pix_starts"], axis=1)
        per_ring = np.stack(
            [
                np.log(ring_mean / total[:, None] + 1e-12),
                np.log(sect_max / (sect_mean + 1e-12) + 1e-12),
                np.log(ring_max / ring_mean + 1e-12),
            ],
            axis=2,
        ).reshape(len(f), -1)
        cols = [per_ring]
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
        qs = np.quantile(f.reshape(len(f), -1), _QUANTILES, axis=1)
        fn2 = fn * fn
        iqr = qs[3] - qs[1] + 1e-6
        cols += [
            np.log(iqr),
            (qs[4] - qs[2]) / iqr,
            (qs[2] - qs[0]) / iqr,
            (fn2 * fn).mean(axis=(1, 2)),  # products: ** 3 and ** 4 call pow, 10x slower
            (fn2 * fn2).mean(axis=(1, 2)),
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

    def to_json(self) -> dict:
        """The companion as a JSON-able document (what :meth:`save` writes)."""
        return {
            "kind": "spectral_companion",
            "feature_version": FEATURE_VERSION,
            "categories": list(self.categories),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            **self.about,
        }

    @classmethod
    def from_json(cls, doc: dict, *, where: str = "companion") -> SpectralCompanion:
        """Read :meth:`to_json`'s document; ``where`` names its source in errors."""
        if doc.get("feature_version") != FEATURE_VERSION:
            raise CompanionFormatError(
                f"{where}: expected feature_version {FEATURE_VERSION}, got "
                f"{doc.get('feature_version')!r}; fit it again"
            )
        keys = ("categories", "mean", "scale", "coef", "intercept")
        missing = [k for k in keys if k not in doc]
        if missing:
            raise CompanionFormatError(f"{where}: expected {list(keys)}, missing {missing}")
        comp = cls(
            tuple(doc["categories"]),
            np.asarray(doc["mean"], np.float64),
            np.asarray(doc["scale"], np.float64),
            np.asarray(doc["coef"], np.float64),
            np.asarray(doc["intercept"], np.float64),
            {k: v for k, v in doc.items() if k not in (*keys, "kind", "feature_version")},
        )
        n_cat = len(comp.categories)
        if comp.coef.shape != (n_cat, N_FEATURES) or comp.mean.shape != (N_FEATURES,):
            raise CompanionFormatError(
                f"{where}: expected coef ({n_cat}, {N_FEATURES}) and mean ({N_FEATURES},), got "
                f"{comp.coef.shape} and {comp.mean.shape}"
            )
        return comp

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/spectral_companion.json`` atomically; return its path."""
        from training.io import write_json_atomic

        return write_json_atomic(Path(folder) / FILE_NAME, self.to_json())

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
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CompanionFormatError(f"{path}: not valid JSON ({e})") from e
        return cls.from_json(doc, where=str(path))


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
    p.add_argument("--seed", type=int, default=11, help="simulator seed (default 11)")
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
        from training.io import write_json_atomic

        # A family's folder: its label rule and categories, and its manifest says it has one.
        mf = Path(args.folder) / "manifest.json"
        manifest = json.loads(mf.read_text()) if mf.exists() else None
        rule = (manifest or {}).get("label_rule", "gt0.5")
        cats = tuple((manifest or {}).get("categories", CATEGORIES))
        y = fs.labels(rule)[:, [CATEGORIES.index(c) for c in cats]]
        comp = fit_companion(
            fs.images, y, categories=cats, about={**source, "versions": versions()}
        )
        print(f"spectral companion ({len(fs)} frames) -> {comp.save(args.folder)}")
        if manifest is not None:
            from cnn_family.family import vote_rule

            manifest["companion"] = {"file": FILE_NAME, "frames": len(fs), **source}
            k = manifest.get("members_per_category")
            if type(k) is int and k > 0:  # the family now votes with it, and says so
                manifest["vote"] = vote_rule(k, companion=True)
            write_json_atomic(mf, manifest)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
