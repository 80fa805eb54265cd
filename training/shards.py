"""Merge the shard folders of a family trained across nodes into one family folder.

Each node trains some members of the same family (same configuration, same data)::

    python main_training.py --data D.h5 --name fam.shard0 --members 0-5
    python main_training.py --data D.h5 --name fam.shard1 --members 6-11
    python main_training.py --data D.h5 --name fam.shard2 --members 12-17

then one merge step makes the family::

    python -m training.shards merge models/fam models/fam.shard0 models/fam.shard1 models/fam.shard2

Members are seeded by their index, so a merged family has the same members, manifest and
config as one run that trained them all. ``examples/slurm_train_family.sh`` is an array job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from training.io import USER_ERRORS, cli_error, write_json_atomic

# Keys that legitimately differ between shards (and between a merged family and one run).
_PER_RUN = (
    "command",
    "train_seconds_this_run",
    "shard",
    "members_done",
    "status",
    "engine",
    "precise_bn_members",
    "resumed_after_epoch",
)


class ShardMismatchError(ValueError):
    """Shards that do not belong to one family (other configuration, data or member list)."""


def merge_shards(shard_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Copy the finished members of ``shard_dirs`` into ``out_dir`` and mark it complete.

    Raises :class:`ShardMismatchError` when the shards disagree on the configuration, the data
    or the member list, or when a member is missing from every shard.

    >>> merge_shards(["models/f.shard0", "models/f.shard1"], "models/f")  # doctest: +SKIP
    """
    if not shard_dirs:
        raise ValueError("merge_shards: expected at least one shard folder, got none")
    shards = [Path(d) for d in shard_dirs]
    manifests = []
    for d in shards:
        mf = d / "manifest.json"
        if not mf.exists():
            raise FileNotFoundError(f"{d}: not a shard folder (expected {mf})")
        manifests.append(json.loads(mf.read_text()))
    ref, ref_dir = manifests[0], shards[0]
    ref_cfg = (ref_dir / "config.json").read_text()
    for d, m in zip(shards[1:], manifests[1:], strict=True):
        if (d / "config.json").read_text() != ref_cfg:
            raise ShardMismatchError(f"{d} was trained with another configuration than {ref_dir}")
        if m["data"]["fingerprint"] != ref["data"]["fingerprint"]:
            raise ShardMismatchError(f"{d} was trained on other data than {ref_dir}")
        if m["members"] != ref["members"]:
            raise ShardMismatchError(f"{d} lists other members than {ref_dir}")

    out = Path(out_dir)
    (out / "members").mkdir(parents=True, exist_ok=True)
    (out / "history").mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    for m in ref["members"]:
        hist = f"history/{m['name']}.json"
        src = next((d for d in shards if (d / m["file"]).exists() and (d / hist).exists()), None)
        if src is None:
            raise ShardMismatchError(
                f"member {m['name']} is in none of the shards {[str(d) for d in shards]}; "
                "train it (--members) or add its shard"
            )
        for rel in (m["file"], hist):
            tmp = out / f"{rel}.partial"
            shutil.copyfile(src / rel, tmp)
            os.replace(tmp, out / rel)
        sources[m["name"]] = str(src)

    shutil.copyfile(ref_dir / "config.json", out / "config.json")
    # the spectral companion: every shard fitted the same one on the same frames
    from cnn_family.spectral import FILE_NAME

    if (ref_dir / FILE_NAME).exists():
        shutil.copyfile(ref_dir / FILE_NAME, out / f"{FILE_NAME}.partial")
        os.replace(out / f"{FILE_NAME}.partial", out / FILE_NAME)
    merged = {k: v for k, v in ref.items() if k not in _PER_RUN}
    merged["status"] = "complete"
    if any(not m.get("batchnorm", "").startswith("precise") for m in manifests):
        # Precise only if every shard's members are (see training.precise_bn.apply_to_family).
        merged.pop("batchnorm", None)
    merged["engine"] = sorted({m.get("engine", "sequential") for m in manifests})
    merged["merged_from"] = sources
    by_dir = {str(d): m for d, m in zip(shards, manifests, strict=True)}
    resumed = {
        name: by_dir[src]["resumed_after_epoch"][name]
        for name, src in sources.items()
        if name in by_dir[src].get("resumed_after_epoch", {})
    }
    if resumed:
        merged["resumed_after_epoch"] = resumed
    merged["train_seconds_this_run"] = round(
        sum(float(m.get("train_seconds_this_run", 0.0)) for m in manifests), 1
    )
    write_json_atomic(out / "manifest.json", merged)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.shards",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    mg = sub.add_parser("merge", help="merge shard folders into one family folder")
    mg.add_argument("out", help="the family folder to write")
    mg.add_argument("shards", nargs="+", help="shard folders (from main_training.py --members)")
    args = ap.parse_args(argv)
    try:
        out = merge_shards(args.shards, args.out)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    print(f"merged {len(args.shards)} shards into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
