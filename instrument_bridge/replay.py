"""A logged live session voted again, offline, by another family or policy.

The session log keeps each scan's prepared frame beside the verdict and the decision the loop
made (``records.jsonl`` and ``frames.h5``). A replay votes those frames again, with a
fine-tuned family say, and gives the new verdicts to a policy, in the session's order and with
its manual overrides. An operator can then see where the new family would have voted and
acted otherwise before using it at the microscope.

Only decisions up to the first one that differs compare like with like. After it, the real
session went on from a tip the replayed policy never saw. Scans voted in tiles are voted in
the same tiles, which the log keeps beside the whole scan's frame (logs written before session
36 kept no tiles: their tiled scans are left out and counted).

Example:
    >>> from instrument_bridge.server import family_voter
    >>> r = replay_session("runs/live", family_voter("models/tuned"))  # doctest: +SKIP
    >>> r.summary()["first_divergence"]  # doctest: +SKIP
    {'scan': 14, 'logged': 'watching', 'replayed': 'act: pulse +2.5 V'}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from instrument_bridge.policy import PolicyConfig, TipPolicy
from instrument_bridge.server import _per_scan
from instrument_bridge.session_log import counted, read_log


class ReplayError(ValueError):
    """The session log cannot be replayed: the message says what was expected."""


@dataclasses.dataclass
class Replay:
    """Logged and replayed votes and decisions, one row per replayed scan.

    ``scans``: each row's index among the session's verdicts (the x axis of its timeline).
    """

    log_dir: Path
    categories: tuple[str, ...]
    scans: np.ndarray
    logged_soft: np.ndarray
    new_soft: np.ndarray
    logged_hard: np.ndarray
    new_hard: np.ndarray
    logged_decisions: list[dict]
    new_decisions: list[dict]
    skipped: dict[str, int]

    def first_divergence(self) -> int | None:
        """The first row whose decision differs (state or action), or None."""
        for i, (a, b) in enumerate(zip(self.logged_decisions, self.new_decisions, strict=True)):
            if _said(a) != _said(b):
                return i
        return None

    def summary(self) -> dict:
        """Per category: how often the hard votes agree, the mean change of the soft vote and
        the positives before and after; the actions; the first decision that differs."""
        per = {}
        for c, name in enumerate(self.categories):
            per[name] = {
                "hard_agreement": _mean(self.logged_hard[:, c] == self.new_hard[:, c]),
                "mean_abs_soft_change": _mean(np.abs(self.new_soft[:, c] - self.logged_soft[:, c])),
                "logged_positive": int(self.logged_hard[:, c].sum()),
                "replayed_positive": int(self.new_hard[:, c].sum()),
            }
        i = self.first_divergence()
        first = None
        if i is not None:
            first = {
                "scan": int(self.scans[i]),
                "logged": _said(self.logged_decisions[i]),
                "replayed": _said(self.new_decisions[i]),
            }
        return {
            "log_dir": str(self.log_dir),
            "scans": len(self.scans),
            "skipped": dict(self.skipped),
            "per_category": per,
            "actions": {
                "logged": sum(bool(d.get("action")) for d in self.logged_decisions),
                "replayed": sum(bool(d.get("action")) for d in self.new_decisions),
            },
            "first_divergence": first,
        }


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return round(float(x.mean()), 4) if x.size else None


def _said(decision: dict) -> str:
    """A decision in words, as compared: its state, and its action where it has one."""
    act = decision.get("action")
    if not act:
        return str(decision.get("state"))
    size = f"{act.get('depth_nm')} nm" if act.get("kind") == "dip" else f"{act.get('bias_v'):+} V"
    return f"{decision.get('state')}: {act.get('kind')} {size}"


def replay_session(
    log_dir: str | Path, voter, *, policy: PolicyConfig | None = None, batch_size: int = 64
) -> Replay:
    """Vote the logged frames of ``log_dir`` again with ``voter`` (frames -> soft, hard,
    agreement, as :func:`instrument_bridge.server.family_voter` makes) and decide on them with
    a fresh ``policy`` (default :class:`PolicyConfig`), one per instrument as the server keeps.
    """
    import h5py

    log_dir = Path(log_dir)
    if not (log_dir / "records.jsonl").exists():
        raise ReplayError(
            f"{log_dir}: expected a live session's log folder (records.jsonl and frames.h5, "
            "as --log-dir writes), found no records.jsonl"
        )
    records = read_log(log_dir)
    skipped = {"tiled": 0, "no_frame": 0}
    n_frames = 0
    if (log_dir / "frames.h5").exists():
        with h5py.File(log_dir / "frames.h5", "r") as f:
            n_frames = f["frames"].shape[0] if "frames" in f else 0

    def frame_rows(v: dict) -> list[int] | None:
        """The frames.h5 rows this verdict was voted on: its tiles, or its one frame."""
        want = v.get("tile_frames") if v.get("tiles") else [v.get("frame")]
        ok = isinstance(want, list) and want
        return want if ok and all(isinstance(r, int) and 0 <= r < n_frames for r in want) else None

    rows: list[tuple[int, dict]] = []  # (verdict index, record) of the scans to replay
    views: list[list[int]] = []
    verdicts = [r for r in records if r.get("type") == "verdict"]
    for i, v in enumerate(verdicts):
        got = frame_rows(v)
        if got is None:
            # Logs written before tiles were logged (session 36) hold the whole scan only.
            skipped["tiled" if v.get("tiles") else "no_frame"] += 1
        else:
            rows.append((i, v))
            views.append(got)
    if not rows:
        raise ReplayError(
            f"{log_dir}: expected logged scans with their frames, found "
            f"{counted(len(verdicts), 'verdict')} ({skipped['tiled']} voted in tiles not "
            f"logged, {skipped['no_frame']} without a frame in frames.h5)"
        )
    with h5py.File(log_dir / "frames.h5", "r") as f:
        ds = f["frames"]
        frames = [np.stack([ds[r] for r in view]) for view in views]
    soft, hard, agree = [], [], []
    for a in range(0, len(frames), batch_size):
        chunk = frames[a : a + batch_size]
        # As the server votes: all frames of a batch in one call, then each scan's tiles
        # combined (mean soft vote, strict majority, mean agreement).
        s, h, g = _per_scan(voter(np.concatenate(chunk)), chunk)
        soft.append(np.asarray(s, float))
        hard.append(np.asarray(h, int))
        agree.append(np.asarray(g, float))
    # Rounded as the server rounds a verdict before its policy sees it, so that the same family
    # and policy replay a session decision for decision.
    new_soft = np.round(np.concatenate(soft), 5)
    new_hard = np.concatenate(hard)
    new_agree = np.round(np.concatenate(agree), 4)
    cats = tuple(rows[0][1].get("categories") or ())
    if new_soft.shape != (len(rows), len(cats)):
        raise ReplayError(
            f"voter: expected votes of shape ({len(rows)}, {len(cats)}), one per logged "
            f"category {list(cats)}, got {new_soft.shape}"
        )

    # The session's order: overrides between scans switch each instrument's policy as they did.
    policies: dict[str, TipPolicy] = {}

    def policy_for(instrument: str) -> TipPolicy:
        if instrument not in policies:
            policies[instrument] = TipPolicy(policy or PolicyConfig())
        return policies[instrument]

    replayed = {id(v): j for j, (_, v) in enumerate(rows)}
    new_decisions: list[dict] = [{} for _ in rows]
    for r in records:
        if r.get("type") == "override":
            policy_for(str(r.get("instrument", "default"))).set_manual(bool(r.get("manual")))
        elif r.get("type") == "verdict" and id(r) in replayed:
            j = replayed[id(r)]
            instrument = str((r.get("scan") or {}).get("instrument", "default"))
            v = {"soft": new_soft[j], "hard": new_hard[j], "agreement": new_agree[j]}
            new_decisions[j] = policy_for(instrument).decide(v).to_dict()
    return Replay(
        log_dir=log_dir,
        categories=cats,
        scans=np.array([i for i, _ in rows]),
        logged_soft=np.array([v["soft"] for _, v in rows], float),
        new_soft=new_soft,
        logged_hard=np.array([v["hard"] for _, v in rows], int),
        new_hard=new_hard,
        logged_decisions=[v.get("decision") or {} for _, v in rows],
        new_decisions=new_decisions,
        skipped=skipped,
    )


def plot_replay(replay: Replay, out: str | Path, *, what: str | None = None) -> Path:
    """Logged against replayed, one panel per category (soft votes) and the policy's filtered
    score with both sets of actions; the first decision that differs is marked. ``what``
    names the replayed voter and policy in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    x = replay.scans
    n = len(replay.categories)
    fig, axes = plt.subplots(n + 1, 1, figsize=(10, 1.25 * (n + 1) + 0.8), sharex=True, dpi=110)
    for c, ax in enumerate(axes[:n]):
        ax.plot(x, replay.logged_soft[:, c], color="0.45", lw=1.2, label="logged")
        ax.plot(x, replay.new_soft[:, c], color="tab:blue", lw=1.2, label="replayed")
        ax.set_ylim(0, 1)
        ax.set_ylabel(replay.categories[c], rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    ax = axes[n]
    for decisions, color, name, y in (
        (replay.logged_decisions, "0.45", "logged", 1.06),
        (replay.new_decisions, "tab:blue", "replayed", 1.2),
    ):
        f = np.array([d.get("filtered", np.nan) for d in decisions], float)
        ax.plot(x, f, color=color, lw=1.6, label=f"{name}: filtered P(bad tip)")
        acted = [x[i] for i, d in enumerate(decisions) if d.get("action")]
        # Two rows of triangles above the panel, so that the same action twice shows twice.
        ax.plot(
            acted,
            [y] * len(acted),
            "v",
            color=color,
            ms=5,
            clip_on=False,
            ls="none",
            label=f"{name}: actions",
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel("policy", rotation=0, ha="right", va="center", fontsize=8)
    ax.set_xlabel("scan (triangles: actions)")
    i = replay.first_divergence()
    if i is not None:
        for a in axes:
            a.axvline(x[i], color="tab:red", ls="--", lw=0.9)
    axes[0].legend(loc="upper right", fontsize=7, frameon=False, ncol=2)
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncol=2, bbox_to_anchor=(0, -0.45))
    s = replay.summary()
    title = (
        f"Replay of {replay.log_dir}{f' with {what}' if what else ''}: "
        f"{counted(s['scans'], 'scan')}, actions "
        f"{s['actions']['logged']} logged, {s['actions']['replayed']} replayed"
    )
    if i is not None:
        title += f"\nfirst different decision at scan {x[i]} (red): after it the sessions part"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def replay_main(
    log_dir: str | Path,
    *,
    family,
    out_dir: str | Path,
    policy: str = "default",
    consecutive_bad: int | None = None,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion=None,
) -> int:
    """``main_evaluate_guess.py --replay LOG_DIR``: replay, print the summary, write
    ``replay.json`` and ``replay.png`` into ``out_dir``."""
    from instrument_bridge.server import family_voter
    from training.io import write_json_atomic

    cfg = PolicyConfig.named(policy, consecutive_bad=consecutive_bad)
    voter = family_voter(
        family, tta=tta, undo_class_weights=undo_class_weights, companion=companion
    )
    r = replay_session(log_dir, voter, policy=cfg)
    s = r.summary()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s["family"], s["policy"] = str(family), policy
    write_json_atomic(out_dir / "replay.json", s)
    what = f"{Path(family).name}" + (" (members alone)" if companion is False else "")
    what += f", policy {policy}" + (
        f" (act after {consecutive_bad} bad)" if consecutive_bad is not None else ""
    )
    png = plot_replay(r, out_dir / "replay.png", what=what)
    skipped = [f"{n} {k.replace('_', ' ')}" for k, n in s["skipped"].items() if n]
    print(
        f"replayed {counted(s['scans'], 'scan')} of {log_dir} with {family}"
        + (f" (left out: {', '.join(skipped)})" if skipped else "")
    )
    for name, p in s["per_category"].items():
        print(
            f"  {name:<17} hard votes agree on {100 * p['hard_agreement']:.0f} %, "
            f"positives {p['logged_positive']} -> {p['replayed_positive']}"
        )
    a = s["actions"]
    print(f"  actions: {a['logged']} logged, {a['replayed']} replayed")
    f = s["first_divergence"]
    print(
        "  every decision the same"
        if f is None
        else f"  first different decision at scan {f['scan']}: logged {f['logged']!r}, "
        f"replayed {f['replayed']!r} (later decisions follow a session that went otherwise)"
    )
    print(f"summary: {out_dir / 'replay.json'}; picture: {png}")
    return 0
