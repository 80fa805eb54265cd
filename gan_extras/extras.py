"""Generated frames as training data: labelled FrameSets, and how far they are from real ones.

Generated frames go into training only (``main_training.py --extra-data FILE.h5``); every
evaluation stays on real frames. Their sessions and names start with the generator's kind
(``cyclegan:``, ``dcgan:``), so they never pass for real frames in a file or a report.

>>> from gan_extras.extras import translated_frameset, sampled_frameset, judge
>>> looks_real = translated_frameset("runs/cyclegan", simulated)         # doctest: +SKIP
>>> judge(looks_real, real, family="models/hsi_family")["real_vs_generated"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data import CATEGORIES, FrameSet, check_images


def resize(images, size: int) -> np.ndarray:
    """uint8 frames (N, H, W) -> (N, size, size) with Pillow's box filter (block means).

    >>> resize(np.zeros((2, 128, 128), np.uint8), 64).shape
    (2, 64, 64)
    """
    from PIL import Image

    x = check_images(images)
    if x.shape[1:] == (size, size):
        return x
    out = np.empty((len(x), size, size), np.uint8)
    for i, im in enumerate(x):
        out[i] = np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BOX))
    return out


def generated_frameset(images, labels, *, kind: str, first: int = 0) -> FrameSet:
    """Generated frames with 0/1 (or soft) labels as a FrameSet; 100 frames to a session.

    >>> fs = generated_frameset(np.zeros((3, 8, 8), np.uint8), np.ones((3, 6)), kind="dcgan")
    >>> str(fs.sessions[0]), str(fs.names[2])
    ('dcgan:0', 'dcgan:2')
    """
    x = check_images(images)
    y = np.asarray(labels, np.float32)
    if y.shape != (len(x), len(CATEGORIES)):
        raise ValueError(f"labels: expected shape ({len(x)}, {len(CATEGORIES)}), got {y.shape}")
    idx = np.arange(first, first + len(x))
    return FrameSet(
        images=x,
        mean_scores=y,
        sessions=np.array([f"{kind}:{i // 100}" for i in idx]),
        names=np.array([f"{kind}:{i}" for i in idx]),
    )


def translated_frameset(run_dir, frames: FrameSet, *, batch_size: int = 32) -> FrameSet:
    """``frames`` (simulated, labelled) through a trained CycleGAN; labels and sessions kept.

    Sessions and names gain the prefix ``cyclegan:``, so a session split still keeps one
    simulated tip history on one side.
    """
    from gan_extras.cyclegan import translate

    return FrameSet(
        images=translate(run_dir, frames.images, batch_size=batch_size),
        mean_scores=frames.mean_scores,
        sessions=np.char.add("cyclegan:", frames.sessions.astype(str)),
        names=np.char.add("cyclegan:", frames.names.astype(str)),
        agreement=frames.agreement,
        n_responses=frames.n_responses,
        categories=frames.categories,
    )


def sampled_frameset(dcgan_dir, *, n: int, srgan_dir=None, seed: int = 0) -> FrameSet:
    """``n`` labelled frames from a trained DCGAN, upscaled ×2 by an SRGAN when given."""
    from gan_extras.core import to_frames
    from gan_extras.dcgan import sample

    x, y = sample(dcgan_dir, n=n, seed=seed)
    if srgan_dir is not None:
        from gan_extras.srgan import upscale

        images = upscale(srgan_dir, x)
    else:
        images = to_frames(x)
    return generated_frameset(images, y, kind="dcgan+srgan" if srgan_dir else "dcgan")


def judge(frames: FrameSet, real: FrameSet, *, family, seed: int = 0) -> dict:
    """FID and KID of ``frames`` against ``real`` on ``family``'s pooled features.

    Beside real against real (the real sessions split in two halves) for scale; per category
    where both sets carry labels. Lower is closer. See :mod:`evaluation.distance`.
    """
    from cnn_family import Family
    from evaluation.distance import distances_to_real

    fam = Family.load(family)
    size = fam.fused.input_shape[1]
    if frames.images.shape[1:] != (size, size) or real.images.shape[1:] != (size, size):
        raise ValueError(
            f"judge: expected {size}x{size} frames (the family's input), got "
            f"{frames.images.shape[1:]} generated and {real.images.shape[1:]} real"
        )
    real = real.subset(real.labelled) if real.labelled.any() else real
    fr, fo = fam.features(real.images), fam.features(frames.images)
    labelled = frames.labelled.all()
    d = distances_to_real(
        fr,
        real.sessions,
        fo,
        real_labels=real.labels() if labelled else None,
        other_labels=frames.labels() if labelled else None,
        categories=real.categories,
        other="generated",
        seed=seed,
    )
    return {"family": str(family), "feature_dims": int(fr.shape[1]), **d}


def write(frames: FrameSet, path: str | Path, *, source: str) -> Path:
    """Save generated frames in the project's HDF5 format, recording what made them."""
    from training.data import save_frames

    return save_frames(frames, path, attrs={"generated_by": source})
