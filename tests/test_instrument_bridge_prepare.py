import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from instrument_bridge.prepare import FrameError, prepare_frame


def test_levels_and_resizes(rng):
    z = rng.normal(size=(256, 256)) + np.linspace(0, 50, 256)[:, None]  # a slope per line
    f = prepare_frame(z)
    assert f.shape == (128, 128) and f.dtype == np.uint8 and f.min() == 0 and f.max() >= 250


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
