"""Keep trained families and datasets on Google Drive through pydrive2 (e.g. from Colab).

A Colab GPU session loses its disk when it ends; Drive keeps what it trained. Folders are
copied file by file: an upload skips files whose MD5 Drive already has (so an interrupted
upload is resumed by running it again), and a download lands in a ``.partial`` folder that
replaces the target only once every file has arrived.

>>> drive = colab_drive()                                      # doctest: +SKIP
>>> upload_folder(drive, "models/tuned", to="stm-tipstate/families")  # doctest: +SKIP
>>> download_folder(drive, "stm-tipstate/families/tuned", "models/tuned")  # doctest: +SKIP

From a shell (Colab's login when run there, else pydrive2's command-line login):
``python -m training.drive upload models/tuned stm-tipstate/families`` and
``python -m training.drive download stm-tipstate/families/tuned models/tuned``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FOLDER_MIME = "application/vnd.google-apps.folder"


class DrivePathNotFound(FileNotFoundError):
    """A Drive path (``a/b/c`` from My Drive) names no folder."""


def colab_drive() -> Any:
    """A ``GoogleDrive`` logged in as the Colab notebook's user (asks once per session)."""
    from google.colab import auth  # only inside Colab
    from oauth2client.client import GoogleCredentials
    from pydrive2.auth import GoogleAuth
    from pydrive2.drive import GoogleDrive

    auth.authenticate_user()
    gauth = GoogleAuth()
    gauth.credentials = GoogleCredentials.get_application_default()
    return GoogleDrive(gauth)


def local_drive(settings_file: str | None = None) -> Any:
    """A ``GoogleDrive`` logged in on the command line (pydrive2's ``settings.yaml`` or default)."""
    from pydrive2.auth import GoogleAuth
    from pydrive2.drive import GoogleDrive

    gauth = GoogleAuth(settings_file=settings_file) if settings_file else GoogleAuth()
    gauth.CommandLineAuth()
    return GoogleDrive(gauth)


def _children(drive: Any, parent_id: str) -> list:
    return drive.ListFile({"q": f"'{parent_id}' in parents and trashed=false"}).GetList()


def _is_folder(item) -> bool:
    return item.get("mimeType") == FOLDER_MIME


def find_folder(drive: Any, path: str, *, create: bool = False) -> str:
    """The id of Drive folder ``path`` (``"a/b"`` under My Drive); made when ``create``.

    Raises :class:`DrivePathNotFound` naming the first missing part otherwise.
    """
    folder_id = "root"
    walked: list[str] = []
    for part in [p for p in path.strip("/").split("/") if p]:
        walked.append(part)
        match = [c for c in _children(drive, folder_id) if _is_folder(c) and c["title"] == part]
        if match:
            folder_id = match[0]["id"]
        elif create:
            folder_id = _make_folder(drive, part, folder_id)
        else:
            raise DrivePathNotFound(
                f"Drive folder {'/'.join(walked)!r} not found (looking for {path!r})"
            )
    return folder_id


def _make_folder(drive: Any, title: str, parent_id: str) -> str:
    f = drive.CreateFile({"title": title, "mimeType": FOLDER_MIME, "parents": [{"id": parent_id}]})
    f.Upload()
    return f["id"]


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def upload_folder(drive: Any, local: str | Path, *, to: str) -> dict[str, int]:
    """Copy folder ``local`` into Drive folder ``to`` (made if missing) as ``to/<name>``.

    Files Drive already holds with the same MD5 are skipped; changed ones get a new revision.
    Returns ``{"uploaded": n, "kept": m}``.
    """
    src = Path(local)
    if not src.is_dir():
        raise NotADirectoryError(f"upload_folder: expected a local folder, got {src}")
    parent = find_folder(drive, to, create=True)
    counts = {"uploaded": 0, "kept": 0}
    _upload_tree(drive, src, parent, counts, prefix=f"{to.strip('/')}/")
    return counts


def _upload_tree(drive: Any, src: Path, parent_id: str, counts: dict, *, prefix: str) -> None:
    existing = {c["title"]: c for c in _children(drive, parent_id)}
    here = existing.get(src.name)
    folder_id = (
        here["id"] if here and _is_folder(here) else _make_folder(drive, src.name, parent_id)
    )
    inside = {c["title"]: c for c in _children(drive, folder_id)}
    for p in sorted(src.iterdir()):
        if p.is_dir():
            _upload_tree(drive, p, folder_id, counts, prefix=f"{prefix}{src.name}/")
            continue
        old = inside.get(p.name)
        if old is not None and not _is_folder(old) and old.get("md5Checksum") == _md5(p):
            counts["kept"] += 1
            continue
        f = (
            old
            if old is not None and not _is_folder(old)
            else drive.CreateFile({"title": p.name, "parents": [{"id": folder_id}]})
        )
        f.SetContentFile(str(p))
        f.Upload()
        counts["uploaded"] += 1
        print(f"uploaded {prefix}{src.name}/{p.name}", flush=True)


def download_folder(drive: Any, path: str, local: str | Path) -> Path:
    """Copy Drive folder ``path`` to ``local``, replacing it only once everything arrived."""
    folder_id = find_folder(drive, path)
    dst = Path(local)
    partial = dst.with_name(dst.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted earlier download: start it again whole
    _download_tree(drive, folder_id, partial)
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
        partial.rename(dst)
        shutil.rmtree(old)
    else:
        partial.rename(dst)
    return dst


def _download_tree(drive: Any, folder_id: str, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in _children(drive, folder_id):
        if _is_folder(item):
            _download_tree(drive, item["id"], dst / item["title"])
        else:
            item.GetContentFile(str(dst / item["title"]))


def _drive() -> Any:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return local_drive()
    return colab_drive()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.drive", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upload", help="copy a local folder into a Drive folder")
    up.add_argument("local")
    up.add_argument("drive_folder", help="Drive folder path under My Drive, e.g. stm/families")
    down = sub.add_parser("download", help="copy a Drive folder to a local folder")
    down.add_argument("drive_path")
    down.add_argument("local")
    args = ap.parse_args(argv)
    from training.io import USER_ERRORS, cli_error

    try:
        drive = _drive()
        if args.cmd == "upload":
            print(upload_folder(drive, args.local, to=args.drive_folder))
        else:
            print(f"downloaded to {download_folder(drive, args.drive_path, args.local)}")
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
