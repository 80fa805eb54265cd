"""Simulated sessions and datasets in the project's format.

A *session* is one simulated tip over one sample: the tip state drifts and sometimes changes
(mid-frame, which makes a "Tip change" frame), so frames of a session are correlated the way
real ones are, and session-grouped splits stay meaningful.

    python -m stm_sim make-dataset sim.h5 --n 50000 --seed 0
"""

from __future__ import annotations

import numpy as np

from stm_sim.params import (
    CATEGORIES,
    TIP_STATES,
    TipChange,
    labels_from_params,
    sample_frame_params,
    sample_tip,
)
from stm_sim.render import render

STATE_P = np.array([0.12, 0.42, 0.22, 0.24])
CHANGE_P = 0.12  # chance that the tip changes during a frame


def simulate_session(n: int, rng: np.random.Generator, *, size: int = 128):
    """Yield ``(frame uint8, labels uint8[6], params)`` for ``n`` consecutive frames."""
    states = list(TIP_STATES)
    state = str(rng.choice(states, p=STATE_P))
    rotation = float(rng.choice([0.0, 45.0, 90.0, 135.0]) + rng.uniform(-3, 3))
    for _ in range(n):
        fp = sample_frame_params(
            rng, state=state, size=size, rotation=rotation + rng.normal(0, 0.5)
        )
        if rng.random() < CHANGE_P:
            new_state = str(rng.choice([s for s in states if s != state]))
            after = sample_tip(rng, new_state)
            after.elongation_angle = fp.tip.elongation_angle
            fp.tip_change = TipChange(
                line=int(rng.integers(size // 8, size - size // 8)),
                after=after,
                jump=float(rng.normal(0, 0.3)),
                streak=float(rng.uniform(0.2, 0.8)),
                streak_lines=int(rng.integers(0, 4)),
            )
            state = new_state
        if rng.random() < 0.1:  # the operator moves to a new area: rows turn
            rotation = float(rng.choice([0.0, 45.0, 90.0, 135.0]) + rng.uniform(-3, 3))
        yield render(fp, rng), labels_from_params(fp), fp


def make_arrays(
    n: int, *, seed: int = 0, size: int = 128, session_length: int = 100, progress: bool = False
) -> dict[str, np.ndarray]:
    """``n`` frames in sessions of about ``session_length``: arrays of the project's format."""
    if n < 1:
        raise ValueError(f"n: expected a positive number of frames, got {n}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.uint8)
    labels = np.empty((n, len(CATEGORIES)), np.float32)
    sessions = np.empty(n, dtype=object)
    names = np.empty(n, dtype=object)
    i, s = 0, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="simulating", unit="frame")
    while i < n:
        length = int(min(n - i, max(5, rng.poisson(session_length))))
        sid = f"sim{seed}-{s:04d}"
        for k, (frame, lab, _) in enumerate(simulate_session(length, rng, size=size)):
            images[i], labels[i] = frame, lab
            sessions[i], names[i] = sid, f"{sid}_{k:04d}"
            i += 1
        if bar is not None:
            bar.update(length)
        s += 1
    if bar is not None:
        bar.close()
    return {
        "images": images,
        "mean_scores": labels,
        "sessions": sessions.astype(str),
        "names": names.astype(str),
    }


def make_frameset(n: int, *, seed: int = 0, size: int = 128, progress: bool = False):
    """A :class:`training.data.FrameSet` of simulated frames (hard labels as crowd means)."""
    from training.data import FrameSet

    return FrameSet(**make_arrays(n, seed=seed, size=size, progress=progress))
