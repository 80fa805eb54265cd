"""The training job behind ``main_training.py``: load or simulate data, train, plot curves."""

from __future__ import annotations

import json
from pathlib import Path

from training.config import TrainConfig
from training.data import FrameSet, load_frames

REAL_DATA_HINT = (
    "Real H:Si(100) frames: download the SPM-Toolbox repository (OGordon100/SPM-Toolbox on "
    "GitHub), then convert 'Images (Flat)' + 'Database/Classified_Output_10-Aug-2017.xlsx' with "
    "`python -m training.prepare_hsi SRC_DIR LABELS_XLSX OUT.h5` and pass --data OUT.h5."
)


def simulated_frames(n: int, *, seed: int = 0) -> FrameSet:
    """The embedded default: ``n`` labelled synthetic H:Si(100) frames from :mod:`stm_sim`."""
    from stm_sim.dataset import make_frameset

    return make_frameset(n, seed=seed)


def run_training(
    *,
    config: TrainConfig,
    out_dir: str | Path,
    data_path: str | Path | None = None,
    synthetic_frames: int = 4000,
    command: str | None = None,
    verbose: int | str = "auto",
    engine: str = "fused",
    members: str | None = None,
    layout: str = "auto",
    distribute: str = "auto",
) -> Path:
    """Train a family into ``out_dir`` from ``data_path`` (or simulated frames), then plot curves.

    >>> run_training(config=TrainConfig(epochs=1), out_dir="runs/demo")  # doctest: +SKIP
    """
    from training.trainer import train_family

    if data_path is None:
        print(f"No --data given: training on {synthetic_frames} simulated frames (stm_sim).")
        print(REAL_DATA_HINT)
        frames = simulated_frames(synthetic_frames, seed=config.seed)
        source = f"stm_sim:{synthetic_frames}:seed{config.seed}"
    else:
        frames = load_frames(data_path)
        source = str(data_path)
    out = train_family(
        frames,
        config,
        out_dir,
        data_path=source,
        command=command,
        verbose=verbose,
        engine=engine,
        members=members,
        layout=layout,
        distribute=distribute,
    )
    if json.loads((out / "manifest.json").read_text())["status"] != "complete":
        return out  # a shard: curves and export come after the merge
    from cnn_family import Family
    from evaluation.plots import plot_training_curves

    exported = Family.load(out).export(out / "family.keras")
    print(f"one-file family for serving: {exported}")

    png = plot_training_curves(out, out / "training_curves.png")
    print(f"family saved in {out}; training curves in {png}")
    return out
