"""Replaying a logged live session offline with another voter or policy."""

import json

import numpy as np
import pytest

from instrument_bridge.live import run_live
from instrument_bridge.policy import PolicyConfig
from instrument_bridge.replay import ReplayError, plot_replay, replay_session
from instrument_bridge.session_log import SessionLog, read_frames, read_log


def sharp_voter(frames):
    """Sharp frames (strong pixel-to-pixel contrast) vote Dimers, the others Bad/blurry."""
    n = len(frames)
    sharp = np.abs(np.diff(frames.astype(float), axis=2)).mean(axis=(1, 2)) > 12
    soft = np.zeros((n, 6))
    soft[:, 2], soft[:, 5] = sharp, ~sharp
    return soft, (soft >= 0.5).astype(np.uint8), np.ones((n, 6))


def always_good(frames):
    n = len(frames)
    soft = np.zeros((n, 6))
    soft[:, 2] = 0.9
    return soft, (soft >= 0.5).astype(np.uint8), np.ones((n, 6))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A simulated session from a blunt tip, with actions, logged by the real server."""
    log = tmp_path_factory.mktemp("live") / "log"
    s = run_live(voter=sharp_voter, n_scans=30, dry_run=False, log_dir=log, seed=1, plot=False)
    assert s.actions >= 1  # the replay has decisions with actions to reproduce
    return log


def test_the_same_voter_and_policy_replay_the_session_decision_for_decision(session):
    r = replay_session(session, sharp_voter)
    verdicts = [x for x in read_log(session) if x["type"] == "verdict"]
    assert len(r.scans) == len(verdicts) and r.skipped == {"tiled": 0, "no_frame": 0}
    assert r.first_divergence() is None
    assert r.new_decisions == r.logged_decisions
    s = r.summary()
    assert all(p["hard_agreement"] == 1.0 for p in s["per_category"].values())
    assert s["actions"]["logged"] == s["actions"]["replayed"] >= 1
    assert s["first_divergence"] is None
    json.dumps(s)  # plain JSON


def test_another_voter_shows_where_it_would_have_acted_otherwise(session, tmp_path):
    r = replay_session(session, always_good)
    s = r.summary()
    assert s["actions"]["replayed"] == 0 < s["actions"]["logged"]
    assert s["per_category"]["Dimers"]["replayed_positive"] == len(r.scans)
    first = s["first_divergence"]
    # the first logged action, or an earlier state change, is where the sessions part
    logged_first_act = next(i for i, d in enumerate(r.logged_decisions) if d.get("action"))
    assert first is not None and first["scan"] <= r.scans[logged_first_act]
    assert first["replayed"] == "ok"
    png = plot_replay(r, tmp_path / "replay.png")
    assert png.stat().st_size > 10_000


def test_a_stricter_policy_is_replayed_with_the_same_votes(session):
    never = PolicyConfig.none()
    r = replay_session(session, sharp_voter, policy=never)
    assert r.summary()["actions"]["replayed"] == 0
    np.testing.assert_array_equal(r.new_hard, r.logged_hard)


def test_overrides_and_tiled_scans_in_the_log(tmp_path):
    # A hand-written log: scan 0 voted whole, a manual override, scan 1 whole, scan 2 in tiles.
    log = SessionLog(tmp_path)
    bad = {"soft": [0, 0, 0, 0, 0, 1.0], "hard": [0, 0, 0, 0, 0, 1], "agreement": [1.0] * 6}
    cats = ["Asymmetries", "Individual atoms", "Dimers", "Rows", "Tip change", "Bad/blurry"]
    frame = np.zeros((128, 128), np.uint8)
    for k, extra in enumerate(({}, {}, {"tiles": 4})):
        if k == 1:
            log.record("override", instrument="default", manual=True)
        log.record(
            "verdict", frame=log.add_frame(frame), categories=cats, **bad, **extra,
            decision={"state": "ok"}, scan={"instrument": "default"},
        )  # fmt: skip
    log.close()
    r = replay_session(tmp_path, lambda x: tuple(np.array([bad[k]] * len(x)) for k in bad))
    assert r.skipped == {"tiled": 1, "no_frame": 0}
    assert [d["state"] for d in r.new_decisions] == ["watching", "manual"]


def test_what_cannot_be_replayed_says_why(tmp_path):
    with pytest.raises(ReplayError, match=r"found no records\.jsonl"):
        replay_session(tmp_path, sharp_voter)
    (tmp_path / "records.jsonl").write_text('{"type": "verdict", "tiles": 4}\n')
    with pytest.raises(ReplayError, match=r"found 1 verdict \(1 voted in tiles not logged, 0 "):
        replay_session(tmp_path, sharp_voter)


def test_a_wide_scan_is_replayed_in_the_tiles_it_was_voted_in(tmp_path):
    from instrument_bridge.protocol import Message, scan_body, serialize
    from instrument_bridge.server import BridgeServer

    def brightness(frames):  # a vote that differs from tile to tile
        soft = np.repeat(frames.mean(axis=(1, 2))[:, None] / 255.0, 6, axis=1)
        return soft, (soft >= 0.5).astype(np.uint8), np.ones_like(soft)

    rng = np.random.default_rng(5)
    z = rng.normal(size=(201, 201)) + np.linspace(0, 30, 201)[None, :]  # tiles differ
    srv = BridgeServer(brightness, log_dir=tmp_path)
    msgs = [Message("scan", body=scan_body(size_nm=11.1, pixels=(201, 201)), arrays={"z": z})]
    msgs.append(
        Message("scan", body=scan_body(size_nm=3.7, pixels=(128, 128)), arrays={"z": z[:128, :128]})
    )
    srv.handle([[b"id", *serialize(m)] for m in msgs])
    srv.log.close()
    r = replay_session(tmp_path, brightness)
    assert r.skipped == {"tiled": 0, "no_frame": 0} and len(r.scans) == 2
    np.testing.assert_array_equal(r.new_soft, r.logged_soft)
    # voting the wide scan's whole frame instead would have given another vote
    whole = brightness(read_frames(tmp_path)[[0]])[0]
    assert not np.allclose(whole[0], r.logged_soft[0], atol=1e-3)


def test_a_voter_of_other_categories_is_refused(session):
    def rows_only(frames):
        return np.zeros((len(frames), 1)), np.zeros((len(frames), 1)), np.ones((len(frames), 1))

    with pytest.raises(ReplayError, match=r"expected votes of shape \(30, 6\)"):
        replay_session(session, rows_only)


def test_a_session_log_is_data_its_frames_not_its_pictures(session, tmp_path):
    # --data runs/live once voted on timeline.png, the only image in the folder.
    import shutil

    from evaluation.report import load_any
    from instrument_bridge.session_log import read_frames

    log = shutil.copytree(session, tmp_path / "live")
    (log / "timeline.png").write_bytes((session / "frames.h5").read_bytes()[:10])
    for path in (log, log / "frames.h5"):
        fs = load_any(path)
        np.testing.assert_array_equal(fs.images, read_frames(session))
        assert fs.names[0] == "live/scan0000" and set(fs.sessions) == {"live"}
        assert not fs.labelled.any()


def test_a_labelled_session_log_becomes_training_data(session, tmp_path):
    from training.data import load_frames
    from training.prepare_scans import main as prepare

    csv = tmp_path / "labels.csv"
    header = "name,Asymmetries,Individual atoms,Dimers,Rows,Tip change,Bad/blurry"
    csv.write_text(f"{header}\nlog/scan0000,0,0,1,0,0,0\nlog/scan0003,0,0,0,0,0,1\n")
    assert prepare([str(session), str(csv), str(tmp_path / "mine.h5")]) == 0
    fs = load_frames(tmp_path / "mine.h5")
    assert len(fs) == 30 and fs.labelled.sum() == 2
    assert set(fs.sessions) == {"log"}  # one live session, one tip history: one session
    assert fs.labels()[fs.labelled].tolist() == [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]]


def test_the_command_line(session, tmp_path, capsys):
    import main_evaluate_guess

    args = ["--replay", str(session), "--out-dir", str(tmp_path), "--policy", "none"]
    assert main_evaluate_guess.main(args) == 0
    out = capsys.readouterr().out
    assert "replayed 30 scans" in out and "actions:" in out
    s = json.loads((tmp_path / "replay.json").read_text())
    assert s["policy"] == "none" and s["actions"]["replayed"] == 0
    assert (tmp_path / "replay.png").exists()
    assert main_evaluate_guess.main(["--replay", str(session), "--live", "sim"]) == 2
    assert "expected a session log alone" in capsys.readouterr().err
    assert main_evaluate_guess.main(["--replay", str(tmp_path / "none")]) == 2
    assert "found no records.jsonl" in capsys.readouterr().err
