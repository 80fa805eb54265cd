"""The simulated microscope: deterministic, a tip that degrades, changes and reacts."""

import numpy as np
import pytest

from instrument_bridge.instrument import Instrument, InstrumentTimeout
from instrument_bridge.sim_microscope import SimulatedMicroscope, TipDynamics, tip_is_good
from stm_sim import TipParams


def test_is_an_instrument_and_scans_have_shape_metadata_and_truth():
    m = SimulatedMicroscope(seed=1)
    assert isinstance(m, Instrument)
    s = m.scan()
    assert s.z.shape == (128, 128) and s.z.dtype == np.float64
    assert s.truth["state"] in ("atoms", "dimers", "rows", "blunt")
    assert len(s.truth["labels"]) == 6
    md = s.metadata()
    assert md["pixels"] == [128, 128] and md["size_nm"] == pytest.approx(3.7)
    assert m.time == pytest.approx(m.scan_seconds)


def test_same_seed_same_history():
    def history(seed):
        m = SimulatedMicroscope(seed=seed)
        out = []
        for i in range(6):
            out.append(m.scan().z)
            out.append(m.pulse(4.0, 200) if i % 2 else m.dip(1.5))
            out.append(m.move_to_fresh_area())
        return out

    a, b, c = history(7), history(7), history(8)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a[::3], c[::3], strict=False))


def test_partial_frames_and_line_by_line():
    m = SimulatedMicroscope(seed=2)
    s = m.scan(lines_done=40)
    assert np.isnan(s.z[40:]).all() and np.isfinite(s.z[:40]).all()
    lines = list(SimulatedMicroscope(seed=2).scan_lines())
    assert len(lines) == 128 and lines[0].shape == (128,)


def test_tip_degrades_when_left_alone():
    m = SimulatedMicroscope(seed=3, dynamics=TipDynamics(start_state="dimers", p_sudden_change=0))
    s0 = m.tip.sigma
    for _ in range(60):
        m.scan()
    assert m.tip.sigma > s0


def test_conditioning_moves_the_tip_and_bigger_actions_act_more_often():
    def reshaped(action, n=150):
        m = SimulatedMicroscope(seed=4, dynamics=TipDynamics(start_state="blunt"))
        changed = 0
        for _ in range(n):
            changed += "tip changed" in action(m)
        return changed / n

    small = reshaped(lambda m: m.pulse(1.0, 50))
    large = reshaped(lambda m: m.pulse(8.0, 200))
    assert large > small + 0.3
    dips = reshaped(lambda m: m.dip(4.0))
    assert dips > 0.6


def test_a_dip_damages_the_area_and_damaged_scans_are_bad():
    m = SimulatedMicroscope(seed=5, dynamics=TipDynamics(start_state="dimers"))
    m.dip(3.0)
    assert m.damage and m._damaged_here()
    assert m.scan().truth["labels"][5] == 1  # debris-covered, noisy: Bad/blurry
    m.move_to_fresh_area()
    assert not m._damaged_here()


def test_good_tip_ground_truth():
    assert tip_is_good(TipParams(sigma=1.2))
    assert tip_is_good(TipParams(sigma=0.5))
    assert not tip_is_good(TipParams(sigma=2.2))
    assert not tip_is_good(
        TipParams(sigma=1.2, apex_offsets=((0, 0), (5, 0)), apex_weights=(1, 0.6))
    )


def test_injected_stall_times_out():
    m = SimulatedMicroscope(seed=6)
    m.inject_stall(1)
    with pytest.raises(InstrumentTimeout):
        m.scan(timeout=5.0)
    assert m.scan().z.shape == (128, 128)
