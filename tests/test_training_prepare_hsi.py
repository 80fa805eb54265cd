import numpy as np
import pytest
from conftest import HSI, HSI_H5, needs_shared

from training.data import DataFormatError, load_frames
from training.palette import NANOMAP_RGB
from training.prepare_hsi import main, rgb_to_grey, session_of


def test_palette_is_monotonic_in_luminance():
    lum = NANOMAP_RGB.astype(float) @ [0.2989, 0.587, 0.114]
    assert NANOMAP_RGB.shape == (255, 3)
    assert np.all(np.diff(lum) > 0)


def test_rgb_to_grey_maps_palette_ranks_and_rejects_foreign_colours():
    rgb = NANOMAP_RGB[[0, 127, 254]][None]
    assert rgb_to_grey(rgb).tolist() == [[0, 128, 255]]
    bad = np.array([[[1, 200, 3]]], np.uint8)
    with pytest.raises(DataFormatError, match="not colours of the nanomap palette"):
        rgb_to_grey(bad)


def test_session_of():
    assert (
        session_of("default_2015Feb11-102853_STM-STM_Spectroscopy--16_6.png") == "2015Feb11-102853"
    )


@needs_shared
def test_converter_reproduces_the_reference_rows(tmp_path):
    raw = HSI / "raw_sample"
    out = tmp_path / "raw.h5"
    assert main([str(raw), str(raw / "Classified_Output_10-Aug-2017.xlsx"), str(out)]) == 0
    mine, ref = load_frames(out), load_frames(HSI_H5)
    idx = {n: i for i, n in enumerate(ref.names)}
    j = np.array([idx[n] for n in mine.names])
    assert len(j) == 24
    diff = np.abs(mine.images.astype(int) - ref.images[j].astype(int))
    assert diff.max() <= 1
    np.testing.assert_array_equal(np.isnan(mine.mean_scores), np.isnan(ref.mean_scores[j]))
    np.testing.assert_allclose(
        np.nan_to_num(mine.mean_scores), np.nan_to_num(ref.mean_scores[j]), atol=1e-6
    )
    np.testing.assert_allclose(
        np.nan_to_num(mine.agreement), np.nan_to_num(ref.agreement[j]), atol=1e-6
    )
    assert (mine.sessions == ref.sessions[j]).all()
    assert (mine.orig_hw == ref.orig_hw[j]).all()
    assert (mine.complete == ref.complete[j]).all()
    assert (mine.n_responses == ref.n_responses[j]).all()
