"""How close are simulated frames to real ones? Measured, not asserted.

    python benchmarks/realism.py                     # writes benchmarks/results/realism.json + PNGs
    python benchmarks/realism.py --skip-transfer     # the cheap parts only (no TensorFlow training)

* ``frames_per_second``: the dataset generator on this machine (all cores).
* ``rapsd_distance``: per category, the radially averaged power spectrum (normalised, log10)
  of real frames with that label against simulated frames with that label; the distance is
  the RMS difference of the mean log-spectra (0 = same spectrum). Plot: ``realism_rapsd.png``.
* ``real_vs_sim_auc``: a small classifier (gradient-boosted trees on log-spectrum, histogram
  and gradient features) telling real from simulated frames, ROC-AUC under session-grouped
  5-fold CV (0.5 = indistinguishable).
* ``sim_to_real``: a family trained on simulated frames only, evaluated on every labelled
  real frame (no real frame seen in training), with the family metrics (issue target: mean
  ROC-AUC >= 0.85). Trained into ``runs/realism/`` (resumable).
* ``feature_distance``: FID and KID on a family's own features (the shipped family's pooled
  features, :meth:`cnn_family.Family.features`), real against simulated frames and, for
  scale, real against real (the real sessions split in two halves), on sets of equal size; KID
  per category too (frames with that label). ``--features-only`` adds just these to an
  existing results file.
* ``realism_gallery.png``: for each category, real frames beside simulated ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import add_data_argument, load_labelled, real_data_missing  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def rapsd(images: np.ndarray) -> np.ndarray:
    """Normalised radially averaged power spectra, (N, 63), radii 1..63 cycles per frame."""
    x = images.astype(np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    p = np.abs(np.fft.fft2(x)) ** 2
    n = images.shape[1]
    f = np.fft.fftfreq(n) * n
    r = np.rint(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)).astype(int).ravel()
    counts = np.bincount(r, minlength=n)[1 : n // 2]
    out = np.stack([np.bincount(r, weights=q.ravel(), minlength=n)[1 : n // 2] for q in p])
    out = out / counts
    return out / out.sum(axis=1, keepdims=True)


def features(images: np.ndarray) -> np.ndarray:
    spec = np.log10(rapsd(images) + 1e-12)
    hist = np.stack([np.histogram(im, bins=16, range=(0, 256), density=True)[0] for im in images])
    g = images.astype(np.float32)
    gx, gy = (
        np.abs(np.diff(g, axis=2)).mean(axis=(1, 2)),
        np.abs(np.diff(g, axis=1)).mean(axis=(1, 2)),
    )
    return np.hstack([spec, hist, gx[:, None], gy[:, None], g.std(axis=(1, 2))[:, None]])


def real_vs_sim(real, sim, seed: int = 0) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    x = np.vstack([features(real.images), features(sim.images)])
    y = np.r_[np.ones(len(real)), np.zeros(len(sim))]
    groups = np.r_[real.sessions, sim.sessions]
    oof = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y, groups):
        clf = HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(x[tr], y[tr])
        oof[te] = clf.predict_proba(x[te])[:, 1]
    return float(roc_auc_score(y, oof))


def spectra_plot(real, yr, sim, ys, categories, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dist = {}
    radii = np.arange(1, 64)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), dpi=110, sharex=True, sharey=True)
    for c, (name, ax) in enumerate(zip(categories, axes.ravel(), strict=True)):
        r, s = real.images[yr[:, c] == 1], sim.images[ys[:, c] == 1]
        if len(r) == 0 or len(s) == 0:
            dist[name] = None
            continue
        lr, ls = np.log10(rapsd(r).mean(0)), np.log10(rapsd(s).mean(0))
        dist[name] = float(np.sqrt(np.mean((lr - ls) ** 2)))
        ax.plot(radii, lr, label=f"real (n={len(r)})", lw=2)
        ax.plot(radii, ls, label=f"simulated (n={len(s)})", lw=2, ls="--")
        ax.set_title(f"{name}: distance {dist[name]:.2f}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("spatial frequency (cycles per frame)")
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 power (normalised)")
    fig.suptitle("Radially averaged power spectra per category: real vs simulated")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return dist


def gallery(real, yr, sim, ys, categories, out: Path, per: int = 4, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(categories), 2 * per, figsize=(2 * per * 1.5, len(categories) * 1.6), dpi=100
    )
    for c, name in enumerate(categories):
        for k, (fs, y, tag) in enumerate(((real, yr, "real"), (sim, ys, "sim"))):
            idx = np.flatnonzero(y[:, c] == 1)
            pick = rng.choice(idx, size=min(per, len(idx)), replace=False) if len(idx) else []
            for j in range(per):
                ax = axes[c, k * per + j]
                ax.axis("off")
                if j < len(pick):
                    ax.imshow(fs.images[pick[j]], cmap="afmhot")
                if j == 0:
                    ax.set_title(f"{name} ({tag})", fontsize=7, loc="left")
    fig.suptitle("Real (left four) and simulated (right four) frames per category")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def transfer(
    sim_n: int,
    real,
    y,
    *,
    width: float,
    epochs: int,
    seed: int,
    preset: str = "default",
    targets: str = "hard",
    verbose: int = 2,
) -> dict:
    """Train the benchmark family on ``sim_n`` simulated frames; score it on ``real``.

    ``verbose=2`` prints one line per epoch (the run takes about 25 CPU-minutes).
    """
    from cnn_family import Family, Vote
    from evaluation.metrics import evaluate
    from stm_sim.dataset import make_frameset
    from training.config import TrainConfig
    from training.data import CATEGORIES
    from training.trainer import train_family

    sim = make_frameset(sim_n, seed=seed + 1, preset=preset)
    cfg = TrainConfig(width=width, epochs=epochs, seed=seed, targets=targets)
    tag = ("" if preset == "default" else f"_{preset}") + (f"_seed{seed}" if seed else "")
    tag += "" if targets == "hard" else f"_{targets}"
    d = train_family(
        sim,
        cfg,
        ROOT / "runs" / "realism" / f"sim{sim_n}_w{width}_e{epochs}{tag}",
        verbose=verbose,
    )
    fam = Family.load(d)
    # The family's default vote (members + its spectral companion, fitted on the same simulated
    # frames) and the members alone (the figure of the runs before the companion existed); each
    # also on flipped views (inference only, as benchmarks/accuracy.py reports it).
    members = {tta: fam.predict_members(real.images, tta=tta) for tta in (False, True)}
    comp = None if fam.companion is None else fam.companion.predict(real.images)

    def scored(probs, *, with_companion: bool = True):
        if with_companion and comp is not None:
            probs = np.concatenate([probs, comp[:, :, None].astype(np.float32)], axis=2)
        v = Vote.from_member_probs(probs, CATEGORIES, y)
        return evaluate(v.hard, v.soft, y, CATEGORIES)

    def brief(mt):
        b = {k: mt[k] for k in ("macro_roc_auc", "mean_precision", "exact_match")}
        b["roc_auc"] = {c: mt["per_category"][c]["roc_auc"] for c in CATEGORIES}
        return b

    m = scored(members[False])
    m["spectral_companion"] = comp is not None
    m["flip_tta"] = brief(scored(members[True]))
    m["members_alone"] = brief(scored(members[False], with_companion=False))
    m["members_alone"]["flip_tta"] = brief(scored(members[True], with_companion=False))
    m["train"] = {
        "simulated_frames": sim_n,
        "width": width,
        "epochs": epochs,
        "preset": preset,
        "targets": targets,
    }
    return m


def feature_distances(real, yr, sim, ys, categories, *, family: Path, seed: int = 0) -> dict:
    """FID and KID on ``family``'s features: real vs simulated, and real vs real for scale.

    :func:`evaluation.distance.distances_to_real` on the family's pooled features; KID per
    category compares the frames carrying that label.
    """
    from cnn_family import Family
    from evaluation.distance import distances_to_real

    fam = Family.load(family)
    print(f"   features of {len(real)} real and {len(sim)} simulated frames", flush=True)
    fr, fs = fam.features(real.images), fam.features(sim.images)
    d = distances_to_real(
        fr,
        real.sessions,
        fs,
        real_labels=yr,
        other_labels=ys,
        categories=categories,
        other="sim",
        seed=seed,
    )
    return {"family": str(family), "feature_dims": int(fr.shape[1]), **d}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--sim", type=int, default=4000, help="simulated frames for spectra/classifier")
    ap.add_argument("--speed-frames", type=int, default=20000)
    ap.add_argument("--skip-transfer", action="store_true")
    ap.add_argument("--transfer-frames", type=int, default=4000)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--preset",
        default="default",
        help="simulator sampling preset (stm_sim.dataset.PRESETS); plots get a _<preset> suffix",
    )
    ap.add_argument(
        "--targets",
        choices=("hard", "soft"),
        default="hard",
        help="the transfer family's targets: soft trains on the simulated crowd means "
        "(a preset with simulated volunteers, e.g. crowd)",
    )
    ap.add_argument(
        "--features-family",
        default=str(ROOT / "models" / "hsi_family"),
        help="the family whose features FID and KID use (default: the shipped one)",
    )
    ap.add_argument(
        "--features-only",
        action="store_true",
        help="only FID and KID, added to the results file at --out (the rest kept)",
    )
    ap.add_argument("--out", default=None, help="default: results/realism[_<preset>].json")
    args = ap.parse_args(argv)
    sfx = "" if args.preset == "default" else "_" + args.preset.replace("-", "_")
    # Another seed is another run: its own run dir (see transfer) and its own files.
    sfx += f"_seed{args.seed}" if args.seed else ""
    sfx += "" if args.targets == "hard" else f"_{args.targets}"
    if args.out is None:
        args.out = str(RESULTS / f"realism{sfx}.json")
    if real_data_missing(args.data):
        return 2

    from stm_sim.dataset import make_arrays, make_frameset
    from training.data import CATEGORIES
    from training.io import write_json_atomic

    if args.features_only:
        import json

        res = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        if res.get("preset", args.preset) != args.preset:
            raise ValueError(f"{args.out}: expected preset {args.preset!r}, got {res['preset']!r}")
        real, yr = load_labelled(args.data)
        sim = make_frameset(args.sim, seed=args.seed, preset=args.preset)
        print("== FID / KID on the family's features", flush=True)
        res["feature_distance"] = feature_distances(
            real, yr, sim, sim.labels("gt0.5"), CATEGORIES, family=Path(args.features_family)
        )
        print(f"   {res['feature_distance']}", flush=True)
        write_json_atomic(Path(args.out), res)
        print(f"wrote {args.out}")
        return 0

    print("== speed", flush=True)
    make_arrays(50, seed=99, preset=args.preset)
    t = time.perf_counter()
    make_arrays(args.speed_frames, seed=99, preset=args.preset)
    fps = args.speed_frames / (time.perf_counter() - t)
    print(f"   {fps:.0f} frames/s", flush=True)

    real, yr = load_labelled(args.data)
    sim = make_frameset(args.sim, seed=args.seed, preset=args.preset)
    ys = sim.labels("gt0.5")
    RESULTS.mkdir(parents=True, exist_ok=True)
    print("== spectra", flush=True)
    dist = spectra_plot(real, yr, sim, ys, CATEGORIES, RESULTS / f"realism_rapsd{sfx}.png")
    print(f"   {dist}", flush=True)
    print("== real vs simulated classifier", flush=True)
    auc = real_vs_sim(real, sim, seed=args.seed)
    print(f"   ROC-AUC {auc:.3f}", flush=True)
    gallery(real, yr, sim, ys, CATEGORIES, RESULTS / f"realism_gallery{sfx}.png", seed=args.seed)
    print("== FID / KID on the family's features", flush=True)
    fdist = feature_distances(
        real, yr, sim, ys, CATEGORIES, family=Path(args.features_family), seed=args.seed
    )
    print(f"   {fdist}", flush=True)
    res = {
        "machine_cores": __import__("os").cpu_count(),
        "frames_per_second": fps,
        "real_vs_sim_auc": auc,
        "rapsd_distance": dist,
        "feature_distance": fdist,
        "sim_to_real": None,
        "n_real": len(real),
        "n_sim": len(sim),
        "preset": args.preset,
    }
    if not args.skip_transfer:
        print("== sim -> real transfer (a family trained on simulated frames only)", flush=True)
        m = transfer(
            args.transfer_frames,
            real,
            yr,
            width=args.width,
            epochs=args.epochs,
            seed=args.seed,
            preset=args.preset,
            targets=args.targets,
        )
        res["sim_to_real"] = {
            "macro_roc_auc": m["macro_roc_auc"],
            "mean_precision": m["mean_precision"],
            "exact_match": m["exact_match"],
            "per_category": m["per_category"],
            "flip_tta": m["flip_tta"],
            "spectral_companion": m["spectral_companion"],
            "members_alone": m["members_alone"],
            "train": m["train"],
        }
        print(f"   mean ROC-AUC {m['macro_roc_auc']:.3f}, mean precision {m['mean_precision']:.3f}")
        print(f"   with flip TTA: mean ROC-AUC {m['flip_tta']['macro_roc_auc']:.3f}")
        alone = m["members_alone"]
        print(
            f"   members alone (no companion): {alone['macro_roc_auc']:.3f}, flip TTA "
            f"{alone['flip_tta']['macro_roc_auc']:.3f}"
        )
    write_json_atomic(Path(args.out), res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
