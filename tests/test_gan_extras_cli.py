"""``python -m gan_extras``: train, translate and judge from the command line; bad input in one line."""

from __future__ import annotations

import json

import numpy as np

from gan_extras.__main__ import main


def test_cyclegan_translate_and_judge_from_the_command_line(tmp_path, tiny_family_dir, capsys):
    from stm_sim.dataset import make_frameset
    from training.data import save_frames

    real = make_frameset(12, seed=8, session_length=3)
    real.mean_scores[:] = np.nan  # the CycleGAN's real side needs no labels
    save_frames(real, tmp_path / "real.h5")
    run = tmp_path / "cg"
    cmd = ["cyclegan", "--real", str(tmp_path / "real.h5"), "--sim", "8", "--out", str(run)]
    cmd += ["--steps", "2", "--filters", "2", "--batch-size", "2", "--quiet"]
    assert main([*cmd, "--stop-at", "1"]) == 0
    assert "stopped at step 1 of 2; run again to go on" in capsys.readouterr().out
    assert main(cmd) == 0
    assert "CycleGAN -> " in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["filters"] == 2

    assert main(["translate", str(run), str(tmp_path / "t.h5"), "--sim", "6"]) == 0
    from training.data import load_frames

    t = load_frames(tmp_path / "t.h5")
    assert len(t) == 6 and t.labelled.all() and t.sessions[0].startswith("cyclegan:")

    labelled = make_frameset(12, seed=9, session_length=3)
    save_frames(labelled, tmp_path / "labelled.h5")
    args = ["judge", str(tmp_path / "t.h5"), "--real", str(tmp_path / "labelled.h5")]
    assert main([*args, "--family", str(tiny_family_dir), "--out", str(tmp_path / "j.json")]) == 0
    res = json.loads((tmp_path / "j.json").read_text())
    assert {"real_vs_real", "real_vs_generated", "n_per_set"} <= set(res)
    assert "real vs generated FID" in capsys.readouterr().out


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nothing"), str(tmp_path / "t.h5"), "--sim", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m gan_extras: error:") and "\n" not in err
    assert main(["sample", str(tmp_path / "nothing"), str(tmp_path / "s.h5")]) == 2
    assert "gan_extras dcgan" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "s.h5").exists()
