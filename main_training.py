"""Train a family of 18 binary CNNs (3 per category) and save it under models/<name>/.

    python main_training.py --data ../shared/data/hsi/hsi128_dev.h5 --name hsi_family
    python main_training.py                      # no data: simulated H:Si(100) frames
    python main_training.py --data real.h5 --init-from models/my_family --name tuned
    python main_training.py --data few_labels.h5 --simulated-first --name tuned   # both steps

Interrupted? Run the same command again: it resumes where it stopped.
On a cluster, train shards with --train-members 0-5 (etc.) and merge them with
`python -m training.shards merge OUT SHARD_DIR...` (see docs/scale.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", help="frames: the project's HDF5, or a 2018 .mat/.npz/.h5 (default: simulated)"
    )
    ap.add_argument(
        "--extra-data",
        nargs="+",
        default=[],
        metavar="FILE",
        help="labelled frames added to the training set only (GAN-made extras from "
        "`python -m gan_extras`, more simulated frames)",
    )
    ap.add_argument(
        "--synthetic-frames",
        type=int,
        default=4000,
        help="simulated frames when no --data (default 4000)",
    )
    ap.add_argument(
        "--name",
        default="my_family",
        help="family name: output goes to <out-root>/<name> (default my_family)",
    )
    ap.add_argument(
        "--out-root", default="models", help="folder holding families (default models/)"
    )
    ap.add_argument(
        "--architecture",
        default="deepdog",
        help="a registered builder: deepdog (default); vgg_like and wolkow (the 2018 baselines) "
        "barely learn these frames (benchmarks/architectures.py)",
    )
    ap.add_argument(
        "--width",
        type=float,
        default=0.25,
        help="filter multiplier (default 0.25; 1.0 = the 2018 DeepDog)",
    )
    ap.add_argument(
        "--max-filters", type=int, default=None, help="DeepDog: stop the trunk at this many filters"
    )
    ap.add_argument("--epochs", type=int, default=8, help="(default 8)")
    ap.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    ap.add_argument("--members", type=int, default=3, help="members per category (default 3)")
    ap.add_argument(
        "--label-rule",
        choices=["gt0.5", "eq1"],
        default="gt0.5",
        help="crowd mean score > 0.5, or every volunteer said yes (default gt0.5)",
    )
    ap.add_argument(
        "--targets",
        choices=["hard", "soft", "posterior"],
        default="hard",
        help="0/1 labels, crowd means, or P(true label | answers) under a fitted crowd model "
        "(default hard)",
    )
    ap.add_argument(
        "--class-weight",
        choices=["balanced", "none"],
        default="balanced",
        help="weight positives and negatives equally in each member's loss (default balanced)",
    )
    ap.add_argument(
        "--bootstrap", action="store_true", help="each member trains on a bootstrap sample"
    )
    ap.add_argument("--no-augment", action="store_true", help="no random flips")
    ap.add_argument(
        "--no-companion",
        action="store_true",
        help="fit no spectral companion: the family votes with its members alone",
    )
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="hold out this share of sessions (default 0)",
    )
    ap.add_argument("--seed", type=int, default=0, help="(default 0)")
    ap.add_argument(
        "--init-from",
        metavar="FAMILY_DIR",
        help="start each member from the same-named member of this trained family (e.g. one "
        "trained on simulated frames, to fine-tune on real ones)",
    )
    ap.add_argument(
        "--simulated-first",
        action="store_true",
        help="with --data: first train the same family on --synthetic-frames simulated frames "
        "(into <name>_sim), then start every member from it (measured better from about four "
        "labelled sessions on; README, 'With few labelled frames')",
    )
    ap.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="optimizer learning rate (default: the architecture's own)",
    )
    ap.add_argument(
        "--engine",
        choices=["fused", "sequential"],
        default="fused",
        help="fused: all members in one pass over the data (default); sequential: one by one",
    )
    ap.add_argument(
        "--train-members",
        metavar="RANGES",
        help="train only these member indices, e.g. 0-5 (a shard; merge with training.shards)",
    )
    ap.add_argument(
        "--layout",
        choices=["auto", "branches", "stacked"],
        default="auto",
        help="fused engine: side-by-side branches (CPU) or one wide stack (GPU); auto (default) "
        "picks by device",
    )
    ap.add_argument(
        "--distribute",
        choices=["auto", "mirrored", "none"],
        default="auto",
        help="MirroredStrategy over the GPUs (auto, the default: when there are 2 or more)",
    )
    ap.add_argument("--quiet", action="store_true", help="no per-batch progress bars")
    args = ap.parse_args(argv)

    from training.io import USER_ERRORS, cli_error

    try:
        _train(args, argv)
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    except KeyboardInterrupt:
        # Finished members and epochs are saved atomically; the same command picks them up.
        print(f"{ap.prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _train(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    from training.config import TrainConfig
    from training.run import run_training

    # A name with / or .. once put a family's files wherever it pointed (--name ../../etc).
    if args.name in ("", ".", "..") or Path(args.name).name != args.name or "\\" in args.name:
        raise ValueError(
            f"--name: expected a folder name (no / or ..), got {args.name!r}; "
            "--out-root says where the folder goes"
        )

    config = TrainConfig(
        architecture=args.architecture,
        width=args.width,
        max_filters=args.max_filters,
        epochs=args.epochs,
        batch_size=args.batch_size,
        members_per_category=args.members,
        label_rule=args.label_rule,
        targets=args.targets,
        class_weight=args.class_weight,
        bootstrap=args.bootstrap,
        augment=not args.no_augment,
        companion=not args.no_companion,
        val_fraction=args.val_fraction,
        seed=args.seed,
        init_from=args.init_from,
        learning_rate=args.learning_rate,
    )
    argv_list = list(sys.argv[1:] if argv is None else argv)
    run_training(
        config=config,
        out_dir=f"{args.out_root}/{args.name}",
        data_path=args.data,
        synthetic_frames=args.synthetic_frames,
        command=shlex.join(["python", "main_training.py", *argv_list]),
        verbose=2 if args.quiet else "auto",
        engine=args.engine,
        members=args.train_members,
        layout=args.layout,
        distribute=args.distribute,
        simulated_first=args.simulated_first,
        extra_data=args.extra_data,
    )


if __name__ == "__main__":
    sys.exit(main())
