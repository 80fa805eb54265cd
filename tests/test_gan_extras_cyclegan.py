"""The CycleGAN: small runs learn, resume exactly, refuse a changed configuration, translate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gan_extras import core
from gan_extras.cyclegan import CycleGANConfig, train_cyclegan, translate
from gan_extras.extras import translated_frameset

SMALL = dict(size=32, filters=4, depth=2, disc_filters=4, batch_size=4, checkpoint_every=2)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    # "simulated": clean stripes; "real": the same stripes, noisy and dimmer
    x = np.arange(32)
    stripes = (127 + 100 * np.sin(2 * np.pi * x / 8))[None, None, :] * np.ones((12, 32, 1))
    sim = stripes + rng.normal(0, 5, stripes.shape)
    real = 0.6 * stripes + 40 + rng.normal(0, 25, stripes.shape)
    return np.clip(sim, 0, 255).astype(np.uint8), np.clip(real, 0, 255).astype(np.uint8)


def _weights(path):
    with np.load(path / "checkpoint.npz") as z:
        return [z[k] for k in sorted(z.files) if k.startswith("sim_to_real/") and k[-1] != "n"]


def test_cyclegan_trains_saves_and_resumes_where_it_stopped(tmp_path, frames):
    sim, real = frames
    cfg = CycleGANConfig(steps=4, seed=1, **SMALL)
    train_cyclegan(sim, real, out_dir=tmp_path / "straight", config=cfg, progress=False)
    # An interrupted run: 2 steps, then the same call asked for 4 continues from step 2.
    half = CycleGANConfig(steps=2, seed=1, **SMALL)
    train_cyclegan(sim, real, out_dir=tmp_path / "resumed", config=half, progress=False)
    train_cyclegan(sim, real, out_dir=tmp_path / "resumed", config=cfg, progress=False)

    m = json.loads((tmp_path / "straight" / "manifest.json").read_text())
    assert m["kind"] == "cyclegan" and m["config"]["fourier"] is True
    assert {"adv", "cycle", "identity", "d_real", "d_real_fft"} <= set(m["final_losses"])
    for a, b in zip(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)

    out = translate(tmp_path / "straight", sim[:3])
    assert out.shape == (3, 32, 32) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255  # min-max stretched, as exported scans are


def test_a_run_in_pieces_ends_where_an_unbroken_one_does(tmp_path, frames):
    # stop_at splits one run (one learning-rate schedule, unlike a growing `steps`) into pieces,
    # as a Colab notebook does between Drive uploads.
    sim, real = frames
    cfg = CycleGANConfig(steps=4, seed=3, decay_from=0.25, **SMALL)
    train_cyclegan(sim, real, out_dir=tmp_path / "straight", config=cfg, progress=False)
    pieces = tmp_path / "pieces"
    for stop in (1, 3):
        train_cyclegan(sim, real, out_dir=pieces, config=cfg, progress=False, stop_at=stop)
        assert core.checkpoint_step(pieces) == stop
        assert not (pieces / "sim_to_real.keras").exists()  # no generator until the run ends
    train_cyclegan(sim, real, out_dir=pieces, config=cfg, progress=False)
    assert core.checkpoint_step(pieces) == 4 and (pieces / "sim_to_real.keras").exists()
    for a, b in zip(_weights(tmp_path / "straight"), _weights(pieces), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="stop_at: expected a step count >= 1, got 0"):
        train_cyclegan(sim, real, out_dir=pieces, config=cfg, progress=False, stop_at=0)


def test_cyclegan_refuses_another_configuration_in_the_same_folder(tmp_path, frames):
    sim, real = frames
    cfg = CycleGANConfig(steps=1, **SMALL)
    train_cyclegan(sim, real, out_dir=tmp_path, config=cfg, progress=False)
    other = CycleGANConfig(steps=1, **{**SMALL, "filters": 8})
    with pytest.raises(core.GanResumeError, match=r"filters: 4 -> 8"):
        train_cyclegan(sim, real, out_dir=tmp_path, config=other, progress=False)


def test_cyclegan_bad_input_says_what_it_expected(tmp_path, frames):
    sim, real = frames
    with pytest.raises(ValueError, match="CycleGANConfig: expected size a multiple of 16"):
        CycleGANConfig(size=40, depth=4)
    with pytest.raises(ValueError, match="expected 32x32 frames, got \\(16, 16\\)"):
        train_cyclegan(
            sim, real[:, :16, :16], out_dir=tmp_path, config=CycleGANConfig(**SMALL), progress=False
        )
    with pytest.raises(FileNotFoundError, match=r"sim_to_real\.keras"):
        translate(tmp_path / "nothing", sim)


def test_translated_frames_keep_labels_and_mark_their_sessions(tmp_path, sim_frames):
    import keras

    from gan_extras.cyclegan import unet_generator

    gen = unet_generator(size=128, filters=2, depth=4)
    keras.utils.set_random_seed(0)
    fs = translated_frameset(gen, sim_frames.subset(np.arange(5)))
    np.testing.assert_array_equal(fs.mean_scores, sim_frames.mean_scores[:5])
    assert all(s.startswith("cyclegan:") for s in fs.sessions)
    assert fs.images.shape == (5, 128, 128)


def test_log_power_spectrum_finds_a_lattice_period():
    x = np.arange(32)
    frame = np.sin(2 * np.pi * x / 8)[None, :] * np.ones((32, 1))
    spec = np.asarray(core.log_power_spectrum(frame[None, :, :, None].astype(np.float32)))[
        0, ..., 0
    ]
    assert abs(spec.mean()) < 1e-4 and abs(spec.std() - 1) < 1e-3  # standardised per frame
    # centred: zero frequency at (16, 16), the stripes' period of 8 px at 32 / 8 = 4 cycles
    row = spec[16]
    assert {int(i) for i in np.argsort(row)[-2:]} == {12, 20}
