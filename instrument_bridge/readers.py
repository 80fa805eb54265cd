"""Readers for the scan files STM controllers write: Nanonis .sxm, Createc .dat, RHK .sm4,
Gwyddion .gwy. Each returns a :class:`ScanResult` with the topography as raw heights (NaN
rows = lines not scanned), ready for :func:`instrument_bridge.prepare.prepare_frame`.

Libraries were checked on the real files in ``../shared/data/instrument_files``:

* ``.gwy``: ``gwyfile`` (maintained, numpy only) works and is used.
* ``.sm4``: ``spym``'s ``RHKsm4`` parser works and is numpy only, but ``import spym`` pulls
  xarray and hvplot; we load its parser module on its own (:func:`_spym_sm4`).
* ``.sxm``: ``nanonispy`` 1.1.0 fails on numpy >= 1.24 and ``pySPM`` drags in pandas,
  scikit-image, seaborn and IPython for a 40-line format, so the reader is written here.
* ``.dat`` (Createc): no maintained reader on PyPI; written here (text header, ``DATA``, zlib
  float32; the first column of each row is junk, trailing all-zero rows are unscanned lines).

>>> scan = read_scan("scan.sxm")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import re
import zlib
from pathlib import Path

import numpy as np

from instrument_bridge.instrument import ScanResult

SUFFIXES = (".sxm", ".dat", ".sm4", ".gwy")
# 8192 x 8192: more than any controller scans; a garbled header past it must not allocate PiB.
MAX_PIXELS = 1 << 26


class ScanFileError(ValueError):
    """A scan file that cannot be read; the message says what was expected."""


def _lines_done(z: np.ndarray) -> int | None:
    done = int((~np.isnan(z).all(axis=1)).sum())
    return None if done == len(z) else done


def read_sxm(path: str | Path, *, channel: str = "Z") -> ScanResult:
    """Nanonis .sxm: the forward ``channel`` (Z by default), top row first."""
    raw = Path(path).read_bytes()
    end = raw.find(b":SCANIT_END:")
    start = raw.find(b"\x1a\x04", end)
    if end < 0 or start < 0:
        raise ScanFileError(f"{path}: expected a Nanonis .sxm header ending in :SCANIT_END:")
    head = raw[:end].decode("latin-1")
    fields = dict(re.findall(r":([^:\n]+):\n(.*?)(?=\n:|\Z)", head, flags=re.S))
    try:
        cols, rows = (int(v) for v in fields["SCAN_PIXELS"].split())
        range_x, range_y = (float(v) for v in fields["SCAN_RANGE"].split()[:2])
        bias = fields.get("BIAS", "").split()
        bias_v = float(bias[0]) if bias else 0.0
        info = [
            ln.strip().split("\t")
            for ln in fields["DATA_INFO"].strip().splitlines()[1:]
            if ln.strip()
        ]
    except (KeyError, ValueError) as e:
        raise ScanFileError(f"{path}: .sxm header lacks or garbles {e}") from None
    if not (0 < rows and 0 < cols and rows * cols <= MAX_PIXELS):
        raise ScanFileError(
            f"{path}: SCAN_PIXELS: expected two positive counts up to {MAX_PIXELS} pixels in all, "
            f"got {cols} x {rows}"
        )
    if not (np.isfinite(range_x) and np.isfinite(range_y)):
        raise ScanFileError(
            f"{path}: SCAN_RANGE: expected two finite lengths in m, got {fields['SCAN_RANGE']!r}"
        )
    if any(len(i) < 4 for i in info):
        raise ScanFileError(
            f"{path}: DATA_INFO: expected channel, name, unit, direction per line, got {info}"
        )
    names = [i[1].strip() for i in info]
    if channel not in names:
        raise ScanFileError(f"{path}: expected a channel {channel!r}, file has {names}")
    offset = 0
    for i in info[: names.index(channel)]:
        offset += (2 if i[3].strip() == "both" else 1) * rows * cols
    at = start + 2 + 4 * offset
    if len(raw) < at + 4 * rows * cols:
        raise ScanFileError(
            f"{path}: expected {rows}x{cols} float32 values of {channel!r} after the header, "
            f"the file ends {at + 4 * rows * cols - len(raw)} bytes short (cut off while written?)"
        )
    data = np.frombuffer(raw, ">f4", count=rows * cols, offset=at)
    z = data.reshape(rows, cols).astype(np.float64)
    direction = fields.get("SCAN_DIR", "down").strip()
    if direction == "up":
        z = z[::-1]
    # Some writers save an interrupted scan with only the scanned lines (SCAN_PIXELS says
    # 512 x 60 over a square range): restore the full frame with NaN rows so the frame is
    # explicitly partial instead of silently squashed.
    lines = cols * (range_y / range_x) if range_x > 0 else rows
    if not lines * cols <= MAX_PIXELS:  # also NaN
        raise ScanFileError(
            f"{path}: SCAN_RANGE {range_x:g} x {range_y:g} m over {cols} columns makes "
            f"{lines:g} lines, more than a scan holds (a garbled header?)"
        )
    full_rows = round(lines)
    if full_rows > rows:
        pad = np.full((full_rows - rows, cols), np.nan)
        z = np.vstack([z, pad]) if direction != "up" else np.vstack([pad, z])
    return ScanResult(
        z=z,
        size_nm=range_x * 1e9,
        bias_v=bias_v,
        direction=direction,
        lines_done=_lines_done(z),
        source=str(path),
    )


def read_createc_dat(path: str | Path) -> ScanResult:
    """Createc .dat: channel 0 (topography, DAC units); unfinished rows become NaN."""
    raw = Path(path).read_bytes()
    i = raw.find(b"DATA")
    if i < 0:
        raise ScanFileError(f"{path}: expected a Createc header followed by DATA")
    head = dict(ln.split("=", 1) for ln in raw[:i].decode("latin-1").splitlines() if "=" in ln)
    try:
        nx, ny = int(head["Num.X / Num.X"]), int(head["Num.Y / Num.Y"])
        length_a = float(head.get("Length x[A]", "0"))
        bias_mv = float(head.get("BiasVoltage / BiasVolt.[mV]", "0"))
    except (KeyError, ValueError) as e:
        raise ScanFileError(f"{path}: Createc header lacks or garbles {e}") from None
    if not (1 < nx and 0 < ny and nx * ny <= MAX_PIXELS):
        raise ScanFileError(
            f"{path}: Num.X, Num.Y: expected a column count over 1 and a row count over 0, up "
            f"to {MAX_PIXELS} pixels in all, got {nx} x {ny}"
        )
    try:
        # Bounded by the header's pixel count: a corrupt block cannot inflate without limit.
        data = zlib.decompressobj().decompress(raw[i + 4 :], 4 * nx * ny)
        values = np.frombuffer(data[: len(data) // 4 * 4], "<f4")
    except zlib.error as e:
        raise ScanFileError(f"{path}: the DATA block is not zlib data ({e})") from None
    if values.size < nx * ny:
        raise ScanFileError(f"{path}: expected >= {nx * ny} values, got {values.size}")
    z = values[: nx * ny].reshape(ny, nx)[:, 1:].astype(np.float64)
    unscanned = (z == 0).all(axis=1)
    z[unscanned] = np.nan
    return ScanResult(
        z=z,
        size_nm=length_a / 10.0,
        bias_v=bias_mv / 1e3,
        lines_done=_lines_done(z),
        source=str(path),
    )


def _spym_sm4():
    spec = importlib.util.find_spec("spym")
    if spec is None or not spec.submodule_search_locations:
        raise ScanFileError("reading .sm4 needs the 'spym' package (pip install spym)")
    file = Path(next(iter(spec.submodule_search_locations))) / "io" / "rhksm4" / "_sm4.py"
    mod_spec = importlib.util.spec_from_file_location("_spym_rhksm4", file)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.RHKsm4


def read_sm4(path: str | Path, *, page: str = "Topography_Forward") -> ScanResult:
    """RHK .sm4: the ``page`` image (forward topography by default)."""
    try:
        f = _spym_sm4()(str(path))
    except ScanFileError:
        raise
    except Exception as e:  # the parser raises bare errors on foreign files
        raise ScanFileError(f"{path}: not a readable RHK .sm4 file ({e})") from None
    pages = {p.label: p for p in f._pages if getattr(p, "data", None) is not None}
    if page not in pages:
        raise ScanFileError(f"{path}: expected a page {page!r}, file has {sorted(pages)}")
    p = pages[page]
    z = np.asarray(p.data, np.float64)
    attrs = p.attrs
    size_m = abs(float(attrs.get("RHK_Xscale", 0.0)) * z.shape[1])
    return ScanResult(
        z=z,
        size_nm=size_m * 1e9,
        bias_v=float(attrs.get("RHK_Bias", 0.0)),
        lines_done=_lines_done(z),
        source=str(path),
    )


def read_gwy(path: str | Path, *, channel: str | None = None) -> ScanResult:
    """Gwyddion .gwy: the first data field (or the one titled ``channel``)."""
    import gwyfile

    try:
        obj = gwyfile.load(str(path))
        fields = gwyfile.util.get_datafields(obj)
    except Exception as e:  # gwyfile raises plain errors on foreign files
        raise ScanFileError(f"{path}: not a readable Gwyddion file ({e})") from None
    if not fields:
        raise ScanFileError(f"{path}: expected at least one data field, found none")
    name = channel or next(iter(fields))
    if name not in fields:
        raise ScanFileError(f"{path}: expected a channel {name!r}, file has {sorted(fields)}")
    df = fields[name]
    try:  # gwyfile reads a field's parts only when asked: a corrupt one fails here
        z = np.asarray(df.data, np.float64)
        unit = df.get("si_unit_xy")
        # Gwyddion keeps lengths in metres; a field without that unit has no known size (0).
        size_nm = float(df.xreal) * 1e9 if unit is not None and unit.get("unitstr") == "m" else 0.0
    except Exception as e:
        raise ScanFileError(
            f"{path}: data field {name!r} is not readable ({type(e).__name__}: {e})"
        ) from None
    if z.ndim != 2:
        raise ScanFileError(f"{path}: data field {name!r}: expected 2-D heights, got {z.shape}")
    return ScanResult(
        z=z,
        size_nm=size_nm,
        lines_done=_lines_done(z),
        source=str(path),
    )


READERS = {".sxm": read_sxm, ".dat": read_createc_dat, ".sm4": read_sm4, ".gwy": read_gwy}


def read_scan(path: str | Path) -> ScanResult:
    """Read any supported scan file, by suffix."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"scan file not found: {p}")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise ScanFileError(f"{p}: expected one of {SUFFIXES}, got {p.suffix!r}")
    return reader(p)
