"""Shared fixtures: small simulated data, a tiny trained family, the path to ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
HSI = SHARED / "data" / "hsi"
HSI_H5 = HSI / "hsi128_dev.h5"

needs_shared = pytest.mark.skipif(
    not HSI_H5.exists(),
    reason=f"real frames not found at {HSI} (the ../shared checkout beside this repo); "
    "see README 'Real data'",
)

TINY = dict(width=0.125, max_filters=32, epochs=1, batch_size=32, members_per_category=3)


@pytest.fixture(scope="session")
def sim_frames():
    """60 simulated labelled frames, all in one session (sessions average 100 frames)."""
    from stm_sim.dataset import make_frameset

    return make_frameset(60, seed=3)


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory, sim_frames):
    """A complete 18-member family of tiny DeepDogs trained for one epoch."""
    from training.config import TrainConfig
    from training.trainer import train_family

    out = tmp_path_factory.mktemp("fam") / "tiny"
    return train_family(sim_frames, TrainConfig(**TINY), out, verbose=0)


@pytest.fixture(scope="session")
def tiny_family(tiny_family_dir):
    from cnn_family import Family

    return Family.load(tiny_family_dir)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
