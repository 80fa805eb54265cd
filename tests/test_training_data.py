import h5py
import numpy as np
import pytest
import scipy.io

from training.data import (
    CATEGORIES,
    DataFormatError,
    FrameSet,
    binarize,
    check_images,
    load_frames,
    save_frames,
)
from training.splits import replicate_2018_split, session_kfold, session_split


def _fs(n=12, rng=None):
    rng = rng or np.random.default_rng(0)
    means = rng.choice([0.0, 0.5, 1.0, 2 / 3], size=(n, 6)).astype(np.float32)
    means[0] = np.nan
    return FrameSet(
        images=rng.integers(0, 256, (n, 128, 128), dtype=np.uint8),
        mean_scores=means,
        sessions=np.array([f"s{i % 4}" for i in range(n)]),
        names=np.array([f"f{i}.png" for i in range(n)]),
    )


def test_binarize_rules():
    m = np.array([[0.5, 0.51, 1.0, 2 / 3, 0.0, np.nan]])
    assert binarize(m).tolist() == [[0, 1, 1, 1, 0, 0]]
    assert binarize(m, rule="eq1").tolist() == [[0, 0, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"gt0\.5"):
        binarize(m, rule="majority")


def test_check_images_accepts_layouts_and_rejects_bad_input():
    assert check_images(np.zeros((2, 128, 128, 1), np.uint8)).shape == (2, 128, 128)
    assert check_images(np.ones((128, 128), np.float32)).max() == 255  # [0, 1] floats scaled
    with pytest.raises(DataFormatError, match=r"expected \(N, H, W\)"):
        check_images(np.zeros((2, 3, 128, 128)))
    with pytest.raises(DataFormatError, match="NaN or inf"):
        check_images(np.full((1, 8, 8), np.nan))
    with pytest.raises(DataFormatError, match=r"\[0, 255\]"):
        check_images(np.full((1, 8, 8), 300.0))
    with pytest.raises(DataFormatError, match="dtype"):
        check_images(np.zeros((1, 8, 8), dtype=complex))
    with pytest.raises(DataFormatError, match="128x128"):
        check_images(np.zeros((1, 64, 64), np.uint8), size=128)


def test_project_format_round_trip(tmp_path):
    fs = _fs()
    p = save_frames(fs, tmp_path / "x.h5")
    back = load_frames(p)
    assert np.array_equal(back.images, fs.images)
    assert np.array_equal(np.isnan(back.mean_scores), np.isnan(fs.mean_scores))
    assert back.sessions.tolist() == fs.sessions.tolist()
    assert back.names.tolist() == fs.names.tolist()
    assert back.categories == CATEGORIES
    assert back.labelled.sum() == len(fs) - 1
    assert back.fingerprint() == fs.fingerprint()
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_2018_layouts_npz_mat_h5(tmp_path, rng):
    x_tr = rng.integers(0, 256, (10, 128, 128, 1), dtype=np.uint8)
    y_tr = rng.integers(0, 2, (10, 6)).astype(np.float32)
    x_te = rng.integers(0, 256, (4, 128, 128, 1), dtype=np.uint8)
    y_te = rng.integers(0, 2, (4, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    # MATLAB keeps the frame index last: (128, 128, N)
    scipy.io.savemat(
        tmp_path / "d.mat",
        {
            "x_train": np.moveaxis(x_tr[..., 0], 0, 2),
            "y_train": y_tr,
            "x_test": np.moveaxis(x_te[..., 0], 0, 2),
            "y_test": y_te,
        },
    )
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for k, v in dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te).items():
            f[k] = v
    for name in ("d.npz", "d.mat", "d.h5"):
        fs = load_frames(tmp_path / name)
        assert len(fs) == 14, name
        assert np.array_equal(fs.images[:10], x_tr[..., 0]), name
        assert np.array_equal(fs.labels()[10:], y_te.astype(np.uint8)), name
        assert set(fs.sessions) == {"2018-train", "2018-test"}


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_frames(tmp_path / "missing.h5")
    (tmp_path / "corrupt.h5").write_bytes(b"this is not hdf5")
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        load_frames(tmp_path / "corrupt.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(DataFormatError, match="x_train"):
        load_frames(tmp_path / "other.h5")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataFormatError, match="suffix"):
        load_frames(tmp_path / "a.txt")
    with pytest.raises(DataFormatError, match="mean_scores"):
        FrameSet(
            images=np.zeros((3, 8, 8), np.uint8),
            mean_scores=np.zeros((3, 5)),
            sessions=["a"] * 3,
            names=["a", "b", "c"],
        )


def _project_h5(path, **change):
    """A valid 4-frame project file with datasets (or a ``categories`` attribute) changed."""
    data = {
        "images": np.zeros((4, 8, 8), np.uint8),
        "mean_scores": np.zeros((4, 6), np.float32),
        "sessions": np.array(["a", "a", "b", "b"], dtype="S"),
        "agreement": np.ones((4, 6), np.float32),
    }
    with h5py.File(path, "w") as f:
        for k, v in {**data, **change}.items():
            if k == "categories":
                f.attrs[k] = v
            elif v is not None:
                f[k] = v
        if "images" in change and change["images"] is None:
            f.create_group("images")


@pytest.mark.parametrize(
    "change, match",
    [
        # Found by fuzzing the loader: each escaped as an IndexError, AttributeError or TypeError.
        ({"images": np.zeros(())}, r"images: expected \(N, H, W\)"),
        ({"images": None}, r"needs datasets \['images'\]"),
        ({"agreement": np.ones((2,))}, r"agreement: expected shape \(4, 6\)"),
        ({"categories": 5}, "expected 6 categories"),
    ],
)
def test_malformed_project_files_say_what_was_expected(tmp_path, change, match):
    _project_h5(tmp_path / "x.h5", **change)
    with pytest.raises(DataFormatError, match=match):
        load_frames(tmp_path / "x.h5")


def test_a_truncated_mat_file_is_a_data_format_error(tmp_path):
    (tmp_path / "x.mat").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="not a readable MATLAB file"):
        load_frames(tmp_path / "x.mat")


def test_splits_keep_sessions_whole():
    sessions = np.repeat([f"s{i}" for i in range(9)], [5, 30, 12, 7, 40, 3, 22, 9, 15])
    seen = []
    for tr, te in session_kfold(sessions, n_splits=5, seed=0):
        assert not set(sessions[tr]) & set(sessions[te])
        seen.extend(te)
    assert sorted(seen) == list(range(len(sessions)))  # every frame tested exactly once
    tr, va = session_split(sessions, val_fraction=0.2, seed=1)
    assert not set(sessions[tr]) & set(sessions[va])
    with pytest.raises(ValueError, match="at least 5 sessions"):
        next(session_kfold(np.array(["a", "b"]), n_splits=5))


def test_replicated_2018_split_leaks_twins():
    tr, te = replicate_2018_split(100, copies=10, seed=0)
    assert len(tr) + len(te) == 1000
    assert np.isin(te, tr).mean() > 0.99  # the flaw the benchmark exposes


def test_gpu_carry_pack_roundtrips_exactly(tmp_path, sim_frames):
    """benchmarks/gpu_data.py: the packed frames come back bit for bit (same fingerprint)."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("gpu_data", ROOT / "benchmarks" / "gpu_data.py")
    gpu_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_data)
    src = tmp_path / "src.h5"
    save_frames(sim_frames, src)
    fp = gpu_data.pack(str(src), tmp_path / "carry")
    assert gpu_data.unpack(tmp_path / "carry", str(tmp_path / "back.h5")) == fp
    back = load_frames(tmp_path / "back.h5")
    want = sim_frames.subset(sim_frames.labelled)
    assert np.array_equal(back.images, want.images)
    assert list(back.sessions) == list(want.sessions)


def test_json_writes_take_numpy_values_and_a_failed_write_keeps_the_old_file(tmp_path):
    import json

    from training.io import write_json_atomic

    p = tmp_path / "r.json"
    write_json_atomic(p, {"auc": np.float32(0.5), "n": np.int64(3), "v": np.arange(2), "at": p})
    assert json.loads(p.read_text()) == {"auc": 0.5, "n": 3, "v": [0, 1], "at": str(p)}
    with pytest.raises(TypeError, match="not JSON serialisable: set"):
        write_json_atomic(p, {"bad": {1, 2}})
    assert json.loads(p.read_text())["n"] == 3 and list(tmp_path.iterdir()) == [p]
