"""Precise BatchNorm: moving statistics become the population statistics under the final weights."""

import json

import keras
import numpy as np
import pytest

from cnn_family import CNN_global
from training.precise_bn import apply_to_family, precise_batchnorm


def test_statistics_are_the_batch_averages_under_the_final_weights(rng):
    keras.utils.set_random_seed(0)
    model = CNN_global("deepdog")((32, 32, 1), 1, width=0.125, max_filters=32)
    x = rng.integers(0, 256, (64, 32, 32)).astype(np.uint8)
    conv0 = keras.Model(model.input, model.get_layer("conv0").output)
    precise_batchnorm(model, x, batch_size=32)
    # Two batches of 32 (sorted within each batch, so the order of frames does not matter).
    pick = np.random.default_rng(0).permutation(64)
    feats = [
        np.asarray(conv0(x[np.sort(pick[i : i + 32])][..., None].astype(np.float32)))
        for i in (0, 32)
    ]
    want_mean = np.mean([f.mean(axis=(0, 1, 2)) for f in feats], axis=0)
    want_var = np.mean([f.var(axis=(0, 1, 2)) for f in feats], axis=0)
    bn = model.get_layer("conv0_bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), want_var, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99  # restored
    with pytest.raises(ValueError, match="at least one batch"):
        precise_batchnorm(model, x[:10], batch_size=32)


def test_trained_family_says_so_and_reapplying_is_a_no_op(tiny_family_dir, sim_frames):
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    assert m["batchnorm"].startswith("precise")
    assert apply_to_family(tiny_family_dir, sim_frames) is False


def test_resuming_a_family_from_before_precise_bn_processes_its_kept_members(tmp_path, sim_frames):
    from conftest import TINY

    from training.config import TrainConfig
    from training.trainer import train_family

    cfg = dict(TINY, members_per_category=1, categories=("Rows", "Bad/blurry"))
    out = train_family(sim_frames, TrainConfig(**cfg, precise_bn=False), tmp_path / "f", verbose=0)
    # A config written before the field existed: it loads with today's default (precise_bn on).
    raw = json.loads((out / "config.json").read_text())
    raw.pop("precise_bn")
    (out / "config.json").write_text(json.dumps(raw))
    before = keras.models.load_model(out / "members/rows_0.keras", compile=False)
    mean_before = before.get_layer("conv0_bn").moving_mean.numpy()

    train_family(sim_frames, TrainConfig(**cfg), out, verbose=0)  # every member kept
    m = json.loads((out / "manifest.json").read_text())
    assert m["batchnorm"].startswith("precise")
    after = keras.models.load_model(out / "members/rows_0.keras", compile=False)
    assert not np.allclose(after.get_layer("conv0_bn").moving_mean.numpy(), mean_before)
    # Processing it again changes nothing: the marker is trusted once the run has finished.
    assert apply_to_family(out, sim_frames) is False


def test_an_existing_family_is_processed_once_and_an_interrupted_pass_resumes(tmp_path, sim_frames):
    from conftest import TINY

    from cnn_family import Family
    from training.config import TrainConfig
    from training.trainer import train_family

    cfg = dict(TINY, members_per_category=1, categories=("Rows", "Bad/blurry"))
    out = train_family(sim_frames, TrainConfig(**cfg, precise_bn=False), tmp_path / "f", verbose=0)
    Family.load(out).export(out / "family.keras")
    mf = out / "manifest.json"
    m = json.loads(mf.read_text())
    assert "batchnorm" not in m

    def bn_mean(name):
        model = keras.models.load_model(out / f"members/{name}.keras", compile=False)
        return model.get_layer("conv0_bn").moving_mean.numpy()

    # A pass killed after its first member: that member is on record and is not redone.
    m["precise_bn_members"] = ["rows_0"]
    mf.write_text(json.dumps(m))
    rows, bad = bn_mean("rows_0"), bn_mean("bad_blurry_0")

    assert apply_to_family(out, sim_frames) is True
    np.testing.assert_array_equal(bn_mean("rows_0"), rows)
    assert not np.allclose(bn_mean("bad_blurry_0"), bad)
    m = json.loads(mf.read_text())
    assert m["batchnorm"].startswith("precise") and "precise_bn_members" not in m
    # The one-file export is rewritten from the updated members.
    np.testing.assert_allclose(
        Family.load_exported(out / "family.keras").predict_members(sim_frames.images[:8]),
        Family.load(out).predict_members(sim_frames.images[:8]),
        atol=1e-5,
    )
    assert apply_to_family(out, sim_frames) is False

    m["status"] = "training"
    mf.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="expected a complete family"):
        apply_to_family(out, sim_frames)
