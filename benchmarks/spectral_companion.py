"""Does a spectral companion (cnn_family.spectral) lift a sim-only family on real frames?

    python benchmarks/spectral_companion.py       # -> benchmarks/results/spectral_companion.json

The companion (six logistic regressions on 85 spectral, line and grey-level features) is fitted
on 20,000 simulated frames; no real frame is seen. It then votes on all real labelled frames
alone, and as one more member per category beside each sim-only benchmark family that
``realism.py`` trained (``runs/realism/sim4000_w0.25_e8[_seed1]``; train them first), with and
without flip TTA, and beside all of them pooled. A family that has its own companion (fitted by
``train_family`` on its simulated training frames: its default vote) is also scored with that
one (``<family> + own companion``). Reported: mean and per-category ROC-AUC, mean
precision, exact match, on all real frames and on each half of the real sessions. The
companion's regularisation and the way it joins the vote were chosen looking at half A only, so
half B is the untouched figure. Also ``spectral_companion.png``.

``--fold-family`` adds a family trained on real frames by the accuracy benchmark on one fold
(``accuracy.py --engine fused --only-folds K --skip-2018 --runs R``, then ``R/fold<K>``): scored
on that fold's held-out sessions alone, beside the simulated-frame companion, and beside one
fitted on the fold's own training frames (``real_trained_fold``)::

    python benchmarks/spectral_companion.py --fold-family runs/acc_fold0/fold0 --fold 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# _real; after the root, so that benchmarks/gan_extras.py never shadows the package
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _real import (  # noqa: E402
    add_data_argument,
    load_labelled,
    real_data_missing,
    split_sessions,
)

RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("sim4000_w0.25_e8", "sim4000_w0.25_e8_seed1")


def metrics(probs: np.ndarray, y: np.ndarray, halves: dict) -> dict:
    """Evaluate member probabilities (N, C, K) on all frames and on each half."""
    from cnn_family import Vote
    from evaluation.metrics import evaluate
    from training.data import CATEGORIES

    out = {}
    for name, sel in halves.items():
        v = Vote.from_member_probs(probs[sel], CATEGORIES, y[sel])
        m = evaluate(v.hard, v.soft, y[sel], CATEGORIES)
        out[name] = {
            "macro_roc_auc": m["macro_roc_auc"],
            "mean_precision": m["mean_precision"],
            "exact_match": m["exact_match"],
            "roc_auc": {c: m["per_category"][c]["roc_auc"] for c in CATEGORIES},
        }
    return out


def plot(res: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.data import CATEGORIES

    rows = [(k, v["all"]) for k, v in res["votes"].items() if "tta" in k or k == "companion"]
    fig, ax = plt.subplots(figsize=(12.5, 4.2))
    width = 0.8 / len(rows)
    x = np.arange(len(CATEGORIES) + 1)
    for i, (name, m) in enumerate(rows):
        vals = [m["roc_auc"][c] for c in CATEGORIES] + [m["macro_roc_auc"]]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, vals, width, label=name)
    ax.axhline(0.85, color="k", lw=0.8, ls="--", label="target 0.85 (mean)")
    ax.set_xticks(x, [*CATEGORIES, "mean"], rotation=15)
    ax.set_ylim(0.5, 0.95)
    ax.set_ylabel("ROC-AUC on all real labelled frames")
    ax.set_title("sim-only families, with and without the spectral companion (no real frame seen)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--sim", type=int, default=20000, help="simulated frames to fit on")
    ap.add_argument("--sim-seed", type=int, default=11, help="simulator seed of those frames")
    ap.add_argument("--families", nargs="*", default=None, help="sim-only family folders")
    ap.add_argument("--fold-family", help="a real-trained family of one accuracy.py fold")
    ap.add_argument("--fold", type=int, default=0, help="which fold (of 5, seed 0) it is")
    ap.add_argument("--out", default=str(RESULTS / "spectral_companion.json"))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    from cnn_family import Family
    from cnn_family.backend import versions
    from cnn_family.spectral import fit_companion
    from stm_sim.dataset import make_frameset
    from training.io import write_json_atomic

    t0 = time.perf_counter()
    real, y = load_labelled(args.data)
    in_a = split_sessions(real.sessions, 0)
    halves = {"all": np.ones(len(y), bool), "half_a": in_a, "half_b": ~in_a}
    sim = make_frameset(args.sim, seed=args.sim_seed, progress=True)
    t = time.perf_counter()
    comp = fit_companion(sim.images, sim.labels(), about={"simulated": args.sim})
    fit_s = time.perf_counter() - t
    comp.save(ROOT / "runs" / "spectral_companion")
    t = time.perf_counter()
    pc = comp.predict(real.images)[:, :, None].astype(np.float32)
    ms_per_frame = 1e3 * (time.perf_counter() - t) / len(real)

    dirs = (
        [Path(d) for d in args.families]
        if args.families
        else [ROOT / "runs" / "realism" / f for f in FAMILIES]
    )
    dirs = [d for d in dirs if d.exists()]
    votes = {"companion": metrics(pc, y, halves)}
    pooled = {False: [], True: []}
    for d in dirs:
        fam = Family.load(d)
        for tta in (False, True):
            pm = fam.predict_members(real.images, tta=tta)
            pooled[tta].append(pm)
            tag = d.name + (" tta" if tta else "")
            votes[tag] = metrics(pm, y, halves)
            votes[f"{tag} + companion"] = metrics(np.concatenate([pm, pc], axis=2), y, halves)
            if fam.companion is not None:
                # its own companion (train_family fits it on the family's 4,000 training frames):
                # the family's default vote
                own = fam.companion.predict(real.images)[:, :, None].astype(np.float32)
                both = np.concatenate([pm, own], axis=2)
                votes[f"{tag} + own companion"] = metrics(both, y, halves)
        print(f"{d.name}: done", flush=True)
    if len(dirs) > 1:
        for tta in (False, True):
            pm = np.concatenate(pooled[tta], axis=2)
            tag = f"{len(dirs)} families pooled" + (" tta" if tta else "")
            votes[tag] = metrics(pm, y, halves)
            # one companion vote per family pooled, so it keeps its weight in the larger vote
            both = np.concatenate([pm, np.repeat(pc, len(dirs), axis=2)], axis=2)
            votes[f"{tag} + companion"] = metrics(both, y, halves)

    if args.fold_family:
        from training.splits import session_kfold

        tr, te = list(session_kfold(real.sessions, n_splits=5, seed=0))[args.fold]
        held = {"held_out": np.isin(np.arange(len(y)), te)}
        fam = Family.load(args.fold_family)
        own = fit_companion(real.images[tr], y[tr]).predict(real.images)[:, :, None]
        fold_votes = {"companion (simulated frames)": metrics(pc, y, held)}
        fold_votes["companion (the fold's training frames)"] = metrics(own, y, held)
        for tta in (False, True):
            pm = fam.predict_members(real.images, tta=tta)
            tag = "family" + (" tta" if tta else "")
            fold_votes[tag] = metrics(pm, y, held)
            for name, extra in (("simulated", pc), ("fold's training frames", own)):
                both = np.concatenate([pm, extra.astype(np.float32)], axis=2)
                fold_votes[f"{tag} + companion ({name})"] = metrics(both, y, held)
        real_fold = {"family": args.fold_family, "fold": args.fold, "votes": fold_votes}
        for name, m in fold_votes.items():
            print(f"fold {args.fold + 1} {name:>48}: {m['held_out']['macro_roc_auc']:.3f}")

    res = {
        "what": "sim-only families on all real labelled frames, with and without a spectral "
        "companion fitted on simulated frames only",
        "companion": {
            "simulated_frames": args.sim,
            "sim_seed": args.sim_seed,
            "features": int(comp.coef.shape[1]),
            "fit_seconds": round(fit_s, 1),
            "ms_per_frame": round(ms_per_frame, 2),
        },
        "families": [str(d) for d in dirs],
        "real_frames": {k: int(v.sum()) for k, v in halves.items()},
        "votes": votes,
        **({"real_trained_fold": real_fold} if args.fold_family else {}),
        "versions": versions(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(out, res)
    png = plot(res, out.with_suffix(".png"))
    for name, m in votes.items():
        a, ha, hb = m["all"], m["half_a"], m["half_b"]
        print(
            f"{name:>42}: mean ROC-AUC {a['macro_roc_auc']:.3f} "
            f"(half A {ha['macro_roc_auc']:.3f}, half B {hb['macro_roc_auc']:.3f})"
        )
    print(f"-> {out}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
