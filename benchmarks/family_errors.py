"""A family's surest errors on the real frames, one picture per category.

    python benchmarks/family_errors.py runs/realism/sim4000_w0.25_e8 runs/realism/sim4000_w0.25_e8_seed1
    python benchmarks/family_errors.py models/family --categories Rows Dimers

For each category: the 8 surest true positives, false negatives (labelled, scored lowest) and
false positives (not labelled, scored highest) among the labelled real frames of
``hsi128_dev.h5``, with the score and the frame's six labels (``AIDRTB``, ``.`` where absent).
Several families average their soft votes. The simulator's step 14 (dark pits) came from
looking at these for families trained on simulated frames: what a family gets surely wrong on
real frames is what the simulator does not yet draw, or a label rule it does not yet have.
Writes ``benchmarks/results/family_errors_<category>.png`` (or ``--out`` DIR).
"""

from __future__ import annotations

import argparse
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


def surest_errors(
    soft: np.ndarray, y: np.ndarray, category: int, *, per: int = 8
) -> dict[str, np.ndarray]:
    """Frame indices of the surest true positives, false negatives and false positives.

    >>> s = np.array([[0.9], [0.1], [0.8], [0.2]]); y = np.array([[1], [1], [0], [0]])
    >>> {k: v.tolist() for k, v in surest_errors(s, y, 0, per=1).items()}
    {'TP': [0], 'FN': [1], 'FP': [2]}
    """
    s = soft[:, category]
    pos = np.flatnonzero(y[:, category] == 1)
    neg = np.flatnonzero(y[:, category] == 0)
    return {
        "TP": pos[np.argsort(-s[pos], kind="stable")[:per]],
        "FN": pos[np.argsort(s[pos], kind="stable")[:per]],
        "FP": neg[np.argsort(-s[neg], kind="stable")[:per]],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("families", nargs="+", help="family folders (their soft votes are averaged)")
    add_data_argument(ap)
    ap.add_argument("--categories", nargs="*", default=None, help="default: all six")
    ap.add_argument("--per", type=int, default=8, help="frames per row")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score

    from cnn_family import Family
    from training.data import CATEGORIES

    wanted = pick_categories(args.categories)
    real, y = load_labelled(args.data)
    soft = np.mean([Family.load(f).vote(real.images).soft for f in args.families], axis=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        c = CATEGORIES.index(name)
        auc = roc_auc_score(y[:, c], soft[:, c])
        rows = surest_errors(soft, y, c, per=args.per)
        fig, axes = plt.subplots(3, args.per, figsize=(2 * args.per, 6.6), squeeze=False)
        for r, (kind, idx) in enumerate(rows.items()):
            for j in range(args.per):
                ax = axes[r, j]
                ax.axis("off")
                if j < len(idx):
                    i = idx[j]
                    ax.imshow(real.images[i], cmap="afmhot")
                    labels = label_codes(y[i])
                    ax.set_title(f"{kind} {soft[i, c]:.2f} {labels}", fontsize=8)
        fig.suptitle(
            f"{name}: surest true positives, false negatives, false positives "
            f"(ROC-AUC {auc:.3f}, {len(args.families)} family(ies))"
        )
        fig.tight_layout()
        path = out / f"family_errors_{name.replace('/', '_').replace(' ', '_').lower()}.png"
        fig.savefig(path, dpi=60)
        plt.close(fig)
        print(f"{name}: ROC-AUC {auc:.3f} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
