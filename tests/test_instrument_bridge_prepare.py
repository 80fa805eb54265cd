import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from instrument_bridge.prepare import FrameError, prepare_frame


def test_levels_and_resizes():
    x = np.arange(256)
    z = np.sin(2 * np.pi * x / 32)[None, :] + np.linspace(0, 50, 256)[:, None]  # offset per line
    f = prepare_frame(z)
    assert f.shape == (128, 128) and f.dtype == np.uint8
    assert f.min() <= 5 and f.max() >= 250
    assert np.abs(f.astype(int) - f[0].astype(int)).max() <= 1  # the line offsets are gone


def test_a_tilted_sample_keeps_the_lattice():
    x = np.arange(256)
    lattice = np.sin(2 * np.pi * x / 32)[None, :] * np.cos(2 * np.pi * x / 16)[:, None]
    tilt = 0.2 * x[None, :] + 0.05 * x[:, None]  # 50 lattice heights across the frame
    a, b = prepare_frame(lattice).astype(int), prepare_frame(lattice + tilt).astype(int)
    assert np.abs(a - b).max() <= 1


def test_partial_frame_is_stretched_and_too_little_is_refused(rng):
    z = rng.normal(size=(64, 64))
    z[40:] = np.nan
    assert prepare_frame(z).shape == (128, 128)
    z[5:] = np.nan
    with pytest.raises(FrameError, match="at least 8 scanned lines"):
        prepare_frame(z)
    with pytest.raises(FrameError, match="2-D"):
        prepare_frame(np.zeros((2, 2, 2)))
    with pytest.raises(FrameError, match="inf"):
        prepare_frame(np.full((16, 16), np.inf))


def test_instrument_side_imports_no_tensorflow():
    code = "import instrument_bridge, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
