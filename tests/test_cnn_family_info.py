"""``python -m cnn_family info``: a family described from its manifest, in either form."""

import json
import shutil

import pytest

from cnn_family.__main__ import main
from cnn_family.family import FamilyFormatError
from cnn_family.info import check, describe, read_manifest


def test_a_family_folder_is_described_from_its_manifest(tiny_family_dir):
    text = describe(tiny_family_dir)
    first, *rows = text.splitlines()
    assert first == f"{tiny_family_dir}: a family folder, complete"
    fields = {r.split()[0]: r for r in rows}
    assert "18 DeepDog members (width 0.125), 3 per category" in fields["members"]
    assert "Asymmetries, Individual atoms, Dimers, Rows, Tip change, Bad/blurry" in text
    assert "more than 2 of 4 per category" in fields["vote"]
    assert "spectral_companion.json, fitted on 60 frames" in fields["companion"]
    assert "simulated frames (stm_sim)" in fields["trained"]  # no --data: the simulator
    assert "1 epochs" in fields["trained"] and "seed 0" in fields["trained"]
    assert fields["versions"].endswith("the same here")


def test_versions_that_differ_here_are_named(tiny_family_dir):
    saved = read_manifest(tiny_family_dir)[0]["versions"]
    text = describe(tiny_family_dir, here={**saved, "keras": "3.0.0"})
    assert "here: keras 3.0.0" in text


def test_an_exported_file_and_a_family_without_companion(tiny_family, tmp_path):
    from cnn_family.spectral import FILE_NAME

    f = tiny_family.export(tmp_path / "fam.keras")
    assert read_manifest(f)[1] == "exported"
    text = describe(f)
    assert "an exported family file, complete" in text
    assert any(r.split()[:4] == ["companion", "inside", "the", "file"] for r in text.splitlines())

    bare = shutil.copytree(tiny_family.path, tmp_path / "bare")
    (bare / FILE_NAME).unlink()
    text = describe(bare)
    assert "none: the members vote alone" in text
    assert "more than 1 of 3 per category" in text and "2 of 4" not in text


def test_an_unfinished_run_says_how_to_go_on(tiny_family_dir, tmp_path):
    fam = shutil.copytree(tiny_family_dir, tmp_path / "fam")
    manifest = json.loads((fam / "manifest.json").read_text())
    (fam / "manifest.json").write_text(json.dumps({**manifest, "status": "training"}))
    assert "training not finished: rerun its command to resume" in describe(fam)
    partial = {**manifest, "status": "partial", "members_done": ["rows_0"]}
    (fam / "manifest.json").write_text(json.dumps(partial))
    assert "a shard: 1 of 18 members; merge the shards first" in describe(fam)


def test_what_is_not_a_family_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected a folder with manifest\.json"):
        describe(tmp_path)
    (tmp_path / "x.keras").write_bytes(b"not a zip")
    with pytest.raises(FamilyFormatError, match=r"expected a family exported by Family\.export"):
        describe(tmp_path / "x.keras")
    (tmp_path / "manifest.json").write_text('{"categories": []}')
    with pytest.raises(FamilyFormatError, match="categories: expected a list of names"):
        describe(tmp_path)


def test_check_loads_and_votes(tiny_family_dir):
    line = check(tiny_family_dir, frames=3)
    assert "votes on 3 simulated frames" in line
    assert "(4 voters per category); every probability in [0, 1]" in line


def test_the_command_line(tiny_family_dir, tmp_path, capsys):
    assert main(["info", str(tiny_family_dir), "--check"]) == 0
    out = capsys.readouterr().out
    assert "a family folder, complete" in out and "every probability in [0, 1]" in out
    assert main(["info", str(tmp_path)]) == 2
    assert "no family at" in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "deepdog" in capsys.readouterr().out.split()
