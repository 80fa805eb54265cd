"""The training job behind ``main_training.py``: load or simulate data, train, plot curves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.data import FrameSet, concat, load_frames

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
    simulated_first: bool = False,
    extra_data: Sequence[str | Path] = (),
) -> Path:
    """Train a family into ``out_dir`` from ``data_path`` (or simulated frames), then plot curves.

    With ``simulated_first``, a family of the same configuration is first trained on
    ``synthetic_frames`` simulated frames into ``<out_dir>_sim``, and every member of the real
    family starts from it (``config.init_from``). Measured better than either alone from about
    four labelled sessions on (README, "With few labelled frames"). Both stages resume after an
    interruption.

    ``extra_data`` files (labelled frames of the same size: GAN-made extras from
    :mod:`gan_extras`, more simulated frames) join the training set of the final family, and
    only its training set; the manifest records them.

    >>> run_training(config=TrainConfig(epochs=1), out_dir="runs/demo")  # doctest: +SKIP
    """
    from cnn_family import CNN_global

    CNN_global(config.architecture)  # an unknown name fails now, not after the data is ready
    if (data_path is None or simulated_first) and int(synthetic_frames) < 1:
        raise ValueError(
            f"synthetic_frames (--synthetic-frames): expected a positive number of simulated "
            f"frames, got {synthetic_frames}"
        )
    train_kw = {"verbose": verbose, "engine": engine, "layout": layout, "distribute": distribute}
    if simulated_first:
        if data_path is None:
            raise ValueError(
                "simulated_first: expected real frames to fine-tune on (--data), got none; "
                "without --data the family trains on simulated frames only"
            )
        if config.init_from is not None:
            raise ValueError(
                "simulated_first: expected no init_from (it trains its own starting family), "
                f"got {config.init_from!r}"
            )
        if members is not None:
            raise ValueError(
                f"simulated_first: expected the whole family, got the member shard {members!r}; "
                "train the simulated family first and pass it as init_from to each shard"
            )
        sim_dir = Path(out_dir).with_name(Path(out_dir).name + "_sim")
        print(
            f"Simulated first: {synthetic_frames} simulated frames -> {sim_dir}, then {data_path}"
        )
        _train_and_finish(config, sim_dir, None, synthetic_frames, command, **train_kw)
        config = dataclasses.replace(config, init_from=str(sim_dir))
    elif data_path is None:
        print(f"No --data given: training on {synthetic_frames} simulated frames (stm_sim).")
        print(REAL_DATA_HINT)
    return _train_and_finish(
        config,
        out_dir,
        data_path,
        synthetic_frames,
        command,
        members=members,
        extra_data=extra_data,
        **train_kw,
    )


def with_extras(frames: FrameSet, paths: Sequence[str | Path]) -> FrameSet:
    """``frames`` with the labelled frames of each file in ``paths`` appended.

    A file's sessions that collide with ones already there are renamed ``extra<i>:<session>``,
    so a session split never merges two sources.
    """
    parts = [frames]
    seen = set(frames.sessions.tolist())
    for i, path in enumerate(paths):
        extra = load_frames(path)
        if extra.images.shape[1:] != frames.images.shape[1:]:
            raise ValueError(
                f"{path}: expected extra frames of {frames.images.shape[1:]} like the training "
                f"frames, got {extra.images.shape[1:]}"
            )
        if not extra.labelled.any():
            raise ValueError(f"{path}: expected labelled extra frames, found none labelled")
        extra = extra.subset(extra.labelled)
        if seen.intersection(extra.sessions.tolist()):
            extra.sessions = np.char.add(f"extra{i}:", extra.sessions.astype(str))
        seen.update(extra.sessions.tolist())
        print(f"extra training frames: {len(extra)} from {path}")
        parts.append(extra)
    return concat(parts)


def _train_and_finish(
    config: TrainConfig,
    out_dir: str | Path,
    data_path: str | Path | None,
    synthetic_frames: int,
    command: str | None,
    extra_data: Sequence[str | Path] = (),
    **train_kw,
) -> Path:
    from training.trainer import train_family

    if data_path is None:
        frames = simulated_frames(synthetic_frames, seed=config.seed)
        source = f"stm_sim:{synthetic_frames}:seed{config.seed}"
    else:
        frames = load_frames(data_path)
        source = str(data_path)
    if extra_data:
        frames = with_extras(frames, extra_data)
        source += " + " + " + ".join(str(p) for p in extra_data)
    out = train_family(frames, config, out_dir, data_path=source, command=command, **train_kw)
    if json.loads((out / "manifest.json").read_text())["status"] != "complete":
        return out  # a shard: curves and export come after the merge
    from cnn_family import Family
    from evaluation.plots import plot_training_curves

    exported = Family.load(out).export(out / "family.keras")
    print(f"one-file family for serving: {exported}")

    png = plot_training_curves(out, out / "training_curves.png")
    print(f"family saved in {out}; training curves in {png}")
    return out
