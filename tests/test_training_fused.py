"""The fused engine trains the same members as the sequential one; shards merge into one family."""

import json

import numpy as np
import pytest
from conftest import TINY

from cnn_family import Family, FamilyFormatError
from training import trainer
from training.config import TrainConfig
from training.shards import ShardMismatchError, merge_shards
from training.trainer import train_family

# Two categories x 2 members, one batch per epoch (batch >= frames): the batch order cannot
# differ between engines, so the members must come out equal, not merely similar.
CFG = TrainConfig(
    **{**TINY, "epochs": 2, "batch_size": 64, "members_per_category": 2, "augment": False},
    categories=("Dimers", "Bad/blurry"),
)


@pytest.fixture(scope="module")
def frames():
    from stm_sim.dataset import make_frameset

    return make_frameset(48, seed=5, session_length=12)


def _weights(d):
    fam = Family.load(d)
    return {m.name: m.get_weights() for c in fam.categories for m in fam.members[c]}


def _assert_same_members(a, b, atol=2e-4):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        for x, y in zip(wa[k], wb[k], strict=True):
            np.testing.assert_allclose(x, y, atol=atol, err_msg=k)


@pytest.fixture(scope="module")
def sequential_dir(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "fam"
    return train_family(frames, CFG, out, engine="sequential", verbose=0)


def test_fused_branches_equal_sequential_members(frames, sequential_dir, tmp_path):
    fused = train_family(
        frames, CFG, tmp_path / "fused", engine="fused", layout="branches", verbose=0
    )
    _assert_same_members(sequential_dir, fused)
    m = json.loads((fused / "manifest.json").read_text())
    assert m["engine"] == "fused" and m["status"] == "complete"
    h = json.loads((fused / "history" / "dimers_0.json").read_text())
    assert len(h["loss"]) == 2 and len(h["auc"]) == 2  # per-member curves, one point per epoch


def test_stacked_layout_equals_branches(frames, sequential_dir, tmp_path):
    stacked = train_family(
        frames, CFG, tmp_path / "st", engine="fused", layout="stacked", verbose=0
    )
    _assert_same_members(sequential_dir, stacked)


def test_mirrored_strategy_trains_the_same_members(frames, sequential_dir, tmp_path):
    d = train_family(
        frames,
        CFG,
        tmp_path / "mir",
        engine="fused",
        layout="branches",
        distribute="mirrored",
        verbose=0,
    )
    _assert_same_members(sequential_dir, d)


def test_bootstrap_members_see_their_own_samples(frames, tmp_path):
    cfg = TrainConfig(**{**CFG.to_dict(), "categories": ("Bad/blurry",), "bootstrap": True})
    d = train_family(frames, cfg, tmp_path / "boot", engine="fused", verbose=0)
    w = _weights(d)
    a, b = w["bad_blurry_0"], w["bad_blurry_1"]
    assert any(not np.allclose(x, y) for x, y in zip(a, b, strict=True))


def test_interrupted_fused_run_resumes_after_its_last_epoch(
    frames, tmp_path, monkeypatch, capsys, recwarn
):
    cfg = TrainConfig(**{**CFG.to_dict(), "categories": ("Dimers",)})
    real_init = trainer._EpochCheckpoint.__init__

    def init_then_die(self, *a, **kw):
        real_init(self, *a, **kw)
        save = self.callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            save(epoch, logs)
            raise KeyboardInterrupt  # as if the machine went away after epoch 1

        self.callback.on_epoch_end = on_epoch_end

    monkeypatch.setattr(trainer._EpochCheckpoint, "__init__", init_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_family(frames, cfg, tmp_path / "r", engine="fused", verbose=0)
    assert (tmp_path / "r" / "checkpoints" / "fused.keras").exists()
    monkeypatch.undo()
    capsys.readouterr()
    d = train_family(frames, cfg, tmp_path / "r", engine="fused", verbose=0)
    assert "resuming after epoch 1" in capsys.readouterr().out
    # The optimizer state came back with the weights (Keras warns when it cannot restore it).
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]
    assert not (d / "checkpoints").exists()
    h = json.loads((d / "history" / "dimers_0.json").read_text())
    assert len(h["loss"]) == 2  # the epoch before the interrupt is kept in the curves


def test_two_shards_merge_into_the_one_run_family(frames, sequential_dir, tmp_path):
    s0 = train_family(frames, CFG, tmp_path / "s0", engine="fused", members="0-1", verbose=0)
    s1 = train_family(frames, CFG, tmp_path / "s1", engine="sequential", members=[2, 3], verbose=0)
    m0 = json.loads((s0 / "manifest.json").read_text())
    assert m0["status"] == "partial" and m0["shard"] == {"members": [0, 1], "of": 4}
    with pytest.raises(FamilyFormatError, match="merge the shards"):
        Family.load(s0)
    with pytest.raises(ShardMismatchError, match="none of the shards"):
        merge_shards([s0], tmp_path / "half")

    merged = merge_shards([s0, s1], tmp_path / "merged")
    one = json.loads((sequential_dir / "manifest.json").read_text())
    got = json.loads((merged / "manifest.json").read_text())
    volatile = {"command", "train_seconds_this_run", "engine", "merged_from"}
    assert {k: v for k, v in got.items() if k not in volatile} == {
        k: v for k, v in one.items() if k not in volatile
    }
    assert (merged / "config.json").read_text() == (sequential_dir / "config.json").read_text()
    _assert_same_members(sequential_dir, merged)
    # the companion every shard fitted on the same frames comes along
    assert (merged / "spectral_companion.json").read_text() == (
        sequential_dir / "spectral_companion.json"
    ).read_text()

    other = train_family(
        frames,
        TrainConfig(**{**CFG.to_dict(), "epochs": 1}),
        tmp_path / "o",
        members="2-3",
        verbose=0,
    )
    with pytest.raises(ShardMismatchError, match="another configuration"):
        merge_shards([s0, other], tmp_path / "bad")


def test_bad_engine_options_are_named(frames, tmp_path):
    with pytest.raises(ValueError, match="engine"):
        train_family(frames, CFG, tmp_path / "x", engine="parallel")
    with pytest.raises(ValueError, match="outside"):
        train_family(frames, CFG, tmp_path / "x", members="0-9")
