"""Your own labelled raw scans -> the project's HDF5 (training.prepare_scans)."""

import numpy as np
import pytest
from test_instrument_bridge_readers import write_sxm

from training.data import load_frames
from training.prepare_scans import main

HEADER = "name,session,Asymmetries,Individual atoms,Dimers,Rows,Tip change,Bad/blurry\n"


@pytest.fixture
def scans(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "scans"
    d.mkdir()
    write_sxm(d / "a.sxm", rng.normal(size=(64, 64)))
    write_sxm(d / "b.sxm", rng.normal(size=(64, 64)))
    write_sxm(d / "wide.sxm", rng.normal(size=(201, 201)), size_m=11.1e-9)  # 3 x 3 tiles
    write_sxm(d / "new.sxm", rng.normal(size=(64, 64)))  # no row: kept unlabelled
    return d


def test_labels_and_sessions_follow_each_scan_into_its_tiles(scans, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(
        HEADER + "a.sxm,day1,0,0,1,0,0,0\nb.sxm,day1,0,0,0,1,0,0.5\nwide.sxm,day2,0,0,0,0,0,1\n"
    )
    assert main([str(scans), str(tmp_path / "l.csv"), str(tmp_path / "o.h5")]) == 0
    assert "wrote" in capsys.readouterr().out
    fs = load_frames(tmp_path / "o.h5")
    assert len(fs) == 2 + 9 + 1 and fs.labelled.sum() == 11
    by = dict(zip(fs.names, range(len(fs)), strict=True))
    assert fs.mean_scores[by["b.sxm"]].tolist() == [0, 0, 0, 1, 0, 0.5]
    tiles = [i for n, i in by.items() if n.startswith("wide.sxm[")]
    assert len(tiles) == 9 and (fs.mean_scores[tiles, 5] == 1).all()
    assert set(fs.sessions[tiles]) == {"day2"} and fs.sessions[by["a.sxm"]] == "day1"
    assert np.isnan(fs.mean_scores[by["new.sxm"]]).all()


def test_bad_label_files_say_what_was_expected(scans, tmp_path, capsys):
    cases = {
        "name,Dimers\na.sxm,1\n": "missing Asymmetries",
        HEADER + "a.sxm,d,0,0,1,,0,0\n": "expected all six labels or none, got 5",
        HEADER + "a.sxm,d,0,0,yes,0,0,0\n": "expected numbers 0..1",
        HEADER + "a.sxm,d,0,0,2,0,0,0\n": "expected labels in 0..1",
        HEADER + "zz.sxm,d,0,0,1,0,0,0\n": "1 labelled names are not files read",
        HEADER + "a.sxm,d,0,0,nan,0,0,0\n": "expected labels in 0..1",
        HEADER + "a.sxm,d,0,0,1,0,0,0\na.sxm,d,0,0,0,1,0,0\n": "a.sxm is labelled twice",
        "name,Dimers\nÅ.sxm,1\n".encode("latin-1"): "expected UTF-8 text, found byte 0xc5",
    }
    for text, says in cases.items():
        if isinstance(text, bytes):
            (tmp_path / "l.csv").write_bytes(text)
        else:
            (tmp_path / "l.csv").write_text(text)
        assert main([str(scans), str(tmp_path / "l.csv"), str(tmp_path / "o.h5")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()  # nothing half-written


def test_a_semicolon_csv_with_decimal_commas_is_read(scans, tmp_path):
    """As spreadsheets in many locales save it."""
    text = HEADER.replace(",", ";") + "a.sxm;day1;0;0;1;0;0;0\nb.sxm;day1;0;0;0;1;0;0,5\n"
    (tmp_path / "l.csv").write_text(text)
    assert main([str(scans), str(tmp_path / "l.csv"), str(tmp_path / "o.h5")]) == 0
    fs = load_frames(tmp_path / "o.h5")
    by = dict(zip(fs.names, fs.mean_scores.tolist(), strict=True))
    assert by["b.sxm"] == [0, 0, 0, 1, 0, 0.5] and by["a.sxm"][2] == 1


def test_without_sessions_each_scan_is_its_own_and_the_user_is_told(scans, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(
        "name,Asymmetries,Individual atoms,Dimers,Rows,Tip change,Bad/blurry\na.sxm,0,0,1,0,0,0\n"
    )
    assert (
        main([str(scans), str(tmp_path / "l.csv"), str(tmp_path / "o.h5"), "--tile-nm", "0"]) == 0
    )
    assert "no session column" in capsys.readouterr().out
    fs = load_frames(tmp_path / "o.h5")
    assert len(fs) == 4 and sorted(set(fs.sessions)) == ["a", "b", "new", "wide"]
