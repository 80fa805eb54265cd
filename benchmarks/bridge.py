"""The live loop, measured: latency, throughput, a soak, and the closed loop on the simulator.

    python benchmarks/bridge.py                 # shipped family; writes benchmarks/results/bridge.json
    python benchmarks/bridge.py --quick         # small numbers, for a smoke run

* **Latency**: scan -> verdict over loopback ZeroMQ (client and server in one process, the
  server in a thread), 128x128 float32 scans, one at a time; p50/p99 and the share of it
  spent in the family's forward pass.
* **Throughput**: a client keeps ``--window`` scans in flight (the server batches what waits).
* **Soak**: ``--soak`` scans through the same path with a window; every reply is matched to
  its scan by id: lost = scans with no verdict, duplicated = scans with more than one.
* **Closed loop**: ``--episodes`` seeded episodes on the simulated microscope, each starting
  from a bad (blunt) tip: scans and actions until the tip is good (simulator truth), and the
  false action rate (actions taken while the tip was good, over all actions; each episode
  runs ``--after-good`` scans past the first good one to catch them). Three policies side by
  side: ours, naive (act on every bad frame) and none. The votes come from ``--voter``:
  ``family`` (the shipped family, as in operation) or ``truth`` (the simulator's labels: the
  policy's ceiling when every vote is right).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instrument_bridge.client import BridgeClient  # noqa: E402
from instrument_bridge.instrument import SafeInstrument  # noqa: E402
from instrument_bridge.policy import ACT, PolicyConfig, TipPolicy  # noqa: E402
from instrument_bridge.prepare import prepare_frame  # noqa: E402
from instrument_bridge.protocol import Message, deserialize, scan_body, serialize  # noqa: E402
from instrument_bridge.server import BridgeServer  # noqa: E402
from instrument_bridge.sim_microscope import SimulatedMicroscope, TipDynamics  # noqa: E402

ANCHOR = "Barker et al., ACS Nano 18, 2384 (2024): ~12 attempts (9.3 min) to a good tip on Si(111)"


def _scans(n: int, seed: int = 0) -> list[np.ndarray]:
    m = SimulatedMicroscope(seed=seed)
    return [m.scan().z.astype(np.float32) for _ in range(n)]


def latency(voter, scans, n: int) -> dict:
    srv = BridgeServer(voter, endpoint="tcp://127.0.0.1:*").start()
    try:
        with BridgeClient(srv.bound_endpoint, timeout_s=30) as c:
            for z in scans[:5]:  # warm-up (graph tracing)
                c.submit_scan(z, size_nm=3.7)
            srv.inference_seconds = 0.0
            times = []
            t_all = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                c.submit_scan(scans[i % len(scans)], size_nm=3.7)
                times.append(time.perf_counter() - t)
            total = time.perf_counter() - t_all
        ms = np.array(times) * 1e3
        return {
            "n": n,
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()),
            "inference_share": float(srv.inference_seconds / total),
        }
    finally:
        srv.stop()


def pipelined(voter, scans, n: int, window: int) -> dict:
    """Keep ``window`` scans in flight; count every reply against the ids sent."""
    import zmq

    srv = BridgeServer(voter, endpoint="tcp://127.0.0.1:*", max_queue=4 * window).start()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(srv.bound_endpoint)
    sent, replies = {}, {}
    errors = 0
    try:
        t0 = time.perf_counter()
        i = 0
        while len(replies) + errors < n:
            while i < n and i - (len(replies) + errors) < window:
                z = scans[i % len(scans)]
                m = Message("scan", body=scan_body(size_nm=3.7, pixels=z.shape), arrays={"z": z})
                sent[m.id] = i
                s.send_multipart(serialize(m), copy=False)
                i += 1
            if not s.poll(30000):
                break
            r = deserialize(s.recv_multipart())
            if r.type == "verdict":
                replies[r.parent] = replies.get(r.parent, 0) + 1
            else:
                errors += 1
        dt = time.perf_counter() - t0
    finally:
        s.close(0)
        srv.stop()
    return {
        "sent": len(sent),
        "received": int(sum(replies.values())),
        "lost": int(sum(1 for k in sent if k not in replies)),
        "duplicated": int(sum(v - 1 for v in replies.values() if v > 1)),
        "errors": errors,
        "seconds": dt,
        "scans_per_second": len(sent) / dt,
        "overloaded": srv.stats["overloaded"],
    }


def family_scan_voter(family):
    def vote(scan):
        v = family.vote(prepare_frame(scan.z)[None])
        return v.soft[0], v.hard[0], v.agreement[0]

    return vote


def truth_voter(scan):
    y = np.asarray(scan.truth["labels"], float)
    return y, y.astype(np.uint8), np.ones(6)


def episode(vote, cfg: PolicyConfig, seed: int, *, max_scans: int, after_good: int) -> dict:
    m = SimulatedMicroscope(seed=seed, dynamics=TipDynamics(start_state="blunt"))
    safe = SafeInstrument(m, clock=m.clock)
    pol = TipPolicy(cfg)
    actions = false_actions = 0
    first_good = actions_at_good = None
    seconds_at_good = None
    for k in range(1, max_scans + 1):
        scan = m.scan()
        good = scan.truth["good"]
        if good and first_good is None:
            first_good, actions_at_good, seconds_at_good = k, actions, m.time
        soft, hard, agree = vote(scan)
        d = pol.decide({"soft": soft, "hard": hard, "agreement": agree})
        if d.state == ACT:
            actions += 1
            false_actions += int(good)
            # As the live loop: a fresh area only after an action that was sent (not refused).
            if safe.execute(d.action).sent:
                m.move_to_fresh_area()
        if first_good is not None and k - first_good >= after_good:
            break
    return {
        "scans_to_good": first_good,
        "actions_to_good": actions_at_good,
        "minutes_to_good": None if seconds_at_good is None else seconds_at_good / 60,
        "actions": actions,
        "false_actions": false_actions,
        "minutes": m.time / 60,
    }


def closed_loop(
    vote, episodes: int, *, max_scans: int, after_good: int, policies=("ours", "naive", "none")
) -> dict:
    out = {}
    configs = {"ours": PolicyConfig(), "naive": PolicyConfig.naive(), "none": PolicyConfig.none()}
    for name in policies:
        cfg = configs[name]
        eps = [
            episode(vote, cfg, 1000 + s, max_scans=max_scans, after_good=after_good)
            for s in range(episodes)
        ]
        reached = [e for e in eps if e["scans_to_good"] is not None]
        acts = sum(e["actions"] for e in eps)

        def pct(key, q, eps=eps):
            # An episode that never reached a good tip is censored: it counts with its whole
            # length (scans, minutes) or all the actions it took, a lower bound.
            fallback = {
                "scans_to_good": max_scans,
                "actions_to_good": None,
                "minutes_to_good": None,
            }[key]
            vals = []
            for e in eps:
                v = e[key]
                if v is None:
                    v = (
                        fallback
                        if fallback is not None
                        else (e["actions"] if key == "actions_to_good" else e["minutes"])
                    )
                vals.append(v)
            return float(np.percentile(vals, q))

        out[name] = {
            "episodes": episodes,
            "reached_good": len(reached),
            "median_scans_to_good": pct("scans_to_good", 50),
            "p90_scans_to_good": pct("scans_to_good", 90),
            "median_actions_to_good": pct("actions_to_good", 50),
            "p90_actions_to_good": pct("actions_to_good", 90),
            "median_minutes_to_good": pct("minutes_to_good", 50),
            "false_action_rate": float(sum(e["false_actions"] for e in eps) / acts)
            if acts
            else 0.0,
            "actions_per_episode": acts / episodes,
        }
        print(f"   {name}: {json.dumps(out[name])}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", default=str(ROOT / "models" / "hsi_family"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bridge.json"))
    ap.add_argument("--latency-scans", type=int, default=300)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--throughput-scans", type=int, default=1000)
    ap.add_argument("--soak", type=int, default=10000)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--max-scans", type=int, default=150)
    ap.add_argument("--after-good", type=int, default=20)
    ap.add_argument("--voter", choices=["family", "truth", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="tiny numbers, for a smoke run")
    ap.add_argument(
        "--no-companion", action="store_true", help="the members alone (no spectral companion)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.latency_scans, args.throughput_scans, args.soak, args.episodes = 20, 64, 200, 3

    from cnn_family import Family
    from instrument_bridge.server import family_voter

    fam = Family.load(args.family)
    if args.no_companion:
        fam.companion = None
    voter = family_voter(fam)
    scans = _scans(64)
    res: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "family": str(Path(args.family).relative_to(ROOT))
        if args.family.startswith(str(ROOT))
        else args.family,
        "spectral_companion": fam.companion is not None,
    }
    print("== latency (one scan at a time, loopback)", flush=True)
    lat = latency(voter, scans, args.latency_scans)
    res["latency_ms"] = {"p50": lat["p50"], "p99": lat["p99"], "mean": lat["mean"]}
    res["inference_share"] = lat["inference_share"]
    if fam.companion is not None:
        # the companion's part of each vote (numpy features + six dot products, one frame)
        one = [prepare_frame(z)[None] for z in scans[:16]]
        fam.companion.predict(one[0])
        t = []
        for i in range(args.latency_scans):
            t0 = time.perf_counter()
            fam.companion.predict(one[i % len(one)])
            t.append(time.perf_counter() - t0)
        res["companion_ms_p50"] = float(np.percentile(np.array(t) * 1e3, 50))
        print(f"   of which the spectral companion: {res['companion_ms_p50']:.1f} ms", flush=True)
    print(f"   {lat}", flush=True)
    print(f"== throughput (window {args.window})", flush=True)
    thr = pipelined(voter, scans, args.throughput_scans, args.window)
    res["scans_per_second"] = thr["scans_per_second"]
    print(f"   {thr}", flush=True)
    print(f"== soak ({args.soak} scans)", flush=True)
    soak = pipelined(voter, scans, args.soak, args.window)
    res["soak"] = {
        k: soak[k] for k in ("sent", "received", "lost", "duplicated", "errors", "seconds")
    }
    print(f"   {res['soak']}", flush=True)
    voters = ["family", "truth"] if args.voter == "both" else [args.voter]
    res["closed_loop_by_voter"] = {}
    for v in voters:
        print(f"== closed loop, {args.episodes} episodes, votes from {v}", flush=True)
        vote = family_scan_voter(fam) if v == "family" else truth_voter
        # "none" never acts, so its outcome does not depend on the votes: run it once.
        pols = ("ours", "naive") if v == "family" and len(voters) > 1 else ("ours", "naive", "none")
        res["closed_loop_by_voter"][v] = closed_loop(
            vote,
            args.episodes,
            max_scans=args.max_scans,
            after_good=args.after_good,
            policies=pols,
        )
    if len(voters) > 1:
        res["closed_loop_by_voter"]["family"]["none"] = res["closed_loop_by_voter"]["truth"]["none"]
    main_v = res["closed_loop_by_voter"][voters[0]]
    res["closed_loop"] = {
        "voter": voters[0],
        "episodes": args.episodes,
        "median_actions_to_good": main_v["ours"]["median_actions_to_good"],
        "p90_actions_to_good": main_v["ours"]["p90_actions_to_good"],
        "median_scans_to_good": main_v["ours"]["median_scans_to_good"],
        "false_action_rate": main_v["ours"]["false_action_rate"],
        "naive": {
            "median_actions_to_good": main_v["naive"]["median_actions_to_good"],
            "false_action_rate": main_v["naive"]["false_action_rate"],
        },
        "none": {"median_scans_to_good": main_v["none"]["median_scans_to_good"]},
        "anchor": ANCHOR,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from training.io import write_json_atomic

    write_json_atomic(out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
