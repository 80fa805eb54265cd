"""Per-category vote thresholds, cross-fitted over the folds of a finished CV (no retraining).

    python benchmarks/thresholds.py benchmarks/results/accuracy_full_width_oof.npz

Reads the held-out member probabilities that ``benchmarks/accuracy.py --oof`` saved. For each
held-out fold and category it picks the threshold on the soft vote (the members' mean) that
maximises F1 on the *other* folds' held-out votes, and applies it to this fold: no fold chooses
its own threshold. Prints the mean precision, recall and F1 beside the 2018 vote (2 of 3 members
above 0.5) and writes them next to the votes file (``*_thresholds.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# _real; after the root, so that benchmarks/gan_extras.py never shadows the package
sys.path.insert(1, str(ROOT / "benchmarks"))

from _real import add_data_argument, real_data_missing  # noqa: E402

GRID = np.round(np.linspace(0.05, 0.95, 91), 2)


def cross_fitted(soft: np.ndarray, y: np.ndarray, folds) -> tuple[np.ndarray, list]:
    """Hard votes (N, C) from per-fold, per-category thresholds chosen on the other folds."""
    from sklearn.metrics import f1_score

    hard = np.zeros_like(y)
    chosen = []
    for tr, te in folds:
        t_k = []
        for c in range(y.shape[1]):
            f1 = np.array([f1_score(y[tr, c], soft[tr, c] > t, zero_division=0) for t in GRID])
            # The middle of the best plateau, not its edge: the edge sits on the other folds'
            # extreme scores, which the held-out fold's frames need not respect.
            best = np.flatnonzero(f1 >= f1.max() - 1e-12)
            t = float(GRID[best[len(best) // 2]])
            hard[te, c] = soft[te, c] > t
            t_k.append(t)
        chosen.append(t_k)
    return hard, chosen


def summary(hard: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y, hard, average=None, zero_division=0)
    return {
        "mean_precision": float(p.mean()),
        "mean_recall": float(r.mean()),
        "mean_f1": float(f.mean()),
        "exact_match": float(np.mean(np.all(hard == y, axis=1))),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("votes", help="the .npz that benchmarks/accuracy.py --oof wrote")
    add_data_argument(ap)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label-rule", default="gt0.5")
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2
    from training.data import load_frames
    from training.io import write_json_atomic
    from training.splits import session_kfold

    frames = load_frames(args.data)
    frames = frames.subset(frames.labelled)
    y = frames.labels(args.label_rule).astype(int)
    z = np.load(args.votes)
    if z["oof"].shape[0] != len(y) or not z["held"].all():
        raise ValueError(
            f"{args.votes}: expected held-out votes for all {len(y)} labelled frames, got "
            f"{int(z['held'].sum())} of {z['oof'].shape[0]} (finish the CV first)"
        )
    folds = list(session_kfold(frames.sessions, n_splits=args.folds, seed=args.seed))
    result = {"votes": str(args.votes), "grid": [float(GRID[0]), float(GRID[-1]), len(GRID)]}
    for name in ("oof", "flip_tta"):
        probs = z[name]
        vote_2018 = ((probs > 0.5).sum(axis=2) >= 2).astype(int)
        hard, chosen = cross_fitted(probs.mean(axis=2), y, folds)
        key = "plain" if name == "oof" else name
        result[key] = {
            "vote_2018": summary(vote_2018, y),
            "cross_fitted_f1_thresholds": summary(hard, y),
            "thresholds_per_fold": chosen,
        }
        for label, s in result[key].items():
            if label != "thresholds_per_fold":
                print(
                    f"{key:8s} {label:28s} precision {s['mean_precision']:.3f}  recall "
                    f"{s['mean_recall']:.3f}  F1 {s['mean_f1']:.3f}  exact {s['exact_match']:.3f}"
                )
    out = Path(args.votes).with_name(Path(args.votes).stem + "_thresholds.json")
    write_json_atomic(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
