"""An append-only log of a live session: every scan, verdict, action and error.

A session folder holds ``records.jsonl`` (one JSON object per line, flushed and fsynced per
record, so a crash loses at most the record being written) and ``frames.h5`` (the prepared
128x128 frames the family voted on, appended and flushed per scan; a record's ``frame`` field is
its row). JSON lines were chosen for the records because a half-written last line is easy to
detect and skip, which a crashed HDF5 file is not.

>>> log = SessionLog("/tmp/session")  # doctest: +SKIP
>>> log.record("verdict", soft=[0.1] * 6)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np


class SessionLog:
    """Append-only, thread-safe. ``record(type, **fields)`` returns the record's sequence no."""

    def __init__(self, folder: str | Path, *, frame_shape: tuple[int, int] = (128, 128)):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        path = self.folder / "records.jsonl"
        with open(path, "a+", encoding="utf-8") as f:  # continue the numbering of a resumed log
            f.seek(0)
            self._seq = sum(1 for _ in f)
        self._f = open(path, "a", encoding="utf-8")
        self._frame_shape = frame_shape
        self._h5 = None

    def _frames(self):
        import h5py

        if self._h5 is None:
            self._h5 = h5py.File(self.folder / "frames.h5", "a")
            if "frames" not in self._h5:
                self._h5.create_dataset(
                    "frames",
                    shape=(0, *self._frame_shape),
                    maxshape=(None, *self._frame_shape),
                    dtype="uint8",
                    chunks=(1, *self._frame_shape),
                    compression="gzip",
                    compression_opts=1,
                )
        return self._h5["frames"]

    def add_frame(self, frame: np.ndarray) -> int:
        """Append one prepared frame; returns its row in ``frames.h5``."""
        with self._lock:
            ds = self._frames()
            i = ds.shape[0]
            ds.resize(i + 1, axis=0)
            ds[i] = frame
            self._h5.flush()
            return i

    def record(self, type: str, **fields) -> int:
        with self._lock:
            rec = {"seq": self._seq, "t": time.time(), "type": type, **fields}
            self._f.write(json.dumps(rec, default=_jsonable, allow_nan=False) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._seq += 1
            return rec["seq"]

    def close(self) -> None:
        with self._lock:
            self._f.close()
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return np.where(np.isfinite(o), o, None).tolist() if o.dtype.kind == "f" else o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_log(folder: str | Path) -> list[dict]:
    """All complete records of a session (a torn last line from a crash is skipped)."""
    out = []
    with open(Path(folder) / "records.jsonl", encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def read_frames(folder: str | Path) -> np.ndarray:
    import h5py

    p = Path(folder) / "frames.h5"
    if not p.exists():
        return np.zeros((0, 128, 128), np.uint8)
    with h5py.File(p, "r") as f:
        return f["frames"][:]


def plot_timeline(folder: str | Path, out: str | Path | None = None, *, thumbs: int = 12) -> Path:
    """The session in one picture: frames, the six soft votes, the policy's score and its actions.

    A strip of up to ``thumbs`` frames (evenly spaced, from ``frames.h5``) sits above the
    votes; a frame's caption is red where the policy acted on it. Returns the PNG's path.

    Example:
        >>> plot_timeline("runs/live")  # doctest: +SKIP
        PosixPath('runs/live/timeline.png')
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    recs = read_log(folder)
    verdicts = [r for r in recs if r["type"] == "verdict"]
    dry = {r.get("parent") for r in recs if r["type"] == "action_result" and r.get("dry_run")}
    acted = [i for i, v in enumerate(verdicts) if (v.get("decision") or {}).get("action")]
    frames = _read_thumbs(folder, verdicts, thumbs)  # [(verdict index, frame)]
    out = Path(out) if out else Path(folder) / "timeline.png"

    fig = plt.figure(figsize=(11, 5.6 if frames else 4.2), dpi=110)
    if frames:
        grid = fig.add_gridspec(2, len(frames), height_ratios=(1, 2.6), hspace=0.45)
        for k, (i, img) in enumerate(frames):
            tax = fig.add_subplot(grid[0, k])
            tax.imshow(img, cmap="afmhot", vmin=0, vmax=255)
            tax.set_xticks([])
            tax.set_yticks([])
            tax.set_title(f"{i}", fontsize=7, color="tab:red" if i in acted else "k", pad=2)
        ax = fig.add_subplot(grid[1, :])
    else:
        ax = fig.add_subplot()
    if verdicts:
        cats = verdicts[0]["categories"]
        soft = np.array([v["soft"] for v in verdicts], dtype=float)
        x = np.arange(len(verdicts))
        for c, name in enumerate(cats):
            ax.plot(x, soft[:, c], lw=1.1, alpha=0.85, label=name)
        score = np.array(
            [(v.get("decision") or {}).get("filtered", np.nan) for v in verdicts], dtype=float
        )
        if np.isfinite(score).any():
            ax.plot(x, score, color="k", lw=2.2, label="policy: filtered P(bad tip)")
        truth = [v.get("truth", {}) or {} for v in verdicts]
        good = np.array([t.get("good", np.nan) for t in truth], dtype=float)
        if (good == 1).any():
            ax.fill_between(
                x,
                0,
                1,
                where=good == 1,
                color="tab:green",
                alpha=0.12,
                step="mid",
                label="tip good (simulator truth)",
            )
        for n, i in enumerate(acted):
            v = verdicts[i]
            act = v["decision"]["action"]
            is_dry = v.get("id") in dry
            ax.axvline(
                i,
                color="0.55" if is_dry else "tab:red",
                ls=":" if is_dry else "--",
                lw=0.9,
                label=("action (dry run)" if is_dry else "action") if n == 0 else None,
            )
            if len(acted) <= 30:  # beyond that the labels only overlap
                size = f"{act['depth_nm']} nm" if act["kind"] == "dip" else f"{act['bias_v']:+} V"
                ax.annotate(
                    f"{act['kind']} {size}",
                    (i, 1.01),
                    fontsize=7,
                    rotation=60,
                    ha="left",
                    va="bottom",
                    annotation_clip=False,
                )
        ax.set_xlim(-0.5, max(len(verdicts) - 0.5, 0.5))
    ax.set_ylim(0, 1.0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("scan")
    ax.set_ylabel("soft vote (mean member probability)")
    n_dry = sum(verdicts[i].get("id") in dry for i in acted)
    title = f"Live session {folder}: {counted(len(verdicts), 'scan')}, "
    title += f"{counted(len(acted), 'action')}" + (f" ({n_dry} dry run)" if n_dry else "")
    if frames:
        fig.suptitle(title)
    else:
        ax.set_title(title, pad=52)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.07, right=0.8, bottom=0.1, top=0.9 if frames else 0.78)
    fig.savefig(out)
    plt.close(fig)
    return out


def _read_thumbs(folder: str | Path, verdicts: list[dict], most: int) -> list:
    """Up to ``most`` (verdict index, frame) pairs, evenly spaced over the session.

    Only those rows of ``frames.h5`` are read: a long session's file need not be read whole.
    """
    import h5py

    p = Path(folder) / "frames.h5"
    if most <= 0 or not p.exists():
        return []
    with h5py.File(p, "r") as f:
        ds = f["frames"]
        have = [
            (i, v["frame"])
            for i, v in enumerate(verdicts)
            if isinstance(v.get("frame"), int) and 0 <= v["frame"] < ds.shape[0]
        ]
        if not have:
            return []
        pick = np.linspace(0, len(have) - 1, min(most, len(have))).round().astype(int)
        return [(have[k][0], ds[have[k][1]]) for k in sorted(set(pick.tolist()))]


def counted(count: int, noun: str) -> str:
    """``"1 scan"``, ``"2 scans"``: a count with its noun, for the operator's lines.

    >>> counted(1, "action"), counted(0, "action")
    ('1 action', '0 actions')
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
