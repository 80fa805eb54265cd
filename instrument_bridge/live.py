"""One command for the whole loop: server (family + policy + log), an adapter, the loop.

    python main_evaluate_guess.py --live sim --scans 60 --dry-run

starts the bridge server on a loopback port with the family, a simulated microscope (or
``nanonis:HOST:PORT``) behind the safety gate, and runs the loop unattended; it prints a
summary and writes the session log and its timeline plot.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from instrument_bridge.client import BridgeClient
from instrument_bridge.instrument import SafeInstrument, SafetyLimits
from instrument_bridge.loop import LoopSummary, run_loop
from instrument_bridge.policy import PolicyConfig
from instrument_bridge.server import BridgeServer, Voter, family_voter
from instrument_bridge.session_log import plot_timeline


def make_instrument(spec: str, *, seed: int = 0, start_state: str | None = "blunt", stack=None):
    """``sim`` -> a simulated microscope; ``fake-nanonis`` -> the Nanonis adapter talking to a
    fake controller (started on a free port, closed by ``stack``); ``nanonis:HOST:PORT`` -> the
    Nanonis adapter for a real controller."""
    if spec == "sim":
        from instrument_bridge.sim_microscope import SimulatedMicroscope, TipDynamics

        return SimulatedMicroscope(seed=seed, dynamics=TipDynamics(start_state=start_state))
    if spec == "fake-nanonis":
        from instrument_bridge.nanonis import NanonisInstrument
        from instrument_bridge.nanonis_fake import FakeNanonisServer

        if stack is None:
            raise ValueError("fake-nanonis: expected an ExitStack to own the fake controller")
        fake = stack.enter_context(FakeNanonisServer(seed=seed, start_state=start_state))
        return NanonisInstrument("127.0.0.1", fake.port)
    if spec.startswith("watch:"):
        from instrument_bridge.watcher import FolderWatcher

        return FolderWatcher(spec[len("watch:") :])
    if spec.startswith("nanonis:"):
        from instrument_bridge.nanonis import NanonisInstrument

        try:
            _, host, port = spec.split(":")
            if not 0 < int(port) < 65536:
                raise ValueError
            return NanonisInstrument(host, int(port))
        except ValueError:
            raise ValueError(
                f"--live: expected nanonis:HOST:PORT (a port 1-65535), got {spec!r}"
            ) from None
    raise ValueError(
        "--live: expected 'sim', 'fake-nanonis', 'nanonis:HOST:PORT' or 'watch:FOLDER', "
        f"got {spec!r}"
    )


def run_live(
    *,
    family: str | Path | None = None,
    voter: Voter | None = None,
    instrument: str = "sim",
    n_scans: int = 60,
    seed: int = 0,
    dry_run: bool = False,
    log_dir: str | Path = "runs/live",
    policy: PolicyConfig | None = None,
    limits: SafetyLimits | None = None,
    endpoint: str = "tcp://127.0.0.1:*",
    stop_after_good: int | None = None,
    plot: bool = True,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion: str | Path | bool | None = None,
    tile_nm: float | None = 3.7,
) -> LoopSummary:
    """Run the loop end to end and return its summary (also written to ``summary.json``).

    ``tta``/``undo_class_weights``/``companion``: how the family votes
    (:meth:`cnn_family.Family.vote`; ``companion`` a spectral companion's path, None for the
    family's own, False for the members alone). ``tile_nm``: scans wider than 1.5 tiles are
    voted in tiles of this field (:class:`~instrument_bridge.server.BridgeServer`).
    """
    if voter is None:
        if family is None:
            raise ValueError("run_live: expected a family folder or a voter, got neither")
        voter = family_voter(
            family, tta=tta, undo_class_weights=undo_class_weights, companion=companion
        )
    log_dir = Path(log_dir)
    with contextlib.ExitStack() as stack:
        inst = make_instrument(instrument, seed=seed, stack=stack)
        server = BridgeServer(
            voter, endpoint=endpoint, policy=policy, log_dir=log_dir, tile_nm=tile_nm
        ).start()
        stack.callback(server.stop)
        clock = getattr(inst, "clock", None)
        safe = SafeInstrument(inst, limits=limits, dry_run=dry_run, clock=clock)
        dry_run = safe.dry_run  # a watcher cannot act: its run is a dry run whatever was asked
        with BridgeClient(server.bound_endpoint, timeout_s=30.0, instrument=instrument) as client:
            summary = run_loop(
                safe, client, n_scans=n_scans, stop_after_good=stop_after_good, clock=clock
            )
    (log_dir / "summary.json").write_text(
        json.dumps({**summary.to_dict(), "server": server.stats, "dry_run": dry_run}, indent=1)
    )
    if plot:
        plot_timeline(log_dir)
    return summary


def live_main(
    *,
    family: str | Path,
    instrument: str,
    n_scans: int,
    policy: str = "default",
    consecutive_bad: int | None = None,
    dry_run: bool = False,
    log_dir: str | Path = "runs/live",
    seed: int = 0,
    tta: bool = False,
    undo_class_weights: bool = False,
    companion: str | Path | bool | None = None,
    tile_nm: float | None = 3.7,
) -> int:
    """The ``--live`` command: run the loop, print the summary and where the log is."""
    cfg = PolicyConfig.named(policy, consecutive_bad=consecutive_bad)
    print(
        f"live loop: {instrument}, family {family}, policy {policy}"
        + (" (DRY RUN: actions are logged, none is sent)" if dry_run else "")
    )
    s = run_live(
        family=family,
        instrument=instrument,
        n_scans=n_scans,
        seed=seed,
        dry_run=dry_run,
        log_dir=log_dir,
        policy=cfg,
        tta=tta,
        undo_class_weights=undo_class_weights,
        companion=companion,
        tile_nm=tile_nm,
    )
    print(s.describe())
    print(f"session log: {log_dir}/records.jsonl, frames.h5; timeline: {log_dir}/timeline.png")
    return 1 if s.connection_lost or s.bridge_lost else 0  # ended early: tell a calling script
