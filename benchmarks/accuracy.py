"""Honest accuracy: session-grouped k-fold cross-validation, beside the 2018 protocol.

    python benchmarks/accuracy.py --data ../shared/data/hsi/hsi128_dev.h5

Writes ``benchmarks/results/accuracy.json`` and prints a Markdown table for the README.

* **Grouped CV** (the honest figure): whole scan sessions are held out; a family is trained on
  the other folds and votes on the held-out frames. Metrics are computed on the pooled
  out-of-fold votes (and per fold, for the spread).
* **The 2018 protocol**: every frame copied 10 times, then a random 80/20 split of the copies,
  so nearly every test image has an identical twin in training. Training on the copies for E
  epochs is the same computation as training on the distinct frames of the training rows for
  10*E epochs; we train on those distinct frames for the same epochs as the grouped run, so the
  only difference between the two figures is the leak.

Families are trained into ``runs/accuracy/`` (resumable: rerun the command after an interrupt).

Real+simulated against real-only training, same folds and held-out (real) sessions::

    python benchmarks/accuracy.py --add-sim 4000 --skip-2018 --runs runs/accuracy_sim4000 \
        --out benchmarks/results/accuracy_real_plus_sim.json

The engines compared on the same held-out sessions (issue: fused training must match)::

    python benchmarks/accuracy.py --engine fused --only-folds 0 --runs runs/accuracy_fused \
        --out benchmarks/results/accuracy_fused_fold0.json
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

from _real import add_data_argument, real_data_missing  # noqa: E402

ANCHORS = {
    "gordon_2019": {
        "mean_precision": 0.89,
        "macro_roc_auc": 0.95,
        "good_vs_bad": {"precision": 0.96, "roc_auc": 0.98},
        "source": "Gordon et al., Rev. Sci. Instrum. 90, 103704 (2019)",
    },
    "majority_class_exact_match_reported": 0.247,
    "report_2018_exact_match": 0.982,
}


def _vote_on(fam_dir: Path, frames, y):
    from cnn_family import Family

    return Family.load(fam_dir).vote(frames.images, y, companion=False)


def _record_prior(fam_dir: Path, train, cfg) -> None:
    """Families trained before the manifest recorded ``train_positive_rate``: add it."""
    from training.io import write_json_atomic
    from training.trainer import positive_rates

    mf = Path(fam_dir) / "manifest.json"
    m = json.loads(mf.read_text())
    if "train_positive_rate" not in m:
        m["train_positive_rate"] = positive_rates(train, cfg.label_rule, cfg.categories)
        write_json_atomic(mf, m)


def _reusable_family(path: str | None, cfg, train) -> Path | None:
    """A complete family trained with ``cfg`` on exactly ``train`` (same fingerprint), if any.

    With 10 copies and a 20 % test share, every distinct frame lands in the 2018 training rows
    (a frame misses only if all 10 copies fall in the test part: p = 0.2**10), so the 2018
    protocol trains on all labelled frames, which is how the shipped family was trained.
    Reusing it saves a whole family's training and is checked, not assumed.
    """
    from training.config import TrainConfig

    if not path:
        return None
    man = Path(path) / "manifest.json"
    if not man.exists():
        return None
    m = json.loads(man.read_text())
    same = (
        m.get("status") == "complete"
        and TrainConfig.from_dict(m.get("training", {})) == cfg
        and (not cfg.precise_bn or m.get("batchnorm", "").startswith("precise"))
        and m.get("data", {}).get("fingerprint") == train.fingerprint()
    )
    if same:
        print(f"   reusing {path}: same configuration, trained on exactly these frames")
    return Path(path) if same else None


def _save_oof(path: Path, *, key: str, oof, held, variants, folds) -> None:
    import os

    from training.data import atomic_path

    path, tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name
            np.savez(
                f, key=key, oof=oof, held=held, folds=json.dumps(folds, default=float), **variants
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _this_machine() -> str:
    import platform

    from cnn_family.backend import backend_name, gpu_names

    gpus = ", ".join(gpu_names()) or f"CPU ({platform.processor() or platform.machine()})"
    return f"{gpus}; Keras on {backend_name()}"


def run(args) -> dict:
    from cnn_family import Family
    from cnn_family.family import Vote
    from evaluation.metrics import evaluate, majority_class_baseline
    from training.config import TrainConfig
    from training.data import CATEGORIES, load_frames
    from training.io import write_json_atomic
    from training.precise_bn import apply_to_family
    from training.splits import replicate_2018_split, session_kfold
    from training.trainer import train_family

    frames = load_frames(args.data)
    frames = frames.subset(frames.labelled)
    y = frames.labels(args.label_rule)
    cfg = TrainConfig(
        width=args.width,
        max_filters=args.max_filters,
        epochs=args.epochs,
        batch_size=args.batch_size,
        members_per_category=args.members,
        label_rule=args.label_rule,
        seed=args.seed,
        precise_bn=not args.no_precise_bn,
        targets=args.targets,
        init_from=args.init_from,
        learning_rate=args.learning_rate,
    )
    runs = Path(args.runs)
    t0 = time.time()
    sim_extra = None
    if args.add_sim:
        from stm_sim.dataset import make_frameset
        from training.data import concat

        sim_extra = make_frameset(args.add_sim, seed=args.seed + 1, preset=args.sim_preset)
        sim_extra.sessions = np.char.add("sim:", sim_extra.sessions.astype(str))
    oof = np.zeros((len(frames), len(CATEGORIES), args.members), np.float32)
    # The same families voting other ways (inference only): with flip TTA, with the class
    # weights undone (Family.undo_class_weights), and both.
    variants = {v: np.zeros_like(oof) for v in ("flip_tta", "undo_class_weights", "both")}
    # Each fold family's spectral companion (fitted on the fold's training frames) on the
    # held-out frames; NaN where a fold's family has none.
    companion = np.full(oof.shape[:2], np.nan, np.float32)
    folds = []
    only = None if args.only_folds is None else {int(v) for v in args.only_folds.split(",")}
    held = np.zeros(len(frames), bool)
    # Each finished fold's held-out votes, saved as it finishes: a run cut short (or split over
    # several machines, each carrying the file to the next) picks up at the first missing fold.
    oof_path = Path(args.oof) if args.oof else runs / "oof.npz"
    key = json.dumps(
        {
            # the companion is fitted after the members and changes none of their votes
            "config": {k: v for k, v in cfg.to_dict().items() if k != "companion"},
            "folds": args.folds,
            "add_sim": args.add_sim,
            "sim_preset": args.sim_preset,
            **({"train_sessions": args.train_sessions} if args.train_sessions else {}),
            "fingerprint": frames.fingerprint(),
            "engine": args.engine,
        },
        sort_keys=True,
    )
    done: set[int] = set()
    if oof_path.exists():
        z = np.load(oof_path)
        if str(z["key"]) == key:
            oof[:], held[:] = z["oof"], z["held"]
            for name in variants:
                variants[name][:] = z[name]
            if "companion" in z.files:
                companion[:] = z["companion"]
            folds = json.loads(str(z["folds"]))
            done = {int(f["fold"]) for f in folds}
            print(f"   folds {sorted(done)} read from {oof_path}", flush=True)
        else:
            print(f"   {oof_path} holds another run's votes: not used", flush=True)
    for k, (tr, te) in enumerate(
        session_kfold(frames.sessions, n_splits=args.folds, seed=args.seed)
    ):
        if (only is not None and k not in only) or k in done:
            continue
        held[te] = True
        if args.train_sessions:
            try:
                tr = few_sessions(
                    frames.sessions, tr, fold=k, n=args.train_sessions, seed=args.seed
                )
            except ValueError as e:
                raise SystemExit(f"--train-sessions: {e}") from None
        print(
            f"== fold {k + 1}/{args.folds}: {len(tr)} train / {len(te)} test frames, "
            f"{len(set(frames.sessions[te]))} held-out sessions",
            flush=True,
        )
        t_fold = time.time()
        train_k = frames.subset(tr)
        if args.add_sim:
            # Simulated frames join the training side only; the held-out sessions stay real.
            train_k = concat([train_k, sim_extra])
        d = train_family(
            train_k,
            cfg,
            runs / f"fold{k}",
            data_path=args.data,
            verbose=2 if args.verbose else 0,
            engine=args.engine,
        )
        if cfg.precise_bn and apply_to_family(d, frames.subset(tr)):
            print("   BatchNorm statistics recomputed under the final weights (precise BN)")
        _record_prior(d, train_k, cfg)
        test = frames.subset(te)
        fam = Family.load(d)
        v = fam.vote(test.images, y[te], companion=False)
        oof[te] = v.member_probs
        if fam.companion is not None:
            companion[te] = fam.companion.predict(test.images)
        tta = fam.predict_members(test.images, tta=True)
        variants["flip_tta"][te] = tta
        variants["undo_class_weights"][te] = fam.undo_class_weights(v.member_probs)
        variants["both"][te] = fam.undo_class_weights(tta)
        fm = evaluate(v.hard, v.soft, y[te], CATEGORIES)
        fm["held_out_sessions"] = sorted(set(test.sessions))
        fm["n_train"] = len(tr)
        fm["fold"] = k
        fm["seconds"] = round(time.time() - t_fold, 1)
        folds.append(fm)
        _save_oof(
            oof_path,
            key=key,
            oof=oof,
            held=held,
            variants={**variants, "companion": companion},
            folds=folds,
        )
        print(
            f"   exact {fm['exact_match']:.3f}  mean AUC {fm['macro_roc_auc']:.3f}  "
            f"mean precision {fm['mean_precision']:.3f}  ({fm['seconds']:.0f} s)",
            flush=True,
        )
    pooled_vote = Vote.from_member_probs(oof[held], CATEGORIES, y[held])
    pooled = evaluate(
        pooled_vote.hard, pooled_vote.soft, y[held], CATEGORIES, agreement=pooled_vote.agreement
    )
    pooled_variants = {}
    for name, probs in variants.items():
        vv = Vote.from_member_probs(probs[held], CATEGORIES, y[held])
        pooled_variants[name] = evaluate(vv.hard, vv.soft, y[held], CATEGORIES)
    if np.isfinite(companion[held]).all():
        # the companion as a fourth member per category (Family.vote's default)
        for name, probs in (("companion", oof), ("flip_tta + companion", variants["flip_tta"])):
            both = np.concatenate([probs, companion[:, :, None]], axis=2)[held]
            vv = Vote.from_member_probs(both, CATEGORIES, y[held])
            pooled_variants[name] = evaluate(vv.hard, vv.soft, y[held], CATEGORIES)

    def spread(key):
        vals = [f[key] for f in folds]
        return {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals))}

    result = {
        "data": str(args.data),
        "n_labelled": len(frames),
        "n_sessions": len(set(frames.sessions)),
        "config": cfg.to_dict(),
        "engine": args.engine,
        "trained_on": args.trained_on or _this_machine(),
        "simulated_frames_added_to_training": args.add_sim,
        "simulator_preset": args.sim_preset,
        "train_sessions_per_fold": args.train_sessions,
        "session_grouped_cv": {
            "folds": args.folds,
            "folds_run": sorted(int(f["fold"]) for f in folds),
            "pooled": pooled,
            "pooled_other_votes": pooled_variants,
            "per_fold": {k: spread(k) for k in ("exact_match", "macro_roc_auc", "mean_precision")},
            "fold_details": folds,
        },
        "majority_class_exact_match": majority_class_baseline(y),
        "anchors": ANCHORS,
    }

    if not args.skip_2018 and only is None:
        print("== 2018 protocol: 10 copies per frame, random 80/20 split of the copies", flush=True)
        tr_rows, te_rows = replicate_2018_split(
            len(frames), copies=10, test_fraction=0.2, seed=args.seed
        )
        train_2018 = frames.subset(np.unique(tr_rows))
        d = _reusable_family(args.family_2018, cfg, train_2018)
        if d is None:
            d = train_family(train_2018, cfg, runs / "protocol2018", data_path=args.data, verbose=0)
        if cfg.precise_bn:
            apply_to_family(d, train_2018)
        result["protocol_2018_family"] = str(d)
        v = _vote_on(d, frames.subset(te_rows), y[te_rows])
        m = evaluate(v.hard, v.soft, y[te_rows], CATEGORIES)
        m["test_rows_with_twin_in_train"] = float(np.isin(te_rows, tr_rows).mean())
        result["protocol_2018"] = m
        print(
            f"   exact {m['exact_match']:.3f}  mean AUC {m['macro_roc_auc']:.3f}  "
            f"({m['test_rows_with_twin_in_train']:.1%} of test rows have a twin in training)"
        )
    result["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    write_json_atomic(out, result)
    print(f"wrote {out}")
    plots(result, pooled_vote, y[held], out.with_suffix(""))
    print(table(result))
    return result


def plots(r: dict, vote, y: np.ndarray, stem: Path) -> None:
    """``<stem>_roc.png``, ``<stem>_confusion.png`` (pooled out-of-fold votes) and
    ``<stem>_votes.png``: per-category precision and recall of each way to vote."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation import plots as ep

    cats = list(vote.categories)
    ep.plot_roc(vote.soft, y, cats, f"{stem}_roc.png")
    ep.plot_confusion(vote.hard, y, cats, f"{stem}_confusion.png")
    cv = r["session_grouped_cv"]
    ways = {"2018 vote": cv["pooled"]}
    names = {
        "flip_tta": "flip TTA",
        "undo_class_weights": "weights undone",
        "both": "both",
        "companion": "+ companion",
        "flip_tta + companion": "flip TTA + companion",
    }
    ways.update({names.get(k, k): v for k, v in cv.get("pooled_other_votes", {}).items()})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    x = np.arange(len(cats))
    w = 0.8 / len(ways)
    for ax, key in zip(axes, ("precision", "recall"), strict=True):
        for i, (name, m) in enumerate(ways.items()):
            vals = [m["per_category"][c][key] for c in cats]
            ax.bar(x + (i - (len(ways) - 1) / 2) * w, vals, w, label=name)
        if key == "precision":
            ax.axhline(0.89, color="k", ls="--", lw=0.8, label="anchor mean (Gordon 2019)")
        ax.set_xticks(x, [c.replace(" ", "\n") for c in cats], fontsize=8)
        ax.set_title(f"{key}, held-out sessions (pooled {cv['folds']}-fold CV)")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(f"{stem}_votes.png", dpi=110)
    plt.close(fig)


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def table(r: dict) -> str:
    """The README table: grouped CV, 2018 protocol, anchors."""
    p = r["session_grouped_cv"]["pooled"]
    rows = [
        "| protocol | exact match | mean ROC-AUC | mean precision | good-vs-bad precision | good-vs-bad ROC-AUC |",
        "|---|---|---|---|---|---|",
        f"| **this family, session-grouped {r['session_grouped_cv']['folds']}-fold CV** | {_f(p['exact_match'])} | "
        f"{_f(p['macro_roc_auc'])} | {_f(p['mean_precision'])} | {_f(p['good_vs_bad']['precision'])} | "
        f"{_f(p['good_vs_bad']['roc_auc'])} |",
    ]
    labels = {
        "flip_tta": "same families, flip TTA (`--tta`)",
        "undo_class_weights": "same families, class weights undone (`--undo-class-weights`)",
        "both": "same families, both",
        "companion": "same families + their spectral companion (the default vote)",
        "flip_tta + companion": "same families + companion, flip TTA",
    }
    for name, t in r["session_grouped_cv"].get("pooled_other_votes", {}).items():
        rows.append(
            f"| {labels.get(name, name)} | {_f(t['exact_match'])} | "
            f"{_f(t['macro_roc_auc'])} | {_f(t['mean_precision'])} | {_f(t['good_vs_bad']['precision'])} | "
            f"{_f(t['good_vs_bad']['roc_auc'])} |"
        )
    if "protocol_2018" in r:
        q = r["protocol_2018"]
        rows.append(
            f"| same family, 2018 protocol (10 copies, random split) | {_f(q['exact_match'])} | "
            f"{_f(q['macro_roc_auc'])} | {_f(q['mean_precision'])} | {_f(q['good_vs_bad']['precision'])} | "
            f"{_f(q['good_vs_bad']['roc_auc'])} |"
        )
    a = r["anchors"]["gordon_2019"]
    rows += [
        f"| Gordon et al. 2019 (anchor) | - | {a['macro_roc_auc']} | {a['mean_precision']} | "
        f"{a['good_vs_bad']['precision']} | {a['good_vs_bad']['roc_auc']} |",
        f"| 2018 report (leaky split) | {r['anchors']['report_2018_exact_match']} | - | - | - | - |",
        f"| majority-class guess (this data) | {_f(r['majority_class_exact_match'])} | 0.5 | - | - | 0.5 |",
    ]
    lines = [
        "\n".join(rows),
        "",
        "| category | precision | recall | F1 | ROC-AUC | support |",
        "|---|---|---|---|---|---|",
    ]
    for c, v in p["per_category"].items():
        lines.append(
            f"| {c} | {_f(v['precision'])} | {_f(v['recall'])} | {_f(v['f1'])} | {_f(v['roc_auc'])} | {v['support']} |"
        )
    return "\n".join(lines)


def few_sessions(
    sessions: np.ndarray, tr: np.ndarray, *, fold: int, n: int, seed: int
) -> np.ndarray:
    """The few-labels regime: the rows of ``tr`` in a seeded choice of ``n`` of its sessions.

    >>> s = np.array(["a", "a", "b", "c", "c", "d"])
    >>> few_sessions(s, np.arange(6), fold=0, n=2, seed=0).tolist()
    [3, 4, 5]
    """
    pool = np.unique(sessions[tr])
    if n > len(pool):
        raise ValueError(
            f"expected at most {len(pool)} (fold {fold + 1}'s training sessions), got {n}"
        )
    keep = np.random.default_rng(seed + fold).choice(pool, n, False)
    return tr[np.isin(sessions[tr], keep)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "accuracy.json"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "accuracy"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--max-filters", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--label-rule", default="gt0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-2018", action="store_true")
    ap.add_argument(
        "--engine",
        choices=["sequential", "fused"],
        default="sequential",
        help="how the families are trained (sequential: as the shipped family was)",
    )
    ap.add_argument(
        "--add-sim",
        type=int,
        default=0,
        help="add this many simulated frames to every fold's training side (real+sim vs real)",
    )
    ap.add_argument(
        "--sim-preset",
        default="default",
        help="simulator sampling preset of the added frames (stm_sim.dataset.PRESETS)",
    )
    ap.add_argument(
        "--only-folds",
        help="run only these folds (e.g. 0 or 0,1): for comparing engines on one fold",
    )
    ap.add_argument(
        "--family-2018",
        default=str(ROOT / "models" / "hsi_family"),
        help="a family reused for the 2018 protocol when its config and data match exactly",
    )
    ap.add_argument(
        "--oof",
        help="file of the finished folds' held-out votes (default RUNS/oof.npz); the run "
        "resumes from it, so folds can be spread over several calls or machines",
    )
    ap.add_argument(
        "--targets",
        choices=["hard", "soft", "posterior"],
        default="hard",
        help="training targets (TrainConfig.targets); the held-out labels stay the 0/1 ones",
    )
    ap.add_argument(
        "--no-precise-bn",
        action="store_true",
        help="keep BatchNorm's moving averages (fine for long runs: 30 epochs are ~1,500 steps "
        "against the ~100-step memory of momentum 0.99)",
    )
    ap.add_argument(
        "--trained-on",
        help="where the folds were trained, recorded in the results (when --oof brings votes "
        "from another machine, e.g. benchmarks/gpu_session.sh)",
    )
    ap.add_argument(
        "--init-from",
        help="a trained family whose members start every fold's (e.g. one trained on simulated "
        "frames only: sim-pretrained, fine-tuned on each fold's real frames)",
    )
    ap.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="optimizer learning rate (default: the architecture's own; e.g. lower for "
        "gentler fine-tuning with --init-from)",
    )
    ap.add_argument(
        "--train-sessions",
        type=int,
        default=0,
        help="train each fold on only this many of its training sessions (seeded; the "
        "few-labels regime); the held-out sessions stay the same",
    )
    ap.add_argument("--verbose", action="store_true", help="one line per training epoch")
    ap.add_argument("--table-only", action="store_true", help="print the README table of --out")
    args = ap.parse_args(argv)
    if args.table_only:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    if real_data_missing(args.data):
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
