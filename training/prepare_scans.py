"""Your own labelled scans -> the project's HDF5, ready for ``main_training.py --data``.

Usage::

    python -m training.prepare_scans D:/scans labels.csv mine.h5

``D:/scans`` is a folder (or one file) of raw scans (Nanonis ``.sxm``, Createc ``.dat``, RHK
``.sm4``, Gwyddion ``.gwy``) or images, read and levelled as ``main_evaluate_guess.py --data``
reads them. ``labels.csv`` has a ``name`` column (the file name), one column per category
(``Asymmetries, Individual atoms, Dimers, Rows, Tip change, Bad/blurry``: 0/1, or the share of
your labellers who said yes) and, best, a ``session`` column: frames of one tip and sample
history, kept together in every split. Without it each scan is its own session, and the
evaluation's held-out frames may share a tip with training ones. A row with all six cells
empty, or a file without a row, is kept unlabelled.

A live session's log folder (``runs/live``) works too: its voted frames are named
``live/scan0000`` and so on, as ``main_evaluate_guess.py --data runs/live --guess`` writes them
in ``guesses.csv`` (a start for the labels), and they stay one session unless the CSV says
otherwise.

Scans wider than 1.5 × ``--tile-nm`` (3.7 nm, the field the family learned) are cut into tiles
that each get their scan's labels; a label that holds for part of a scan only (a tip change
at one line, say) then also marks the tiles without it: label such scans' tiles apart, or keep
them whole with ``--tile-nm 0``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.data import CATEGORIES, DataFormatError, FrameSet, save_frames
from training.io import USER_ERRORS, cli_error


def read_label_csv(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``{file name: six scores (NaN = unlabelled)}`` and ``{file name: session}`` from a CSV.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "l.csv")
    >>> _ = open(p, "w").write("name,session,Asymmetries,Individual atoms,Dimers,Rows,"
    ...                        "Tip change,Bad/blurry\\na.sxm,day1,0,0,1,0,0,0.5\\n")
    >>> scores, sessions = read_label_csv(p)
    >>> scores["a.sxm"].tolist(), sessions["a.sxm"]
    ([0.0, 0.0, 1.0, 0.0, 0.0, 0.5], 'day1')
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _read_label_rows(f, path)
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{path}: expected UTF-8 text, found byte {e.object[e.start]:#04x} at offset "
            f"{e.start} (save the sheet as 'CSV UTF-8')"
        ) from None


def _read_label_rows(f, path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    header = f.readline()
    f.seek(0)
    # Spreadsheets in many locales save CSV with ';' (or tabs) between columns.
    delimiter = max(",;\t", key=header.count)
    reader = csv.DictReader(f, delimiter=delimiter)
    cols = reader.fieldnames or []
    missing = [c for c in ("name", *CATEGORIES) if c not in cols]
    if missing:
        raise DataFormatError(
            f"{path}: expected columns name, {', '.join(CATEGORIES)} (and session), "
            f"missing {', '.join(missing)}; found {', '.join(cols) or 'none'}"
        )
    scores: dict[str, np.ndarray] = {}
    sessions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        name = (row["name"] or "").strip()
        if not name:
            raise DataFormatError(f"{path}, line {line}: expected a file name, got none")
        cells = [(row[c] or "").strip() for c in CATEGORIES]
        if any(cells) and not all(cells):
            raise DataFormatError(
                f"{path}, line {line} ({name}): expected all six labels or none, got "
                f"{sum(map(bool, cells))}"
            )
        if delimiter == ";":  # the same locales write 0,5 for 0.5
            cells = [c.replace(",", ".") for c in cells]
        try:
            v = np.array([float(c) if c else np.nan for c in cells], np.float32)
        except ValueError:
            raise DataFormatError(
                f"{path}, line {line} ({name}): expected numbers 0..1, got {cells}"
            ) from None
        given = np.array([bool(c) for c in cells])
        if (given & ~((v >= 0) & (v <= 1))).any():  # also NaN or inf written out
            raise DataFormatError(
                f"{path}, line {line} ({name}): expected labels in 0..1, got {v.tolist()}"
            )
        if name in first_line:
            raise DataFormatError(
                f"{path}, line {line}: {name} is labelled twice (first on line "
                f"{first_line[name]}); expected one row per file"
            )
        first_line[name] = line
        scores[name] = v
        if (row.get("session") or "").strip():
            sessions[name] = row["session"].strip()
    return scores, sessions


def prepare_scans(
    src: str | Path,
    labels_csv: str | Path,
    out_h5: str | Path,
    *,
    tile_nm: float | None = 3.7,
    note=print,
) -> FrameSet:
    """Read ``src``, attach the labels of ``labels_csv``, write ``out_h5``; return the frames."""
    from evaluation.report import is_session_log, load_any

    scores, sessions = read_label_csv(labels_csv)
    fs = load_any(src, note=note, tile_nm=tile_nm, progress=True)
    # A tile "f.sxm[r0c1]" takes the row of its scan "f.sxm".
    files = np.array([n.rsplit("[r", 1)[0] if n.endswith("]") else n for n in fs.names])
    unknown = sorted(set(scores) - set(files))
    if unknown:
        raise DataFormatError(
            f"{labels_csv}: {len(unknown)} labelled names are not files read from {src} "
            f"(e.g. {', '.join(unknown[:3])}); expected names as in the folder"
        )
    nan = np.full(len(CATEGORIES), np.nan, np.float32)
    fs.mean_scores = np.stack([scores.get(f, nan) for f in files])
    fs.agreement = np.where(np.isnan(fs.mean_scores), np.nan, 1.0).astype(np.float32)
    fs.n_responses = (~np.isnan(fs.mean_scores).any(axis=1)).astype(np.int16)
    if is_session_log(src):
        # One live session is one tip and sample history: its frames stay one session unless
        # the CSV says otherwise.
        fs.sessions = np.array(
            [sessions.get(f, s) for f, s in zip(files, fs.sessions, strict=True)]
        )
    elif sessions:
        fs.sessions = np.array([sessions.get(f, Path(f).stem) for f in files])
    else:
        fs.sessions = np.array([Path(f).stem for f in files])
        note(
            "no session column: each scan is its own session, so held-out frames may share a "
            "tip with training ones; add a session column (one per tip and sample history)"
        )
    save_frames(fs, out_h5)
    return fs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.prepare_scans",
        description=__doc__.split("\n")[0],
        epilog="The CSV's columns and what tiles do to labels: see the module's docstring.",
    )
    ap.add_argument("src", help="folder (or file) of raw scans or images")
    ap.add_argument(
        "labels_csv", help="CSV: name, the six categories (0..1, empty = unlabelled), session"
    )
    ap.add_argument("out_h5", help="output file in the project's HDF5 format")
    ap.add_argument(
        "--tile-nm",
        type=float,
        default=3.7,
        metavar="NM",
        help="cut scans wider than 1.5 tiles into tiles of this field, each with its scan's "
        "labels; 0 keeps whole scans (default 3.7)",
    )
    args = ap.parse_args(argv)
    try:
        fs = prepare_scans(args.src, args.labels_csv, args.out_h5, tile_nm=args.tile_nm or None)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    print(
        f"wrote {args.out_h5}: {len(fs)} frames, {int(fs.labelled.sum())} labelled, "
        f"{len(set(fs.sessions))} sessions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
