"""How well could any model score against these crowd labels? A label-noise ceiling.

    python benchmarks/label_ceiling.py    # writes benchmarks/results/label_ceiling.json

The labels of ``hsi128_dev.h5`` are majority votes of 1-8 volunteers per frame (median 1). Where
two or more answered, they often disagree (Bad/blurry: 24 % of two-answer frames). A model judged
against such labels is capped below 1 even if it knew the truth.

Per category, the two-coin model of Dawid & Skene (1979) (:mod:`training.crowd`) is fitted by
maximum likelihood to the counts of "yes" answers: a latent true label T ~ Bernoulli(prevalence), and each volunteer says
yes with probability ``sensitivity`` if T, ``1 - specificity`` if not, independently of the frame
and of each other. Then frames are drawn with the data's own mix of answer counts, labelled by
the majority rule the benchmarks use (mean > 0.5), and scored by an oracle that knows T: its
ROC-AUC and precision against the noisy labels are the ceiling **under this model**.

The model's one strong assumption is that the volunteers' errors do not depend on the frame.
Real disagreement gathers on ambiguous frames, which a model could learn to score in between;
that raises the true ceiling above this estimate. So read the figure as what frame-independent
noise of the measured size costs, not as a proof.
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


def oracle_ceiling(fit, n: np.ndarray, *, draws: int, rng) -> dict:
    """ROC-AUC and precision of an oracle (knows T) against majority labels of noisy answers."""
    from sklearn.metrics import precision_score, roc_auc_score

    nn = rng.choice(np.asarray(n, int), draws)
    truth = rng.random(draws) < fit.prevalence
    p_yes = np.where(truth, fit.sensitivity, 1.0 - fit.specificity)
    observed = rng.binomial(nn, p_yes) / nn > 0.5
    return {
        "roc_auc": float(roc_auc_score(observed, truth.astype(float))),
        "precision": float(precision_score(observed, truth)),
        "observed_positive_rate": float(observed.mean()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--draws", type=int, default=400_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_ceiling.json"))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2
    import dataclasses

    from training.crowd import fit_two_coin, yes_counts
    from training.data import CATEGORIES, load_frames
    from training.io import write_json_atomic

    fr = load_frames(args.data)
    fr = fr.subset(fr.labelled)
    n = fr.n_responses.astype(int)
    keep = n >= 1
    k = yes_counts(fr.mean_scores[keep], n[keep])
    rng = np.random.default_rng(args.seed)
    per = {}
    for c, cat in enumerate(CATEGORIES):
        fit = fit_two_coin(k[:, c], n[keep])
        two = n[keep] == 2
        per[cat] = {
            **dataclasses.asdict(fit),
            "two_answer_disagreement": float(np.mean(k[two, c] == 1)),
            **oracle_ceiling(fit, n[keep], draws=args.draws, rng=rng),
        }
        print(
            f"{cat:18s} prevalence {fit.prevalence:.3f}  sensitivity {fit.sensitivity:.3f}"
            f"  specificity {fit.specificity:.3f}  ->  oracle ROC-AUC {per[cat]['roc_auc']:.3f}"
            f"  precision {per[cat]['precision']:.3f}"
        )
    result = {
        "data": str(args.data),
        "n_frames": int(keep.sum()),
        "answers_per_frame": {str(v): int(c) for v, c in enumerate(np.bincount(n)) if c},
        "model": "two-coin Dawid-Skene per category, frame-independent errors; oracle knows T",
        "per_category": per,
        "macro_roc_auc": float(np.mean([v["roc_auc"] for v in per.values()])),
        "mean_precision": float(np.mean([v["precision"] for v in per.values()])),
    }
    write_json_atomic(args.out, result)
    print(
        f"oracle ceiling: mean ROC-AUC {result['macro_roc_auc']:.3f}, mean precision "
        f"{result['mean_precision']:.3f}; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
