"""Plots as PNG: ROC curves, confusion matrices, a vote gallery, training curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on lab servers or CI

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, roc_curve

SHORT = {
    "Asymmetries": "Asym",
    "Individual atoms": "Atoms",
    "Dimers": "Dimers",
    "Rows": "Rows",
    "Tip change": "TipChg",
    "Bad/blurry": "Bad",
}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_roc(soft: np.ndarray, y_true: np.ndarray, categories: Sequence[str], path) -> Path:
    """One ROC curve per category on shared axes, AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, c in enumerate(categories):
        y = y_true[:, i]
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, soft[:, i])
        from sklearn.metrics import auc

        ax.plot(fpr, tpr, lw=1.8, label=f"{c} (AUC {auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per category")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(hard: np.ndarray, y_true: np.ndarray, categories: Sequence[str], path) -> Path:
    """A 2x2 confusion matrix per category (rows: truth, columns: vote), counts and row shares."""
    n = len(categories)
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n, 2.6))
    for i, (c, ax) in enumerate(zip(categories, np.atleast_1d(axes), strict=True)):
        cm = confusion_matrix(y_true[:, i], hard[:, i], labels=[0, 1])
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (r, k), v in np.ndenumerate(cm):
            ax.text(
                k,
                r,
                f"{v}\n{share[r, k]:.0%}",
                ha="center",
                va="center",
                color="white" if share[r, k] > 0.6 else "black",
                fontsize=8,
            )
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_title(SHORT.get(c, c), fontsize=10)
        if i == 0:
            ax.set_ylabel("crowd label")
        ax.set_xlabel("family vote")
    fig.tight_layout()
    return _save(fig, path)


def _labels_text(row: np.ndarray, categories: Sequence[str]) -> str:
    on = [SHORT.get(c, c) for c, v in zip(categories, row, strict=True) if v]
    return ", ".join(on) if on else "-"


def _short(name: str, most: int = 34) -> str:
    """A long file name cut in the middle, so that its start and its tile suffix both show."""
    if len(name) <= most:
        return name
    half = (most - 1) // 2
    return f"{name[:half]}…{name[-(most - 1 - half) :]}"


def plot_gallery(
    images: np.ndarray,
    hard: np.ndarray,
    categories: Sequence[str],
    path,
    *,
    y_true: np.ndarray | None = None,
    soft: np.ndarray | None = None,
    max_frames: int = 16,
    title: str | None = None,
    truth_name: str = "crowd",
    names: Sequence[str] | None = None,
) -> Path:
    """A grid of frames captioned with the vote (and the true labels, green when they match).

    ``truth_name`` names where ``y_true`` came from in the captions ("crowd", "simulator");
    ``names``, where given, head each caption (the file, or the file and tile, of a frame).
    """
    n = min(len(images), max_frames)
    cols = min(4, max(n, 1))
    rows = int(np.ceil(n / cols)) if n else 1
    # Constrained layout keeps the three-line captions and the title clear of the frames.
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.1 * cols, 3.6 * rows), squeeze=False, layout="constrained"
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="afmhot", vmin=0, vmax=255)
        vote = _labels_text(hard[k], categories)
        text = f"vote: {vote}"
        if names is not None:
            text = f"{_short(str(names[k]))}\n{text}"
        color = "black"
        if y_true is not None:
            truth = _labels_text(y_true[k], categories)
            text += f"\n{truth_name}: {truth}"
            color = "darkgreen" if np.array_equal(hard[k], y_true[k]) else "darkred"
        if soft is not None:
            bad = [i for i, c in enumerate(categories) if c in ("Tip change", "Bad/blurry")]
            if bad:
                text += f"\nP(bad tip) {soft[k, bad].max():.2f}"
        ax.set_title(text, fontsize=8, color=color, loc="left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_training_curves(family_dir: str | Path, path) -> Path:
    """Loss and AUC per epoch for every member (train solid, validation dashed)."""
    family_dir = Path(family_dir)
    hist = {
        p.stem: json.loads(p.read_text()) for p in sorted((family_dir / "history").glob("*.json"))
    }
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("tab10")
    cats: list[str] = []
    for name, h in hist.items():
        cat = name.rsplit("_", 1)[0]
        if cat not in cats:
            cats.append(cat)
        col = cmap(cats.index(cat) % 10)
        lab = cat if name.endswith("_0") else None
        epochs = np.arange(1, len(h.get("loss", [])) + 1)
        a1.plot(epochs, h.get("loss", []), color=col, lw=1.2, label=lab)
        a2.plot(epochs, h.get("auc", []), color=col, lw=1.2, label=lab)
        if "val_loss" in h:
            a1.plot(epochs, h["val_loss"], color=col, lw=1, ls="--")
            a2.plot(epochs, h["val_auc"], color=col, lw=1, ls="--")
    a1.set(xlabel="epoch", ylabel="weighted BCE loss", title="loss (dashed: held-out sessions)")
    a2.set(xlabel="epoch", ylabel="ROC-AUC", title="AUC per member")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    a2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_tiled_scans(
    names: Sequence[str],
    images: np.ndarray,
    soft: np.ndarray,
    categories: Sequence[str],
    path,
    *,
    max_scans: int = 6,
) -> Path | None:
    """Each scan voted in tiles as a mosaic of its tiles, every tile framed by its P(bad tip).

    Tiles are named ``file[r<row>c<col>]`` (:func:`evaluation.report.load_any`); each is levelled
    on its own, so the seams show. A tile's frame runs from green (P(bad tip) 0) to red (1);
    the caption names the scan, its tiles' mean P(bad tip) and its commonest voted label.
    Returns the PNG, or None when no frame is a tile.
    """
    import re

    pat = re.compile(r"^(.*)\[r(\d+)c(\d+)\]$")
    scans: dict[str, list[tuple[int, int, int]]] = {}
    for i, n in enumerate(names):
        m = pat.match(str(n))
        if m:
            scans.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3)), i))
    if not scans:
        return None
    bad = [j for j, c in enumerate(categories) if c in ("Tip change", "Bad/blurry")]
    shown = list(scans.items())[:max_scans]
    cols = min(3, len(shown))
    rows = int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 4.6 * rows), squeeze=False, layout="constrained"
    )
    cmap = plt.get_cmap("RdYlGn_r")
    for ax, (scan, tiles) in zip(axes.flat, shown, strict=False):
        n_r = max(r for r, _, _ in tiles) + 1
        n_c = max(c for _, c, _ in tiles) + 1
        side = images.shape[1]
        mosaic = np.zeros((n_r * side, n_c * side), images.dtype)
        for r, c, i in tiles:
            mosaic[r * side : (r + 1) * side, c * side : (c + 1) * side] = images[i]
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255)  # grey, so the frames stand out
        p_bad = []
        for r, c, i in tiles:
            p = float(soft[i, bad].max()) if bad else 0.0
            p_bad.append(p)
            ax.add_patch(
                plt.Rectangle(
                    (c * side + 2, r * side + 2),
                    side - 4,
                    side - 4,
                    fill=False,
                    lw=2.5,
                    edgecolor=cmap(p),
                )
            )
        idx = [i for _, _, i in tiles]
        top = categories[int(np.argmax((soft[idx] >= 0.5).sum(axis=0)))]
        ax.set_title(
            f"{_short(scan)}\n{len(tiles)} tiles, mean P(bad tip) {np.mean(p_bad):.2f}, "
            f"most voted: {SHORT.get(top, top)}",
            fontsize=8,
            loc="left",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle("scans voted in tiles: frames from green (good tip) to red (bad tip)")
    return _save(fig, path)
