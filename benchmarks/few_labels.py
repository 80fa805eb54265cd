"""How many labelled real frames does a family need, and what do simulated frames add?

    python benchmarks/few_labels.py

Puts side by side, on the same five session-grouped folds of ``hsi128_dev.h5``:

* **no labels**: the sim-only family (``runs/realism/sim4000_w0.25_e8``, trained on 4,000
  simulated frames, never a real one) voting on each fold's held-out sessions;
* **2 or 4 labelled sessions** per fold (``accuracy.py --train-sessions 2`` or ``4``), from
  scratch and simulated first (``--init-from`` that sim-only family);
* **all the fold's labelled sessions** (about 21), from scratch and simulated first.

It trains nothing: it reads the ``accuracy.py`` results named in ``RUNS`` (those it finds)
and votes the sim-only family once (a minute on 2 cores). Writes ``benchmarks/results/few_labels.json`` and
``few_labels.png`` (mean ROC-AUC per fold against labelled frames, and per category).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import add_data_argument, load_labelled, real_data_missing  # noqa: E402
from accuracy import few_sessions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# (label, results file, labelled sessions per fold or None for all, simulated first)
RUNS = [
    ("2 sessions, from scratch", "accuracy_few2_scratch.json", 2, False),
    ("2 sessions, simulated first", "accuracy_few2_init.json", 2, True),
    ("4 sessions, from scratch", "accuracy_few4_scratch.json", 4, False),
    ("4 sessions, simulated first", "accuracy_few4_init.json", 4, True),
    ("all sessions, from scratch", "accuracy.json", None, False),
    ("all sessions, simulated first", "accuracy_sim_init.json", None, True),
    # Gentler fine-tuning (a tenth of DeepDog's learning rate): a marker, not part of the lines.
    ("2 sessions, simulated first, learning rate 1e-4", "accuracy_few2_init_lr1e-4.json", 2, "lr"),
    ("4 sessions, simulated first, learning rate 1e-4", "accuracy_few4_init_lr1e-4.json", 4, "lr"),
]


def fold_scores(y: np.ndarray, soft: np.ndarray, masks: list[np.ndarray]) -> list[float]:
    """Mean ROC-AUC over categories on each fold's rows (``evaluation.metrics``' definition).

    >>> y = np.array([[0], [1], [0], [1]]); s = np.array([[0.1], [0.9], [0.8], [0.2]])
    >>> fold_scores(y, s, [np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)])
    [1.0, 0.0]
    """
    from evaluation.metrics import evaluate

    names = [str(c) for c in range(y.shape[1])]
    return [evaluate(soft[m] > 0.5, soft[m], y[m], names)["macro_roc_auc"] for m in masks]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--sim-family", default=str(ROOT / "runs/realism/sim4000_w0.25_e8"))
    ap.add_argument("--out", default=str(RESULTS / "few_labels.json"))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2
    runs_here = [r for r in RUNS if (RESULTS / r[1]).exists()]
    if not runs_here or not Path(args.sim_family).exists():
        print(
            f"expected accuracy.py results among {[f for _, f, _, _ in RUNS]} and the sim-only "
            f"family {args.sim_family} (see the README's 'Real + simulated'); not found",
            file=sys.stderr,
        )
        return 2
    for name, f, _, _ in RUNS:
        if not (RESULTS / f).exists():
            print(f"   {f} not found: '{name}' left out")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnn_family import Family
    from evaluation.metrics import evaluate
    from training.data import CATEGORIES
    from training.splits import session_kfold

    real, y = load_labelled(args.data)
    runs = {name: json.loads((RESULTS / f).read_text()) for name, f, _, _ in runs_here}
    first = runs[runs_here[0][0]]
    seed, n_folds = first["config"]["seed"], first["session_grouped_cv"]["folds"]
    splits = list(session_kfold(real.sessions, n_splits=n_folds, seed=seed))
    for name, r in runs.items():
        held = [sorted(f["held_out_sessions"]) for f in r["session_grouped_cv"]["fold_details"]]
        if held != [sorted(set(real.sessions[te])) for _, te in splits]:
            raise ValueError(f"{name}: expected the same {n_folds} session folds as the others")

    masks = [np.isin(np.arange(len(real)), te) for _, te in splits]
    sim_vote = Family.load(args.sim_family).vote(real.images)
    sim_all = evaluate(sim_vote.hard, sim_vote.soft, y, CATEGORIES)
    rows = {
        "no labels, simulated only": {
            "labelled_frames": [0] * n_folds,
            "per_fold": fold_scores(y, sim_vote.soft, masks),
            "pooled": sim_all["macro_roc_auc"],
            "per_category": {c: v["roc_auc"] for c, v in sim_all["per_category"].items()},
        }
    }
    for name, _, n_sess, _ in runs_here:
        cv = runs[name]["session_grouped_cv"]
        n_train = [
            len(few_sessions(real.sessions, tr, fold=k, n=n_sess, seed=seed) if n_sess else tr)
            for k, (tr, _) in enumerate(splits)
        ]
        rows[name] = {
            "labelled_frames": n_train,
            "per_fold": [f["macro_roc_auc"] for f in cv["fold_details"]],
            "pooled": cv["pooled"]["macro_roc_auc"],
            "per_category": {c: v["roc_auc"] for c, v in cv["pooled"]["per_category"].items()},
        }

    result = {
        "data": str(args.data),
        "sim_family": str(args.sim_family),
        "folds": n_folds,
        "metric": "mean ROC-AUC over the six categories, on each fold's held-out real sessions",
        "runs": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    print("| training | labelled real frames per fold | pooled | per fold |\n|---|---|---|---|")
    for name, r in rows.items():
        per = " / ".join(f"{v:.3f}" for v in r["per_fold"])
        lab = "–".join(str(v) for v in (min(r["labelled_frames"]), max(r["labelled_frames"])))
        print(f"| {name} | {lab} | {r['pooled']:.3f} | {per} |")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1, 1.3]})
    colours = {False: "tab:grey", True: "tab:blue"}
    sim = rows["no labels, simulated only"]
    # x: how many labelled sessions a fold's family saw (0, 2, 4, all); frames vary by fold.
    levels = sorted({n_sess or 99 for _, _, n_sess, _ in runs_here})
    xpos = {n: levels.index(n or 99) + 1 for _, _, n, _ in runs_here}
    for init, label in (
        (False, "real frames only, from scratch"),
        (True, "simulated first, then real"),
    ):
        these = [(xpos[n_sess], rows[n]) for n, _, n_sess, i in runs_here if i == init]
        if init:
            these = [(0, sim), *these]
        xs = [x for x, _ in these]
        for k in range(n_folds):
            a1.plot(
                xs,
                [r["per_fold"][k] for _, r in these],
                "-o",
                color=colours[init],
                alpha=0.35,
                ms=3,
                lw=1,
            )
        a1.plot(
            xs,
            [r["pooled"] for _, r in these],
            "-o",
            color=colours[init],
            lw=2.5,
            label=f"{label} (pooled; thin: each fold)",
        )
    gentle = [(xpos[n_sess], rows[n]["pooled"]) for n, _, n_sess, k in runs_here if k == "lr"]
    if gentle:
        xs, ys = zip(*gentle, strict=True)
        a1.plot(xs, ys, "*", color="tab:green", ms=13, label="simulated first, learning rate 1e-4")
    a1.axhline(
        sim["pooled"], color="tab:orange", ls="--", lw=1, label="simulated only, no labels (pooled)"
    )
    ticks = ["none\n(simulated only)"]
    for n_sess in levels:
        frames = next(
            rows[n]["labelled_frames"] for n, _, s_, _ in runs_here if (s_ or 99) == n_sess
        )
        what = "all" if n_sess == 99 else str(n_sess)
        ticks.append(f"{what} sessions\n({min(frames):,}-{max(frames):,} frames)")
    a1.set_xticks(range(len(ticks)), ticks, fontsize=8)
    a1.set_ylim(0.55, 0.97)
    a1.set_xlabel("labelled real sessions each fold's family trained on")
    a1.set_ylabel("mean ROC-AUC, held-out sessions")
    a1.set_title("Fewer labels: the simulator matters more")
    a1.legend(fontsize=8, loc="upper left")
    a1.grid(alpha=0.3)
    names = [n for n in rows if n not in {r[0] for r in runs_here if r[3] == "lr"}]
    width = 0.8 / len(names)
    n_first = sum("simulated first" in n for n in names)
    greys = iter(plt.cm.Greys(np.linspace(0.3, 0.75, len(names) - 1 - n_first)))
    blues = iter(plt.cm.Blues(np.linspace(0.35, 0.9, n_first)))
    for j, n in enumerate(names):
        colour = "tab:orange" if j == 0 else next(blues if "simulated first" in n else greys)
        vals = [rows[n]["per_category"][c] for c in CATEGORIES]
        a2.bar(
            np.arange(6) + (j - len(names) / 2 + 0.5) * width, vals, width, label=n, color=colour
        )
    a2.set_xticks(range(6), [c.replace(" ", "\n") for c in CATEGORIES], fontsize=8)
    a2.set_ylim(0.5, 1.0)
    a2.set_ylabel("pooled ROC-AUC")
    a2.set_title("Per category, pooled over the folds")
    a2.legend(fontsize=7, ncol=2, loc="upper left")
    a2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    png = Path(args.out).with_suffix(".png")
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
