"""Simulated sessions and datasets in the project's format.

A *session* is one simulated tip over one sample: the tip state drifts and sometimes changes
(mid-frame, which makes a "Tip change" frame), so frames of a session are correlated the way
real ones are, and session-grouped splits stay meaningful.

    python -m stm_sim make-dataset sim.h5 --n 50000 --seed 0
"""

from __future__ import annotations

import os

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


def _one_blas_thread() -> None:
    # Worker processes must not each start a multi-threaded BLAS: on 2 cores two workers with
    # 2 BLAS threads each run slower than one process. threadpoolctl comes with scikit-learn;
    # without it the workers simply run as they are.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _render_session(job: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, s, length, size = job
    rng = np.random.default_rng([seed, s])  # each session its own stream: any worker count
    images = np.empty((length, size, size), np.uint8)
    labels = np.empty((length, len(CATEGORIES)), np.float32)
    for k, (frame, lab, _) in enumerate(simulate_session(length, rng, size=size)):
        images[k], labels[k] = frame, lab
    return images, labels


def make_arrays(
    n: int,
    *,
    seed: int = 0,
    size: int = 128,
    session_length: int = 100,
    progress: bool = False,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """``n`` frames in sessions of about ``session_length``: arrays of the project's format.

    Sessions are rendered in ``workers`` processes (default: all cores for 2,000 frames or
    more, else one); the result does not depend on the number of workers.
    """
    if n < 1:
        raise ValueError(f"n: expected a positive number of frames, got {n}")
    plan = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < n:
        lengths.append(int(min(n - sum(lengths), max(5, plan.poisson(session_length)))))
    jobs = [(seed, s, length, size) for s, length in enumerate(lengths)]
    if workers is None:
        workers = (os.cpu_count() or 1) if n >= 2000 else 1
    images = np.empty((n, size, size), np.uint8)
    labels = np.empty((n, len(CATEGORIES)), np.float32)
    sessions, names = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="simulating", unit="frame")
    pool = None
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(workers, initializer=_one_blas_thread)
        results = pool.imap(_render_session, jobs)
    else:
        results = map(_render_session, jobs)
    i = 0
    try:
        for (seed_, s, length, _), (imgs, labs) in zip(jobs, results, strict=True):
            images[i : i + length], labels[i : i + length] = imgs, labs
            sid = f"sim{seed_}-{s:04d}"
            sessions += [sid] * length
            names += [f"{sid}_{k:04d}" for k in range(length)]
            i += length
            if bar is not None:
                bar.update(length)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()
    return {
        "images": images,
        "mean_scores": labels,
        "sessions": np.array(sessions, dtype=str),
        "names": np.array(names, dtype=str),
    }


def make_frameset(
    n: int,
    *,
    seed: int = 0,
    size: int = 128,
    session_length: int = 100,
    progress: bool = False,
    workers: int | None = None,
):
    """A :class:`training.data.FrameSet` of simulated frames (hard labels as crowd means)."""
    from training.data import FrameSet

    return FrameSet(
        **make_arrays(
            n,
            seed=seed,
            size=size,
            session_length=session_length,
            progress=progress,
            workers=workers,
        )
    )
