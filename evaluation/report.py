"""Evaluate a family on labelled frames, or guess labels for new ones; write JSON, Markdown, PNGs.

Example:
    >>> fam = Family.load("models/hsi_family")                          # doctest: +SKIP
    >>> evaluate_family(fam, load_frames("test.h5"), report="out.json")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.metrics import evaluate, majority_class_baseline
from training.data import DataFormatError, FrameSet, check_images, load_frames
from training.io import write_json_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# The raw scan files of instrument_bridge.readers (Nanonis, Createc, RHK, Gwyddion), as text so
# that importing this module does not import the bridge.
SCAN_SUFFIXES = (".sxm", ".dat", ".sm4", ".gwy")
# The real training frames span 3.5-3.9 nm; a scan far outside that shows the lattice at
# another scale than the family learned, and its vote is less reliable.
TRAINED_FIELD_NM = (3.0, 4.6)
# A partial scan with less than this share of its lines is skipped, as the folder watcher does:
# stretched to a full frame it would show the lattice at several times its true scale.
MIN_SCANNED = 0.25
# Below this many pixels a side no lattice can show (a dimer row is 7.7 A apart); such an array
# is far likelier a mistake (a 2-D .npy of feature rows read as one frame) than a scan.
MIN_SIDE = 16


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BOX))


def load_any(
    path: str | Path,
    *,
    size: int = 128,
    note: Callable[[str], None] | None = None,
    tile_nm: float | None = None,
    progress: bool = False,
) -> FrameSet:
    """Frames from a dataset file (.h5/.npz/.mat), a ``.npy`` array, one image or scan file, a
    folder of images and scan files, or a live session's log folder (the frames it voted on).

    False-colour SPM-Toolbox PNGs are mapped back through their palette; other images are read
    as grey. Raw scan files (Nanonis ``.sxm``, Createc ``.dat``, RHK ``.sm4``, Gwyddion
    ``.gwy``) are read by :mod:`instrument_bridge.readers` and levelled as the live bridge
    levels them. Frames of another size are BOX-resized to ``size``, and ``note`` (``print``,
    say) is told how many and from what sizes, which scans span another field than the family
    learned from, and which files in a folder could not be read (they are skipped).
    ``tile_nm`` (3.7, say): a scan of known size wider than 1.5 tiles is cut into square tiles
    of that field (:func:`instrument_bridge.prepare.tile_scan`), one frame each, named
    ``file.sxm[r0c1]``; all tiles of a scan are one session. ``progress``: a bar over the
    files of a folder (from 20 files on).

    >>> load_any("scans/", note=print)  # doctest: +SKIP
    resized 3 of 3 frames to 128x128 (from 256x256); the family learned from ...
    """
    fs, hw_read, field_ok = _load_any(Path(path), size, note, tile_nm, progress)
    small = hw_read[(hw_read < MIN_SIDE).any(axis=1)]
    if len(small):
        h, w = small[0].tolist()
        raise DataFormatError(
            f"{path}: expected scan frames at least {MIN_SIDE}x{MIN_SIDE} pixels, got "
            f"{len(small)} smaller (the first {h}x{w}); a 2-D .npy is read as one frame, "
            "a stack needs shape (N, H, W)"
        )
    # A frame already of the trained field (a tile, say) loses nothing by a resize: not noted.
    hw = hw_read[(hw_read != size).any(axis=1) & ~field_ok]
    if note is not None and len(hw):
        shapes = sorted({f"{h}x{w}" for h, w in hw.tolist()})
        shown = ", ".join(shapes[:4]) + (", ..." if len(shapes) > 4 else "")
        note(
            f"resized {len(hw)} of {len(fs)} frames to {size}x{size} (from {shown}); the "
            "family learned from whole scans about 3.5 nm across, so much larger or smaller "
            "fields, or non-square frames, are judged less reliably"
        )
    return fs


def _load_any(
    path: Path,
    size: int,
    note: Callable[[str], None] | None = None,
    tile_nm: float | None = None,
    progress: bool = False,
) -> tuple[FrameSet, np.ndarray, np.ndarray]:
    """The frames, resized to ``size``, each frame's (height, width) as read, and whether its
    field is known to be one the family learned from."""
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if is_session_log(path):
        # A live session's log: its frames as voted, not the folder's pictures (timeline.png).
        fs = _session_log_frames(path if path.is_dir() else path.parent)
        if fs.images.shape[1:] != (size, size):
            fs.images = np.stack([_resize(f, size) for f in fs.images])
        return fs, fs.orig_hw, np.ones(len(fs), bool)
    suffixes = IMAGE_SUFFIXES + SCAN_SUFFIXES
    if path.is_dir() or path.suffix.lower() in suffixes:
        files = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if path.is_dir()
            else [path]
        )
        if not files:
            raise DataFormatError(
                f"{path}: expected image or scan files ({', '.join(suffixes)}), found none"
            )
        imgs, hws, names, fields, sessions, skipped = [], [], [], [], [], []
        from tqdm import tqdm

        bar = tqdm(files, desc="reading", unit="file", disable=not progress or len(files) < 20)
        for f in bar:
            try:
                read = _read_one(f, size, tile_nm)
            except DataFormatError as e:
                if not path.is_dir():
                    raise
                skipped.append(str(e))  # one unreadable file must not cost a whole archive
                continue
            for name, img, hw, field in read:
                imgs.append(img)
                hws.append(hw)
                names.append(name)
                fields.append(field)
                sessions.append(f.stem if len(read) > 1 else path.stem)
        if not imgs:
            raise DataFormatError(
                f"{path}: none of its {len(files)} image or scan files could be read "
                f"(the first: {skipped[0]})"
            )
        if note is not None:
            _note_skipped_and_fields(note, skipped, names, fields, tile_nm)
        hw_read = np.array(hws, np.int32)
        fs = FrameSet(
            images=np.stack(imgs),
            mean_scores=np.full((len(imgs), 6), np.nan, np.float32),
            sessions=np.array(sessions),
            names=np.array(names),
            orig_hw=hw_read,
        )
        lo, hi = TRAINED_FIELD_NM
        return fs, hw_read, np.array([bool(f) and lo <= f <= hi for f in fields])
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataFormatError(f"{path}: not a plain numeric .npy array ({e})") from e
        x = check_images(x)
        hw_read = np.tile(np.array(x.shape[1:], np.int32), (len(x), 1))
        if x.shape[1:] != (size, size):
            x = np.stack([_resize(f, size) for f in x])
        fs = FrameSet(
            images=x,
            mean_scores=np.full((len(x), 6), np.nan, np.float32),
            sessions=np.full(len(x), path.stem),
            names=np.array([f"{path.stem}_{i}" for i in range(len(x))]),
            orig_hw=hw_read,
        )
        return fs, hw_read, np.zeros(len(fs), bool)
    fs = load_frames(path)  # its orig_hw: the scans the frames were made from; kept
    hw_read = np.tile(np.array(fs.images.shape[1:], np.int32), (len(fs), 1))
    if fs.images.shape[1:] != (size, size):
        fs.images = np.stack([_resize(f, size) for f in fs.images])
    return fs, hw_read, np.zeros(len(fs), bool)


def is_session_log(path: str | Path) -> bool:
    """Whether ``path`` is a live session's log folder, or the ``frames.h5`` inside one."""
    path = Path(path)
    log = path if path.is_dir() else path.parent
    return (log / "records.jsonl").exists() and (path.is_dir() or path.name == "frames.h5")


def _session_log_frames(log: Path) -> FrameSet:
    """The frames a live session voted on (``frames.h5`` of its log), one per verdict, named
    ``<log>/scan<i>`` after the verdict's index (the x axis of its timeline)."""
    from instrument_bridge.session_log import read_frames, read_log

    frames = read_frames(log)
    verdicts = [r for r in read_log(log) if r.get("type") == "verdict"]
    rows = [
        (i, v["frame"])
        for i, v in enumerate(verdicts)
        if isinstance(v.get("frame"), int) and 0 <= v["frame"] < len(frames)
    ]
    if not rows:
        raise DataFormatError(
            f"{log}: expected a live session's log with voted frames in frames.h5, found "
            f"{len(verdicts)} verdicts and {len(frames)} frames"
        )
    images = frames[[r for _, r in rows]]
    n = len(images)
    return FrameSet(
        images=images,
        mean_scores=np.full((n, 6), np.nan, np.float32),
        sessions=np.full(n, log.name),
        names=np.array([f"{log.name}/scan{i:04d}" for i, _ in rows]),
    )


def _read_one(f: Path, size: int, tile_nm: float | None = None) -> list[tuple]:
    """One image or scan file: [(name, uint8 frame, (height, width) as read, field nm or None)].

    One entry, or one per tile where ``tile_nm`` cuts a scan of known size into tiles.
    """
    out = _read_one_file(f, size, tile_nm)
    small = [(name, hw) for name, _, hw, _ in out if min(hw) < MIN_SIDE]
    if small:  # raised here, so that a folder skips the file with a note
        h, w = small[0][1]
        raise DataFormatError(
            f"{f.name}: expected a frame at least {MIN_SIDE}x{MIN_SIDE} pixels, got {h}x{w}"
        )
    return out


def _read_one_file(f: Path, size: int, tile_nm: float | None) -> list[tuple]:
    from training.prepare_hsi import convert_png

    if f.suffix.lower() in SCAN_SUFFIXES:
        from instrument_bridge.prepare import FrameError, prepare_frame, tile_scan
        from instrument_bridge.readers import ScanFileError, read_scan

        try:
            scan = read_scan(f)
            scanned = int((~np.isnan(scan.z).all(axis=1)).sum())
            if scanned < MIN_SCANNED * len(scan.z):
                raise FrameError(
                    f"expected a scan at least {MIN_SCANNED:.0%} done, got {scanned} of "
                    f"{len(scan.z)} lines"
                )
            field = float(scan.size_nm) or None
            if tile_nm and field and field >= 1.5 * tile_nm:
                return [
                    (f"{f.name}[{name}]", prepare_frame(z, size=size), z.shape, tile_nm)
                    for name, z in tile_scan(scan.z, field, tile_nm=tile_nm)
                ]
            frame = prepare_frame(scan.z, size=size)
        except (ScanFileError, FrameError) as e:
            msg = str(e)
            raise DataFormatError(msg if str(f) in msg else f"{f.name}: {msg}") from e
        return [(f.name, frame, (scanned, scan.z.shape[1]), field)]
    try:
        img, hw = convert_png(f, size=size)
    except DataFormatError:  # not a nanomap export: read as plain grey
        try:
            with Image.open(f) as im:
                grey = _grey8(im)
        except OSError as e:
            raise DataFormatError(f"{f.name}: not a readable image ({e})") from e
        img, hw = _resize(grey, size), grey.shape
    return [(f.name, img, hw, None)]


def _grey8(im: Image.Image) -> np.ndarray:
    """An image as uint8 grey. 16-bit and float greyscale (height maps exported by Gwyddion,
    say) are min-max scaled over their own range: PIL's ``convert("L")`` clips them at 255,
    which turned a 16-bit height map all white."""
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        ok = np.isfinite(a)
        lo, hi = (a[ok].min(), a[ok].max()) if ok.any() else (0.0, 0.0)
        scaled = np.where(ok, (a - lo) / (hi - lo), 0.0) if hi > lo else np.zeros(a.shape)
        return np.round(scaled * 255).astype(np.uint8)
    return np.asarray(im.convert("L"))


def _note_skipped_and_fields(
    note, skipped: list[str], names: list[str], fields: list, tile_nm: float | None
) -> None:
    if skipped:
        note(
            f"skipped {len(skipped)} file(s) that could not be read, were less than "
            f"{MIN_SCANNED:.0%} scanned or under {MIN_SIDE} pixels a side; the first: {skipped[0]}"
        )
    if tile_nm:
        tiled = [n for n in names if n.endswith("]")]
        if tiled:
            note(f"cut scans into {len(tiled)} tiles of {tile_nm:g} nm")
    lo, hi = TRAINED_FIELD_NM
    known = [(n, f) for n, f in zip(names, fields, strict=True) if f]
    off = [(n, f) for n, f in known if not lo <= f <= hi]
    if off:
        a, b = min(f for _, f in off), max(f for _, f in off)
        span = f"{a:.3g}" if f"{a:.3g}" == f"{b:.3g}" else f"{a:.3g}-{b:.3g}"
        note(
            f"{len(off)} of {len(known)} scans of known size span {span} nm (e.g. "
            f"{off[0][0]}); the family learned from fields of about 3.7 nm, so their votes "
            "are less reliable"
            + ("" if tile_nm else " (--tile-nm 3.7 votes on 3.7 nm tiles of each instead)")
        )


def by_scan(rows: list[dict], categories: list[str]) -> list[dict]:
    """Tile votes (names ``file[rXcY]``) gathered per scan; [] when no frame is a tile.

    >>> rows = [{"name": "a.sxm[r0c0]", "Rows": 1, "Rows p": 0.9},
    ...         {"name": "a.sxm[r0c1]", "Rows": 0, "Rows p": 0.3}]
    >>> by_scan(rows, ["Rows"])
    [{'scan': 'a.sxm', 'tiles': 2, 'Rows p': 0.6, 'Rows share': 0.5}]
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        name = r["name"]
        if name.endswith("]") and "[r" in name:
            groups.setdefault(name[: name.rindex("[r")], []).append(r)
    out = []
    for scan, rs in groups.items():
        row: dict = {"scan": scan, "tiles": len(rs)}
        for c in categories:
            row[f"{c} p"] = round(float(np.mean([r[f"{c} p"] for r in rs])), 4)
            row[f"{c} share"] = round(float(np.mean([r[c] for r in rs])), 3)
        out.append(row)
    return out


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def metrics_markdown(m: dict, *, title: str = "Family evaluation") -> str:
    """A Markdown table of a metrics dict from :func:`evaluation.metrics.evaluate`."""
    lines = [
        f"# {title}",
        "",
        f"{m['n']} labelled frames. Exact match {_fmt(m['exact_match'])}, mean ROC-AUC "
        f"{_fmt(m['macro_roc_auc'])}, mean precision {_fmt(m['mean_precision'])}.",
        "",
        "| category | precision | recall | F1 | ROC-AUC | support |",
        "|---|---|---|---|---|---|",
    ]
    for c, v in m["per_category"].items():
        lines.append(
            f"| {c} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | "
            f"{_fmt(v['roc_auc'])} | {v['support']} |"
        )
    if "good_vs_bad" in m:
        g = m["good_vs_bad"]
        lines.append(
            f"| **good vs bad tip** | {_fmt(g['precision'])} | {_fmt(g['recall'])} | "
            f"{_fmt(g['f1'])} | {_fmt(g['roc_auc'])} | {g['support_bad']} |"
        )
    if "majority_class_exact_match" in m:
        lines += ["", f"Majority-class guess: exact match {_fmt(m['majority_class_exact_match'])}."]
    return "\n".join(lines) + "\n"


def evaluate_family(
    family,
    frames: FrameSet,
    *,
    report: str | Path | None = None,
    plots_dir: str | Path | None = None,
    label_rule: str | None = None,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion=None,
    progress: bool = False,
) -> dict:
    """Vote on the labelled frames, compute every metric, write JSON/Markdown/PNGs if asked.

    Unlabelled frames are skipped (their count is reported as ``n_skipped_unlabelled``).
    ``tta``, ``undo_class_weights``, ``companion`` and ``progress`` as in
    :meth:`cnn_family.Family.vote`.
    """
    from evaluation import plots

    rule = label_rule or family.manifest.get("label_rule", "gt0.5")
    mask = frames.labelled
    if not mask.any():
        raise DataFormatError("evaluate: the data holds no labelled frames (all scores NaN)")
    sub = frames.subset(mask)
    y = sub.labels(rule)
    cats = list(family.categories)
    from training.data import CATEGORIES

    cols = [CATEGORIES.index(c) for c in cats]
    y = y[:, cols]
    vote = family.vote(
        sub.images,
        y,
        tta=tta,
        undo_class_weights=undo_class_weights,
        companion=companion,
        progress=progress,
    )
    m = evaluate(vote.hard, vote.soft, y, cats, agreement=vote.agreement)
    m["tta"] = bool(tta)
    m["undo_class_weights"] = bool(undo_class_weights)
    m["spectral_companion"] = vote.member_probs.shape[2] > family.k
    m["n_skipped_unlabelled"] = int((~mask).sum())
    m["label_rule"] = rule
    m["majority_class_exact_match"] = majority_class_baseline(y)
    m["family"] = str(family.path) if family.path else None
    if report is not None:
        report = Path(report)
        write_json_atomic(report, m)
        report.with_suffix(".md").write_text(metrics_markdown(m))
    if plots_dir is not None:
        d = Path(plots_dir)
        plots.plot_roc(vote.soft, y, cats, d / "roc.png")
        plots.plot_confusion(vote.hard, y, cats, d / "confusion.png")
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(sub), size=min(16, len(sub)), replace=False))
        plots.plot_gallery(
            sub.images[pick],
            vote.hard[pick],
            cats,
            d / "gallery.png",
            y_true=y[pick],
            soft=vote.soft[pick],
            title="family vote vs crowd labels",
        )
    return m


def guess_labels(
    family,
    frames: FrameSet,
    *,
    out: str | Path | None = None,
    plots_dir=None,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion=None,
    y_true: np.ndarray | None = None,
    truth_name: str = "crowd",
    progress: bool = False,
) -> dict:
    """Vote on every frame; write a CSV (one row per frame) and a gallery PNG if asked.

    ``y_true`` (0/1, one column per family category), where known, goes into the picture's
    captions under ``truth_name``, and the result gets ``exact_match``. Where frames are tiles
    of scans (names ``file.sxm[r0c1]``, :func:`load_any` with ``tile_nm``), a second CSV beside
    ``out`` (``<out>_by_scan.csv``) gives each scan its tiles' mean probability and the share
    of its tiles voted positive, per category, and the result gets ``by_scan``. ``progress``:
    a bar over the frames, as in :meth:`cnn_family.Family.vote`.
    """
    from evaluation import plots

    vote = family.vote(
        frames.images,
        tta=tta,
        undo_class_weights=undo_class_weights,
        companion=companion,
        progress=progress,
    )
    cats = list(family.categories)
    rows = []
    for i, name in enumerate(frames.names):
        row = {"name": str(name)}
        for j, c in enumerate(cats):
            row[f"{c}"] = int(vote.hard[i, j])
            row[f"{c} p"] = round(float(vote.soft[i, j]), 4)
            row[f"{c} agreement"] = round(float(vote.agreement[i, j]), 3)
        rows.append(row)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if plots_dir is not None:
        plots.plot_gallery(
            frames.images,
            vote.hard,
            cats,
            Path(plots_dir) / "guesses.png",
            soft=vote.soft,
            y_true=y_true,
            truth_name=truth_name,
            title="family vote" + ("" if y_true is None else f" vs {truth_name} labels"),
            names=frames.names if y_true is None else None,
        )
    res = {
        "n": len(frames),
        "votes": rows,
        "positive_rate": dict(zip(cats, vote.hard.mean(0).tolist(), strict=True)),
    }
    scans = by_scan(rows, cats)
    if scans:
        res["by_scan"] = scans
        if plots_dir is not None:
            plots.plot_tiled_scans(
                frames.names,
                frames.images,
                vote.soft,
                cats,
                Path(plots_dir) / "guesses_by_scan.png",
            )
        if out is not None:
            with out.with_name(f"{out.stem}_by_scan.csv").open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(scans[0]))
                w.writeheader()
                w.writerows(scans)
    if y_true is not None:
        res["exact_match"] = float(np.all(vote.hard == y_true, axis=1).mean())
    return res
