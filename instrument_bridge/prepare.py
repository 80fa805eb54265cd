"""Raw scan data -> the frames the family was trained on."""

from __future__ import annotations

import numpy as np
from PIL import Image

from stm_sim import level_lines


class FrameError(ValueError):
    """A scan cannot be turned into a frame; the message says why."""


def prepare_frame(z: np.ndarray, *, size: int = 128, min_lines: int = 8) -> np.ndarray:
    """Level a raw height map like the training pipeline and return a uint8 (size, size) frame.

    Per-line levelling (each line's offset and slope, as in the real training frames, whose
    lines hold no slope at all), per-frame min-max to 0..255, BOX resize to ``size``. Lines that
    are all NaN (a partial frame) are dropped first and the scanned part is stretched to a full
    frame, as the SPM-Toolbox export did; fewer than ``min_lines`` scanned lines is an error.

    >>> prepare_frame(np.random.default_rng(0).normal(size=(256, 256))).shape
    (128, 128)
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise FrameError(f"scan: expected a 2-D height map, got shape {z.shape}")
    if np.isinf(z).any():
        raise FrameError(
            "scan: found inf values; expected finite heights (NaN marks unscanned lines)"
        )
    scanned = ~np.isnan(z).all(axis=1)
    z = z[scanned]
    if len(z) < min_lines:
        raise FrameError(f"scan: expected at least {min_lines} scanned lines, got {len(z)}")
    z = np.where(np.isnan(z), np.nanmean(z, axis=1, keepdims=True), z)
    # Offset and slope, not the mean alone: a tilted sample leaves a ramp along every line,
    # which would take the 8-bit range from the lattice (the family never saw such frames).
    z = level_lines(z)
    lo, hi = z.min(), z.max()
    g = (
        np.zeros(z.shape, np.uint8)
        if hi - lo <= 0
        else np.round((z - lo) * 255.0 / (hi - lo)).astype(np.uint8)
    )
    return np.asarray(Image.fromarray(g).resize((size, size), Image.BOX))
