"""``python -m cnn_family info FAMILY [--check]`` and ``python -m cnn_family models``.

python -m cnn_family info models/hsi_family            # what it is, from its manifest
python -m cnn_family info models/hsi_family --check    # ... and load it and vote once
python -m cnn_family models                            # the registered builders
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from training.io import USER_ERRORS, cli_error

    ap = argparse.ArgumentParser(
        prog="python -m cnn_family",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="describe a trained family (folder or exported .keras)")
    p.add_argument("family", help="a family folder (models/NAME) or an exported .keras file")
    p.add_argument(
        "--check", action="store_true", help="also load it and vote on 8 simulated frames"
    )
    sub.add_parser("models", help="list the registered CNN builders")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "models":
            from cnn_family import list_models

            print("\n".join(list_models()))
            return 0
        from cnn_family.info import check, describe

        print(describe(args.family), flush=True)
        if args.check:
            print(f"  {'check'.ljust(14)}{check(args.family)}")
    except USER_ERRORS as e:
        return cli_error(ap.prog, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
