"""Where the benchmarks find the real frames, and what they say when they are not there.

>>> REAL_DEV.name
'hsi128_dev.h5'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the clone, as the project's README sets it up.
REAL_DEV = ROOT.parent / "shared" / "data" / "hsi" / "hsi128_dev.h5"


def add_data_argument(ap: argparse.ArgumentParser) -> None:
    """``--data``: the labelled real frames (default :data:`REAL_DEV`)."""
    ap.add_argument("--data", default=str(REAL_DEV), help="labelled real frames (HDF5)")


def real_data_missing(path: str | Path) -> bool:
    """True (after saying where to get them) when the real frames are not at ``path``."""
    if Path(path).exists():
        return False
    print(f"real frames not found: {path} (see ../shared/data/hsi/README.md)", file=sys.stderr)
    return True


def load_labelled(path: str | Path):
    """The labelled real frames at ``path`` and their 0/1 labels by the crowd-mean > 0.5 rule.

    Every benchmark scores against these (unlabelled rows dropped), so they load them one way.
    """
    from training.data import load_frames

    real = load_frames(path)
    real = real.subset(real.labelled)
    return real, real.labels("gt0.5")


def split_sessions(sessions, seed: int):
    """Boolean mask of half A of the real sessions (seeded); half B is the rest.

    Used where something is tuned on real frames (half A) and must be scored on frames it never
    saw (half B): the GAN extras, the spectral companion's choices.
    """
    import numpy as np

    names = np.unique(sessions)
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    return np.isin(sessions, names[: len(names) // 2])


# One letter per category, in CATEGORIES order, for frame titles in the benchmarks' pictures.
CODES = "AIDRTB"


def label_codes(labels) -> str:
    """A frame's 0/1 labels as letters, ``.`` where absent.

    >>> label_codes([0, 0, 1, 1, 0, 1])
    '..DR.B'
    """
    return "".join(CODES[k] if v else "." for k, v in enumerate(labels))


def pick_categories(names) -> list[str]:
    """``--categories`` checked against the six (all six when none are given).

    >>> pick_categories(["Rows"]), len(pick_categories(None))
    (['Rows'], 6)
    """
    from training.data import CATEGORIES

    wanted = list(names) if names else list(CATEGORIES)
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"--categories: expected names from {list(CATEGORIES)}, got {unknown}")
    return wanted
