"""How far voting more members goes: several families' soft votes averaged, on the real frames.

    python benchmarks/vote_together.py runs/realism/sim4000_w0.25_e8 \\
        runs/realism/sim4000_w0.25_e8_seed1 runs/realism/sim4000_w0.25_e8_crowd_soft \\
        runs/realism/sim4000_w0.5_e8 --tta --out benchmarks/results/vote_together_sim.json

Scores each family alone, then the first 2, 3, ... of them voting as one (the mean of their
soft votes), on all labelled real frames of ``hsi128_dev.h5``, with the metrics of
:func:`evaluation.metrics.evaluate`. Inference only (a few CPU-minutes with ``--tta``). For the
sim-only families of the simulator calibration this measures how much of the sim -> real gap
plain ensembling closes (docs/simulator_calibration.md, step 20c).

``--stack-sim N`` also scores each family with its six soft votes combined per category: a
logistic regression on the six votes' logits, fitted on N fresh simulated frames (seed 7, none
of the frames a benchmark family trains on), so that a category can borrow from the others
with no real frame seen (step 21a).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import add_data_argument, load_labelled, real_data_missing  # noqa: E402


def cumulative_votes(softs: list[np.ndarray]) -> list[np.ndarray]:
    """The mean soft vote of the first 1, 2, ... families.

    >>> [v.tolist() for v in cumulative_votes([np.array([1.0]), np.array([0.0])])]
    [[1.0], [0.5]]
    """
    return [np.mean(softs[: k + 1], axis=0) for k in range(len(softs))]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def stacked_votes(soft_fit: np.ndarray, y_fit: np.ndarray, soft_apply: np.ndarray) -> np.ndarray:
    """Per category, P(label | all six soft votes): logistic regressions fitted on one set of
    votes and labels, applied to another.

    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((200, 2)) < 0.5).astype(int)
    >>> soft = np.clip(0.5 + 0.3 * (y[:, ::-1] - 0.5) + rng.normal(0, 0.05, y.shape), 0, 1)
    >>> bool(((stacked_votes(soft, y, soft) > 0.5) == y).mean() > 0.9)  # each from the other
    True
    """
    from sklearn.linear_model import LogisticRegression

    xf, xa = _logit(soft_fit), _logit(soft_apply)
    out = np.empty(soft_apply.shape)
    for c in range(y_fit.shape[1]):
        clf = LogisticRegression(max_iter=2000).fit(xf, y_fit[:, c])
        out[:, c] = clf.predict_proba(xa)[:, 1]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("families", nargs="+", help="family folders, in the order they join the vote")
    add_data_argument(ap)
    ap.add_argument("--tta", action="store_true", help="each family votes with flip TTA")
    ap.add_argument(
        "--stack-sim",
        type=int,
        default=0,
        metavar="N",
        help="also combine each family's six votes per category, fitted on N simulated frames",
    )
    ap.add_argument("--out", required=True, help="results JSON")
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2

    from cnn_family import Family
    from evaluation.metrics import evaluate
    from training.data import CATEGORIES
    from training.io import write_json_atomic

    real, y = load_labelled(args.data)

    def score(soft: np.ndarray) -> dict:
        m = evaluate((soft > 0.5).astype(np.uint8), soft, y, CATEGORIES)
        return {
            "macro_roc_auc": m["macro_roc_auc"],
            "mean_precision": m["mean_precision"],
            "exact_match": m["exact_match"],
            "roc_auc": {c: m["per_category"][c]["roc_auc"] for c in CATEGORIES},
        }

    sim = None
    if args.stack_sim:
        from stm_sim.dataset import make_frameset

        sim = make_frameset(args.stack_sim, seed=7)
    softs, alone, stacked = [], [], []
    for f in args.families:
        fam = Family.load(f)
        softs.append(fam.vote(real.images, tta=args.tta).soft)
        alone.append({"family": f, **score(softs[-1])})
        print(f"{f}: mean ROC-AUC {alone[-1]['macro_roc_auc']:.3f}", flush=True)
        if sim is not None:
            soft_sim = fam.vote(sim.images, tta=args.tta).soft
            st = stacked_votes(soft_sim, sim.labels(), softs[-1])
            stacked.append({"family": f, "sim_frames": args.stack_sim, **score(st)})
            print(f"   stacked on simulated frames: {stacked[-1]['macro_roc_auc']:.3f}", flush=True)
    together = []
    for k, soft in enumerate(cumulative_votes(softs)[1:], start=2):
        together.append({"families": k, **score(soft)})
        print(f"first {k} together: mean ROC-AUC {together[-1]['macro_roc_auc']:.3f}", flush=True)
    write_json_atomic(
        Path(args.out),
        {
            "data": args.data,
            "n_frames": len(real),
            "tta": args.tta,
            "alone": alone,
            "together": together,
            "stacked_on_sim": stacked,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
