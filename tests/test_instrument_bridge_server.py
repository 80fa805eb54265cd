"""Server and client over loopback ZeroMQ, with a stub voter (no TensorFlow here)."""

import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from instrument_bridge.client import BridgeClient, BridgeTimeout, RemoteError
from instrument_bridge.instrument import SafeInstrument
from instrument_bridge.live import run_live
from instrument_bridge.loop import run_loop
from instrument_bridge.protocol import Message, deserialize, scan_body, serialize
from instrument_bridge.server import BridgeServer, CurveKeys
from instrument_bridge.session_log import SessionLog, plot_timeline, read_frames, read_log
from instrument_bridge.sim_microscope import SimulatedMicroscope


def stub_voter(frames):
    """Sharp frames (strong pixel-to-pixel contrast) vote Dimers, the others Bad/blurry."""
    n = len(frames)
    sharp = np.abs(np.diff(frames.astype(float), axis=2)).mean(axis=(1, 2)) > 12
    soft = np.zeros((n, 6))
    soft[:, 2], soft[:, 5] = sharp, ~sharp
    return soft, (soft >= 0.5).astype(np.uint8), np.ones((n, 6))


@pytest.fixture
def server(tmp_path):
    srv = BridgeServer(stub_voter, endpoint="tcp://127.0.0.1:*", log_dir=tmp_path / "log").start()
    yield srv
    srv.stop()


def test_scan_gets_a_verdict_and_everything_is_logged(server, rng, tmp_path):
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        assert c.heartbeat() < 5
        v = c.submit_scan(rng.normal(size=(256, 256)), size_nm=10.0, source="a.sxm")
    assert v.type == "verdict"
    assert len(v.body["soft"]) == 6 and set(v.body["hard"]) <= {0, 1}
    assert v.body["decision"]["state"] in ("ok", "watching", "act")
    server.stop()
    recs = read_log(tmp_path / "log")
    verdicts = [r for r in recs if r["type"] == "verdict"]
    assert len(verdicts) == 1 and verdicts[0]["scan"]["source"] == "a.sxm"
    # a 10 nm scan: its whole frame and the 4 tiles it was voted in
    assert read_frames(tmp_path / "log").shape == (5, 128, 128)
    assert verdicts[0]["tiles"] == 4 and verdicts[0]["tile_frames"] == [1, 2, 3, 4]


def test_malformed_messages_get_error_replies_and_the_server_keeps_serving(server, rng):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(server.bound_endpoint)
    good_hdr = json.loads(bytes(serialize(Message("heartbeat"))[0]))
    bad = [
        [b"{not json"],
        [json.dumps({**good_hdr, "v": 2}).encode()],
        [json.dumps({**good_hdr, "type": "shutdown"}).encode()],
        [
            json.dumps(
                {**good_hdr, "arrays": [{"name": "z", "dtype": "<f4", "shape": [4]}]}
            ).encode(),
            b"12",
        ],
        serialize(
            Message(
                "scan",
                body=scan_body(size_nm=1, pixels=(4, 4)),
                arrays={"z": np.full((4, 4), np.inf)},
            )
        ),
        serialize(
            Message("scan", body=scan_body(size_nm=1, pixels=(3,)), arrays={"z": np.zeros(3)})
        ),
        serialize(
            Message(
                "scan",
                body=scan_body(size_nm=1, pixels=(4, 4)),
                arrays={"z": np.full((4, 4), np.nan)},
            )
        ),
        [b" " * 70000],
        # Found by fuzzing the server: each of these once killed its thread with a TypeError or
        # an OverflowError, so every later request from every client timed out.
        [
            json.dumps(
                {**good_hdr, "arrays": [{"name": "z", "dtype": "<f4", "shape": [2**70, 2**70]}]}
            ).encode(),
            b"",
        ],
        [
            json.dumps(
                {**good_hdr, "arrays": [{"name": "z", "dtype": "1e+308", "shape": [1]}]}
            ).encode(),
            b"1234",
        ],
        _scan_frames(pixels=None),
        _scan_frames(size_nm="wide"),
    ]
    codes = []
    for frames in bad:
        s.send_multipart(frames)
        assert s.poll(5000)
        reply = deserialize(s.recv_multipart())
        assert reply.type == "error"
        codes.append(reply.body["code"])
    assert codes == [
        "bad_json",
        "version",
        "unknown_type",
        "bad_array",
        "bad_array",
        "bad_array",
        "bad_frame",
        "too_large",
        "too_large",
        "bad_array",
        "bad_header",
        "bad_header",
    ]
    s.close()
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        assert c.submit_scan(rng.normal(size=(128, 128)), size_nm=3.7).type == "verdict"
        with pytest.raises(RemoteError, match="finite"):
            z = rng.normal(size=(64, 64))
            z[3, 3] = np.inf
            c.submit_scan(z, size_nm=3.7)
    assert server.stats["errors"] == len(bad) + 1


def _scan_frames(**body):
    """A well-formed 4x4 scan message whose header body is then changed to ``body``."""
    frames = serialize(
        Message("scan", body=scan_body(size_nm=1, pixels=(4, 4)), arrays={"z": np.zeros((4, 4))})
    )
    h = json.loads(bytes(frames[0]))
    h["body"].update(body)
    return [json.dumps(h).encode(), *frames[1:]]


def test_a_message_the_server_cannot_handle_gets_an_error_and_the_server_keeps_serving(
    server, rng, tmp_path, monkeypatch
):
    def boom(*_):
        raise RuntimeError("tiling broke")

    monkeypatch.setattr(server, "_tiles", boom)
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        with pytest.raises(RemoteError, match=r"internal_error.*tiling broke"):
            c.submit_scan(rng.normal(size=(64, 64)), size_nm=3.7)
        assert c.heartbeat() < 5
    server.stop()
    errors = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errors] == ["internal_error"]


def test_client_fields_named_like_log_fields_are_kept_apart(server, tmp_path):
    """A body field called parent, type or t must neither crash the server nor overwrite the
    log record's own field of that name."""
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        m = Message(
            "action_result",
            body={"action": {"kind": "pulse"}, "sent": False, "parent": "p", "type": "x", "t": 1},
        )
        assert c.request(m).body == {"ack": "action_result"}
    server.stop()
    (rec,) = [r for r in read_log(tmp_path / "log") if r["type"] == "action_result"]
    assert rec["id"] == m.id and rec["t"] > 1e9
    assert (rec["body_parent"], rec["body_type"], rec["body_t"]) == ("p", "x", 1)


def test_a_resent_scan_gets_the_same_verdict_not_a_second_vote(server, rng):
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        z = rng.normal(size=(128, 128))
        a = c.submit_scan(z, size_nm=3.7, msg_id="scan-0001")
        b = c.submit_scan(z, size_nm=3.7, msg_id="scan-0001")
    assert a.id == b.id and server.stats["verdicts"] == 1 and server.stats["repeats"] == 1


def test_overload_votes_newest_and_logs_every_refusal(tmp_path, rng):
    srv = BridgeServer(stub_voter, max_queue=4, log_dir=tmp_path / "log")
    msgs = [
        Message(
            "scan",
            body=scan_body(size_nm=3.7, pixels=(128, 128)),
            arrays={"z": rng.normal(size=(128, 128))},
        )
        for _ in range(10)
    ]
    replies = srv.handle([[b"id", *serialize(m)] for m in msgs])
    srv.log.close()
    assert len(replies) == 10
    kinds = [r.type for _, r in replies]
    assert kinds == ["error"] * 6 + ["verdict"] * 4
    assert [r.parent for _, r in replies] == [m.id for m in msgs]
    recs = read_log(tmp_path / "log")
    assert sum(r.get("code") == "overloaded" for r in recs) == 6
    assert sum(r["type"] == "verdict" for r in recs) == 4


def test_a_wide_scan_is_voted_in_tiles_and_a_split_vote_is_negative(tmp_path, rng):
    calls = []

    def voter(frames):
        calls.append(len(frames))
        n = len(frames)
        soft, hard = np.zeros((n, 6)), np.zeros((n, 6), np.uint8)
        hard[:5, 5] = soft[:5, 5] = 1  # Bad/blurry on 5 of the 9 tiles of the wide scan
        hard[:4, 2] = soft[:4, 2] = 1  # Dimers on 4 of them
        return soft, hard, np.ones((n, 6))

    srv = BridgeServer(voter, log_dir=tmp_path / "log")
    wide, small = rng.normal(size=(201, 201)), rng.normal(size=(128, 128))
    msgs = [
        Message("scan", body=scan_body(size_nm=11.1, pixels=(201, 201)), arrays={"z": wide}),
        Message("scan", body=scan_body(size_nm=3.7, pixels=(128, 128)), arrays={"z": small}),
    ]
    (_, a), (_, b) = srv.handle([[b"id", *serialize(m)] for m in msgs])
    srv.log.close()
    assert calls == [9 + 1]  # one voter call: the wide scan's 9 tiles and the small scan
    assert a.body["tiles"] == 9 and "tiles" not in b.body
    assert a.body["hard"][5] == 1 and a.body["hard"][2] == 0  # 5 of 9 yes; 4 of 9 no
    assert a.body["soft"][5] == pytest.approx(5 / 9, abs=1e-4)
    recs = [r for r in read_log(tmp_path / "log") if r["type"] == "verdict"]
    # the whole scan's frame (for the timeline), its 9 tiles (for a replay), the small scan
    assert recs[0]["tiles"] == 9 and read_frames(tmp_path / "log").shape == (11, 128, 128)
    assert recs[0]["frame"] == 0 and recs[0]["tile_frames"] == list(range(1, 10))
    assert recs[1]["frame"] == 10 and "tile_frames" not in recs[1]
    whole = BridgeServer(voter, tile_nm=None)  # tiling off: every scan is one frame
    calls.clear()
    whole.handle([[b"id", *serialize(m)] for m in msgs])
    assert calls == [2]


def test_client_times_out_cleanly_when_no_server():
    with BridgeClient("tcp://127.0.0.1:1", timeout_s=0.2, retries=1) as c:
        t = time.monotonic()
        with pytest.raises(BridgeTimeout) as e:
            c.heartbeat()
        assert isinstance(e.value, TimeoutError)
        assert time.monotonic() - t < 3
        assert c.reconnects == 2


def test_server_restarted_mid_stream_loses_no_scan(tmp_path, rng):
    srv = BridgeServer(stub_voter, endpoint="tcp://127.0.0.1:*").start()
    endpoint = srv.bound_endpoint
    got = []
    with BridgeClient(endpoint, timeout_s=0.5, retries=20) as c:
        for _i in range(3):
            got.append(c.submit_scan(rng.normal(size=(128, 128)), size_nm=3.7).parent)
        srv.stop()
        holder = {}

        def restart():
            time.sleep(1.0)
            holder["srv"] = BridgeServer(stub_voter, endpoint=endpoint).start()

        th = threading.Thread(target=restart)
        th.start()
        for _i in range(3):
            got.append(c.submit_scan(rng.normal(size=(128, 128)), size_nm=3.7).parent)
        th.join()
        assert c.reconnects >= 1
    holder["srv"].stop()
    assert len(got) == len(set(got)) == 6


def test_curve_unknown_client_gets_nothing(tmp_path, rng):
    from zmq.auth import create_certificates, load_certificate

    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    srv_pub, srv_sec = load_certificate(create_certificates(keys, "server")[1])
    cli_pub, cli_sec = load_certificate(create_certificates(keys, "client")[1])
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    other_pub, other_sec = load_certificate(create_certificates(keys, "intruder")[1])
    srv = BridgeServer(
        stub_voter,
        endpoint="tcp://127.0.0.1:*",
        curve=CurveKeys(public=srv_pub, secret=srv_sec, clients_dir=str(allowed)),
    ).start()
    try:
        ok = {"server_public": srv_pub, "public": cli_pub, "secret": cli_sec}
        with BridgeClient(srv.bound_endpoint, timeout_s=5, curve=ok) as c:
            assert c.submit_scan(rng.normal(size=(128, 128)), size_nm=3.7).type == "verdict"
        bad = {"server_public": srv_pub, "public": other_pub, "secret": other_sec}
        with BridgeClient(srv.bound_endpoint, timeout_s=0.5, retries=1, curve=bad) as c:
            with pytest.raises(BridgeTimeout):
                c.submit_scan(rng.normal(size=(128, 128)), size_nm=3.7)
        with BridgeClient(srv.bound_endpoint, timeout_s=0.5, retries=0) as c:  # no CURVE at all
            with pytest.raises(BridgeTimeout):
                c.heartbeat()
    finally:
        srv.stop()
    assert srv.stats["verdicts"] == 1


def test_instrument_side_imports_no_tensorflow():
    code = (
        "import sys, instrument_bridge, instrument_bridge.client, instrument_bridge.loop, "
        "instrument_bridge.policy, instrument_bridge.protocol, instrument_bridge.sim_microscope, "
        "instrument_bridge.instrument, instrument_bridge.prepare; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_loop_survives_a_stalled_instrument_and_logs_it(server, tmp_path):
    m = SimulatedMicroscope(seed=0)
    m.inject_stall(2)
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="sim") as c:
        s = run_loop(SafeInstrument(m), c, n_scans=5, clock=m.clock)
    assert s.timeouts == 2 and s.scans == 3
    server.stop()
    errs = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errs] == ["instrument_timeout"] * 2


def test_loop_survives_timeouts_on_an_action_and_on_the_move_after_it(server, tmp_path):
    from instrument_bridge.instrument import InstrumentTimeout
    from instrument_bridge.sim_microscope import TipDynamics

    class NoAnswerToFirstActionAndMove(SimulatedMicroscope):
        def _once(self, what):
            if what not in self.failed:
                self.failed.add(what)
                raise InstrumentTimeout(f"no answer to {what}")

        def pulse(self, *a, **k):
            self._once("action")
            return super().pulse(*a, **k)

        def dip(self, *a, **k):
            self._once("action")
            return super().dip(*a, **k)

        def move_to_fresh_area(self, *a, **k):
            self._once("move")
            return super().move_to_fresh_area(*a, **k)

    m = NoAnswerToFirstActionAndMove(seed=0, dynamics=TipDynamics(start_state="blunt"))
    m.failed = set()
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="sim") as c:
        s = run_loop(SafeInstrument(m), c, n_scans=20, clock=m.clock)
    assert s.scans == 20 and s.timeouts == 2 and s.actions >= 2 and s.actions_sent >= 1
    server.stop()
    errs = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errs] == ["instrument_timeout"] * 2
    assert "may still have reached the tip" in errs[0]["message"] and errs[0]["action"]["kind"]


def test_loop_survives_commands_the_controller_answers_with_an_error(server, tmp_path):
    from instrument_bridge.nanonis import NanonisInstrument
    from instrument_bridge.nanonis_fake import FakeNanonisServer

    errors = {"Scan.Action": 1, "Bias.Pulse": 1}
    with FakeNanonisServer(seed=0, start_state="blunt", errors=errors) as fake:
        inst = NanonisInstrument("127.0.0.1", fake.port, timeout=5)
        with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
            s = run_loop(SafeInstrument(inst), c, n_scans=6)
    assert s.instrument_errors == 2 and s.scans == 5 and s.actions >= 1
    assert "2 commands the instrument refused with an error" in s.describe()
    server.stop()
    errs = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errs] == ["instrument_error"] * 2
    assert "busy (fake)" in errs[0]["message"] and errs[1]["action"]["kind"] == "pulse"


def test_a_lost_instrument_connection_ends_the_loop_with_its_summary(server, tmp_path):
    from instrument_bridge.nanonis import NanonisInstrument
    from instrument_bridge.nanonis_fake import FakeNanonisServer

    with FakeNanonisServer(seed=0, close_after=7) as fake:  # a scan or two, then it drops
        inst = NanonisInstrument("127.0.0.1", fake.port, timeout=5)
        with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
            s = run_loop(SafeInstrument(inst), c, n_scans=10)
    assert 1 <= s.scans < 10 and "closed the connection" in s.connection_lost
    assert "ended early, the instrument connection was lost" in s.describe()
    server.stop()
    (err,) = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert err["code"] == "instrument_lost"


def test_a_bridge_server_that_goes_away_ends_the_loop_with_its_summary(server):
    m = SimulatedMicroscope(seed=0)
    seen = []

    def stop_after_two(verdict):
        seen.append(verdict)
        if len(seen) == 2:
            server.stop()

    with BridgeClient(server.bound_endpoint, timeout_s=0.3, retries=1) as c:
        s = run_loop(SafeInstrument(m), c, n_scans=10, clock=m.clock, on_verdict=stop_after_two)
    assert s.scans == 2 and "no reply" in s.bridge_lost
    assert "ended early, the bridge server stopped answering" in s.describe()


def test_an_instrument_never_reached_is_a_set_up_error_not_a_lost_connection(server):
    from instrument_bridge.nanonis import NanonisInstrument

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inst = NanonisInstrument("127.0.0.1", port, timeout=2)
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        with pytest.raises(ConnectionError, match="cannot connect"):
            run_loop(SafeInstrument(inst), c, n_scans=3)


def test_the_loop_moves_to_a_fresh_area_only_after_an_action_that_was_sent(server):
    from instrument_bridge.instrument import SafetyLimits
    from instrument_bridge.sim_microscope import TipDynamics

    class CountingMoves(SimulatedMicroscope):
        def move_to_fresh_area(self, *a, **k):
            self.moves += 1
            return super().move_to_fresh_area(*a, **k)

    m = CountingMoves(seed=0, dynamics=TipDynamics(start_state="blunt"))
    m.moves = 0
    safe = SafeInstrument(m, limits=SafetyLimits(max_actions_per_hour=1))  # one, then refused
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="sim") as c:
        s = run_loop(safe, c, n_scans=20, clock=m.clock)
    assert s.actions > s.actions_sent == 1 and s.refused >= 1
    assert m.moves == 1


def test_a_failing_family_gets_an_error_reply_and_the_server_keeps_serving(tmp_path, rng):
    calls = []

    def flaky_voter(frames):
        calls.append(len(frames))
        if len(calls) == 1:
            raise MemoryError("out of memory")
        return stub_voter(frames)

    srv = BridgeServer(flaky_voter, endpoint="tcp://127.0.0.1:*", log_dir=tmp_path / "log").start()
    try:
        with BridgeClient(srv.bound_endpoint, timeout_s=5) as c:
            with pytest.raises(RemoteError, match=r"voter_failed.*MemoryError: out of memory"):
                c.submit_scan(rng.normal(size=(64, 64)), size_nm=3.7)
            assert c.submit_scan(rng.normal(size=(64, 64)), size_nm=3.7).type == "verdict"
    finally:
        srv.stop()
    codes = [r.get("code") for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert codes == ["voter_failed"]


def test_a_family_voting_nan_gets_an_error_reply_and_the_server_keeps_serving(tmp_path, rng):
    def nan_voter(frames):  # once a ValueError in the policy, outside the voter's guard
        soft, hard, agree = stub_voter(frames)
        return np.full_like(soft, np.nan), hard, agree

    srv = BridgeServer(nan_voter, endpoint="tcp://127.0.0.1:*", log_dir=tmp_path / "log").start()
    try:
        with BridgeClient(srv.bound_endpoint, timeout_s=5) as c:
            with pytest.raises(RemoteError, match=r"voter_failed.*NaN or inf"):
                c.submit_scan(rng.normal(size=(64, 64)), size_nm=3.7)
            assert c.heartbeat() < 5
    finally:
        srv.stop()


def test_a_server_whose_log_cannot_be_written_answers_and_keeps_serving(server, rng):
    calls = []

    def full_disk(type_, **fields):
        calls.append(type_)
        if type_ == "verdict":
            raise OSError(28, "No space left on device")

    server.log.record = full_disk
    with BridgeClient(server.bound_endpoint, timeout_s=5) as c:
        with pytest.raises(RemoteError, match=r"internal_error.*No space left"):
            c.submit_scan(rng.normal(size=(64, 64)), size_nm=3.7)
        assert c.heartbeat() < 5
    assert calls == ["verdict"]


def test_loop_survives_a_scan_the_bridge_refuses(server, tmp_path):
    class StoppedAfterFourLines(SimulatedMicroscope):
        def scan(self, *a, **k):
            res = super().scan(*a, **k)
            self.n = getattr(self, "n", 0) + 1
            if self.n == 2:  # an operator stopped this scan: 4 lines, too few to judge
                res.z[4:] = np.nan
            return res

    m = StoppedAfterFourLines(seed=0)
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="sim") as c:
        s = run_loop(SafeInstrument(m), c, n_scans=4, clock=m.clock)
    assert s.rejected == 1 and s.scans == 3 and "1 scan refused by the bridge" in s.describe()
    server.stop()
    errs = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errs] == ["bad_frame"]


def test_a_watchers_skipped_files_are_logged_by_the_loop(server, tmp_path, rng):
    from test_instrument_bridge_readers import write_sxm

    from instrument_bridge.watcher import FolderWatcher

    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "a_broken.sxm").write_bytes(b"not a scan")
    write_sxm(scans / "b_good.sxm", rng.normal(size=(64, 64)))
    w = FolderWatcher(scans, include_existing=True, poll_s=0.05)
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="watch") as c:
        s = run_loop(SafeInstrument(w), c, n_scans=1)
    assert s.scans == 1 and s.skipped == 1 and "1 scan file skipped" in s.describe()
    server.stop()
    errs = [r for r in read_log(tmp_path / "log") if r["type"] == "error"]
    assert [e["code"] for e in errs] == ["scan_skipped"] and "a_broken.sxm" in errs[0]["message"]


def test_ctrl_c_ends_the_loop_with_its_summary_and_log(server, tmp_path):
    class StoppedAtThirdScan(SimulatedMicroscope):
        def scan(self, *a, **k):
            if self.scans_done == 2:
                raise KeyboardInterrupt
            self.scans_done += 1
            return super().scan(*a, **k)

    m = StoppedAtThirdScan(seed=0)
    m.scans_done = 0
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="sim") as c:
        s = run_loop(SafeInstrument(m), c, n_scans=10, clock=m.clock)
    assert s.stopped_by_operator and s.scans == 2 and "stopped by the operator" in s.describe()
    server.stop()
    assert sum(r["type"] == "verdict" for r in read_log(tmp_path / "log")) == 2


def test_live_dry_run_sends_no_action_but_logs_all(tmp_path):
    out = tmp_path / "live"
    s = run_live(voter=stub_voter, n_scans=25, dry_run=True, log_dir=out, seed=1)
    assert s.scans == 25 and s.actions > 0 and s.actions_sent == 0
    recs = read_log(out)
    results = [r for r in recs if r["type"] == "action_result"]
    assert len(results) == s.actions and all(r["dry_run"] and not r["sent"] for r in results)
    assert (out / "timeline.png").stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["dry_run"] is True


def test_session_log_skips_a_torn_last_line(tmp_path):
    with SessionLog(tmp_path) as log:
        log.record("verdict", categories=["a"], soft=[0.5], decision={})
        log.record("error", code="x", message="y")
    with open(tmp_path / "records.jsonl", "a") as f:
        f.write('{"seq": 2, "type": "verd')
    recs = read_log(tmp_path)
    assert [r["type"] for r in recs] == ["verdict", "error"]
    assert plot_timeline(tmp_path).exists()


def test_timeline_shows_evenly_spaced_frames_read_row_by_row(tmp_path):
    from instrument_bridge.session_log import _read_thumbs

    with SessionLog(tmp_path) as log:
        for i in range(30):
            row = log.add_frame(np.full((128, 128), i, np.uint8))
            log.record("verdict", categories=["a"], soft=[0.5], frame=row, decision={})
        log.record("verdict", categories=["a"], soft=[0.5], frame=99, decision={})  # no such row
    verdicts = [r for r in read_log(tmp_path) if r["type"] == "verdict"]
    picked = _read_thumbs(tmp_path, verdicts, 5)
    assert [i for i, _ in picked] == [0, 7, 14, 22, 29]
    assert [int(f[0, 0]) for _, f in picked] == [0, 7, 14, 22, 29]
    assert _read_thumbs(tmp_path, verdicts, 0) == []
    assert plot_timeline(tmp_path, thumbs=5).stat().st_size > 10_000


def test_manual_override_through_the_server(server, rng):
    from instrument_bridge.policy import PolicyConfig

    server.policy_config = PolicyConfig(consecutive_bad=1, ema_alpha=1.0)
    flat = np.zeros((128, 128))  # blurry for the stub voter
    flat[::2] = 1e-3
    with BridgeClient(server.bound_endpoint, timeout_s=5, instrument="stm1") as c:
        c.override(True)
        assert c.submit_scan(flat, size_nm=3.7).body["decision"]["state"] == "manual"
        c.override(False)
        assert c.submit_scan(flat, size_nm=3.7).body["decision"]["state"] == "act"


def test_live_loop_through_the_fake_nanonis_controller(tmp_path):
    s = run_live(voter=stub_voter, instrument="fake-nanonis", n_scans=8, log_dir=tmp_path, seed=2)
    assert s.scans == 8
    verdicts = [r for r in read_log(tmp_path) if r["type"] == "verdict"]
    assert len(verdicts) == 8 and verdicts[0]["scan"]["source"].endswith(".sxm")


def test_family_voter_passes_the_vote_options(tiny_family_dir, sim_frames):
    from cnn_family import Family, FamilyFormatError
    from instrument_bridge.server import family_voter

    soft, hard, agree = family_voter(tiny_family_dir, tta=True, undo_class_weights=True)(
        sim_frames.images[:3]
    )
    assert soft.shape == hard.shape == agree.shape == (3, 6)
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    m.pop("train_positive_rate")
    fam = Family.load(tiny_family_dir)
    fam.manifest = m
    with pytest.raises(FamilyFormatError, match="train_positive_rate"):
        family_voter(fam, undo_class_weights=True)


def test_live_instrument_specs_are_parsed_or_refused_with_what_was_expected(tmp_path):
    from instrument_bridge.live import make_instrument
    from instrument_bridge.nanonis import NanonisInstrument
    from instrument_bridge.watcher import FolderWatcher

    assert isinstance(make_instrument("sim"), SimulatedMicroscope)
    nan = make_instrument("nanonis:10.0.0.2:6502")  # connects on first use, not here
    assert isinstance(nan, NanonisInstrument)
    assert (nan.client.host, nan.client.port) == ("10.0.0.2", 6502)
    assert make_instrument(f"watch:{tmp_path}").folder == tmp_path
    assert isinstance(make_instrument(f"watch:{tmp_path}"), FolderWatcher)
    with pytest.raises(FileNotFoundError, match="watch folder not found"):
        make_instrument(f"watch:{tmp_path / 'nope'}")
    for bad in ("nanonis:host", "nanonis:host:port"):
        with pytest.raises(ValueError, match=r"expected nanonis:HOST:PORT \(a port 1-65535\), got"):
            make_instrument(bad)
    with pytest.raises(ValueError, match="expected an ExitStack"):
        make_instrument("fake-nanonis")
    with pytest.raises(ValueError, match="expected 'sim', 'fake-nanonis'"):
        make_instrument("createc")
