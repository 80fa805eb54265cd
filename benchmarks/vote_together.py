"""How far voting more members goes: several families' soft votes averaged, on the real frames.

    python benchmarks/vote_together.py runs/realism/sim4000_w0.25_e8 \\
        runs/realism/sim4000_w0.25_e8_seed1 runs/realism/sim4000_w0.25_e8_crowd_soft \\
        runs/realism/sim4000_w0.5_e8 --tta --out benchmarks/results/vote_together_sim.json

Scores each family alone, then the first 2, 3, ... of them voting as one (the mean of their
soft votes), on all labelled real frames of ``hsi128_dev.h5``, with the metrics of
:func:`evaluation.metrics.evaluate`. Inference only (a few CPU-minutes with ``--tta``). For the
sim-only families of the simulator calibration this measures how much of the sim -> real gap
plain ensembling closes (docs/simulator_calibration.md, step 20c).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("families", nargs="+", help="family folders, in the order they join the vote")
    add_data_argument(ap)
    ap.add_argument("--tta", action="store_true", help="each family votes with flip TTA")
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

    softs, alone = [], []
    for f in args.families:
        softs.append(Family.load(f).vote(real.images, tta=args.tta).soft)
        alone.append({"family": f, **score(softs[-1])})
        print(f"{f}: mean ROC-AUC {alone[-1]['macro_roc_auc']:.3f}", flush=True)
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
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
