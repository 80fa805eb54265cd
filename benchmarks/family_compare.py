"""Two families on the same real frames: where one ranks a category better, and on which frames.

    python benchmarks/family_compare.py runs/realism/sim4000_w0.25_e8 runs/other --categories "Tip change"

When a simulator change moves a category, this says where. For each category: both families'
ROC-AUC; how far family A ranks the labelled frames above family B (percentile rank of A's
soft vote minus B's, mean over the positives and over the negatives); and, among the
positives, the companion features (:data:`cnn_family.spectral.FEATURE_NAMES`) whose values go
with that shift most (Spearman). Then one picture per category: the positives A ranks far above
B, and those B ranks far above A. Session 28 found this way that the `lineflat` family
(calibration 27b) lost the real Tip change frames rich in power below 4 cycles (28a).

Soft votes are the members' alone unless ``--companion``. Writes
``family_compare.json`` and ``family_compare_<category>.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import (  # noqa: E402
    add_data_argument,
    label_codes,
    load_labelled,
    pick_categories,
    real_data_missing,
)

RESULTS = ROOT / "benchmarks" / "results"


def rank_shift(soft_a: np.ndarray, soft_b: np.ndarray) -> np.ndarray:
    """Per frame, A's percentile rank minus B's (columns are categories; ties share a rank).

    >>> a = np.array([[0.9], [0.1], [0.5]]); b = np.array([[0.2], [0.3], [0.8]])
    >>> rank_shift(a, b)[:, 0].round(2).tolist()
    [0.67, -0.33, -0.33]
    """
    from scipy.stats import rankdata

    a, b = np.asarray(soft_a, float), np.asarray(soft_b, float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"soft votes: expected two (N, C) arrays alike, got {a.shape}, {b.shape}")
    n = len(a)
    return rankdata(a, axis=0) / n - rankdata(b, axis=0) / n


def linked_features(
    shift: np.ndarray, features: np.ndarray, names, *, top: int = 5
) -> list[tuple[str, float]]:
    """The ``top`` features whose values go with ``shift`` most (Spearman, by its size).

    >>> s = np.arange(10.0); f = np.stack([np.zeros(10), -s, s ** 2], axis=1)
    >>> [(n, round(r, 2)) for n, r in linked_features(s, f, ["flat", "down", "up"], top=2)]
    [('down', -1.0), ('up', 1.0)]
    """
    from scipy.stats import spearmanr

    rho = []
    for j in range(features.shape[1]):
        col = features[:, j]
        rho.append(0.0 if np.ptp(col) == 0 else float(spearmanr(shift, col)[0]))
    order = np.argsort(-np.abs(np.asarray(rho)), kind="stable")[:top]
    return [(str(names[j]), rho[j]) for j in order]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("family_a")
    ap.add_argument("family_b")
    add_data_argument(ap)
    ap.add_argument("--categories", nargs="*", default=None, help="default: all six")
    ap.add_argument("--companion", action="store_true", help="vote with each family's companion")
    ap.add_argument("--per", type=int, default=8, help="frames per row of the pictures")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score

    from cnn_family import Family
    from cnn_family.spectral import FEATURE_NAMES, spectral_features
    from training.data import CATEGORIES

    wanted = pick_categories(args.categories)
    real, y = load_labelled(args.data)
    comp = None if args.companion else False
    soft = [
        Family.load(f).vote(real.images, companion=comp).soft
        for f in (args.family_a, args.family_b)
    ]
    shift = rank_shift(*soft)
    feats = spectral_features(real.images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"family_a": args.family_a, "family_b": args.family_b, "companion": args.companion}
    for name in wanted:
        c = CATEGORIES.index(name)
        pos, neg = y[:, c] == 1, y[:, c] == 0
        links = linked_features(shift[pos, c], feats[pos], FEATURE_NAMES)
        r = {
            "roc_auc_a": float(roc_auc_score(y[:, c], soft[0][:, c])),
            "roc_auc_b": float(roc_auc_score(y[:, c], soft[1][:, c])),
            "rank_shift_positives": float(shift[pos, c].mean()),
            "rank_shift_negatives": float(shift[neg, c].mean()),
            "features_with_the_shift": {n: round(rho, 3) for n, rho in links},
        }
        report[name] = r
        print(
            f"{name}: ROC-AUC A {r['roc_auc_a']:.3f}, B {r['roc_auc_b']:.3f}; A ranks positives "
            f"{r['rank_shift_positives']:+.3f}, negatives {r['rank_shift_negatives']:+.3f} above B; "
            "with the shift: " + ", ".join(f"{n} {rho:+.2f}" for n, rho in links)
        )
        idx = np.flatnonzero(pos)
        order = idx[np.argsort(-shift[idx, c], kind="stable")]
        rows = {"A above B": order[: args.per], "B above A": order[::-1][: args.per]}
        fig, axes = plt.subplots(2, args.per, figsize=(2 * args.per, 4.6), squeeze=False)
        for k, (kind, picks) in enumerate(rows.items()):
            for j in range(args.per):
                ax = axes[k, j]
                ax.axis("off")
                if j < len(picks):
                    i = picks[j]
                    ax.imshow(real.images[i], cmap="afmhot")
                    labels = label_codes(y[i])
                    ax.set_title(
                        f"{kind[0]} {soft[0][i, c]:.2f} / {soft[1][i, c]:.2f} {labels}", fontsize=8
                    )
        fig.suptitle(f"{name}: positives A ranks far above B (top), B far above A (bottom)")
        fig.tight_layout()
        slug = name.replace("/", "_").replace(" ", "_").lower()
        fig.savefig(out / f"family_compare_{slug}.png", dpi=60)
        plt.close(fig)
    (out / "family_compare.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
