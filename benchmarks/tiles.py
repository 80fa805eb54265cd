"""What voting in tiles buys on scans wider than the family's field: simulated 11 nm scans.

    python benchmarks/tiles.py            # -> benchmarks/results/tiles.json (about a minute)

The family learned from frames about 3.7 nm across. Here the simulator renders scans three
times wider (11 nm, 384 pixels, the same tips, surfaces and scan artefacts per pixel) and the
shipped family votes on each one three ways, scored against the simulator's labels of the
scan:

* **whole**: the scan levelled and resized to 128 pixels, as without ``--tile-nm``;
* **tiles**: nine 3.7 nm tiles, each levelled and voted, the scan's vote their mean
  probability (what ``--tile-nm 3.7`` and the bridge do);
* **one tile**: the centre tile alone, for scale.

Beside them, the same family on ordinary 3.7 nm simulated frames of the same tips. The figures
are mean ROC-AUC over the categories with both classes present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def wide_scans(n: int, *, seed: int, widen: int = 3) -> tuple[list, np.ndarray, list]:
    """``n`` raw height maps ``widen`` times the usual field, their labels and fields (nm)."""
    import stm_sim
    from stm_sim.dataset import STATE_P

    rng = np.random.default_rng(seed)
    zs, ys, fields = [], [], []
    for _ in range(n):
        state = str(rng.choice(list(stm_sim.TIP_STATES), p=STATE_P))
        fp = stm_sim.sample_frame_params(
            rng, state=state, size=128 * widen, rotation=stm_sim.sample_rotation(rng)
        )
        fp.fov *= widen
        zs.append(stm_sim.render_height(fp, rng))
        ys.append(stm_sim.labels_from_params(fp))
        fields.append(fp.fov / 10.0)
    return zs, np.array(ys), fields


def _auc(y: np.ndarray, soft: np.ndarray, categories) -> dict:
    from sklearn.metrics import roc_auc_score

    per = {
        c: float(roc_auc_score(y[:, j], soft[:, j]))
        for j, c in enumerate(categories)
        if 0 < y[:, j].sum() < len(y)
    }
    return {"mean_roc_auc": float(np.mean(list(per.values()))), "per_category": per}


def measure(family_dir: Path, *, n: int, seed: int) -> dict:
    """The family on wide simulated scans, whole, in tiles and by the centre tile."""
    from cnn_family import Family
    from instrument_bridge.prepare import prepare_frame, tile_scan
    from stm_sim.dataset import make_arrays
    from training.data import CATEGORIES

    fam = Family.load(family_dir)
    cols = [CATEGORIES.index(c) for c in fam.categories]
    zs, y, fields = wide_scans(n, seed=seed)
    y = y[:, cols]
    whole = fam.vote(np.stack([prepare_frame(z) for z in zs])).soft
    # Tiles of a third of each scan: the 3.5-3.9 nm field each scan's frame was drawn at, so
    # that every scan gives nine (``--tile-nm 3.7`` gives eight or nine of these scans).
    tiles = [
        np.stack([prepare_frame(t) for _, t in tile_scan(z, f, tile_nm=f / 3)])
        for z, f in zip(zs, fields, strict=True)
    ]
    k = len(tiles[0])
    soft_tiles = fam.vote(np.concatenate(tiles)).soft.reshape(n, k, -1)
    small = make_arrays(n, seed=seed + 1)
    y_small = (small["mean_scores"] > 0.5)[:, cols]
    return {
        "family": str(family_dir),
        "scans": n,
        "scan_field_nm": round(float(np.mean(fields)), 2),
        "tiles_per_scan": k,
        "whole": _auc(y, whole, fam.categories),
        "tiles": _auc(y, soft_tiles.mean(axis=1), fam.categories),
        "centre_tile": _auc(y, soft_tiles[:, k // 2], fam.categories),
        "ordinary_3.7nm_frames": _auc(y_small, fam.vote(small["images"]).soft, fam.categories),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--family",
        default=str(ROOT / "models" / "hsi_family"),
        help="family folder (default: the shipped one)",
    )
    ap.add_argument("--scans", type=int, default=300, help="wide scans (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    ap.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results" / "tiles.json"),
        help="results file (default: benchmarks/results/tiles.json)",
    )
    args = ap.parse_args(argv)
    r = measure(Path(args.family), n=args.scans, seed=args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(r, indent=2) + "\n")
    print(
        f"{r['scans']} simulated scans of {r['scan_field_nm']} nm, mean ROC-AUC: whole "
        f"{r['whole']['mean_roc_auc']:.3f}, {r['tiles_per_scan']} tiles "
        f"{r['tiles']['mean_roc_auc']:.3f}, centre tile {r['centre_tile']['mean_roc_auc']:.3f}; "
        f"ordinary 3.7 nm frames {r['ordinary_3.7nm_frames']['mean_roc_auc']:.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
