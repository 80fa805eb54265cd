"""The label-conditioned DCGAN, the ×2 SRGAN upscaler, and generated frames as training data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gan_extras.dcgan import DCGANConfig, sample, train_dcgan
from gan_extras.extras import generated_frameset, resize, sampled_frameset
from gan_extras.srgan import PixelShuffle, SRGANConfig, train_srgan, upscale


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sim_frames):
    """A 2-step DCGAN at 32 px and a 2-step SRGAN 32 -> 64 px on simulated frames."""
    root = tmp_path_factory.mktemp("gans")
    fs = sim_frames.subset(np.arange(16))
    dc = DCGANConfig(size=32, latent=8, filters=4, steps=2, batch_size=4, checkpoint_every=1)
    train_dcgan(resize(fs.images, 32), fs.labels(), out_dir=root / "dc", config=dc, progress=False)
    sr = SRGANConfig(size=64, filters=4, blocks=1, disc_filters=4, steps=2, batch_size=4)
    train_srgan(resize(fs.images, 64), out_dir=root / "sr", config=sr, progress=False)
    return root, fs


def test_dcgan_samples_frames_with_the_training_label_rows(runs):
    root, fs = runs
    m = json.loads((root / "dc" / "manifest.json").read_text())
    rows = {tuple(r) for r, _ in m["label_rows"]}
    assert rows == {tuple(r) for r in fs.labels().astype(int).tolist()}
    x, y = sample(root / "dc", n=10, seed=0)
    assert x.shape == (10, 32, 32) and np.abs(x).max() <= 1.0
    assert {tuple(r) for r in y.astype(int).tolist()} <= rows
    x2, _ = sample(root / "dc", n=10, seed=0)
    np.testing.assert_array_equal(x, x2)  # seeded
    chosen = np.eye(6, dtype=np.float32)[[3, 3]]
    assert np.array_equal(sample(root / "dc", n=2, labels=chosen)[1], chosen)
    with pytest.raises(ValueError, match=r"labels: expected shape \(3, 6\)"):
        sample(root / "dc", n=3, labels=chosen)


def test_srgan_doubles_the_size_and_the_pipeline_makes_labelled_frames(runs):
    root, _ = runs
    big = upscale(root / "sr", np.zeros((3, 32, 32), np.float32) + np.eye(32)[None])
    assert big.shape == (3, 64, 64) and big.dtype == np.uint8
    fs = sampled_frameset(root / "dc", n=5, srgan_dir=root / "sr", seed=1)
    assert fs.images.shape == (5, 64, 64) and fs.labelled.all()
    assert fs.sessions[0] == "dcgan+srgan:0"
    with pytest.raises(ValueError, match="expected 32x32 frames to upscale"):
        upscale(root / "sr", np.zeros((1, 16, 16), np.uint8))


def test_pixel_shuffle_matches_depth_to_space():
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(2, 3, 5, 8)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(PixelShuffle(2)(x)), tf.nn.depth_to_space(x, 2).numpy()
    )


def test_dcgan_bad_input_says_what_it_expected(tmp_path, sim_frames):
    with pytest.raises(ValueError, match="multiple of 16"):
        DCGANConfig(size=40)
    with pytest.raises(ValueError, match="DCGANConfig: expected steps >= 1, got 0"):
        DCGANConfig(steps=0)
    with pytest.raises(ValueError, match="expected 32x32 frames"):
        train_dcgan(
            sim_frames.images,
            sim_frames.labels(),
            out_dir=tmp_path,
            config=DCGANConfig(size=32),
            progress=False,
        )
    with pytest.raises(ValueError, match=r"0/1 labels of shape \(60, 6\)"):
        train_dcgan(
            resize(sim_frames.images, 32),
            sim_frames.mean_scores[:, :5],
            out_dir=tmp_path,
            config=DCGANConfig(size=32),
            progress=False,
        )
    with pytest.raises(FileNotFoundError, match="python -m gan_extras dcgan"):
        sample(tmp_path / "none", n=1)


def test_extra_data_joins_the_training_set_only(tmp_path, sim_frames):
    from training.data import save_frames
    from training.run import with_extras

    gen = generated_frameset(sim_frames.images[:7], sim_frames.labels()[:7], kind="dcgan")
    save_frames(gen, tmp_path / "gen.h5")
    save_frames(sim_frames.subset(np.arange(4)), tmp_path / "same_sessions.h5")
    both = with_extras(sim_frames, [tmp_path / "gen.h5", tmp_path / "same_sessions.h5"])
    assert len(both) == 60 + 7 + 4
    assert set(both.sessions[60:67]) == {"dcgan:0"}
    # sessions that collide with the training set's are renamed, so a split keeps them apart
    assert all(s.startswith("extra1:") for s in both.sessions[67:])

    save_frames(
        generated_frameset(resize(sim_frames.images[:2], 32), np.ones((2, 6)), kind="x"),
        tmp_path / "small.h5",
    )
    with pytest.raises(ValueError, match=r"expected extra frames of \(128, 128\)"):
        with_extras(sim_frames, [tmp_path / "small.h5"])


def test_main_training_takes_extra_data(tmp_path, sim_frames, capsys):
    import main_training
    from training.data import save_frames

    save_frames(
        generated_frameset(sim_frames.images[:8], sim_frames.labels()[:8], kind="dcgan"),
        tmp_path / "gen.h5",
    )
    save_frames(sim_frames.subset(np.arange(24)), tmp_path / "data.h5")
    rc = main_training.main(
        [
            "--data",
            str(tmp_path / "data.h5"),
            "--extra-data",
            str(tmp_path / "gen.h5"),
            "--out-root",
            str(tmp_path),
            "--name",
            "fam",
            "--width",
            "0.125",
            "--max-filters",
            "16",
            "--epochs",
            "1",
            "--members",
            "1",
            "--quiet",
        ]
    )
    assert rc == 0
    assert "extra training frames: 8" in capsys.readouterr().out
    m = json.loads((tmp_path / "fam" / "manifest.json").read_text())
    assert m["data"]["n_frames"] == 32 and "gen.h5" in m["data"]["path"]
