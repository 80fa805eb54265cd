import json

import numpy as np
import pytest

from evaluation.metrics import evaluate, majority_class_baseline
from evaluation.report import evaluate_family, load_any
from training.data import CATEGORIES, FrameSet, save_frames


def test_metrics_by_hand():
    y = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 0], [1, 0, 1, 0, 0, 0]])
    hard = np.array(
        [[1, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 1], [1, 1, 0, 1, 0, 0], [1, 0, 1, 0, 0, 0]]
    )
    soft = hard * 0.8 + 0.1
    m = evaluate(hard, soft, y, CATEGORIES)
    assert m["n"] == 4
    assert m["exact_match"] == 0.5
    a = m["per_category"]["Asymmetries"]
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == 1.0 and a["support"] == 2
    assert m["per_category"]["Tip change"]["recall"] == 0.0
    # good vs bad: bad = tip change or bad/blurry -> frames 0 and 1 are bad, both voted bad
    assert m["good_vs_bad"]["precision"] == 1.0 and m["good_vs_bad"]["roc_auc"] == 1.0
    assert np.isnan(evaluate(hard, soft, np.zeros_like(y), CATEGORIES)["macro_roc_auc"])


def test_majority_class_baseline():
    y = np.array([[0, 0, 1, 0, 0, 0]] * 3 + [[0, 0, 0, 0, 0, 1]])
    assert majority_class_baseline(y) == 0.75


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="expected hard, soft and y_true"):
        evaluate(np.zeros((2, 6)), np.zeros((2, 6)), np.zeros((3, 6)), CATEGORIES)


def test_report_json_and_plots_skip_unlabelled(tmp_path, tiny_family, sim_frames):
    fs = sim_frames.subset(range(30))
    fs.mean_scores[:5] = np.nan  # unlabelled rows are skipped, not failed
    m = evaluate_family(tiny_family, fs, report=tmp_path / "r.json", plots_dir=tmp_path)
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["n"] == 25 and r["n_skipped_unlabelled"] == 5
    for key in ("exact_match", "macro_roc_auc", "mean_precision"):
        assert key in r
    assert set(r["per_category"]) == set(CATEGORIES)
    assert {"precision", "recall", "f1", "roc_auc", "support"} <= set(r["per_category"]["Dimers"])
    assert {"precision", "roc_auc"} <= set(r["good_vs_bad"])
    assert (tmp_path / "r.md").read_text().startswith("# ")
    for png in ("roc.png", "confusion.png", "gallery.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert m["n"] == 25


def test_load_any_reads_npy_pngs_and_datasets(tmp_path, rng):
    from PIL import Image

    x = rng.integers(0, 256, (3, 128, 128), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    notes = []
    assert np.array_equal(load_any(tmp_path / "x.npy", note=notes.append).images, x)
    d = tmp_path / "pngs"
    d.mkdir()
    for i in range(2):
        Image.fromarray(x[i]).resize((300, 300)).save(d / f"{i}.png")
    Image.fromarray(x[2]).save(d / "2.png")
    assert load_any(d, note=notes.append).images.shape == (3, 128, 128)
    # Only what was resized is noted: 2 of the 3 PNGs, not the 128x128 .npy or the .h5 below.
    assert len(notes) == 1 and notes[0].startswith(
        "resized 2 of 3 frames to 128x128 (from 300x300)"
    )
    fs = FrameSet(images=x, mean_scores=np.zeros((3, 6)), sessions=["a"] * 3, names=["a", "b", "c"])
    fs.orig_hw = np.full((3, 2), 512)  # the scans these frames were made from
    save_frames(fs, tmp_path / "f.h5")
    assert len(load_any(tmp_path / "f.h5", note=notes.append)) == 3 and len(notes) == 1
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="npy"):
        load_any(tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError):
        load_any(tmp_path / "nope.npy")
    np.save(tmp_path / "rows.npy", np.zeros((3, 64)))  # feature rows, not a scan
    with pytest.raises(
        ValueError, match=r"at least 16x16 pixels, got 1 smaller \(the first 3x64\)"
    ):
        load_any(tmp_path / "rows.npy")


def test_a_folder_skips_broken_and_tiny_images_and_keeps_16_bit_heights(tmp_path, rng):
    import io

    from PIL import Image

    heights = np.linspace(0, 60000, 128 * 128).reshape(128, 128).astype(np.uint16)
    Image.fromarray(heights).save(tmp_path / "height16.png")  # a Gwyddion-style export
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:300])  # a copy interrupted
    (tmp_path / "junk.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "icon.png")
    notes = []
    fs = load_any(tmp_path, note=notes.append)
    # PIL's convert("L") clipped 16-bit heights at 255: the frame came out all white.
    assert list(fs.names) == ["height16.png"] and fs.images.min() == 0
    assert (fs.images == 255).mean() < 0.01 and np.all(np.diff(fs.images[:, :, 0], axis=1) >= 0)
    assert notes[0].startswith("skipped 3 file(s)") and "under 16 pixels a side" in notes[0]
    with pytest.raises(
        ValueError, match=r"cut\.png: not a readable image \(image file is truncated"
    ):
        load_any(tmp_path / "cut.png")
    with pytest.raises(ValueError, match=r"icon\.png: expected a frame at least 16x16 pixels"):
        load_any(tmp_path / "icon.png")


def test_cross_fitted_thresholds_find_a_shifted_boundary():
    """benchmarks/thresholds.py: each fold's threshold comes from the other folds."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("thr", ROOT / "benchmarks" / "thresholds.py")
    thr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thr)
    rng = np.random.default_rng(0)
    y = (rng.random((100, 2)) < 0.3).astype(int)
    soft = np.where(y == 1, 0.4, 0.1) + rng.normal(0, 0.005, y.shape)  # right order, low
    folds = [(np.setdiff1d(np.arange(100), te), te) for te in np.array_split(np.arange(100), 5)]
    hard, chosen = thr.cross_fitted(soft, y, folds)
    assert np.array_equal(hard, y)
    assert all(0.1 < t < 0.4 for t_k in chosen for t in t_k)
    assert thr.summary((soft > 0.5).astype(int), y)["mean_recall"] == 0.0


def test_label_ceiling_oracle_is_capped_by_noisy_volunteers():
    """benchmarks/label_ceiling.py: an oracle scores 1 against perfect volunteers, less against
    the noisy ones."""
    import importlib.util

    from conftest import ROOT

    from training.crowd import TwoCoin

    spec = importlib.util.spec_from_file_location("lc", ROOT / "benchmarks" / "label_ceiling.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    rng = np.random.default_rng(0)
    n = rng.choice([1, 2, 3], 5000, p=[0.5, 0.4, 0.1])
    perfect = lc.oracle_ceiling(TwoCoin(0.2, 1.0, 1.0), n, draws=5000, rng=rng)
    noisy = lc.oracle_ceiling(TwoCoin(0.2, 0.8, 0.95), n, draws=5000, rng=rng)
    assert perfect["roc_auc"] == 1.0 and noisy["roc_auc"] < 0.95


def test_few_labels_keeps_whole_sessions_and_scores_each_fold(monkeypatch):
    """benchmarks/accuracy.py --train-sessions and benchmarks/few_labels.py: the few-labels
    regime keeps whole training sessions (seeded), and each fold is scored on its own rows."""
    import importlib.util

    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("fl", ROOT / "benchmarks" / "few_labels.py")
    fl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fl)
    sessions = np.repeat(np.array(["a", "b", "c", "d", "e"]), [3, 1, 4, 2, 5])
    tr = np.flatnonzero(sessions != "e")  # "e" is held out
    kept = fl.few_sessions(sessions, tr, fold=1, n=2, seed=0)
    assert len(set(sessions[kept])) == 2 and "e" not in set(sessions[kept])
    for s in set(sessions[kept]):  # whole sessions, never part of one
        assert np.isin(np.flatnonzero(sessions == s), kept).all()
    assert np.array_equal(kept, fl.few_sessions(sessions, tr, fold=1, n=2, seed=0))
    with pytest.raises(ValueError, match="at most 4"):
        fl.few_sessions(sessions, tr, fold=1, n=5, seed=0)
    y = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
    soft = np.array([[0.2, 0.9], [0.8, 0.1], [0.7, 0.2], [0.3, 0.6]])
    first, second = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)
    assert fl.fold_scores(y, soft, [first, second]) == [1.0, 0.0]


def test_calibration_plot_draws_the_candidates_and_refuses_an_unknown_kind(tmp_path):
    """benchmarks/calibration_plot.py: the summary picture of the simulator's candidates."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("cp", ROOT / "benchmarks" / "calibration_plot.py")
    cp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cp)
    d = {
        "default_runs": {"members_alone": [0.78, 0.79]},
        "real_trained_members_alone": 0.84,
        "candidates": [
            {"row": "1a", "name": "a", "kind": "simulator", "seed0": 0.75},
            {"row": "1b", "name": "b", "kind": "training", "seed0": 0.8, "seed1": 0.77},
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(d))
    png = cp.plot(cp.load_candidates(tmp_path / "c.json"), tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d["candidates"][0]["kind"] = "vibes"
    (tmp_path / "c.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="kind expected one of"):
        cp.load_candidates(tmp_path / "c.json")


def test_load_any_reads_raw_scans_and_skips_what_it_cannot_read(tmp_path, rng):
    from PIL import Image
    from test_instrument_bridge_readers import write_sxm

    d = tmp_path / "archive"
    d.mkdir()
    write_sxm(d / "a.sxm", rng.normal(size=(64, 64)))
    write_sxm(d / "b_wide.sxm", rng.normal(size=(64, 64)), size_m=20e-9)
    partial = rng.normal(size=(64, 64))
    partial[6:] = np.nan  # 6 of 64 lines: stretched, it would show the lattice 10x too coarse
    write_sxm(d / "c_partial.sxm", partial)
    (d / "notes.dat").write_text("not a Createc file")
    Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8)).save(d / "d.png")
    notes = []
    fs = load_any(d, note=notes.append)
    assert list(fs.names) == ["a.sxm", "b_wide.sxm", "d.png"] and fs.images.dtype == np.uint8
    assert notes[0].startswith("skipped 2 file(s)") and "the first: c_partial.sxm" in notes[0]
    assert notes[1].startswith("1 of 2 scans of known size span 20 nm (e.g. b_wide.sxm)")
    assert load_any(d / "a.sxm").images.shape == (1, 128, 128)
    with pytest.raises(ValueError, match=r"notes\.dat: expected a Createc header"):
        load_any(d / "notes.dat")  # one file named on its own is an error, not a skip
    with pytest.raises(ValueError, match=r"c_partial\.sxm: expected a scan at least 25% done"):
        load_any(d / "c_partial.sxm")
    tiled = load_any(d, note=notes.append, tile_nm=5.0)  # b_wide: 20 nm of 64 pixels, 16 a tile
    assert list(tiled.names) == ["a.sxm", "d.png"]  # too coarse to tile: skipped with the rest
    write_sxm(d / "e_big.sxm", rng.normal(size=(200, 200)), size_m=11.1e-9)
    notes.clear()
    tiled = load_any(d, note=notes.append, tile_nm=3.7)  # 67 pixels a tile: 2 x 2 tiles
    assert list(tiled.names)[2:6] == [f"e_big.sxm[r{r}c{c}]" for r in (0, 1) for c in (0, 1)]
    assert set(tiled.sessions[2:6]) == {"e_big"} and "cut scans into 4 tiles of 3.7 nm" in notes
    assert not any(n.startswith("resized") and "e_big" in n for n in notes)


def test_tiles_benchmark_votes_wide_scans_three_ways(tiny_family_dir):
    """benchmarks/tiles.py: wide simulated scans, whole against tiles, with their labels."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("tl", ROOT / "benchmarks" / "tiles.py")
    tl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tl)
    zs, y, fields = tl.wide_scans(3, seed=0)
    assert zs[0].shape == (384, 384) and y.shape == (3, 6) and 10 < fields[0] < 12
    r = tl.measure(tiny_family_dir, n=12, seed=0)
    assert r["tiles_per_scan"] == 9 and r["scans"] == 12
    for way in ("whole", "tiles", "centre_tile", "ordinary_3.7nm_frames"):
        assert 0 <= r[way]["mean_roc_auc"] <= 1
