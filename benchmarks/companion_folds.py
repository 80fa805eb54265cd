"""Does the spectral companion help families trained on real frames, on every fold?

    python benchmarks/companion_folds.py   # -> benchmarks/results/companion_folds.json, .png

``accuracy.py`` keeps every fold's held-out member votes (``--oof``, ``RUNS/oof.npz``). This
script puts a spectral companion (``cnn_family.spectral``) beside those votes, fold by fold,
with nothing retrained:

* ``simulated``: one companion fitted on 20,000 simulated frames (no real frame seen);
* ``fold's training frames``: one companion per fold, fitted on that fold's training sessions
  only, so it never sees the held-out sessions it votes on.

Each is scored pooled over the five folds' held-out frames (as ``accuracy.py`` pools them) and
fold by fold, with and without flip TTA. Default runs: the base configuration trained on real
frames only (width 0.25, from scratch; ``accuracy_real_rerun_oof.npz``, about 90 CPU-minutes:
``accuracy.py --engine fused --skip-2018 --runs runs/acc_real --out
benchmarks/results/accuracy_real_rerun.json --oof benchmarks/results/accuracy_real_rerun_oof.npz``),
the full-width GPU family (``benchmarks/results/accuracy_full_width_oof.npz``) and the shipped
recipe (width 0.25, started from a sim-only family; ``accuracy_sim_init_rerun_oof.npz``, 75
CPU-minutes)::

    python benchmarks/accuracy.py --engine fused --skip-2018 \\
        --init-from runs/realism/sim4000_w0.25_e8 --runs runs/acc_siminit \\
        --out benchmarks/results/accuracy_sim_init_rerun.json \\
        --oof benchmarks/results/accuracy_sim_init_rerun_oof.npz

Other runs: ``--oof NAME=PATH`` (repeatable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# _real; after the root, so that benchmarks/gan_extras.py never shadows the package
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _real import add_data_argument, load_labelled, real_data_missing  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OOF = {
    "real frames only (w0.25, from scratch)": RESULTS / "accuracy_real_rerun_oof.npz",
    "full width (30 epochs, GPU)": RESULTS / "accuracy_full_width_oof.npz",
    "shipped recipe (w0.25, sim-first)": RESULTS / "accuracy_sim_init_rerun_oof.npz",
}
VARIANTS = {"oof": "family", "flip_tta": "family tta"}


def score(probs: np.ndarray, y: np.ndarray) -> dict:
    """Metrics of a majority vote over member probabilities ``probs`` (N, C, K)."""
    from cnn_family import Vote
    from evaluation.metrics import evaluate
    from training.data import CATEGORIES

    v = Vote.from_member_probs(probs, CATEGORIES, y)
    m = evaluate(v.hard, v.soft, y, CATEGORIES)
    return {
        "macro_roc_auc": m["macro_roc_auc"],
        "mean_precision": m["mean_precision"],
        "mean_f1": m["mean_f1"],
        "exact_match": m["exact_match"],
        "roc_auc": {c: m["per_category"][c]["roc_auc"] for c in CATEGORIES},
    }


def parse_oof(items: list[str] | None) -> dict[str, Path]:
    if not items:
        return {k: p for k, p in DEFAULT_OOF.items() if p.exists()}
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--oof: expected NAME=PATH, got {item!r}")
        out[name] = Path(path)
    return out


def plot(res: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.2 * len(runs), 4.0), squeeze=False)
    colours = {"alone": "0.6", "simulated": "tab:blue", "fold's training frames": "tab:orange"}
    names = {
        "simulated": "simulated frames",
        "fold's training frames": "the fold's training frames",
    }
    for ax, (name, run) in zip(axes[0], runs.items(), strict=True):
        folds = len(run["per_fold"])
        x = np.arange(folds + 1)
        width = 0.8 / len(colours)
        for i, (comp, colour) in enumerate(colours.items()):
            key = "family tta" if comp == "alone" else f"family tta + companion ({comp})"
            vals = [f[key] for f in run["per_fold"]] + [run["pooled"][key]["macro_roc_auc"]]
            label = "family alone" if comp == "alone" else f"+ companion fitted on {names[comp]}"
            ax.bar(x + (i - 1) * width, vals, width, color=colour, label=label)
        ax.set_xticks(x, [f"fold {k + 1}" for k in range(folds)] + ["pooled"])
        ax.set_ylim(0.75, 0.95)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("mean ROC-AUC on held-out sessions (flip TTA)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "the spectral companion beside families trained on real frames (5-fold session CV)"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--oof", action="append", help="NAME=PATH of an accuracy.py oof.npz")
    ap.add_argument("--sim", type=int, default=20000, help="simulated frames to fit on")
    ap.add_argument("--sim-seed", type=int, default=11, help="simulator seed of those frames")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="accuracy.py's fold seed")
    ap.add_argument("--out", default=str(RESULTS / "companion_folds.json"))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 1
    runs = parse_oof(args.oof)
    if not runs:
        print("no accuracy.py out-of-fold votes found; see --help", file=sys.stderr)
        return 1

    from cnn_family.backend import versions
    from cnn_family.spectral import fit_companion
    from stm_sim.dataset import make_frameset
    from training.io import write_json_atomic
    from training.splits import session_kfold

    t0 = time.perf_counter()
    real, y = load_labelled(args.data)
    folds = list(session_kfold(real.sessions, n_splits=args.folds, seed=args.seed))
    sim = make_frameset(args.sim, seed=args.sim_seed, progress=True)
    companions = {
        "simulated": fit_companion(sim.images, sim.labels()).predict(real.images),
    }
    own = np.zeros(y.shape, np.float32)
    for k, (tr, te) in enumerate(folds):
        own[te] = fit_companion(real.images[tr], y[tr]).predict(real.images[te])
        print(f"companion of fold {k + 1}: fitted on {len(tr)} frames", flush=True)
    companions["fold's training frames"] = own

    res_runs = {}
    for name, path in runs.items():
        z = np.load(path)
        if not z["held"].all():
            print(f"{name}: {path} has unfinished folds; skipped", file=sys.stderr)
            continue
        if z["oof"].shape[0] != len(y):
            raise SystemExit(f"{path}: expected votes on {len(y)} frames, got {z['oof'].shape}")
        pooled, per_fold = {}, [{} for _ in folds]
        for variant, tag in VARIANTS.items():
            pm = z[variant].astype(np.float32)
            sets = {tag: pm}
            for comp, pc in companions.items():
                both = np.concatenate([pm, pc[:, :, None].astype(np.float32)], axis=2)
                sets[f"{tag} + companion ({comp})"] = both
            for key, probs in sets.items():
                pooled[key] = score(probs, y)
                for k, (_, te) in enumerate(folds):
                    per_fold[k][key] = score(probs[te], y[te])["macro_roc_auc"]
        for comp, pc in companions.items():
            pooled[f"companion alone ({comp})"] = score(pc[:, :, None], y)
        res_runs[name] = {
            "oof": str(path),
            "key": json.loads(str(z["key"])),
            "pooled": pooled,
            "per_fold": per_fold,
        }
        print(f"== {name}")
        for key, m in pooled.items():
            spread = " ".join(f"{f[key]:.3f}" for f in per_fold) if key in per_fold[0] else ""
            print(f"{key:>52}: {m['macro_roc_auc']:.3f}  folds {spread}")

    res = {
        "what": "a spectral companion beside accuracy.py's out-of-fold member votes (families "
        "trained on real frames, session-grouped 5-fold CV)",
        "companion": {"simulated_frames": args.sim, "sim_seed": args.sim_seed},
        "folds": args.folds,
        "fold_seed": args.seed,
        "runs": res_runs,
        "versions": versions(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, res)
    png = plot(res, out.with_suffix(".png"))
    print(f"-> {out}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
