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


def tile_scan(
    z: np.ndarray, size_nm: float, *, tile_nm: float = 3.7, min_pixels: int = 48
) -> list[tuple[str, np.ndarray]]:
    """Cut a raw height map into square ``tile_nm`` tiles: the field the family learned from.

    The family learned from frames about 3.7 nm across; a 20 nm scan resized whole shows the
    lattice five times too fine. Tiles are non-overlapping and centred on the scanned part
    (unscanned NaN lines dropped first); a scan less than 1.5 tiles across is returned whole.
    ``size_nm`` is the fast-axis width, pixels are taken as square. Each tile is raw heights:
    level it with :func:`prepare_frame`, as the real export levelled each frame on its own.
    Returns ``(name, heights)`` pairs, named ``r<row>c<column>``.

    >>> tiles = tile_scan(np.zeros((512, 512)), 11.2)
    >>> [name for name, _ in tiles], tiles[0][1].shape
    (['r0c0', 'r0c1', 'r0c2', 'r1c0', 'r1c1', 'r1c2', 'r2c0', 'r2c1', 'r2c2'], (169, 169))
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise FrameError(f"scan: expected a 2-D height map, got shape {z.shape}")
    if not size_nm > 0:
        raise FrameError(f"scan: expected its width in nm to tile it, got {size_nm!r}")
    z = z[~np.isnan(z).all(axis=1)]
    if size_nm < 1.5 * tile_nm:
        return [("r0c0", z)]
    px = round(tile_nm / size_nm * z.shape[1])
    if px < min_pixels:
        raise FrameError(
            f"scan: expected at least {min_pixels} pixels per {tile_nm} nm tile to resolve the "
            f"lattice, got {px} ({z.shape[1]} pixels over {size_nm:.3g} nm)"
        )
    rows, cols = len(z) // px, z.shape[1] // px
    if rows == 0:
        raise FrameError(f"scan: expected at least {px} scanned lines for one tile, got {len(z)}")
    top, left = (len(z) - rows * px) // 2, (z.shape[1] - cols * px) // 2
    return [
        (f"r{r}c{c}", z[top + r * px : top + (r + 1) * px, left + c * px : left + (c + 1) * px])
        for r in range(rows)
        for c in range(cols)
    ]
