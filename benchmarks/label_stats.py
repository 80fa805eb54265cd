"""How the six labels go together, real against simulated: the cheapest check on a label rule.

    python benchmarks/label_stats.py

For every pair of categories, P(column | row) = the share of frames labelled ``row`` that are
also labelled ``column``, in the labelled real frames of ``hsi128_dev.h5`` (votes > 0.5) and in
simulated sessions of the default generator; with prevalences and the largest gaps. Takes
seconds, so run it before spending a proxy run on a label rule. Writes
``benchmarks/results/label_stats.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import add_data_argument, real_data_missing  # noqa: E402


def cooccurrence(labels: np.ndarray) -> np.ndarray:
    """``out[i, j]`` = P(label j | label i) over the frames (NaN where no frame has label i).

    >>> cooccurrence(np.array([[1, 1], [1, 0], [0, 1]])).round(2).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    y = np.asarray(labels, dtype=bool)
    n = y.sum(0).astype(float)
    both = (y[:, :, None] & y[:, None, :]).sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return both / n[:, None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--sim", type=int, default=4000, help="simulated frames")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_stats.json"))
    args = ap.parse_args(argv)

    from stm_sim.dataset import make_frameset
    from training.data import CATEGORIES, load_frames

    if real_data_missing(args.data):
        return 2
    real = load_frames(args.data)
    real = real.subset(real.labelled)
    sim = make_frameset(args.sim, seed=args.seed, preset=args.preset)
    out: dict = {"categories": list(CATEGORIES), "preset": args.preset}
    mats = {}
    for name, fs in (("real", real), ("simulated", sim)):
        y = fs.labels("gt0.5")
        mats[name] = cooccurrence(y)
        out[name] = {
            "frames": len(y),
            "prevalence": dict(zip(CATEGORIES, np.round(y.mean(0), 3).tolist(), strict=True)),
            "p_column_given_row": np.round(mats[name], 3).tolist(),
        }
    gap = np.abs(mats["real"] - mats["simulated"])
    np.fill_diagonal(gap, 0.0)
    order = np.dstack(np.unravel_index(np.argsort(-gap, axis=None), gap.shape))[0][:8]
    out["largest_gaps"] = [
        {
            "given": CATEGORIES[i],
            "also": CATEGORIES[j],
            "real": round(float(mats["real"][i, j]), 3),
            "simulated": round(float(mats["simulated"][i, j]), 3),
        }
        for i, j in order
    ]
    for g in out["largest_gaps"]:
        print(
            f"P({g['also']} | {g['given']}): real {g['real']:.2f}, simulated {g['simulated']:.2f}"
        )
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
