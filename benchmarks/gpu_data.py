"""Carry the labelled real frames to a lent GPU machine, under its 64 MiB transfer limit.

    python benchmarks/gpu_data.py pack [--data ../shared/data/hsi/hsi128_dev.h5]   # here
    python3 benchmarks/gpu_data.py unpack /tmp/hsi.h5                              # there

The device tool sends the repository and the paths named in ``carry``, 64 MiB in all, and
``../shared`` does not travel. ``hsi128_dev.h5`` is 48 MB (gzip) beside a 27 MB tree. Packing
keeps the 3,978 labelled rows (the only ones training and the CV use) and stores each frame's
differences along the fast axis, xz-compressed: 23 MB, because neighbouring pixels of a scan
line are close. ``unpack`` rebuilds the project-format HDF5 and prints its fingerprint, which
equals that of the labelled subset of the original (families trained there record the same
data fingerprint as families trained here).

Both files go to ``.gpu/`` (ignored by git: nothing from ``../shared`` is committed).
"""

from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# _real; after the root, so that benchmarks/gan_extras.py never shadows the package
sys.path.insert(1, str(ROOT / "benchmarks"))

from _real import add_data_argument, real_data_missing  # noqa: E402

FIELDS = ("mean_scores", "agreement", "n_responses", "sessions", "names", "orig_hw", "complete")


def pack(data: str, folder: Path) -> str:
    from training.data import load_frames

    fs = load_frames(data)
    fs = fs.subset(fs.labelled)
    folder.mkdir(parents=True, exist_ok=True)
    diffs = np.diff(fs.images.astype(np.int16), axis=2, prepend=0).astype(np.uint8)
    (folder / "images.xz").write_bytes(lzma.compress(diffs.tobytes(), preset=6))
    meta = {k: getattr(fs, k) for k in FIELDS}
    meta["sessions"], meta["names"] = fs.sessions.astype(str), fs.names.astype(str)
    np.savez(folder / "meta.npz", shape=np.array(fs.images.shape), **meta)
    return fs.fingerprint()


def unpack(folder: Path, out: str) -> str:
    from training.data import FrameSet, save_frames

    m = np.load(folder / "meta.npz")
    diffs = np.frombuffer(lzma.decompress((folder / "images.xz").read_bytes()), np.uint8)
    # uint8 wrap-around makes the cumulative sum undo the wrapped differences exactly.
    images = np.cumsum(diffs.reshape(m["shape"]), axis=2, dtype=np.uint8)
    fs = FrameSet(images=images, **{k: m[k] for k in FIELDS})
    save_frames(fs, out)
    return fs.fingerprint()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="labelled frames of --data -> FOLDER (default .gpu)")
    add_data_argument(p)
    p.add_argument("--folder", default=str(ROOT / ".gpu"))
    u = sub.add_parser("unpack", help="FOLDER -> a project-format HDF5")
    u.add_argument("out")
    u.add_argument("--folder", default=str(ROOT / ".gpu"))
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        if real_data_missing(args.data):
            return 2
        print("packed", pack(args.data, Path(args.folder)))
    else:
        print("unpacked", unpack(Path(args.folder), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
