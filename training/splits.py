"""Splits by scan session, never by image.

A scan session holds many near-identical frames (the same tip over the same terrace), so a split
by image puts twins on both sides and overstates accuracy. Every split here keeps a session whole.
The single image-level split (:func:`replicate_2018_split`) exists only to reproduce the 2018
protocol in the accuracy benchmark, and says so in its name.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit


def session_kfold(
    sessions: np.ndarray, *, n_splits: int = 5, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for a session-grouped k-fold (folds balanced in size).

    >>> s = np.array(["a", "a", "b", "b", "c", "c"])
    >>> [sorted(set(s[te])) for _, te in session_kfold(s, n_splits=3)]  # doctest: +SKIP
    [['a'], ['b'], ['c']]
    """
    sessions = np.asarray(sessions).astype(str)
    n_groups = len(np.unique(sessions))
    if n_groups < n_splits:
        raise ValueError(f"session_kfold: expected at least {n_splits} sessions, got {n_groups}")
    # GroupKFold balances fold sizes greedily; shuffling the groups first (seeded) varies folds.
    gkf = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    yield from gkf.split(np.zeros(len(sessions)), groups=sessions)


def session_split(
    sessions: np.ndarray, *, val_fraction: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One train/validation split by session; about ``val_fraction`` of the frames validate."""
    sessions = np.asarray(sessions).astype(str)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction}")
    if len(np.unique(sessions)) < 2:
        raise ValueError("session_split: expected at least 2 sessions, got 1")
    gss = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(gss.split(np.zeros(len(sessions)), groups=sessions))
    return train, val


def replicate_2018_split(
    n: int, *, copies: int = 10, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The flawed 2018 protocol: each frame copied ``copies`` times, then a random split.

    Returns indices into the *original* frames for the train and test rows (with repeats), so a
    test frame almost always has an identical twin in training. Only for showing that effect.
    """
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), copies)
    rng.shuffle(rows)
    cut = round(len(rows) * (1 - test_fraction))
    return rows[:cut], rows[cut:]
