"""The job behind ``main_evaluate_guess.py``: evaluate with labels, guess without, or a demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation.report import evaluate_family, guess_labels, load_any, metrics_markdown

DEFAULT_FAMILY = Path(__file__).resolve().parent.parent / "models" / "hsi_family"


def run_evaluate_guess(
    *,
    family_dir: str | Path = DEFAULT_FAMILY,
    data: str | Path | None = None,
    report: str | Path | None = None,
    out_dir: str | Path = "outputs",
    guess: bool = False,
    demo_frames: int = 16,
    seed: int = 0,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion: str | Path | bool | None = None,
    tile_nm: float | None = None,
) -> dict:
    """Load the family; evaluate on labelled ``data`` (or guess, or vote on simulated frames).

    ``companion``: a spectral companion's file or folder (:mod:`cnn_family.spectral`), voting
    as one more member per category; None: the family's own, if it has one; False: none.
    ``tile_nm``: cut raw scans wider than 1.5 tiles into tiles of this field (nm), one vote each.

    >>> run_evaluate_guess(data="test.h5", report="report.json")  # doctest: +SKIP
    """
    from cnn_family import Family

    fam = Family.load(family_dir)
    comp = companion  # None: the family's own (Family.vote); False: none
    if isinstance(companion, str | Path):
        from cnn_family.spectral import SpectralCompanion

        comp = SpectralCompanion.load(companion)
        print(f"with a spectral companion ({companion}) as one more member per category")
    elif companion is None and fam.companion is not None:
        print("with the family's spectral companion as one more member per category")
    out_dir = Path(out_dir)
    if data is None:
        from training.run import simulated_frames

        frames = simulated_frames(demo_frames, seed=seed)
        print(f"{fam}: voting on {len(frames)} simulated H:Si(100) frames (no --data given)")
    else:
        notes: list[str] = []
        frames = load_any(data, note=notes.append, tile_nm=tile_nm, progress=True)
        print(f"{fam}: {len(frames)} frames from {data}", *notes, sep="\n")
    # The demo (no --data) shows what an operator sees, votes on new frames, with the
    # simulator's labels beside them.
    if data is not None and not guess and frames.labelled.any():
        m = evaluate_family(
            fam,
            frames,
            report=report,
            plots_dir=out_dir,
            tta=tta,
            undo_class_weights=undo_class_weights,
            companion=comp,
            progress=True,
        )
        print(metrics_markdown(m, title=f"{Path(family_dir).name} on {data or 'simulated frames'}"))
        print(
            f"plots: {out_dir}/roc.png, confusion.png, gallery.png"
            + (f"; report: {report}" if report else "")
        )
        return m
    y_sim = None
    if data is None:
        # The simulator knows each frame's labels: the picture shows them beside the vote.
        from training.data import CATEGORIES

        y_sim = frames.labels()[:, [CATEGORIES.index(c) for c in fam.categories]]
    res = guess_labels(
        fam,
        frames,
        out=out_dir / "guesses.csv",
        plots_dir=out_dir,
        tta=tta,
        undo_class_weights=undo_class_weights,
        companion=comp,
        progress=True,
        y_true=y_sim,
        truth_name="simulator",
    )
    rates = ", ".join(f"{c} {r:.0%}" for c, r in res["positive_rate"].items())
    print(f"voted on {res['n']} frames; share voted positive: {rates}")
    if "exact_match" in res:
        print(
            f"all six labels as the simulator drew them: {res['exact_match']:.0%} of the frames "
            "(green in the picture)"
        )
    print(f"votes: {out_dir}/guesses.csv; picture: {out_dir}/guesses.png")
    if res.get("by_scan"):
        bad = [c for c in ("Tip change", "Bad/blurry") if f"{c} share" in res["by_scan"][0]]
        n_bad = sum(any(r[f"{c} share"] > 0.5 for c in bad) for r in res["by_scan"])
        print(
            f"per scan ({len(res['by_scan'])} scans cut into tiles): {out_dir}/guesses_by_scan.csv; "
            f"{n_bad} with most of their tiles voted {' or '.join(bad)}"
        )
    if report is not None:
        from training.io import write_json_atomic

        write_json_atomic(
            report, {"n": res["n"], "positive_rate": res["positive_rate"], "votes": res["votes"]}
        )
    return res


def summary_json(m: dict) -> str:
    return json.dumps({k: v for k, v in m.items() if not isinstance(v, np.ndarray)}, indent=2)
