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


def plot_timeline(folder: str | Path, out: str | Path | None = None) -> Path:
    """Tip-state probabilities over the session's scans, with actions marked. Returns the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = read_log(folder)
    verdicts = [r for r in recs if r["type"] == "verdict"]
    out = Path(out) if out else Path(folder) / "timeline.png"
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    if verdicts:
        cats = verdicts[0]["categories"]
        soft = np.array([v["soft"] for v in verdicts], dtype=float)
        x = np.arange(len(verdicts))
        for c, name in enumerate(cats):
            ax.plot(x, soft[:, c], lw=1.4, label=name)
        truth = [v.get("truth", {}) or {} for v in verdicts]
        good = np.array([t.get("good", np.nan) for t in truth], dtype=float)
        if np.isfinite(good).any():
            ax.fill_between(
                x,
                0,
                1,
                where=good == 1,
                color="tab:green",
                alpha=0.08,
                step="mid",
                label="tip good (simulator truth)",
            )
        first = True
        for i, v in enumerate(verdicts):
            act = (v.get("decision") or {}).get("action")
            if act:
                ax.axvline(i, color="k", ls="--", lw=0.9, label="action" if first else None)
                ax.annotate(
                    f"{act['kind']} {act['depth_nm'] if act['kind'] == 'dip' else act['bias_v']}",
                    (i, 1.01),
                    fontsize=7,
                    rotation=60,
                    ha="left",
                    va="bottom",
                    annotation_clip=False,
                )
                first = False
        ax.set_xlim(-0.5, max(len(verdicts) - 0.5, 0.5))
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("scan")
    ax.set_ylabel("soft vote (mean member probability)")
    ax.set_title(f"Live session {Path(folder).name}: {len(verdicts)} scans", pad=52)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
