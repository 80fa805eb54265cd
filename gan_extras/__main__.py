"""``python -m gan_extras``: train the GANs, make labelled extras, judge them against real frames.

    python -m gan_extras cyclegan --real REAL.h5 --out runs/cyclegan       # sim -> real
    python -m gan_extras translate runs/cyclegan looks_real.h5 --sim 4000
    python -m gan_extras dcgan --data REAL.h5 --out runs/dcgan             # 64 px, labelled
    python -m gan_extras srgan --data REAL.h5 --out runs/srgan             # 64 -> 128 px
    python -m gan_extras sample runs/dcgan dcgan.h5 --srgan runs/srgan --n 2000
    python -m gan_extras judge looks_real.h5 --real REAL.h5                # FID / KID
    python main_training.py --data REAL.h5 --extra-data looks_real.h5      # train with them

Every training command resumes when run again after an interruption, and ``--stop-at STEP``
splits a long run into pieces (one Colab session at a time) that end where one unbroken run does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "python -m gan_extras"


def _frames(args, *, labelled: bool = False):
    """The ``--data`` file, or ``--sim`` fresh simulated frames."""
    if getattr(args, "data", None):
        from training.data import load_frames

        fs = load_frames(args.data)
    else:
        from stm_sim.dataset import make_frameset

        fs = make_frameset(args.sim, seed=args.seed)
    if labelled:
        if not fs.labelled.any():
            raise ValueError(f"{args.data}: expected labelled frames, found none")
        fs = fs.subset(fs.labelled)
    return fs


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    def run_args(p, *, steps: int, batch: int) -> None:
        p.add_argument("--out", required=True, help="run folder (resumes when it holds one)")
        p.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
        p.add_argument("--batch-size", type=int, default=batch, help=f"(default {batch})")
        p.add_argument("--seed", type=int, default=0, help="(default 0)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument(
            "--stop-at",
            type=int,
            metavar="STEP",
            help="stop at this step, checkpointed (the schedule still follows --steps); "
            "the same command without it, or with a later STEP, goes on",
        )

    p = sub.add_parser("cyclegan", help="train simulated -> real (real frames need no labels)")
    p.add_argument("--real", required=True, help="real frames (the project's HDF5 or 2018 file)")
    p.add_argument(
        "--sim", type=int, default=4000, help="simulated frames to train on (default 4000)"
    )
    p.add_argument("--filters", type=int, default=16, help="generator base filters (default 16)")
    p.add_argument("--no-fourier", action="store_true", help="image discriminators only")
    run_args(p, steps=2000, batch=8)

    p = sub.add_parser("translate", help="simulated frames through a trained CycleGAN, to HDF5")
    p.add_argument("run", help="a CycleGAN run folder")
    p.add_argument("out", help="output .h5 (labelled, sessions prefixed cyclegan:)")
    p.add_argument("--data", help="simulated frames to translate (default: --sim fresh ones)")
    p.add_argument("--sim", type=int, default=4000, help="without --data (default 4000)")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")

    for name, size, what in (("dcgan", 64, "labelled frames"), ("srgan", 128, "frames")):
        p = sub.add_parser(name, help=f"train the {name.upper()} on {what}")
        p.add_argument("--data", help="frames (default: --sim simulated frames)")
        p.add_argument("--sim", type=int, default=4000, help="without --data (default 4000)")
        p.add_argument("--size", type=int, default=size, help=f"frame size (default {size})")
        p.add_argument("--filters", type=int, default=32, help="base filters (default 32)")
        run_args(p, steps=3000 if name == "dcgan" else 2000, batch=32 if name == "dcgan" else 16)

    p = sub.add_parser("sample", help="labelled frames from a DCGAN (+ SRGAN), to HDF5")
    p.add_argument("dcgan", help="a DCGAN run folder")
    p.add_argument("out", help="output .h5")
    p.add_argument("--srgan", help="an SRGAN run folder to upscale with")
    p.add_argument("--n", type=int, default=2000, help="frames to sample (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="latent and label seed (default 0)")

    p = sub.add_parser("judge", help="FID / KID of generated frames against real ones")
    p.add_argument("frames", help="generated (or simulated) frames, .h5")
    p.add_argument("--real", required=True, help="real frames")
    p.add_argument("--family", default=None, help="whose features (default: the shipped family)")
    p.add_argument("--out", help="write the figures to this JSON file too")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the real halves and KID subsets (default 0)"
    )
    return ap


def _report(what: str, out, cfg, generator: str) -> None:
    from gan_extras.core import checkpoint_step

    step = checkpoint_step(out)
    if step < cfg.steps:
        print(f"{what}: stopped at step {step} of {cfg.steps}; run again to go on ({out})")
    else:
        print(f"{what} -> {out}/{generator}")


def _run(args) -> int:
    from gan_extras import extras

    if args.cmd == "cyclegan":
        from gan_extras.cyclegan import CycleGANConfig, train_cyclegan
        from training.data import load_frames

        real = load_frames(args.real)
        sim = _frames(args)
        cfg = CycleGANConfig(
            size=real.images.shape[1],
            filters=args.filters,
            steps=args.steps,
            batch_size=args.batch_size,
            fourier=not args.no_fourier,
            seed=args.seed,
        )
        out = train_cyclegan(
            sim.images,
            real.images,
            out_dir=args.out,
            config=cfg,
            progress=not args.quiet,
            stop_at=args.stop_at,
        )
        _report("CycleGAN", out, cfg, "sim_to_real.keras")
    elif args.cmd == "translate":
        fs = extras.translated_frameset(args.run, _frames(args))
        print(f"{len(fs)} translated frames -> {extras.write(fs, args.out, source=args.run)}")
    elif args.cmd == "dcgan":
        from gan_extras.dcgan import DCGANConfig, train_dcgan

        fs = _frames(args, labelled=True)
        cfg = DCGANConfig(
            size=args.size,
            filters=args.filters,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        out = train_dcgan(
            extras.resize(fs.images, args.size),
            fs.labels(),
            out_dir=args.out,
            config=cfg,
            progress=not args.quiet,
            stop_at=args.stop_at,
        )
        _report("DCGAN", out, cfg, "generator.keras")
    elif args.cmd == "srgan":
        from gan_extras.srgan import SRGANConfig, train_srgan

        fs = _frames(args)
        cfg = SRGANConfig(
            size=args.size,
            filters=args.filters,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        out = train_srgan(
            extras.resize(fs.images, args.size),
            out_dir=args.out,
            config=cfg,
            progress=not args.quiet,
            stop_at=args.stop_at,
        )
        _report("SRGAN", out, cfg, "generator.keras")
    elif args.cmd == "sample":
        fs = extras.sampled_frameset(args.dcgan, n=args.n, srgan_dir=args.srgan, seed=args.seed)
        src = args.dcgan + (f" + {args.srgan}" if args.srgan else "")
        print(f"{len(fs)} frames -> {extras.write(fs, args.out, source=src)}")
    elif args.cmd == "judge":
        from evaluation.cli import DEFAULT_FAMILY
        from training.data import load_frames
        from training.io import write_json_atomic

        res = extras.judge(
            load_frames(args.frames),
            load_frames(args.real),
            family=args.family or DEFAULT_FAMILY,
            seed=args.seed,
        )
        rr, rg = res["real_vs_real"], res["real_vs_generated"]
        print(f"{res['n_per_set']} frames a set, features of {res['family']}")
        print(f"  real vs real      FID {rr['fid']:7.1f}  KID {rr['kid']:.4f}")
        print(f"  real vs generated FID {rg['fid']:7.1f}  KID {rg['kid']:.4f}")
        if args.out:
            write_json_atomic(args.out, res)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from training.io import USER_ERRORS, cli_error

    try:
        return _run(args)
    except USER_ERRORS as e:
        return cli_error(PROG, e)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
