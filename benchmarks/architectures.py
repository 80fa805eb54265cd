"""Which registered builder learns H:Si frames: every architecture under the family's recipe.

    python benchmarks/architectures.py      # -> benchmarks/results/architectures.json, .png
    python benchmarks/architectures.py --architectures deepdog wolkow --frames 2000

Each architecture is trained as the family trains its members (``training.train_family``:
class-balance weights, flips, precise BatchNorm), one member per category, on the same
simulated frames, and scored on simulated frames of other sessions and, where
``../shared`` is beside the clone, on every labelled real frame (sim -> real, as the
realism benchmark scores the family). About 25 CPU-minutes for the three builders at the
defaults; each run resumes where it stopped (delete its folder under ``runs/architectures``
after changing a builder), and ``--architectures X`` measures X again, keeping the others'
figures in the results file.

Why it exists: nobody had seen the VGG-like and Wolkow nets of DESIGN §2 learn (the 2018 code
ended them in a softmax over one unit, which cannot). Measured here (session 33), in the
budget DeepDog learns these frames in, VGG-like stays at chance and Wolkow learns little.
Variants with BatchNorm after each convolution (VGG-like with SGD and with Adam, Wolkow with
Adam) did no better and were not kept; their figures are under ``not_kept`` in the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _real import REAL_DEV, load_labelled  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _scores(probs: np.ndarray, y: np.ndarray, categories) -> dict:
    """Mean and per-category ROC-AUC of ``probs`` (N, C) against 0/1 ``y``."""
    from sklearn.metrics import roc_auc_score

    per = {
        c: round(float(roc_auc_score(y[:, j], probs[:, j])), 4)
        for j, c in enumerate(categories)
        if 0 < y[:, j].sum() < len(y)
    }
    return {"mean_roc_auc": round(float(np.mean(list(per.values()))), 4), "per_category": per}


def measure(
    architecture: str,
    *,
    train,
    tests: dict,
    width: float,
    epochs: int,
    seed: int,
    runs: Path,
    verbose: int = 0,
) -> dict:
    """Train ``architecture`` (one member per category) on ``train``; score it on each test set.

    ``tests`` maps a name to ``(images, 0/1 labels)``.
    """
    from cnn_family import Family
    from training.config import TrainConfig
    from training.trainer import train_family

    cfg = TrainConfig(
        architecture=architecture,
        width=width,
        epochs=epochs,
        seed=seed,
        members_per_category=1,
        companion=False,  # the members are what is compared
    )
    t0 = time.perf_counter()
    out = runs / f"{architecture}_w{width:g}_e{epochs}_n{len(train)}_s{seed}"
    d = train_family(train, cfg, out, verbose=verbose)
    minutes = (time.perf_counter() - t0) / 60
    fam = Family.load(d)
    r = {
        "architecture": architecture,
        "parameters_per_member": int(fam.members[fam.categories[0]][0].count_params()),
        "train_minutes": round(minutes, 1),
    }
    for name, (images, y) in tests.items():
        # One member per category: the member's probability is the family's soft vote.
        r[name] = _scores(fam.predict_members(images)[:, :, 0], y, fam.categories)
    return r


def merged(path: Path, res: dict) -> list[dict]:
    """``res``'s results with those of other architectures already in ``path`` (same settings).

    So that ``--architectures X`` measures X again and keeps the rest of the comparison.
    """
    import json

    if not path.exists():
        return res["results"]
    old = json.loads(path.read_text())
    keys = ("simulated_frames", "width", "epochs", "seed", "members_per_category")
    if any(old.get(k) != res[k] for k in keys):
        return res["results"]
    new = {r["architecture"]: r for r in res["results"]}
    kept = [r for r in old.get("results", []) if r["architecture"] not in new]
    return kept + res["results"]


def plot(results: list[dict], out: Path) -> None:
    """Per category ROC-AUC, one bar per architecture, a panel per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [k for k in ("simulated_held_out", "real") if k in results[0]]
    cats = list(results[0][sets[0]]["per_category"])
    fig, axes = plt.subplots(1, len(sets), figsize=(6.5 * len(sets), 4.6), squeeze=False)
    w = 0.8 / len(results)
    for ax, s in zip(axes[0], sets, strict=True):
        for i, r in enumerate(results):
            vals = [r[s]["per_category"].get(c, np.nan) for c in cats]
            ax.bar(
                np.arange(len(cats)) + (i - (len(results) - 1) / 2) * w,
                vals,
                w,
                label=f"{r['architecture']} ({r[s]['mean_roc_auc']:.2f})",
            )
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(cats)), [c.replace("/", "/\n") for c in cats], fontsize=8)
        ax.set_ylim(0.3, 1.0)
        ax.set_ylabel("ROC-AUC")
        title = "simulated frames, other sessions" if s.startswith("sim") else "real frames"
        ax.set_title(f"{title} (mean in the legend)", fontsize=10)
        # Below the panel: inside, it hid the bars.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.suptitle("Trained on simulated frames, one member per category; dashed: chance")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from cnn_family import list_models

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--architectures",
        nargs="+",
        default=list_models(),
        choices=list_models(),
        help="builders to compare (default: every registered one)",
    )
    ap.add_argument("--frames", type=int, default=4000, help="simulated training frames")
    ap.add_argument("--test-frames", type=int, default=1000, help="held-out simulated frames")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(REAL_DEV), help="labelled real frames (HDF5)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "architectures"))
    ap.add_argument("--out", default=str(RESULTS / "architectures.json"))
    args = ap.parse_args(argv)

    from stm_sim.dataset import make_frameset
    from training.io import write_json_atomic

    train = make_frameset(args.frames, seed=args.seed + 1)
    # Another generator seed: other simulated sessions, never seen in training.
    held = make_frameset(args.test_frames, seed=args.seed + 1000)
    tests = {"simulated_held_out": (held.images, held.labels("gt0.5"))}
    if Path(args.data).exists():
        real, y = load_labelled(args.data)
        tests["real"] = (real.images, y)
    else:
        print(f"real frames not found at {args.data}: simulated test frames only", flush=True)
    results = []
    for a in args.architectures:
        print(f"== {a}", flush=True)
        r = measure(
            a,
            train=train,
            tests=tests,
            width=args.width,
            epochs=args.epochs,
            seed=args.seed,
            runs=Path(args.runs),
            verbose=2,
        )
        results.append(r)
        print(
            "   "
            + ", ".join(f"{k} {r[k]['mean_roc_auc']:.3f}" for k in tests)
            + f" ({r['train_minutes']} min)",
            flush=True,
        )
    res = {
        "machine_cores": os.cpu_count(),
        "simulated_frames": args.frames,
        "width": args.width,
        "epochs": args.epochs,
        "seed": args.seed,
        "members_per_category": 1,
        "results": results,
    }
    out = Path(args.out)
    res["results"] = results = merged(out, res)
    if out.exists():  # the record of variants measured and dropped stays with the figures
        import json

        prev = json.loads(out.read_text())
        res.update({k: prev[k] for k in ("not_kept", "not_kept_why") if k in prev})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, res)
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
