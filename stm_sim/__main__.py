"""``python -m stm_sim make-dataset OUT.h5 --n 50000 --seed 0``: simulated frames to HDF5.

``python -m stm_sim presets`` lists the sampling presets and how each differs from the default.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from stm_sim.dataset import PRESETS

    ap = argparse.ArgumentParser(prog="python -m stm_sim", description="H:Si(100) STM simulator")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser(
        "make-dataset", help="write labelled simulated frames in the project's HDF5"
    )
    mk.add_argument("out", help="output .h5 file")
    mk.add_argument("--n", type=int, default=5000, help="number of frames (default 5000)")
    mk.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    mk.add_argument("--size", type=int, default=128, help="frame side, pixels (default 128)")
    mk.add_argument(
        "--session-length", type=int, default=100, help="mean frames per session (default 100)"
    )
    mk.add_argument(
        "--workers", type=int, default=None, help="processes (default: all cores from 2,000 frames)"
    )
    mk.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        metavar="NAME",
        help="sampling preset (default: 'default', the calibrated generator; the others are "
        "calibration variants, not adopted: `python -m stm_sim presets`)",
    )
    sub.add_parser("presets", help="list the sampling presets and how each differs from default")
    args = ap.parse_args(argv)
    if args.cmd == "presets":
        print(presets_table())
        return 0

    from stm_sim.dataset import make_frameset
    from training.data import save_frames
    from training.io import USER_ERRORS, cli_error

    t = time.perf_counter()
    try:
        if Path(args.out).is_dir():  # before minutes of simulating, not after
            raise ValueError(f"{args.out}: expected a file to write, got an existing folder")
        fs = make_frameset(
            args.n,
            seed=args.seed,
            size=args.size,
            session_length=args.session_length,
            progress=True,
            workers=args.workers,
            preset=args.preset,
        )
        dt = time.perf_counter() - t
        attrs = {"source": f"stm_sim seed {args.seed} preset {args.preset}"}
        save_frames(fs, args.out, attrs=attrs)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    print(
        f"wrote {args.out}: {len(fs)} frames in {len(set(fs.sessions))} sessions ({len(fs) / dt:.0f} frames/s)"
    )
    return 0


def presets_table() -> str:
    """One line per sampling preset: its name and the settings it changes from ``default``.

    Why each was tried and what it measured: docs/simulator_calibration.md.

    >>> print(presets_table().splitlines()[0])
    default        the calibrated generator (every other preset was measured and not adopted)
    """
    from stm_sim.dataset import PRESETS

    base = PRESETS["default"]
    lines = [
        f"{'default':<14} the calibrated generator (every other preset was measured and not adopted)"
    ]
    for name in sorted(set(PRESETS) - {"default"}):
        diff = {k: v for k, v in PRESETS[name].items() if k not in base or base[k] != v}
        lines.append(f"{name:<14} " + ", ".join(f"{k}={v!r}" for k, v in sorted(diff.items())))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
