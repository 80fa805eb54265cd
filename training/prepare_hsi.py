"""Convert the SPM-Toolbox release (false-colour PNGs + label workbook) to the project's HDF5.

Usage::

    python -m training.prepare_hsi "SPM-Toolbox/Images (Flat)" \\
        "SPM-Toolbox/Database/Classified_Output_10-Aug-2017.xlsx" hsi128.h5

Each PNG's colours are mapped back to grey levels through the fixed "nanomap" palette
(:mod:`training.palette`), then BOX-resized to 128x128 with PIL (partial frames are stretched, as
in the original pipeline, and flagged ``complete=False``). Labels come from the workbook's
``Mean_Score`` and ``Agreement_Score`` sheets; frames without a row there are kept, unlabelled.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from training.data import CATEGORIES, N_CATEGORIES, DataFormatError, FrameSet, save_frames
from training.io import USER_ERRORS, cli_error
from training.palette import NANOMAP_RGB

_LUMA = NANOMAP_RGB.astype(np.int64) @ np.array([65536, 256, 1])
_ORDER = np.argsort(_LUMA)
_SORTED_CODES = _LUMA[_ORDER]
_SESSION_RE = re.compile(r"(\d{4}[A-Z][a-z]{2}\d{2}-\d{6})")


def session_of(name: str) -> str:
    """The scan session (acquisition timestamp) in an SPM-Toolbox frame name.

    >>> session_of("default_2015Feb11-102853_STM-STM_Spectroscopy--16_6.png")
    '2015Feb11-102853'
    """
    m = _SESSION_RE.search(name)
    return m.group(1) if m else Path(name).stem


def rgb_to_grey(rgb: np.ndarray, *, where: str = "image") -> np.ndarray:
    """Map nanomap false-colour pixels (H, W, 3) to uint8 grey via the palette rank."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataFormatError(f"{where}: expected an RGB image (H, W, 3), got {rgb.shape}")
    code = rgb.astype(np.int64) @ np.array([65536, 256, 1])
    pos = np.clip(np.searchsorted(_SORTED_CODES, code), 0, len(_SORTED_CODES) - 1)
    bad = _SORTED_CODES[pos] != code
    if bad.any():
        raise DataFormatError(
            f"{where}: {int(bad.sum())} pixels are not colours of the nanomap palette "
            f"(e.g. RGB {tuple(int(v) for v in rgb[bad][0])}); expected an SPM-Toolbox export"
        )
    rank = _ORDER[pos]
    return np.round(rank * 255.0 / (len(NANOMAP_RGB) - 1)).astype(np.uint8)


def convert_png(path: str | Path, *, size: int = 128) -> tuple[np.ndarray, tuple[int, int]]:
    """One SPM-Toolbox PNG -> (uint8 (size, size) frame, original (height, width))."""
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I") or im.mode == "F":  # 16-bit or float grey: heights
                raise DataFormatError(f"{path}: expected a false-colour image, got mode {im.mode}")
            rgb = np.asarray(im.convert("RGB"))
    except OSError as e:  # PIL's unidentified or truncated image: a bad file, not a bad disk
        raise DataFormatError(f"{path}: not a readable image ({e})") from e
    grey = rgb_to_grey(rgb, where=str(path))
    resized = np.asarray(Image.fromarray(grey).resize((size, size), Image.BOX))
    return resized, (rgb.shape[0], rgb.shape[1])


def read_label_workbook(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """``{name: (mean_scores[6], agreement[6], n_responses)}`` from the Classified_Output xlsx."""
    import openpyxl

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label workbook not found: {path}")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheets = {ws.title: ws for ws in wb.worksheets}
        for need in ("Mean_Score", "Agreement_Score"):
            if need not in sheets:
                raise DataFormatError(f"{path}: expected a sheet {need!r}, found {sorted(sheets)}")

        def rows(title: str) -> dict[str, tuple[int, np.ndarray]]:
            out = {}
            for i, row in enumerate(sheets[title].iter_rows(values_only=True)):
                if i == 0 or not row or row[0] is None:
                    continue
                vals = np.array(
                    [np.nan if v is None else float(v) for v in row[2 : 2 + N_CATEGORIES]],
                    dtype=np.float32,
                )
                out[str(row[0])] = (int(row[1] or 0), vals)
            return out

        means, agree = rows("Mean_Score"), rows("Agreement_Score")
    finally:
        wb.close()
    nan6 = np.full(N_CATEGORIES, np.nan, np.float32)
    return {name: (m, agree.get(name, (0, nan6))[1], n) for name, (n, m) in means.items()}


def prepare_hsi(
    src_dir: str | Path,
    labels_xlsx: str | Path,
    out_h5: str | Path,
    *,
    size: int = 128,
    progress: bool = True,
) -> FrameSet:
    """Convert a folder of SPM-Toolbox PNGs plus its label workbook to the project's HDF5 file."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"PNG folder not found: {src_dir}")
    pngs = sorted(p for p in src_dir.iterdir() if p.suffix.lower() == ".png")
    if not pngs:
        raise DataFormatError(f"{src_dir}: expected SPM-Toolbox .png frames, found none")
    labels = read_label_workbook(labels_xlsx)
    n = len(pngs)
    images = np.empty((n, size, size), np.uint8)
    means = np.full((n, N_CATEGORIES), np.nan, np.float32)
    agreement = np.full((n, N_CATEGORIES), np.nan, np.float32)
    n_resp = np.zeros(n, np.int16)
    orig_hw = np.zeros((n, 2), np.int32)
    for i, p in enumerate(tqdm(pngs, desc="converting", unit="frame", disable=not progress)):
        images[i], orig_hw[i] = convert_png(p, size=size)
        if p.name in labels:
            m, a, k = labels[p.name]
            if k > 0:
                means[i], agreement[i], n_resp[i] = m, a, k
    fs = FrameSet(
        images=images,
        mean_scores=means,
        sessions=np.array([session_of(p.name) for p in pngs]),
        names=np.array([p.name for p in pngs]),
        agreement=agreement,
        n_responses=n_resp,
        orig_hw=orig_hw,
        complete=orig_hw[:, 0] == orig_hw[:, 1],
        categories=CATEGORIES,
    )
    save_frames(
        fs,
        out_h5,
        attrs={
            "source": f"SPM-Toolbox PNGs from {src_dir.name} + {Path(labels_xlsx).name}",
            "conversion": "nanomap palette rank scaled 0..255, PIL BOX resize, partial frames "
            "stretched",
        },
    )
    return fs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.prepare_hsi", description=__doc__.split("\n")[0]
    )
    ap.add_argument("src_dir", help="folder of SPM-Toolbox false-colour PNGs ('Images (Flat)')")
    ap.add_argument("labels_xlsx", help="Classified_Output_*.xlsx label workbook")
    ap.add_argument("out_h5", help="output file in the project's HDF5 format")
    ap.add_argument("--size", type=int, default=128, help="output frame size (default 128)")
    args = ap.parse_args(argv)
    try:
        fs = prepare_hsi(args.src_dir, args.labels_xlsx, args.out_h5, size=args.size)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    print(
        f"wrote {args.out_h5}: {len(fs)} frames, {int(fs.labelled.sum())} labelled, "
        f"{len(set(fs.sessions))} sessions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
