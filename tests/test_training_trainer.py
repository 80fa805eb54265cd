import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, TINY

from training.config import TrainConfig
from training.data import CATEGORIES
from training.trainer import (
    NumpyBatches,
    ResumeMismatchError,
    class_balance_weights,
    make_dataset,
    member_name,
    train_family,
)


def test_manifest_describes_the_family(tiny_family_dir):
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert m["architecture"] == "deepdog"
    assert len(m["members"]) == 18
    assert len({x["seed"] for x in m["members"]}) == 18  # distinct seeds
    assert m["categories"][0] == "Asymmetries" and m["categories"][-1] == "Bad/blurry"
    assert m["label_rule"] == "gt0.5"
    assert m["input"]["shape"] == [128, 128, 1] and "255" in m["input"]["normalisation"]
    assert len(m["data"]["fingerprint"]) == 64
    assert {"tensorflow", "keras", "numpy"} <= set(m["versions"])
    assert TrainConfig.load(tiny_family_dir / "config.json") == TrainConfig(**TINY)
    assert not (tiny_family_dir / "checkpoints").exists()
    for x in m["members"]:
        assert (tiny_family_dir / x["file"]).exists()
        assert (tiny_family_dir / "history" / f"{x['name']}.json").exists()


def test_member_names():
    assert member_name("Bad/blurry", 2) == "bad_blurry_2"
    assert member_name("Individual atoms", 0) == "individual_atoms_0"


def test_class_balance_weights_equalise_totals():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    w = class_balance_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    assert np.all(class_balance_weights(np.zeros(4)) == 1)


def test_augmentation_only_flips(rng):
    x = rng.integers(0, 256, (8, 16, 16), dtype=np.uint8)
    ds = make_dataset(x, np.zeros(8), batch_size=8, shuffle=False, augment=True, seed=0)
    xb, _ = next(iter(ds))
    for a, b in zip(np.asarray(xb)[..., 0], x, strict=True):
        assert any(np.array_equal(a, f) for f in (b, b[:, ::-1], b[::-1], b[::-1, ::-1]))


def test_numpy_pipeline_flips_covers_every_row_and_is_seeded(rng):
    """The pipeline other Keras backends (JAX on a GPU machine) train from."""
    x = rng.integers(0, 256, (10, 16, 16, 1), dtype=np.uint8)
    y = np.arange(10, dtype=np.float32)[:, None]
    w = np.linspace(1, 2, 10).astype(np.float32)
    a = NumpyBatches(x, y, w, batch_size=4, shuffle=True, augment=True, seed=3)
    b = NumpyBatches(x, y, w, batch_size=4, shuffle=True, augment=True, seed=3)
    assert len(a) == 2  # training drops the partial batch: one shape, one compiled step
    seen = []
    for i in range(len(a)):
        (xa, ya, wa), (xb, yb, _) = a[i], b[i]
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)  # same seed, same batches
        for frame, row in zip(xa[..., 0], ya[:, 0].astype(int), strict=True):
            src = x[row, ..., 0]
            assert any(
                np.array_equal(frame, f) for f in (src, src[:, ::-1], src[::-1], src[::-1, ::-1])
            )
            assert wa[list(ya[:, 0].astype(int)).index(row)] == w[row]  # weights follow rows
        seen += ya[:, 0].astype(int).tolist()
    assert len(set(seen)) == len(seen) == 8  # no row twice in an epoch
    plain = NumpyBatches(x, y, batch_size=4, shuffle=False, augment=False, seed=0)
    assert len(plain) == 3  # inference keeps every row
    assert np.array_equal(np.concatenate([plain[i][0] for i in range(3)]), x)
    first = [int(v) for v in a[0][1][:, 0]]
    a.on_epoch_end()
    assert [int(v) for v in a[0][1][:, 0]] != first or len(x) < 3  # reshuffled per epoch


def test_numpy_pipeline_trains_a_member(rng):
    """Keras fits a member from it on any backend (here the test run's TensorFlow)."""
    from cnn_family import CNN_global

    x = rng.integers(0, 256, (16, 32, 32), dtype=np.uint8)
    y = (np.arange(16) % 2).astype(np.float32)
    model = CNN_global("wolkow")((32, 32, 1), 1)
    hist = model.fit(
        NumpyBatches(x[..., None], y[:, None], batch_size=8, shuffle=True, augment=True, seed=0),
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(hist.history["loss"][0])


def test_backend_helpers_name_the_runtime():
    from cnn_family.backend import backend_name, gpu_names, versions

    v = versions()
    assert v["backend"] == backend_name()
    assert {"python", "keras", "numpy", "h5py", "scikit-learn"} <= set(v)
    assert isinstance(gpu_names(), tuple)


def test_rerun_keeps_finished_members_and_refuses_other_configs(tmp_path, sim_frames, capsys):
    cfg = TrainConfig(**{**TINY, "categories": ("Dimers",), "members_per_category": 2})
    out = train_family(sim_frames, cfg, tmp_path / "f", verbose=0)
    stamp = (out / "members" / "dimers_0.keras").stat().st_mtime_ns
    capsys.readouterr()
    train_family(sim_frames, cfg, out, verbose=0)
    assert "done already, kept" in capsys.readouterr().out
    assert (out / "members" / "dimers_0.keras").stat().st_mtime_ns == stamp
    with pytest.raises(ResumeMismatchError, match="epochs: 1 there, 2 here") as e:
        train_family(sim_frames, TrainConfig(**{**TINY, "epochs": 2}), out, verbose=0)
    assert "width" not in str(e.value)  # only what differs is named


def test_a_run_that_cannot_start_writes_nothing(tmp_path, sim_frames):
    """A bad option fails before config.json exists, so the corrected command is not refused."""
    with pytest.raises(ValueError, match="width"):
        train_family(sim_frames, TrainConfig(**{**TINY, "width": 9.0}), tmp_path / "f", verbose=0)
    with pytest.raises(ValueError, match="members"):
        train_family(sim_frames, TrainConfig(**TINY), tmp_path / "f", members="99-100", verbose=0)
    assert not (tmp_path / "f" / "config.json").exists()


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tmp_path):
    """Kill a real training process mid-run (SIGKILL), rerun the same command, it continues."""
    cmd = [
        sys.executable,
        "main_training.py",
        "--synthetic-frames",
        "40",
        "--name",
        "k",
        "--out-root",
        str(tmp_path),
        "--width",
        "0.125",
        "--max-filters",
        "32",
        "--epochs",
        "3",
        "--members",
        "1",
        "--batch-size",
        "8",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    fam = tmp_path / "k"
    deadline = time.time() + 240
    try:
        # Wait until a member has finished at least one epoch but not all, then kill hard.
        while time.time() < deadline:
            states = (
                list((fam / "checkpoints").glob("*.json")) if (fam / "checkpoints").exists() else []
            )
            if any(
                json.loads(s.read_text())["epochs_done"] >= 1 for s in states if s.stat().st_size
            ):
                break
            time.sleep(0.05)
        else:
            pytest.fail("training never reached a checkpoint")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((fam / "manifest.json").read_text())["status"] == "training"
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming after epoch" in done.stdout
    m = json.loads((fam / "manifest.json").read_text())
    assert m["status"] == "complete"
    for x in m["members"]:
        hist = json.loads((fam / "history" / f"{x['name']}.json").read_text())
        assert len(hist["loss"]) == 3  # every epoch exactly once across the two runs
    resumed = m["resumed_after_epoch"]  # provenance: these members went on from a checkpoint
    assert resumed and all(e in ([1], [2]) for e in resumed.values())


@pytest.mark.parametrize("engine", ["sequential", "fused"])
def test_init_from_starts_members_from_another_family(
    tmp_path, sim_frames, tiny_family_dir, engine
):
    import keras

    # lr 0: training moves no trainable weight, so what the member ends with is what it began
    # with (BatchNorm's moving statistics still update, so only trainable weights compare).
    cfg = TrainConfig(
        **{**TINY, "categories": ("Rows",), "members_per_category": 2},
        learning_rate=0.0,
        precise_bn=False,
        init_from=str(tiny_family_dir),
    )
    out = train_family(sim_frames, cfg, tmp_path / engine, verbose=0, engine=engine)
    for k in range(2):
        # Members are saved without optimizer state; compile=False says so to Keras.
        got = keras.models.load_model(out / "members" / f"rows_{k}.keras", compile=False)
        src = keras.models.load_model(
            tiny_family_dir / "members" / f"rows_{k}.keras", compile=False
        )
        for a, b in zip(got.trainable_weights, src.trainable_weights, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    m = json.loads((out / "manifest.json").read_text())
    src_m = json.loads((tiny_family_dir / "manifest.json").read_text())
    assert m["init_from"]["path"] == str(tiny_family_dir)
    assert m["init_from"]["data"]["fingerprint"] == src_m["data"]["fingerprint"]
    assert TrainConfig.load(out / "config.json").init_from == str(tiny_family_dir)


def test_init_from_refuses_a_family_that_cannot_start_this_one(
    tmp_path, sim_frames, tiny_family_dir
):
    from training.trainer import InitFromError

    with pytest.raises(InitFromError, match=r"manifest\.json"):
        train_family(sim_frames, TrainConfig(**TINY, init_from=str(tmp_path)), tmp_path / "a")
    wider = TrainConfig(**{**TINY, "width": 0.25}, init_from=str(tiny_family_dir))
    with pytest.raises(InitFromError, match="this run builds"):
        train_family(sim_frames, wider, tmp_path / "b")
    more = TrainConfig(**{**TINY, "members_per_category": 4}, init_from=str(tiny_family_dir))
    with pytest.raises(InitFromError, match="asymmetries_3"):
        train_family(sim_frames, more, tmp_path / "c")
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_architectures_benchmark_trains_another_builder_as_a_family(tmp_path, sim_frames):
    """benchmarks/architectures.py: a non-DeepDog family trains, loads, votes and is plotted."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("archs", ROOT / "benchmarks" / "architectures.py")
    archs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(archs)
    train, held = sim_frames.subset(range(40)), sim_frames.subset(range(40, 60))
    tests = {"simulated_held_out": (held.images, held.labels("gt0.5"))}
    r = archs.measure(
        "wolkow", train=train, tests=tests, width=0.125, epochs=1, seed=0, runs=tmp_path
    )
    assert r["architecture"] == "wolkow" and r["parameters_per_member"] > 0
    scores = r["simulated_held_out"]
    assert 0 <= scores["mean_roc_auc"] <= 1 and set(scores["per_category"]) <= set(CATEGORIES)
    man = json.loads(next(tmp_path.glob("wolkow_*/manifest.json")).read_text())
    assert man["architecture"] == "wolkow" and man["members_per_category"] == 1
    archs.plot([r, {**r, "architecture": "other"}], tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 10_000
    # Measuring one builder again keeps the others' figures when the settings match.
    settings = dict(simulated_frames=40, width=0.125, epochs=1, seed=0, members_per_category=1)
    old = {**settings, "results": [r, {**r, "architecture": "deepdog"}]}
    (tmp_path / "a.json").write_text(json.dumps(old))
    again = {**settings, "results": [{**r, "train_minutes": 9.9}]}
    assert [
        (x["architecture"], x["train_minutes"]) for x in archs.merged(tmp_path / "a.json", again)
    ] == [
        ("deepdog", r["train_minutes"]),
        ("wolkow", 9.9),
    ]
    assert archs.merged(tmp_path / "a.json", {**again, "epochs": 2}) == again["results"]


def test_auto_layout_stacks_only_deepdog_members_on_a_gpu():
    """A VGG-like family on a GPU (Colab) trains as branches instead of failing on 'stacked'."""
    from training.trainer import auto_layout

    assert auto_layout("auto", architecture="deepdog", gpus=["GPU:0"]) == "stacked"
    assert auto_layout("auto", architecture="vgg_like", gpus=["GPU:0"]) == "branches"
    assert auto_layout("auto", architecture="deepdog", gpus=[]) == "branches"
    assert auto_layout("stacked", architecture="wolkow", gpus=[]) == "stacked"  # asked for
