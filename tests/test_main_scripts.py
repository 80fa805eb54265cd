import argparse
import json

import numpy as np
import pytest
from conftest import HSI_H5, ROOT, needs_shared

import main_evaluate_guess
import main_training


def test_main_training_on_simulated_frames(tmp_path, capsys):
    rc = main_training.main(
        [
            "--synthetic-frames",
            "24",
            "--name",
            "sim",
            "--out-root",
            str(tmp_path),
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
    out = capsys.readouterr().out
    assert "simulated frames" in out and "prepare_hsi" in out  # says where real data comes from
    m = json.loads((tmp_path / "sim" / "manifest.json").read_text())
    assert m["status"] == "complete" and len(m["members"]) == 6
    assert m["command"].startswith("python main_training.py --synthetic-frames 24")
    assert (tmp_path / "sim" / "training_curves.png").exists()

    # Fine-tuning from that family: same shape flags, the members start from its weights.
    tiny = ["--synthetic-frames", "24", "--out-root", str(tmp_path), "--width", "0.125"]
    tiny += ["--max-filters", "16", "--epochs", "1", "--members", "1", "--quiet"]
    tuned = ["--name", "tuned", "--init-from", str(tmp_path / "sim"), "--learning-rate", "1e-4"]
    rc = main_training.main([*tiny, *tuned, "--no-companion"])
    assert rc == 0
    m = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    assert m["init_from"]["path"] == str(tmp_path / "sim")
    assert m["training"]["companion"] is False and "companion" not in m
    assert not (tmp_path / "tuned" / "spectral_companion.json").exists()
    assert m["training"]["learning_rate"] == 1e-4 and m["status"] == "complete"


def test_main_evaluate_guess_guesses_and_evaluates(tmp_path, tiny_family_dir, sim_frames, capsys):
    from training.data import save_frames

    np.save(tmp_path / "x.npy", sim_frames.images[:5])
    assert (
        main_evaluate_guess.main(
            [
                "--family",
                str(tiny_family_dir),
                "--data",
                str(tmp_path / "x.npy"),
                "--out-dir",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g" / "guesses.png").exists()
    assert len((tmp_path / "g" / "guesses.csv").read_text().splitlines()) == 6
    save_frames(sim_frames.subset(range(20)), tmp_path / "d.h5")
    rep = tmp_path / "r.json"
    assert (
        main_evaluate_guess.main(
            [
                "--family",
                str(tiny_family_dir),
                "--data",
                str(tmp_path / "d.h5"),
                "--report",
                str(rep),
                "--out-dir",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    r = json.loads(rep.read_text())
    assert r["n"] == 20 and "good_vs_bad" in r and "Rows" in r["per_category"]


def test_main_evaluate_guess_votes_on_tiles_of_raw_scans(tmp_path, tiny_family_dir, capsys):
    from test_instrument_bridge_readers import write_sxm

    rng = np.random.default_rng(0)
    d = tmp_path / "scans"
    d.mkdir()
    write_sxm(d / "big.sxm", rng.normal(size=(201, 201)), size_m=11.1e-9)  # 3 x 3.7 nm
    write_sxm(d / "small.sxm", rng.normal(size=(64, 64)))
    out = tmp_path / "g"
    args = ["--family", str(tiny_family_dir), "--data", str(d), "--tile-nm", "3.7"]
    assert main_evaluate_guess.main([*args, "--out-dir", str(out)]) == 0
    votes = (out / "guesses.csv").read_text().splitlines()
    assert len(votes) == 1 + 9 + 1 and votes[1].startswith("big.sxm[r0c0],")
    per_scan = (out / "guesses_by_scan.csv").read_text().splitlines()
    assert len(per_scan) == 2 and per_scan[1].startswith("big.sxm,9,")  # small.sxm: not tiled
    assert (out / "guesses_by_scan.png").read_bytes()[:4] == b"\x89PNG"  # tiles as a mosaic
    assert "cut scans into 9 tiles of 3.7 nm" in capsys.readouterr().out


def test_shipped_family_demo_runs(tmp_path, capsys):
    fam = ROOT / "models" / "hsi_family"
    assert (fam / "manifest.json").exists(), "the shipped family is missing from models/"
    assert main_evaluate_guess.main(["--demo-frames", "4", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "guesses.png").stat().st_size > 1000
    # The demo knows the simulator's labels and says how often the vote matched them.
    out = capsys.readouterr().out
    assert "all six labels as the simulator drew them" in out
    assert "with the family's spectral companion" in out
    # The shipped manifest carries its training prior, so both vote options work on it.
    rep = tmp_path / "v.json"
    args = ["--demo-frames", "4", "--out-dir", str(tmp_path), "--report", str(rep)]
    assert main_evaluate_guess.main([*args, "--tta", "--undo-class-weights"]) == 0
    assert json.loads(rep.read_text())["n"] == 4


@needs_shared
def test_shipped_family_report_on_real_frames(tmp_path):
    """The documented evaluation command on a real-data file (a small slice, for speed)."""
    from training.data import load_frames, save_frames

    fs = load_frames(HSI_H5)
    save_frames(fs.subset(range(0, len(fs), 50)), tmp_path / "slice.h5")
    rep = tmp_path / "r.json"
    assert (
        main_evaluate_guess.main(
            ["--data", str(tmp_path / "slice.h5"), "--report", str(rep), "--out-dir", str(tmp_path)]
        )
        == 0
    )
    r = json.loads(rep.read_text())
    assert r["n"] > 50 and r["n_skipped_unlabelled"] > 0
    assert 0.0 <= r["macro_roc_auc"] <= 1.0
    assert r["spectral_companion"] is True  # the shipped family votes with its companion


def test_main_evaluate_guess_live_on_the_simulated_microscope(tmp_path, capsys, tiny_family_dir):
    log = tmp_path / "live"
    rc = main_evaluate_guess.main(
        ["--live", "sim", "--scans", "6", "--family", str(tiny_family_dir), "--log-dir", str(log)]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "6 scans" in out and "session log" in out
    summary = json.loads((log / "summary.json").read_text())
    assert summary["scans"] == 6 and summary["server"]["verdicts"] == 6
    assert (log / "timeline.png").exists() and (log / "frames.h5").exists()


def test_main_training_simulated_first_runs_both_steps_and_resumes(tmp_path, sim_frames, capsys):
    """--simulated-first: a simulated family into <name>_sim, then the real one starting from it;
    the same command again finds both complete and trains nothing."""
    from training.data import save_frames

    save_frames(sim_frames.subset(range(30)), tmp_path / "mine.h5")  # stands in for real frames
    cmd = ["--data", str(tmp_path / "mine.h5"), "--simulated-first", "--name", "tuned"]
    cmd += ["--synthetic-frames", "24", "--out-root", str(tmp_path), "--width", "0.125"]
    cmd += ["--max-filters", "16", "--epochs", "1", "--members", "1", "--quiet"]
    assert main_training.main(cmd) == 0
    sim = json.loads((tmp_path / "tuned_sim" / "manifest.json").read_text())
    tuned = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    assert sim["status"] == tuned["status"] == "complete"
    assert sim["data"]["path"].startswith("stm_sim:24")
    assert tuned["init_from"]["path"] == str(tmp_path / "tuned_sim")
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("tuned*/members/*.keras")}
    assert len(stamps) == 12
    assert main_training.main(cmd) == 0  # resumed: both families complete, nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}

    capsys.readouterr()
    assert main_training.main(["--simulated-first", "--out-root", str(tmp_path)]) == 2
    assert "expected real frames" in capsys.readouterr().err
    assert main_training.main([*cmd, "--init-from", str(tmp_path / "tuned_sim")]) == 2
    assert "expected no init_from" in capsys.readouterr().err


def test_the_commands_turn_bad_input_into_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    """What was expected and what came, on stderr, without a traceback; nothing trained first."""
    from stm_sim.__main__ import main as stm_sim_main
    from training.shards import main as shards_main

    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"not an HDF5 file")
    cases = [
        (main_evaluate_guess.main, ["--data", str(tmp_path / "missing.h5")], "no such file"),
        (main_evaluate_guess.main, ["--data", str(bad), "--out-dir", str(tmp_path)], "HDF5"),
        (main_evaluate_guess.main, ["--family", str(tmp_path)], "manifest.json"),
        (main_evaluate_guess.main, ["--live", "bogus"], "'watch:FOLDER'"),
        # Each once ran on (a negative tile, an empty live session) or ended in a traceback.
        (main_evaluate_guess.main, ["--tile-nm", "-3", "--guess"], "--tile-nm: expected"),
        (main_evaluate_guess.main, ["--live", "sim", "--scans", "0"], "at least 1 scan"),
        (main_evaluate_guess.main, ["--out-dir", str(bad), "--guess"], "expected a folder"),
        (main_evaluate_guess.main, ["--live", "nanonis:localhost:99999"], "a port 1-65535"),
        (main_training.main, ["--architecture", "resnet", "--out-root", str(tmp_path)], "deepdog"),
        # --name ../x once wrote a family's files outside --out-root; a negative or NaN
        # learning rate trained 18 members to noise.
        (main_training.main, ["--name", "../escaped", "--out-root", str(tmp_path)], "no / or .."),
        (
            main_training.main,
            ["--learning-rate", "nan", "--out-root", str(tmp_path)],
            "non-negative",
        ),
        (main_training.main, ["--max-filters", "0", "--out-root", str(tmp_path)], "max_filters"),
        (stm_sim_main, ["make-dataset", str(tmp_path / "s.h5"), "--size", "8"], "16 to 2048"),
        # once a 37 GiB allocation; once a temporary file beside the folder and a traceback
        (stm_sim_main, ["make-dataset", str(tmp_path / "s.h5"), "--size", "99999"], "16 to 2048"),
        (stm_sim_main, ["make-dataset", str(tmp_path), "--n", "5"], "an existing folder"),
        (stm_sim_main, ["make-dataset", str(tmp_path / "s.h5"), "--seed", "-1"], "seed"),
        (shards_main, ["merge", str(tmp_path / "out"), str(tmp_path / "none")], "shard folder"),
    ]
    for main, argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and says in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "resnet").exists() and not list(tmp_path.glob("*/manifest.json"))
    assert not (tmp_path.parent / "escaped").exists()
    # For a developer, the whole traceback on request.
    monkeypatch.setenv("TIPSTATE_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError, match="no such file"):
        main_evaluate_guess.main(["--data", str(tmp_path / "missing.h5")])


def _option_problems(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _option_problems(sub, f"{prefix}{name} ")
            continue
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        name = prefix + action.option_strings[-1]
        if not action.help:
            out.append(f"{name}: no help")
        elif action.nargs != 0 and action.default not in (None, [], False):
            if "default" not in action.help:
                out.append(f"{name}: help does not give the default {action.default!r}")
    return out


@pytest.mark.parametrize(
    "module",
    [
        "main_training",
        "main_evaluate_guess",
        "stm_sim.__main__",
        "gan_extras.__main__",
        "cnn_family.spectral",
        "training.shards",
        "training.drive",
        "training.prepare_hsi",
        "training.prepare_scans",
    ],
)
def test_every_option_says_what_it_does_and_its_default(module, monkeypatch):
    import importlib

    def grab(self, *args, **kwargs):
        grab.parser = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    with pytest.raises(SystemExit):
        importlib.import_module(module).main([])
    assert not _option_problems(grab.parser)


def test_stm_sim_presets_lists_every_preset_and_its_changes(capsys):
    from stm_sim.__main__ import main as stm_sim_main
    from stm_sim.dataset import PRESETS

    assert stm_sim_main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(PRESETS)
    assert any(line.split() == ["toggles", "toggle_p=0.5"] for line in lines)
