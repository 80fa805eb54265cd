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


def _ring_power(frame: np.ndarray, lo: float, hi: float) -> float:
    """Power of a frame between ``lo`` and ``hi`` cycles per frame."""
    x = frame.astype(float) - frame.mean()
    n = len(x)
    p = np.abs(np.fft.fft2(x * np.outer(np.hanning(n), np.hanning(n)))) ** 2
    f = np.fft.fftfreq(n, 1 / n)
    r = np.hypot(f[:, None], f[None, :])
    return float(p[(r >= lo) & (r < hi)].sum())


def test_tiles_of_a_large_scan_show_the_lattice_at_the_trained_scale():
    import stm_sim
    from instrument_bridge.prepare import tile_scan

    rng = np.random.default_rng(0)  # a row-resolving tip, its noise and defects as sampled
    fp = stm_sim.sample_frame_params(rng, state="rows", size=384)
    fp.fov *= 3  # an 11 nm scan: three times the field the family learned from
    z = stm_sim.render_height(fp, rng)
    tiles = tile_scan(z, fp.fov / 10, tile_nm=fp.fov / 30)
    assert [name for name, _ in tiles][:4] == ["r0c0", "r0c1", "r0c2", "r1c0"] and len(tiles) == 9
    # Rows every 7.68 A: about 4.8 cycles across a 3.7 nm frame, three times that across 11 nm.
    whole = prepare_frame(z)  # the row peak sits among noise and defects: above its neighbours
    assert _ring_power(whole, 12, 17) > 3 * max(
        _ring_power(whole, 8, 12), _ring_power(whole, 17, 21)
    )
    for _, t in tiles:
        tile = prepare_frame(t)
        assert _ring_power(tile, 3.5, 6.5) > 5 * _ring_power(tile, 12, 17)


def test_tile_scan_centres_drops_unscanned_lines_and_refuses_coarse_scans():
    from instrument_bridge.prepare import tile_scan

    z = np.zeros((300, 400))
    z[250:] = np.nan  # a partial scan: 250 lines done
    tiles = tile_scan(z, 20.0, tile_nm=5.0)  # 100 pixels a tile
    assert len(tiles) == 2 * 4 and all(t.shape == (100, 100) for _, t in tiles)
    assert not any(np.isnan(t).any() for _, t in tiles)
    assert tile_scan(np.zeros((64, 64)), 5.0, tile_nm=3.7)[0][1].shape == (64, 64)  # < 1.5 tiles
    with pytest.raises(FrameError, match=r"at least 48 pixels per 3.7 nm tile.*got 9"):
        tile_scan(np.zeros((256, 256)), 100.0)
    with pytest.raises(FrameError, match="width in nm"):
        tile_scan(np.zeros((256, 256)), 0.0)
