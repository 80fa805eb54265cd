"""One command for the whole loop: server (family + policy + log), an adapter, the loop.

    python main_evaluate_guess.py --live sim --scans 60 --dry-run

starts the bridge server on a loopback port with the family, a simulated microscope (or
``nanonis:HOST:PORT``) behind the safety gate, and runs the loop unattended; it prints a
summary and writes the session log and its timeline plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from instrument_bridge.client import BridgeClient
from instrument_bridge.instrument import SafeInstrument, SafetyLimits
from instrument_bridge.loop import LoopSummary, run_loop
from instrument_bridge.policy import PolicyConfig
from instrument_bridge.server import BridgeServer, Voter, family_voter
from instrument_bridge.session_log import plot_timeline


def make_instrument(spec: str, *, seed: int = 0, start_state: str | None = "blunt"):
    """``sim`` -> a simulated microscope; ``nanonis:HOST:PORT`` -> the Nanonis TCP adapter."""
    if spec == "sim":
        from instrument_bridge.sim_microscope import SimulatedMicroscope, TipDynamics

        return SimulatedMicroscope(seed=seed, dynamics=TipDynamics(start_state=start_state))
    if spec.startswith("nanonis:"):
        from instrument_bridge.nanonis import NanonisInstrument

        _, host, port = spec.split(":")
        return NanonisInstrument(host, int(port))
    raise ValueError(f"--live: expected 'sim' or 'nanonis:HOST:PORT', got {spec!r}")


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
) -> LoopSummary:
    """Run the loop end to end and return its summary (also written to ``summary.json``)."""
    if voter is None:
        if family is None:
            raise ValueError("run_live: expected a family folder or a voter, got neither")
        voter = family_voter(family)
    log_dir = Path(log_dir)
    server = BridgeServer(voter, endpoint=endpoint, policy=policy, log_dir=log_dir).start()
    inst = make_instrument(instrument, seed=seed)
    clock = getattr(inst, "clock", None)
    safe = SafeInstrument(inst, limits=limits, dry_run=dry_run, clock=clock)
    try:
        with BridgeClient(server.bound_endpoint, timeout_s=30.0, instrument=instrument) as client:
            summary = run_loop(
                safe, client, n_scans=n_scans, stop_after_good=stop_after_good, clock=clock
            )
    finally:
        server.stop()
    (log_dir / "summary.json").write_text(
        json.dumps({**summary.to_dict(), "server": server.stats, "dry_run": dry_run}, indent=1)
    )
    if plot:
        plot_timeline(log_dir)
    return summary
