"""Every simulator candidate since calibration step 14 against the default, in one picture.

Reads ``benchmarks/results/calibration_candidates.json`` (each candidate's benchmark family,
members alone, as the calibration page reports it) and draws
``benchmarks/results/calibration_candidates.png``: one dot per family, the default's reruns
as a band, a family trained on real frames as a line. Seconds, no TensorFlow, no data.

    python benchmarks/calibration_plot.py

>>> c = load_candidates(RESULTS / "calibration_candidates.json")
>>> len(c["candidates"]) > 30 and min(c["default_runs"]["members_alone"]) > 0.75
True
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KIND_COLOURS = {
    "simulator": "tab:blue",
    "labels": "tab:orange",
    "training": "tab:green",
    "inputs": "tab:purple",
    "export": "tab:brown",
}


def load_candidates(path: str | Path) -> dict:
    """The candidates file, checked: every candidate has a row, a name, a known kind and a
    seed-0 score in (0, 1)."""
    d = json.loads(Path(path).read_text())
    for c in d["candidates"]:
        missing = {"row", "name", "kind", "seed0"} - set(c)
        if missing:
            raise ValueError(f"{path}: candidate {c} lacks {sorted(missing)}")
        if c["kind"] not in KIND_COLOURS:
            raise ValueError(
                f"{path}: candidate {c['row']}: kind expected one of {sorted(KIND_COLOURS)}, "
                f"got {c['kind']!r}"
            )
        for k in ("seed0", "seed1"):
            if k in c and not 0 < c[k] < 1:
                raise ValueError(f"{path}: candidate {c['row']}: {k} {c[k]} is not a ROC-AUC")
    return d


def plot(d: dict, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = sorted(d["candidates"], key=lambda c: c["seed0"])
    runs = d["default_runs"]["members_alone"]
    lo, hi = min(runs), max(runs)
    fig, ax = plt.subplots(figsize=(8, 0.26 * len(cands) + 1.6))
    ax.axvspan(
        lo, hi, color="0.85", zorder=0, label=f"default, {len(runs)} runs ({lo:.3f}-{hi:.3f})"
    )
    ax.axvline(
        d["real_trained_members_alone"],
        color="k",
        ls="--",
        lw=1,
        label=f"trained on real frames instead ({d['real_trained_members_alone']:.3f}, session CV)",
    )
    for i, c in enumerate(cands):
        colour = KIND_COLOURS[c["kind"]]
        ax.plot(c["seed0"], i, "o", color=colour, ms=6)
        if "seed1" in c:
            ax.plot(c["seed1"], i, "o", mfc="white", mec=colour, ms=6)
            ax.plot([c["seed0"], c["seed1"]], [i, i], color=colour, lw=0.8)
    ax.set_yticks(range(len(cands)), [f"{c['row']}  {c['name']}" for c in cands], fontsize=8)
    ax.set_xlabel("mean ROC-AUC on all real labelled frames, members alone (no real frame seen)")
    for kind, colour in KIND_COLOURS.items():
        ax.plot([], [], "o", color=colour, label=f"changed: {kind}")
    ax.plot([], [], "o", mfc="white", mec="0.3", label="seed 1, where run")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        f"{len(cands)} candidates since calibration step 14, each a benchmark family\n"
        "none beats the default's reruns on two seeds",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        default=str(RESULTS / "calibration_candidates.json"),
        help="the candidates file (default benchmarks/results/calibration_candidates.json)",
    )
    ap.add_argument(
        "--out",
        default=str(RESULTS / "calibration_candidates.png"),
        help="the picture (default benchmarks/results/calibration_candidates.png)",
    )
    args = ap.parse_args(argv)
    print(f"-> {plot(load_candidates(args.data), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
