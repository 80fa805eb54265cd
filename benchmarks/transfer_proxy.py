"""A cheap sim -> real yardstick for tuning the simulator: about a CPU-minute per run.

    python benchmarks/transfer_proxy.py --preset default --preset fast-axis --seeds 0 1

One small 6-output CNN (inputs halved to 64 px, 4 conv blocks) is trained on simulated frames
only and scored on every labelled real frame of ``hsi128_dev.h5``: mean and per-category
ROC-AUC. The benchmark family (``benchmarks/realism.py``) takes 25 CPU-minutes a run, so use this
proxy to screen changes, and the family to confirm them. Single runs move by about ±0.03, so
compare means over seeds. Writes ``benchmarks/results/transfer_proxy.json``.

``--real-cv`` trains the same CNN on the real frames instead (session-grouped 5-fold CV): what
this model reaches when it does see real frames, the yardstick for the sim -> real figure.
``--inputs`` applies a per-frame grey-level transform to simulated and real frames alike.
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

from _real import add_data_argument, load_labelled, real_data_missing  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def proxy_model(seed: int, augment: str = "none"):
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inp = keras.Input((128, 128, 1))
    x = inp
    if augment in ("flip", "dr"):
        x = layers.RandomFlip("horizontal_and_vertical", seed=seed)(x)
    if augment == "dr":
        # Domain randomisation on the simulated frames (training only): contrast, a slight
        # blur and extra noise, so the network cannot lean on the simulator's exact grey levels.
        x = layers.RandomContrast(0.4, value_range=(0, 255), seed=seed)(x)
        x = layers.RandomGaussianBlur(
            factor=1.0, kernel_size=3, sigma=(0.0, 1.0), value_range=(0, 255), seed=seed
        )(x)
    x = layers.Rescaling(1 / 255.0)(x)
    if augment == "dr":
        x = layers.GaussianNoise(0.03, seed=seed)(x)
    x = layers.AveragePooling2D(2)(x)
    for f in (16, 32, 48, 64):
        for _ in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("elu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(6, activation="sigmoid")(x))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy")
    return model


def equalize(images: np.ndarray) -> np.ndarray:
    """Per-frame histogram equalisation of uint8 frames (mid-rank of each grey level)."""
    x = np.asarray(images, np.uint8)
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.int64)
    counts = np.zeros((n, 256), np.float64)
    np.add.at(counts, (np.arange(n)[:, None], flat), 1.0)
    cdf = np.cumsum(counts, axis=1)
    mid = (cdf - counts / 2) / flat.shape[1]
    out = np.take_along_axis(mid, flat, axis=1) * 255.0
    return out.reshape(x.shape).astype(np.float32)


def robust(images: np.ndarray) -> np.ndarray:
    """Per-frame (x - median) / IQR, clipped to +-3 and mapped to 0..255."""
    x = np.asarray(images, np.float32)
    med = np.median(x, axis=(1, 2), keepdims=True)
    q1, q3 = np.percentile(x, [25, 75], axis=(1, 2), keepdims=True)
    z = np.clip((x - med) / np.maximum(q3 - q1, 1.0), -3, 3)
    return (z + 3) / 6 * 255.0


def highpass(images: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    """Per frame, the frame minus its Gaussian blur (``sigma`` px), min-max back to 0..255.

    Takes out what lies below about 3 cycles per frame, where real and simulated frames differ
    most and in ways the labels do not share (``label_signatures.py``), and keeps the rows
    (about 5 cycles per frame).
    """
    from scipy.ndimage import gaussian_filter

    x = np.asarray(images, np.float32)
    hp = x - gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect")
    lo, hi = hp.min(axis=(1, 2), keepdims=True), hp.max(axis=(1, 2), keepdims=True)
    return (hp - lo) * (255.0 / np.maximum(hi - lo, 1e-6))


INPUTS = {
    "raw": lambda x: np.asarray(x, np.float32),
    "equalize": equalize,
    "robust": robust,
    "highpass": highpass,
}


def _scored(y: np.ndarray, p: np.ndarray, t0: float) -> dict:
    """Per-category ROC-AUC of scores ``p`` against labels ``y``, and the seconds since ``t0``."""
    from sklearn.metrics import roc_auc_score

    aucs = [float(roc_auc_score(y[:, c], p[:, c])) for c in range(y.shape[1])]
    return {
        "mean_roc_auc": float(np.mean(aucs)),
        "roc_auc": aucs,
        "seconds": time.perf_counter() - t0,
        "_scores": p,
    }


def run(
    real_x,
    real_y,
    *,
    preset: str,
    n: int,
    seed: int,
    epochs: int,
    augment: str = "none",
    inputs: str = "raw",
) -> dict:
    from stm_sim.dataset import make_frameset

    sim = make_frameset(n, seed=seed + 1, preset=preset)
    t = time.perf_counter()
    model = proxy_model(seed, augment)
    f = INPUTS[inputs]
    model.fit(
        f(sim.images)[..., None], sim.labels("gt0.5"), batch_size=64, epochs=epochs, verbose=0
    )
    p = model.predict(f(real_x)[..., None], batch_size=256, verbose=0)
    return _scored(real_y, p, t)


def real_cv(real, y, *, seed: int, epochs: int, folds: int = 5) -> dict:
    """The ceiling: the same CNN trained on real frames, session-grouped k-fold CV (pooled)."""
    from training.splits import session_kfold

    t = time.perf_counter()
    p = np.zeros(y.shape, np.float32)
    x = real.images.astype(np.float32)
    for tr, te in session_kfold(real.sessions, n_splits=folds, seed=seed):
        model = proxy_model(seed)
        model.fit(x[tr][..., None], y[tr], batch_size=64, epochs=epochs, verbose=0)
        p[te] = model.predict(x[te][..., None], batch_size=256, verbose=0)
    return _scored(y, p, t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--preset", action="append", help="repeatable (default: default)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n", type=int, default=5000, help="simulated training frames")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--augment",
        choices=["none", "flip", "dr"],
        default="none",
        help="training-time augmentation: flips, or flips + contrast, blur and noise",
    )
    ap.add_argument(
        "--inputs",
        choices=sorted(INPUTS),
        default="raw",
        help="per-frame grey-level transform, applied to simulated and real frames alike",
    )
    ap.add_argument(
        "--real-cv",
        action="store_true",
        help="instead: the same CNN trained on real frames under session-grouped 5-fold CV "
        "(the ceiling a simulator could hope to reach with this model)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer_proxy.json"))
    args = ap.parse_args(argv)
    if real_data_missing(args.data):
        return 2
    from sklearn.metrics import roc_auc_score

    from training.data import CATEGORIES
    from training.io import write_json_atomic

    real, y = load_labelled(args.data)
    res = {
        "categories": list(CATEGORIES),
        "n_real": len(real),
        "n_sim": 0 if args.real_cv else args.n,
        "mode": "real frames, session-grouped 5-fold CV" if args.real_cv else "sim -> real",
        "epochs": args.epochs,
        "augment": args.augment,
        "inputs": args.inputs,
        "presets": {},
    }
    for preset in ["real-cv"] if args.real_cv else args.preset or ["default"]:
        runs = []
        for seed in args.seeds:
            if args.real_cv:
                r = real_cv(real, y, seed=seed, epochs=args.epochs)
                runs.append(r)
                print(f"real-cv seed {seed}: mean ROC-AUC {r['mean_roc_auc']:.3f}", flush=True)
                continue
            r = run(
                real.images,
                y,
                preset=preset,
                n=args.n,
                seed=seed,
                epochs=args.epochs,
                augment=args.augment,
                inputs=args.inputs,
            )
            runs.append(r)
            print(f"{preset} seed {seed}: mean ROC-AUC {r['mean_roc_auc']:.3f}", flush=True)
        means = [r["mean_roc_auc"] for r in runs]
        # The seeds' mean score is a small ensemble, as the family is one: far steadier than a
        # single run (whose Asymmetries AUC swings between 0.3 and 0.8).
        ens = np.mean([r.pop("_scores") for r in runs], axis=0)
        ens_auc = [float(roc_auc_score(y[:, c], ens[:, c])) for c in range(y.shape[1])]
        res["presets"][preset] = {
            "mean_roc_auc": float(np.mean(means)),
            "spread": float(np.ptp(means)),
            "ensemble_mean_roc_auc": float(np.mean(ens_auc)),
            "ensemble_per_category": dict(zip(CATEGORIES, ens_auc, strict=True)),
            "per_category": dict(
                zip(CATEGORIES, np.mean([r["roc_auc"] for r in runs], 0).tolist(), strict=True)
            ),
            "runs": runs,
        }
        print(
            f"== {preset}: {np.mean(means):.3f} over seeds {args.seeds}, "
            f"ensemble {np.mean(ens_auc):.3f}",
            flush=True,
        )
    write_json_atomic(Path(args.out), res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
