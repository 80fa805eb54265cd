"""The conditioning policy and the safety gate no policy can bypass."""

import itertools

import numpy as np
import pytest

from instrument_bridge.instrument import Action, SafeInstrument, SafetyLimits, SafetyViolation
from instrument_bridge.policy import ACT, CALL_PERSON, MANUAL, OK, WATCHING, PolicyConfig, TipPolicy

GOOD = {"soft": [0, 0.1, 0.95, 0.1, 0.0, 0.05], "hard": [0, 0, 1, 0, 0, 0], "agreement": [1] * 6}
BAD = {"soft": [0, 0, 0.05, 0.2, 0.0, 0.95], "hard": [0, 0, 0, 0, 0, 1], "agreement": [1] * 6}
CHANGE = {"soft": [0, 0, 0.3, 0.2, 0.9, 0.4], "hard": [0, 0, 0, 0, 1, 0], "agreement": [1] * 6}
UNSURE = {**BAD, "agreement": [1, 1, 1, 1, 1 / 3, 1 / 3]}


def test_acts_only_after_n_consecutive_bad_verdicts():
    p = TipPolicy(PolicyConfig(consecutive_bad=3, ema_alpha=1.0))
    states = [p.decide(BAD).state for _ in range(3)]
    assert states == [WATCHING, WATCHING, ACT]
    p2 = TipPolicy(PolicyConfig(consecutive_bad=3, ema_alpha=1.0))
    assert [p2.decide(v).state for v in (BAD, BAD, GOOD, BAD, BAD)] == [WATCHING] * 2 + [OK] + [
        WATCHING
    ] * 2


def test_temporal_filter_ignores_one_odd_frame():
    p = TipPolicy(PolicyConfig(consecutive_bad=1, ema_alpha=0.3))
    for _ in range(5):
        p.decide(GOOD)
    assert p.decide(BAD).state == OK  # filtered score stays low after one bad frame


def test_low_agreement_neither_counts_nor_resets():
    p = TipPolicy(PolicyConfig(consecutive_bad=2, ema_alpha=1.0, min_agreement=0.6))
    assert p.decide(BAD).state == WATCHING
    assert p.decide(UNSURE).state == WATCHING and p.consecutive_bad == 1
    assert p.decide(BAD).state == ACT


def test_ladder_escalates_and_tip_change_starts_with_a_dip():
    cfg = PolicyConfig(consecutive_bad=1, ema_alpha=1.0)
    p = TipPolicy(cfg)
    actions = [p.decide(BAD).action for _ in range(len(cfg.ladder) + 2)]
    assert actions[: len(cfg.ladder)] == list(cfg.ladder)
    assert actions[len(cfg.ladder)] == cfg.ladder[-cfg.repeat_top]
    biases = [abs(a.bias_v) for a in actions[:5]]
    assert biases == sorted(biases)
    q = TipPolicy(cfg)
    first = q.decide(CHANGE).action
    assert first.kind == "dip" and first.depth_nm == cfg.tip_change_dip_nm


def test_every_action_asks_for_a_fresh_area_and_good_tip_resets_ladder():
    p = TipPolicy(PolicyConfig(consecutive_bad=1, ema_alpha=1.0, good_to_reset=2))
    d = p.decide(BAD)
    assert d.move_after and d.attempt == 1
    p.decide(BAD)
    assert p.rung == 2
    p.decide(GOOD)
    p.decide(GOOD)
    assert p.rung == 0 and p.attempt == 0
    assert p.decide(BAD).action == p.config.ladder[0]


def test_caps_attempts_then_calls_a_person():
    p = TipPolicy(PolicyConfig(consecutive_bad=1, ema_alpha=1.0, max_attempts=4))
    states = [p.decide(BAD).state for _ in range(6)]
    assert states == [ACT] * 4 + [CALL_PERSON] * 2


def test_manual_override_stops_actions_until_released():
    p = TipPolicy(PolicyConfig(consecutive_bad=1, ema_alpha=1.0))
    p.set_manual(True)
    assert all(p.decide(BAD).state == MANUAL for _ in range(5))
    p.set_manual(False)
    assert p.decide(BAD).state == ACT


def test_baselines_naive_and_none():
    naive = TipPolicy(PolicyConfig.naive())
    assert naive.decide(BAD).state == ACT
    none = TipPolicy(PolicyConfig.none())
    assert all(none.decide(BAD).action is None for _ in range(10))


def test_bad_verdicts_and_configs_are_refused():
    p = TipPolicy()
    with pytest.raises(ValueError, match="6 finite"):
        p.decide({**GOOD, "soft": [0.1] * 5})
    with pytest.raises(ValueError, match="finite"):
        p.decide({**GOOD, "soft": [float("nan")] * 6})
    with pytest.raises(ValueError, match="category"):
        PolicyConfig(bad_categories=("Blurry",))
    with pytest.raises(ValueError, match="kind"):
        Action("zap")


@pytest.mark.parametrize(
    "action, match",
    [
        (Action("pulse", bias_v=12.0, width_ms=200), "pulse bias"),
        (Action("pulse", bias_v=4.0, width_ms=0), "pulse width"),
        (Action("pulse", bias_v=4.0, width_ms=5000), "pulse width"),
        (Action("dip", depth_nm=9.0, bias_v=0.02), "dip depth"),
        (Action("dip", depth_nm=1.0, bias_v=3.0), "dip bias"),
    ],
)
def test_safety_limits_refuse_out_of_range_actions(action, match):
    with pytest.raises(SafetyViolation, match=match):
        SafetyLimits().check(action, now=0.0, history=[])


def test_safety_limits_rate():
    lim = SafetyLimits(min_interval_s=10, max_actions_per_hour=3)
    a = Action("pulse", bias_v=2.5, width_ms=200)
    with pytest.raises(SafetyViolation, match="between actions"):
        lim.check(a, now=5.0, history=[0.0])
    with pytest.raises(SafetyViolation, match="per hour"):
        lim.check(a, now=100.0, history=[0.0, 30.0, 60.0])
    lim.check(a, now=3700.0, history=[0.0, 30.0, 60.0])


class Recorder:
    """An instrument that records what reaches the tip."""

    def __init__(self):
        self.calls, self.t = [], 0.0

    def clock(self):
        return self.t

    def pulse(self, bias_v, width_ms, **kw):
        self.calls.append(("pulse", bias_v, width_ms, self.t))
        return "ok"

    def dip(self, depth_nm, bias_v, **kw):
        self.calls.append(("dip", depth_nm, bias_v, self.t))
        return "ok"


def test_dry_run_sends_nothing_but_records():
    rec, records = Recorder(), []
    rec.move_to_fresh_area = lambda **kw: rec.calls.append(("move",)) or (50.0, 0.0)
    safe = SafeInstrument(rec, dry_run=True, on_record=records.append)
    res = safe.execute(Action("pulse", bias_v=4.0, width_ms=200))
    assert not res.sent and res.dry_run and rec.calls == []
    assert records[0]["type"] == "action_result" and records[0]["dry_run"]
    # Nor does it move the scan frame (that moves the tip and resets the operator's frame).
    assert np.isnan(safe.move_to_fresh_area()).all() and rec.calls == []
    assert SafeInstrument(rec).move_to_fresh_area() == (50.0, 0.0) and rec.calls == [("move",)]


def test_a_timed_out_action_counts_against_the_rate_limits():
    from instrument_bridge.instrument import InstrumentTimeout

    class NoAnswer(Recorder):
        def pulse(self, bias_v, width_ms, **kw):
            super().pulse(bias_v, width_ms)
            raise InstrumentTimeout("no answer to pulse in 30 s")

    rec = NoAnswer()
    safe = SafeInstrument(rec, limits=SafetyLimits(min_interval_s=10))
    with pytest.raises(InstrumentTimeout):
        safe.execute(Action("pulse", bias_v=4.0, width_ms=200))
    # The pulse may have reached the tip: a retry within the interval is refused, not sent.
    rec.t = 5.0
    res = safe.execute(Action("pulse", bias_v=4.0, width_ms=200))
    assert not res.sent and "between actions" in res.message and len(rec.calls) == 1


def test_fuzzed_policies_never_get_past_the_limits():
    """Random verdict streams and random (even absurd) ladders: nothing out of range is sent."""
    rng = np.random.default_rng(0)
    sent = 0
    limits = SafetyLimits(
        max_abs_bias_v=8.0, max_dip_nm=4.0, min_interval_s=10.0, max_actions_per_hour=20
    )
    for _trial in range(30):
        ladder = tuple(
            Action("pulse", bias_v=float(rng.uniform(-20, 20)), width_ms=float(rng.uniform(0, 900)))
            if rng.random() < 0.5
            else Action("dip", depth_nm=float(rng.uniform(0, 10)), bias_v=float(rng.uniform(-1, 1)))
            for _ in range(int(rng.integers(1, 8)))
        )
        p = TipPolicy(
            PolicyConfig(
                consecutive_bad=int(rng.integers(1, 4)),
                ema_alpha=float(rng.uniform(0.1, 1)),
                ladder=ladder,
                max_attempts=1000,
            )
        )
        rec = Recorder()
        safe = SafeInstrument(rec, limits=limits)
        for _ in range(400):
            rec.t += float(rng.exponential(8.0))
            soft = rng.random(6)
            v = {
                "soft": soft,
                "hard": (soft > 0.5).astype(int),
                "agreement": rng.choice([1 / 3, 2 / 3, 1.0], 6),
            }
            d = p.decide(v)
            if d.action is not None:
                safe.execute(d.action)
        sent += len(rec.calls)
        times = [c[3] for c in rec.calls]
        assert all(b - a >= 10.0 for a, b in itertools.pairwise(times))
        for i, t in enumerate(times):
            assert sum(1 for u in times[: i + 1] if t - u < 3600) <= 20
        for kind, a, b, _ in rec.calls:
            if kind == "pulse":
                assert abs(a) <= 8.0 and 0 < b <= limits.max_pulse_ms
            else:
                assert 0 < a <= 4.0 and abs(b) <= limits.max_dip_bias_v
    assert sent > 100  # the fuzzing really exercised the gate
