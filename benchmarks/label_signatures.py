"""What each label looks like in the 2-D power spectrum, real against simulated.

    python benchmarks/label_signatures.py [--preset P [P ...]]

A label's *signature* is the mean windowed log power spectrum of the frames that carry it minus
that of the frames that do not (the central 64 x 64 frequencies, up to 32 cycles per frame;
each spectrum's mean log level is taken out first, so a signature is about shape, not
contrast). A classifier trained on simulated frames can only transfer where the simulated
signature looks like the real one, so the Pearson correlation of the two maps, per category,
is a cheap check on a label rule or a tip model; the same correlation between two halves of
the real sessions is its ceiling. Unlike the radially averaged spectra of
``realism.py`` it keeps direction: power at zero fast-axis frequency is line-to-line offsets,
a vertical stripe at fixed fast-axis frequency is structure along single lines.

It also reports, per label, how abruptly the slow profile along the lines changes from one
line to the next (:func:`profile_jumps`; session 27: real Tip change frames 19x the median
change at order 2 against 5x without the label, simulated 9x against 4x), and how many
frames hold short dashes, stretches of a line where the tip jumped and came back
(:func:`line_dashes`; session 30: real 68 %, default simulated 15 %).

About 15 s a preset (16,000 simulated frames: with 4,000 the mean r moved by 0.02-0.05
between generator seeds, with 16,000 by 0.01). Writes ``benchmarks/results/label_signatures.json``
and ``.png`` (real above, simulated below, red where the label adds power).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _real import add_data_argument, real_data_missing, split_sessions  # noqa: E402


def log_spectra(images, *, crop: int = 32, batch_size: int = 500) -> np.ndarray:
    """Centred, Hann-windowed log10 power spectra of frames, ``(N, 2 crop, 2 crop)``.

    Each frame loses its mean grey level before the transform and each spectrum its mean log
    level after it.

    >>> cols = np.arange(128)
    >>> x = np.tile(127 + 120 * np.cos(2 * np.pi * 16 * cols / 128), (1, 128, 1))  # 16 cycles
    >>> s = log_spectra(x)
    >>> s.shape, np.argwhere(s[0] == s[0].max()).tolist()  # (row, column): centre is (32, 32)
    ((1, 64, 64), [[32, 16], [32, 48]])
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 3 or x.shape[1] < 2 * crop or x.shape[2] < 2 * crop:
        raise ValueError(f"expected frames (N, H, W) with H, W >= {2 * crop}, got {x.shape}")
    h, w = x.shape[1:]
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    cy, cx = h // 2, w // 2
    out = []
    for i in range(0, len(x), batch_size):
        b = x[i : i + batch_size] / 255.0
        b = (b - b.mean((1, 2), keepdims=True)) * window
        p = np.fft.fftshift(np.abs(np.fft.fft2(b)) ** 2, axes=(1, 2))
        p = np.log10(p[:, cy - crop : cy + crop, cx - crop : cx + crop] + 1e-6)
        out.append((p - p.mean((1, 2), keepdims=True)).astype(np.float32))
    return np.concatenate(out)


def signatures(spectra: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per category, mean spectrum with the label minus mean without it (NaN if one side is empty).

    >>> s = np.stack([np.full((2, 2), v, np.float32) for v in (1.0, 0.0, 0.0)])
    >>> signatures(s, np.array([[1, 0], [0, 0], [0, 0]]))[:, 0, 0].tolist()
    [1.0, nan]
    """
    y = np.asarray(labels, bool)
    out = np.full((y.shape[1], *spectra.shape[1:]), np.nan, np.float32)
    for j in range(y.shape[1]):
        if y[:, j].any() and (~y[:, j]).any():
            out[j] = spectra[y[:, j]].mean(0) - spectra[~y[:, j]].mean(0)
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Pearson correlation of two stacks of signature maps, one value per map.

    >>> m = np.arange(8, dtype=float).reshape(2, 2, 2)
    >>> agreement(m, np.stack([m[0], -m[1]]))
    [1.0, -1.0]
    """
    return [
        float(np.corrcoef(x.ravel(), z.ravel())[0, 1]) if np.isfinite(x).all() else float("nan")
        for x, z in zip(a, b, strict=True)
    ]


def profile_jumps(images, *, orders: int = 4) -> np.ndarray:
    """Per frame and Legendre order 1..``orders``: the largest change of a line's profile part
    from one line to the next, over the median change, ``(N, orders)``.

    A tip change or an unstable tip changes the slow profile along the lines at once; levelling
    takes out only the offset (and, in the real export, the slope: order 1 is flat there).

    >>> x = np.zeros((1, 16, 32)); x[0, 8:] = np.linspace(-1, 1, 32) ** 2  # a bow from line 8
    >>> x += np.random.default_rng(0).normal(0, 0.01, x.shape)
    >>> bool(profile_jumps(x)[0, 1] > 20)  # order 2
    True
    """
    x = np.asarray(images, np.float64)
    t = np.linspace(-1.0, 1.0, x.shape[-1])
    basis, _ = np.linalg.qr(np.polynomial.legendre.legvander(t, orders))
    c = (x @ basis)[..., 1:] / np.maximum(x.std((1, 2)), 1e-9)[:, None, None]
    d = np.abs(np.diff(c, axis=1))
    return d.max(1) / np.maximum(np.median(d, axis=1), 1e-6)


def line_dashes(images, *, k: float = 4.0) -> np.ndarray:
    """Per frame, the pairs of neighbouring lines that differ by over ``k`` times the frame's
    median line-to-line difference along part of their length only (10-90 % of it): where the
    tip jumped for a stretch of a line and came back, ``(N,)``.

    Session 30: 68 % of the real labelled frames hold 3 or more (Dimers 58 %, Bad/blurry 84 %),
    and the more they hold, the likelier Bad/blurry (0.20 -> 0.87) and the less likely Dimers
    (0.47 -> 0.07); 15 % of the default simulated frames do.

    >>> x = np.random.default_rng(0).normal(0, 0.1, (1, 32, 32)); x[0, 9, 4:20] += 3.0
    >>> int(line_dashes(x)[0])  # a dash on line 9: two line pairs, where it starts and ends
    2
    """
    x = np.asarray(images, np.float32)
    x = x / np.maximum(x.std(axis=(1, 2), keepdims=True), 1e-6)
    d = np.abs(np.diff(x, axis=1))
    share = (d > k * np.median(d, axis=(1, 2), keepdims=True)).mean(axis=2)
    return ((share > 0.1) & (share < 0.9)).sum(axis=1)


def dashes_by_label(dashes: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Share of frames with 3 or more :func:`line_dashes`, with each label and without it."""
    y, many = np.asarray(labels, bool), np.asarray(dashes) >= 3
    return {
        side: [
            round(float(many[m[:, j]].mean()), 2) if m[:, j].any() else None
            for j in range(y.shape[1])
        ]
        for side, m in (("with", y), ("without", ~y))
    }


def jumps_by_label(jumps: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Median of :func:`profile_jumps` over the frames with each label and those without."""
    y = np.asarray(labels, bool)
    return {
        side: [
            np.round(np.median(jumps[m[:, j]], axis=0), 1).tolist() if m[:, j].any() else None
            for j in range(y.shape[1])
        ]
        for side, m in (("with", y), ("without", ~y))
    }


def plot(sig_real, sig_sim, categories, r, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(categories)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6), constrained_layout=True)
    lim = 0.6
    for j, cat in enumerate(categories):
        for row, (sig, who) in enumerate(((sig_real, "real"), (sig_sim, "simulated"))):
            ax = axes[row, j]
            im = ax.imshow(sig[j], cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(-32, 32, 32, -32))
            ax.set_xticks([-32, 0, 32])
            ax.set_yticks([-32, 0, 32])
            ax.set_title(f"{cat}\n{who}" + (f" (r = {r[j]:.2f})" if row else ""), fontsize=9)
            if j == 0:
                ax.set_ylabel("cycles across lines (slow axis)")
            if row == 1:
                ax.set_xlabel("cycles along lines")
    fig.colorbar(im, ax=axes, shrink=0.7, label="log10 power, with label - without")
    fig.suptitle("Label signatures in the power spectrum: what each label adds, real vs simulated")
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_argument(ap)
    ap.add_argument("--sim", type=int, default=16000, help="simulated frames")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--preset",
        nargs="+",
        default=["default"],
        help="one or more stm_sim.dataset presets; the first is drawn and detailed, every one "
        "gets its mean r in 'presets'",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_signatures.json"))
    args = ap.parse_args(argv)

    from stm_sim.dataset import make_frameset
    from training.data import CATEGORIES, load_frames

    if real_data_missing(args.data):
        return 2
    real = load_frames(args.data)
    real = real.subset(real.labelled)
    spec_real, y_real = log_spectra(real.images), real.labels("gt0.5")
    sig_real = signatures(spec_real, y_real)
    jumps_real = jumps_by_label(profile_jumps(real.images), y_real)
    dashes_real = dashes_by_label(line_dashes(real.images), y_real)
    per_preset = {}
    for i, preset in enumerate(args.preset):
        sim = make_frameset(args.sim, seed=args.seed, preset=preset)
        sig = signatures(log_spectra(sim.images), sim.labels("gt0.5"))
        jumps = jumps_by_label(profile_jumps(sim.images[:4000]), sim.labels("gt0.5")[:4000])
        dashes = dashes_by_label(line_dashes(sim.images[:4000]), sim.labels("gt0.5")[:4000])
        del sim  # 16,000 frames and their spectra: one preset's at a time
        r_p = agreement(sig_real, sig)
        per_preset[preset] = {
            "mean_signature_r": round(float(np.nanmean(r_p)), 3),
            "signature_r": dict(zip(CATEGORIES, np.round(r_p, 3).tolist(), strict=True)),
            "profile_jumps_order2": {
                side: dict(zip(CATEGORIES, [v[1] for v in jumps[side]], strict=True))
                for side in ("with", "without")
            },
            "line_dashes_3_or_more": {
                side: dict(zip(CATEGORIES, dashes[side], strict=True))
                for side in ("with", "without")
            },
        }
        print(f"{preset:12s} mean r {np.nanmean(r_p):.3f}", flush=True)
        if i == 0:
            sig_sim, r, jumps_sim, dashes_sim = sig, r_p, jumps, dashes
    # The ceiling: real sessions against other real sessions (the split of realism.py's FID).
    half = split_sessions(real.sessions, args.seed)
    r_real = agreement(
        signatures(spec_real[half], y_real[half]), signatures(spec_real[~half], y_real[~half])
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "preset": args.preset[0],
        "frames": {"real": len(real.images), "simulated": args.sim},
        "signature_r": dict(zip(CATEGORIES, np.round(r, 3).tolist(), strict=True)),
        "mean_signature_r": round(float(np.nanmean(r)), 3),
        "real_halves_r": dict(zip(CATEGORIES, np.round(r_real, 3).tolist(), strict=True)),
        "mean_real_halves_r": round(float(np.nanmean(r_real)), 3),
        "profile_jumps": {
            "what": "median over frames with / without each label of the largest line-to-line "
            "change of each line's Legendre order-1..4 part, over the median change",
            "real": dict(zip(CATEGORIES, zip(*jumps_real.values(), strict=True), strict=True)),
            "simulated": dict(zip(CATEGORIES, zip(*jumps_sim.values(), strict=True), strict=True)),
        },
        "line_dashes": {
            "what": "share of frames with / without each label holding 3 or more line pairs "
            "that jump (over 4x the median) along 10-90 % of their length",
            "real": dict(zip(CATEGORIES, zip(*dashes_real.values(), strict=True), strict=True)),
            "simulated": dict(zip(CATEGORIES, zip(*dashes_sim.values(), strict=True), strict=True)),
        },
        "signature_rms": {
            who: dict(
                zip(
                    CATEGORIES,
                    np.round(np.sqrt(np.nanmean(s**2, axis=(1, 2))), 3).tolist(),
                    strict=True,
                )
            )
            for who, s in (("real", sig_real), ("simulated", sig_sim))
        },
    }
    if len(args.preset) > 1:
        doc["presets"] = per_preset
    out.write_text(json.dumps(doc, indent=2) + "\n")
    plot(sig_real, sig_sim, CATEGORIES, r, out.with_suffix(".png"))
    print("r (simulated vs real; real sessions vs other real sessions)")
    for cat, v in doc["signature_r"].items():
        print(f"{cat:18s} {v:+.2f}  ({doc['real_halves_r'][cat]:+.2f})")
    print(f"mean {doc['mean_signature_r']:.3f} ({doc['mean_real_halves_r']:.3f}) -> {out}")
    print("line-profile jumps, order 2, with / without the label: real | simulated")
    for j, cat in enumerate(CATEGORIES):
        rw, rwo = jumps_real["with"][j][1], jumps_real["without"][j][1]
        sw, swo = jumps_sim["with"][j][1], jumps_sim["without"][j][1]
        print(f"{cat:18s} {rw:5.1f} / {rwo:4.1f} | {sw:5.1f} / {swo:4.1f}")
    print("share of frames with 3+ line dashes, with / without the label: real | simulated")
    for j, cat in enumerate(CATEGORIES):
        rw, rwo = dashes_real["with"][j], dashes_real["without"][j]
        sw, swo = dashes_sim["with"][j], dashes_sim["without"][j]
        print(f"{cat:18s} {rw:5.2f} / {rwo:4.2f} | {sw:5.2f} / {swo:4.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
