"""Classify STM frames with a trained family, or evaluate it on labelled frames.

    python main_evaluate_guess.py                                  # shipped family, simulated frames
    python main_evaluate_guess.py --data frames.h5 --report out.json   # evaluate (labelled rows)
    python main_evaluate_guess.py --data scans/ --guess            # guess labels for a folder
    python main_evaluate_guess.py --live sim --scans 60            # the live loop, simulated STM
    python main_evaluate_guess.py --live nanonis:192.168.1.5:6501  # a real controller (dry run)
    python main_evaluate_guess.py --replay runs/live --family models/tuned  # a session, re-voted

--data takes the project's HDF5 format, a 2018 .mat/.npz/.h5, a .npy array (N,128,128), one
image or raw scan file (Nanonis .sxm, Createc .dat, RHK .sm4, Gwyddion .gwy), a folder of
them, or a live session's log folder (the frames it voted on). Plots and votes go to --out-dir.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", default=None, help="family folder (default: models/hsi_family)")
    ap.add_argument(
        "--data",
        default=None,
        help="frames to vote on: a dataset file, images, raw scans or a folder of them, or a "
        "live session's log folder "
        "(default: simulated frames)",
    )
    ap.add_argument(
        "--tile-nm",
        type=float,
        default=3.7,
        metavar="NM",
        help="raw scans (and live scans) wider than 1.5 tiles are voted in square tiles of this "
        "field, the one the family learned from; 0 votes on whole scans (default 3.7)",
    )
    ap.add_argument("--report", default=None, help="write the metrics (or votes) as JSON here")
    ap.add_argument(
        "--out-dir", default="outputs", help="folder for plots and votes (default outputs/)"
    )
    ap.add_argument(
        "--guess", action="store_true", help="only guess labels, even if the data has some"
    )
    ap.add_argument(
        "--tta",
        action="store_true",
        help="members vote on the mean over the frame and its flips (4x the compute)",
    )
    ap.add_argument(
        "--undo-class-weights",
        action="store_true",
        help="vote as if members were trained without class-balance weights "
        "(fewer, surer positives: precision up, recall down)",
    )
    comp = ap.add_mutually_exclusive_group()
    comp.add_argument(
        "--companion",
        metavar="PATH",
        help="vote with this spectral companion (cnn_family.spectral; its .json or the folder "
        "holding it) as one more member per category, instead of the family's own (also with "
        "--live)",
    )
    comp.add_argument(
        "--no-companion",
        action="store_true",
        help="the members alone: leave out the family's own spectral companion",
    )
    ap.add_argument(
        "--demo-frames", type=int, default=16, help="simulated frames when no --data (default 16)"
    )
    ap.add_argument("--seed", type=int, default=0, help="simulator and instrument seed (default 0)")
    live = ap.add_argument_group("live loop")
    live.add_argument(
        "--live",
        metavar="INSTRUMENT",
        help="run the live loop: sim, fake-nanonis, nanonis:HOST:PORT or watch:FOLDER",
    )
    live.add_argument("--scans", type=int, default=60, help="scans to run (default 60)")
    live.add_argument(
        "--policy",
        choices=["default", "naive", "none"],
        default="default",
        help="default: filtered, agreement-checked, escalating; naive: act on every bad scan; "
        "none: watch and log only (default default)",
    )
    live.add_argument(
        "--consecutive-bad",
        type=int,
        default=None,
        help="bad scans in a row before acting (default: the policy's own, 3)",
    )
    live.add_argument("--dry-run", action="store_true", help="log actions, send none")
    live.add_argument(
        "--arm",
        action="store_true",
        help="send actions to a real controller (without it, nanonis:... runs as a dry run)",
    )
    live.add_argument(
        "--log-dir", default="runs/live", help="session log folder (default runs/live)"
    )
    live.add_argument(
        "--replay",
        metavar="LOG_DIR",
        help="vote a logged session's scans again with --family and --policy, offline: where "
        "votes and decisions would have differed (replay.json, replay.png in --out-dir)",
    )
    args = ap.parse_args(argv)

    from training.io import USER_ERRORS, cli_error

    try:
        return _run(args)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)


def _run(args: argparse.Namespace) -> int:
    # Checked before anything loads or connects, each naming the option.
    if args.tile_nm is not None and not args.tile_nm >= 0:  # "not >=" refuses NaN too
        raise ValueError(f"--tile-nm: expected a field in nm (0: whole scans), got {args.tile_nm}")
    if args.live and args.scans < 1:
        raise ValueError(f"--scans: expected at least 1 scan, got {args.scans}")
    if not args.live and Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        raise ValueError(f"--out-dir: expected a folder, got the file {args.out_dir}")
    if args.replay and (args.live or args.data):
        raise ValueError("--replay: expected a session log alone, not with --live or --data")
    if args.replay:
        from evaluation.cli import DEFAULT_FAMILY
        from instrument_bridge.replay import replay_main

        return replay_main(
            args.replay,
            family=args.family or DEFAULT_FAMILY,
            out_dir=args.out_dir,
            policy=args.policy,
            consecutive_bad=args.consecutive_bad,
            tta=args.tta,
            undo_class_weights=args.undo_class_weights,
            companion=False if args.no_companion else args.companion,
        )
    if args.live:
        from evaluation.cli import DEFAULT_FAMILY
        from instrument_bridge.live import live_main

        return live_main(
            family=args.family or DEFAULT_FAMILY,
            instrument=args.live,
            n_scans=args.scans,
            policy=args.policy,
            consecutive_bad=args.consecutive_bad,
            # A watcher cannot act at all; a real controller acts only when armed.
            dry_run=args.dry_run
            or args.live.startswith("watch:")
            or (args.live.startswith("nanonis:") and not args.arm),
            log_dir=args.log_dir,
            seed=args.seed,
            tta=args.tta,
            undo_class_weights=args.undo_class_weights,
            companion=False if args.no_companion else args.companion,
            tile_nm=args.tile_nm or None,
        )

    from evaluation.cli import DEFAULT_FAMILY, run_evaluate_guess

    run_evaluate_guess(
        family_dir=args.family or DEFAULT_FAMILY,
        data=args.data,
        report=args.report,
        out_dir=args.out_dir,
        guess=args.guess,
        demo_frames=args.demo_frames,
        seed=args.seed,
        tta=args.tta,
        undo_class_weights=args.undo_class_weights,
        companion=False if args.no_companion else args.companion,
        tile_nm=args.tile_nm or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
