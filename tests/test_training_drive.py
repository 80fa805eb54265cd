"""training.drive against an in-memory stand-in for pydrive2's GoogleDrive (no network)."""

import hashlib
import re
from pathlib import Path

import pytest

from training.drive import (
    FOLDER_MIME,
    DrivePathNotFound,
    download_folder,
    find_folder,
    upload_folder,
)


class FakeFile(dict):
    """The part of pydrive2's GoogleDriveFile the module uses: a metadata dict plus content."""

    def __init__(self, drive, meta):
        super().__init__(meta)
        self.drive, self.content = drive, None

    def SetContentFile(self, filename):
        self.content = Path(filename).read_bytes()

    def Upload(self, param=None):
        if "id" not in self:
            self["id"] = f"id{len(self.drive.items)}"
        if self.content is not None:
            self.drive.blobs[self["id"]] = self.content
            self["md5Checksum"] = hashlib.md5(self.content).hexdigest()
            self.drive.uploads += 1
        self.drive.items[self["id"]] = dict(self)

    def GetContentFile(self, filename):
        Path(filename).write_bytes(self.drive.blobs[self["id"]])


class FakeDrive:
    def __init__(self):
        self.items, self.blobs, self.uploads = {}, {}, 0

    def CreateFile(self, metadata=None):
        return FakeFile(self, metadata or {})

    def ListFile(self, param):
        parent = re.fullmatch(r"'([^']+)' in parents and trashed=false", param["q"]).group(1)
        found = [
            FakeFile(self, meta)
            for meta in self.items.values()
            if {"id": parent} in meta.get("parents", [])
        ]
        return type("Listing", (), {"GetList": lambda _self: found})()


@pytest.fixture
def family_like(tmp_path):
    root = tmp_path / "tuned"
    (root / "members").mkdir(parents=True)
    (root / "manifest.json").write_text('{"status": "complete"}')
    (root / "members" / "rows_0.keras").write_bytes(b"\x00weights" * 100)
    return root


def test_upload_then_download_round_trips_a_folder(tmp_path, family_like):
    drive = FakeDrive()
    assert upload_folder(drive, family_like, to="stm/families") == {"uploaded": 2, "kept": 0}
    got = download_folder(drive, "stm/families/tuned", tmp_path / "back")
    for p in family_like.rglob("*"):
        q = got / p.relative_to(family_like)
        assert q.is_dir() if p.is_dir() else q.read_bytes() == p.read_bytes()
    assert not (tmp_path / "back.partial").exists()


def test_upload_again_sends_only_what_changed(family_like):
    drive = FakeDrive()
    upload_folder(drive, family_like, to="stm")
    (family_like / "manifest.json").write_text('{"status": "complete", "more": 1}')
    assert upload_folder(drive, family_like, to="stm") == {"uploaded": 1, "kept": 1}
    titles = [m["title"] for m in drive.items.values()]
    assert titles.count("manifest.json") == 1 and titles.count("tuned") == 1  # no duplicates
    folders = [m for m in drive.items.values() if m.get("mimeType") == FOLDER_MIME]
    assert sorted(m["title"] for m in folders) == ["members", "stm", "tuned"]


def test_download_replaces_the_target_whole(tmp_path, family_like):
    drive = FakeDrive()
    upload_folder(drive, family_like, to="stm")
    target = tmp_path / "local"
    target.mkdir()
    (target / "stale.txt").write_text("from an older copy")
    download_folder(drive, "stm/tuned", target)
    assert not (target / "stale.txt").exists()
    assert (target / "members" / "rows_0.keras").exists()


def test_missing_drive_path_names_the_missing_part():
    drive = FakeDrive()
    find_folder(drive, "stm", create=True)
    with pytest.raises(DrivePathNotFound, match="'stm/nothing'"):
        find_folder(drive, "stm/nothing/here")


def test_upload_refuses_a_file(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="expected a local folder"):
        upload_folder(FakeDrive(), f, to="stm")


def test_command_line_uploads_downloads_and_says_what_is_missing(
    tmp_path, family_like, monkeypatch, capsys
):
    import training.drive as drive_mod

    drive = FakeDrive()
    monkeypatch.setattr(drive_mod, "_drive", lambda: drive)
    assert drive_mod.main(["upload", str(family_like), "stm"]) == 0
    assert "'uploaded': 2" in capsys.readouterr().out
    # A download interrupted earlier left a partial copy: it is started again whole.
    (tmp_path / "back.partial" / "junk").mkdir(parents=True)
    assert drive_mod.main(["download", "stm/tuned", str(tmp_path / "back")]) == 0
    assert "downloaded to" in capsys.readouterr().out
    assert (tmp_path / "back" / "manifest.json").exists() and not (
        tmp_path / "back" / "junk"
    ).exists()
    assert drive_mod.main(["download", "stm/none", str(tmp_path / "x")]) != 0
    assert "'stm/none'" in capsys.readouterr().err
