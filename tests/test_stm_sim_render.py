import subprocess
import sys

import numpy as np
import pytest
from conftest import HSI_H5, ROOT, needs_shared

from stm_sim import TipChange, TipParams, labels_from_params, render, sample_frame_params
from stm_sim.dataset import make_arrays
from stm_sim.params import FrameParams, ScanParams, SurfaceParams


def _clean(sigma, rotation=0.0, **kw):
    return FrameParams(
        fov=37.0,
        tip=TipParams(sigma=sigma),
        surface=SurfaceParams(rotation=rotation),
        scan=ScanParams(white_noise=0.0, pink_noise=0.0),
        **kw,
    )


def _power_along(img, period_px, axis):
    """Spectral power at a spatial period along one axis (rows at 0 deg run along x)."""
    spec = np.abs(np.fft.rfft(img - img.mean(), axis=axis)) ** 2
    spec = spec.mean(axis=1 - axis)
    k = len(img) / period_px
    # Share of the whole frame's variance (Parseval) in the peak around that period.
    return spec[round(k) - 1 : round(k) + 2].sum() * 2 / len(img) ** 2 / img.var()


def test_shapes_dtype_and_determinism():
    a = make_arrays(12, seed=5)
    b = make_arrays(12, seed=5)
    assert a["images"].shape == (12, 128, 128) and a["images"].dtype == np.uint8
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(
        a["mean_scores"], b["mean_scores"]
    )
    assert not np.array_equal(a["images"], make_arrays(12, seed=6)["images"])
    assert set(np.unique(a["mean_scores"])) <= {0.0, 1.0}
    fp = sample_frame_params(np.random.default_rng(0), size=96)
    assert render(fp, np.random.default_rng(0)).shape == (96, 96)


def test_export_uses_the_full_8_bit_range():
    img = render(_clean(1.2))
    assert img.min() == 0 and img.max() == 255


def test_label_rules_follow_the_tip():
    assert labels_from_params(_clean(0.5)).tolist() == [0, 1, 0, 0, 0, 0]
    assert labels_from_params(_clean(1.2)).tolist() == [0, 0, 1, 0, 0, 0]
    assert labels_from_params(_clean(2.2)).tolist() == [0, 0, 0, 1, 0, 0]
    assert labels_from_params(_clean(3.5)).tolist() == [0, 0, 0, 0, 0, 1]
    fp = _clean(1.2)
    fp.surface.buckling = 0.6
    # Volunteers name the asymmetry, not the dimers under it.
    assert labels_from_params(fp).tolist() == [1, 0, 0, 0, 0, 0]
    fp = _clean(2.0)
    fp.surface.buckling = 0.6
    assert labels_from_params(fp).tolist() == [0, 0, 0, 1, 0, 0]  # buckling not resolved
    # A frame called bad is not also called dimers, even if most of it shows them.
    fp = _clean(1.2, tip_change=TipChange(line=90, after=TipParams(sigma=3.5)))
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 1, 1]
    fp = _clean(0.5)
    fp.tip.apex_offsets, fp.tip.apex_weights = ((0, 0), (6, 0)), (1.0, 0.6)  # a ghost
    # On a bare periodic lattice a ghost copy is only another lattice: nothing to call bad.
    assert labels_from_params(fp).tolist() == [0, 0, 1, 0, 0, 0]
    fp.surface.blobs = ((18.0, 18.0, 1.5, 2.0),)  # a dangling bond, seen twice
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 0, 1]
    # A tip stretched along the rows hides the dimer pitch only if it is long enough along them.
    fp = _clean(0.5)
    fp.tip.elongation = 2.0  # 1.0 Å along the rows, 0.5 across: the lobes still resolved
    assert labels_from_params(fp).tolist() == [0, 1, 0, 0, 0, 0]
    fp.tip.elongation = 2.6  # 1.3 Å
    assert labels_from_params(fp).tolist() == [0, 1, 0, 0, 0, 0]
    fp = _clean(1.0)
    fp.tip.elongation = 1.8  # 1.8 Å along the rows: the dimer pitch is gone
    assert labels_from_params(fp).tolist() == [0, 0, 0, 1, 0, 0]


def test_label_rules_for_overlapping_categories():
    # An atom-resolving apex near the dimer threshold still shows the pairing.
    assert labels_from_params(_clean(0.65)).tolist() == [0, 1, 1, 0, 0, 0]
    # A frame bad because of the scan keeps what the tip resolves; one bad because of the tip
    # does not.
    fp = _clean(1.2)
    fp.scan.white_noise = 0.3
    assert labels_from_params(fp).tolist() == [0, 0, 1, 0, 0, 1]
    fp = _clean(1.2)
    fp.surface.buckling = 0.6
    fp.scan.crash = (40, 60)
    assert labels_from_params(fp).tolist() == [1, 0, 0, 0, 0, 1]
    fp = _clean(1.2)
    fp.surface.blobs = ((18.0, 18.0, 1.5, 2.0),)
    fp.tip.apex_offsets, fp.tip.apex_weights = ((0, 0), (6, 0)), (1.0, 0.6)
    fp.scan.white_noise = 0.3
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 0, 1]


def test_the_dimer_to_row_contrast_falls_with_the_apex_width():
    # The label thresholds were calibrated on radially averaged spectra (real frames labelled
    # Individual atoms / Dimers / Rows: median dimer-pitch to row-period power 1.40 / 0.31 /
    # 0.04); here the same ladder, measured along the axes of a clean frame.
    px = 37.0 / 128
    dimer_px, row_px = 3.84 / px, 7.68 / px

    def ratio(sigma):
        img = render(_clean(sigma, rotation=90.0)).astype(float)
        return _power_along(img, dimer_px, axis=0) / _power_along(img, row_px, axis=1)

    atoms, dimers, rows = ratio(0.5), ratio(1.0), ratio(1.8)
    assert atoms > 0.05 and 1e-3 < dimers < 0.05 and rows < 1e-4


def test_rows_never_run_along_the_fast_axis():
    from stm_sim import sample_rotation

    rng = np.random.default_rng(0)
    rot = np.array([sample_rotation(rng) for _ in range(2000)]) % 180
    assert rot.min() > 30 and rot.max() < 150  # along x, line levelling would erase them
    near_vertical = rot[np.abs(rot - 90) < 25]
    assert 0.35 < len(near_vertical) / len(rot) < 0.55
    assert np.median(near_vertical) > 95  # they lean one way, as in the real frames


def test_a_rows_tip_leaves_no_dimer_pitch_peak():
    # Rows at 90 degrees run along the slow axis (y): dimers repeat along y (3.84 Å), rows
    # along x (7.68 Å). (At 0 degrees per-line levelling would flatten the rows themselves.)
    px = 37.0 / 128
    dimer_px, row_px = 3.84 / px, 7.68 / px
    sharp = render(_clean(0.5, rotation=90.0)).astype(float)
    blunt = render(_clean(2.4, rotation=90.0)).astype(float)
    assert _power_along(sharp, dimer_px, axis=0) > 10 * _power_along(blunt, dimer_px, axis=0)
    assert _power_along(blunt, row_px, axis=1) > 0.2  # the rows are still there


def test_a_tip_change_is_a_discontinuity_at_its_line():
    fp = _clean(
        0.5,
        rotation=90.0,
        tip_change=TipChange(line=64, after=TipParams(sigma=3.5), streak=0.0, streak_lines=0),
    )
    img = render(fp).astype(float)
    rough = np.abs(np.diff(img, axis=1)).mean(axis=1)  # fine structure per scan line
    assert rough[:60].mean() > 3 * rough[68:].mean()


def test_simulator_imports_no_tensorflow():
    code = "import stm_sim, stm_sim.dataset, sys; stm_sim.dataset.make_arrays(2); print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_dataset_is_the_same_with_any_number_of_workers():
    a = make_arrays(40, seed=9, session_length=8, workers=1)
    b = make_arrays(40, seed=9, session_length=8, workers=2)
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["names"], b["names"])
    assert len(set(a["sessions"])) >= 3


def test_feedback_lag_smooths_along_lines_only():
    lag = sys.modules["stm_sim.render"]._feedback_lag  # the module is shadowed by render()
    img = np.zeros((8, 32), np.float32)
    img[:, 16:] = 1.0  # an edge across the fast axis
    img[4] *= 0.5  # and one line apart from the others
    out = lag(img, 3.0)
    assert np.allclose(out[:, :16], img[:, :16]) and np.allclose(out[:, -1], img[:, -1], atol=0.02)
    assert 0.2 < out[0, 17] < 0.6  # the feedback lags behind the edge ...
    assert np.allclose(out[4], 0.5 * out[0])  # ... but lines are not mixed
    sharp = _clean(0.5, rotation=45.0)
    lagged = _clean(0.5, rotation=45.0)
    lagged.scan.feedback_lag = 6.0
    a, b = render(sharp).astype(float), render(lagged).astype(float)
    assert np.abs(np.diff(b, axis=1)).mean() < 0.8 * np.abs(np.diff(a, axis=1)).mean()


def test_measurement_noise_is_correlated_along_lines_not_across():
    fp = FrameParams(
        tip=TipParams(sigma=4.0), scan=ScanParams(white_noise=1.0, pink_noise=0.0, noise_lines=True)
    )
    img = render(fp, np.random.default_rng(0)).astype(float)
    # Noise dominates: neighbours along a line agree far more than neighbours across lines.
    along = np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1]
    across = np.corrcoef(img[:-1].ravel(), img[1:].ravel())[0, 1]
    assert along > 0.5 and abs(across) < 0.2


def test_line_noise_is_each_lines_own_and_smooth_along_it():
    quiet = ScanParams(white_noise=0.0, pink_noise=0.0)
    noisy = ScanParams(white_noise=0.0, pink_noise=0.0, line_noise=0.5)
    a, b = (
        render(FrameParams(tip=TipParams(sigma=4.0), scan=sc), np.random.default_rng(0))
        for sc in (quiet, noisy)
    )
    d = b.astype(float) - a.astype(float)
    along = np.corrcoef(d[:, :-4].ravel(), d[:, 4:].ravel())[0, 1]  # 4 px apart on a line
    across = np.corrcoef(d[:-1].ravel(), d[1:].ravel())[0, 1]  # neighbouring lines
    assert along > 0.3 and abs(across) < 0.15


def test_a_temporary_tip_change_makes_a_band():
    tc = TipChange(line=40, until=80, after=TipParams(sigma=3.5), streak=0.0, streak_lines=0)
    fp = _clean(0.5, rotation=90.0, tip_change=tc)
    img = render(fp).astype(float)
    rough = np.abs(np.diff(img, axis=1)).mean(axis=1)
    assert (
        rough[:36].mean() > 3 * rough[44:76].mean() and rough[84:].mean() > 3 * rough[44:76].mean()
    )
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 1, 1]  # a blunt band is bad
    # The band is under half the frame: the lattice labels are the old (sharp) tip's.
    fp.tip_change.after = TipParams(sigma=2.0)
    assert labels_from_params(fp).tolist() == [0, 1, 0, 0, 1, 0]


def test_presets_change_the_scan_and_reject_unknown_names():
    a = make_arrays(30, seed=2, session_length=10, workers=1)
    b = make_arrays(30, seed=2, session_length=10, workers=1, preset="fast-axis")
    assert a["images"].shape == b["images"].shape and not np.array_equal(a["images"], b["images"])

    # Smoother along lines relative to across them (a lagging feedback, noise along lines).
    def along_over_across(f):
        x = f["images"].astype(float)
        return np.abs(np.diff(x, axis=2)).mean() / np.abs(np.diff(x, axis=1)).mean()

    assert along_over_across(b) < along_over_across(a)
    with pytest.raises(ValueError, match="fast-axis"):
        make_arrays(5, preset="fast")


def test_sizes_from_16_pixels_and_a_clear_error_below():
    for size in (16, 40, 200):
        fp = sample_frame_params(np.random.default_rng(size), size=size)
        assert render(fp, np.random.default_rng(0)).shape == (size, size)
    with pytest.raises(ValueError, match="at least 16 pixels, got 8"):
        sample_frame_params(np.random.default_rng(0), size=8)
    with pytest.raises(ValueError, match="16 to 2048 pixels a side, got 8"):
        make_arrays(5, size=8)
    with pytest.raises(ValueError, match="16 to 2048 pixels a side, got 100000"):
        make_arrays(5, size=100_000)  # once a 37 GiB allocation


def test_a_blunt_tip_buries_the_rows_in_noise_and_defects():
    from stm_sim.render import _blunt_gain

    for state_sigma in (0.5, 1.0, 2.3):  # atoms, dimers, rows tips: as before
        assert _blunt_gain([TipParams(sigma=state_sigma)]) == 1.0
    assert _blunt_gain([TipParams(sigma=3.0)]) > 1.0
    # A tip change keeps the gain of its sharper part.
    assert _blunt_gain([TipParams(sigma=1.0), TipParams(sigma=4.0)]) == 1.0

    def row_share(sigma):
        fp = FrameParams(
            fov=37.0,
            tip=TipParams(sigma=sigma),
            surface=SurfaceParams(rotation=90.0),
            scan=ScanParams(white_noise=0.0, pink_noise=0.03),
        )
        img = render(fp, np.random.default_rng(0)).astype(float)
        return _power_along(img, 7.68 / (37.0 / 128), axis=1)

    # Same 1/f noise relative to the lattice a sharp tip would show: the blunt frame's rows
    # fade into it, the rows tip's do not.
    assert row_share(2.2) > 0.5
    assert row_share(4.0) < 0.5 * row_share(2.2)


def test_an_unstable_tip_flips_back_and_forth_and_the_longer_tip_names_the_lattice():
    tc = TipChange(
        line=20, after=TipParams(sigma=3.5), toggles=(50, 70), streak=0.0, streak_lines=0
    )
    assert tc.segments(128) == [(0, 20, False), (20, 50, True), (50, 70, False), (70, 128, True)]
    assert tc.new_tip_lines(128) == 88 and tc.ends_new(128)
    fp = _clean(0.5, rotation=90.0, tip_change=tc)
    rough = np.abs(np.diff(render(fp).astype(float), axis=1)).mean(axis=1)
    sharp, blunt = np.r_[2:18, 54:66], np.r_[24:46, 74:126]
    assert rough[sharp].min() > 2 * rough[blunt].max()
    # The blunt tip scanned 88 of 128 lines: the frame is bad, with no lattice label.
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 1, 1]
    fp.tip_change.toggles = (30,)  # the sharp tip scans 118 lines, but a blunt one spoils them
    assert labels_from_params(fp).tolist() == [0, 0, 0, 0, 1, 1]
    fp.tip_change.after = TipParams(sigma=2.0)
    assert labels_from_params(fp).tolist() == [0, 1, 0, 0, 1, 0]


def test_a_flicker_offsets_the_scan_from_mid_line_on():
    fp = _clean(3.5, rotation=90.0)
    base = render(fp).astype(float)
    fp.scan.flickers = ((40 * 128 + 64, 128.0, 2.0),)  # line 40 from its middle to line 41's
    img = render(fp).astype(float)
    step = img[40, 64:].mean() - img[40, :64].mean()
    assert step > 50 and abs(base[40, 64:].mean() - base[40, :64].mean()) < 20
    assert img[41, :64].mean() > img[41, 64:].mean() + 50  # the next line until its middle


def test_the_unstable_tip_options_draw_toggles_flickers_and_clusters():
    from stm_sim.dataset import simulate_session

    frames = list(simulate_session(300, np.random.default_rng(4), preset="unstable"))
    tcs = [fp.tip_change for _, _, fp in frames if fp.tip_change is not None]
    assert any(tc.toggles for tc in tcs)
    assert all(lab[4] == 1 for _, lab, fp in frames if fp.tip_change is not None)
    assert sum(bool(fp.scan.flickers) for _, _, fp in frames) > 30
    # Clusters: blobs wider than any ordinary defect, some with a dark side.
    assert any(b[3] > 5.0 for _, _, fp in frames for b in fp.surface.blobs)
    assert any(b[2] < 0 for _, _, fp in frames for b in fp.surface.blobs)
    default = list(simulate_session(300, np.random.default_rng(4)))
    assert not any(fp.scan.flickers for _, _, fp in default)


def test_the_step_8_options_change_what_they_say():
    from stm_sim.dataset import simulate_session
    from stm_sim.render import render_height

    px = 37.0 / 128
    dimer_px, row_px = 3.84 / px, 7.68 / px

    def dimer_over_row(fp):
        # Rows at 0 degrees run along x: the dimer pitch repeats along x, the rows along y.
        # The raw height (no line levelling), so nothing along the slow axis is lost.
        img = render_height(fp, np.random.default_rng(0))
        return _power_along(img, dimer_px, axis=1) / _power_along(img, row_px, axis=0)

    base = dimer_over_row(_clean(1.0))
    fp = _clean(1.0)
    fp.surface.backbone = 0.05  # a lower row ridge: the rows read weaker against the dimers
    assert dimer_over_row(fp) > 1.5 * base
    fp = _clean(1.0)
    fp.surface.lobe_along = 0.6  # shorter lobes along the row: a deeper dimer pitch
    assert dimer_over_row(fp) > 1.5 * base
    fp = _clean(1.0)
    fp.tip.profile = 1.0  # an apex with a long tail in k passes more of the short period
    assert dimer_over_row(fp) > 1.5 * base

    def high_share(band):
        fp = _clean(3.5, rotation=90.0)
        fp.scan.pink_noise, fp.scan.pink_band = 0.05, band
        img = render(fp, np.random.default_rng(1)).astype(float)
        p = np.abs(np.fft.fft2(img - img.mean())) ** 2
        f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
        return p[f > 14 / 128].sum() / p.sum()

    assert high_share(True) < 0.5 * high_share(False)  # the 1/f noise stops at the band edge

    frames = list(simulate_session(40, np.random.default_rng(2), preset="dimerpitch"))
    assert len({round(fp.tip.profile, 3) for _, _, fp in frames}) > 10
    assert all(0.5 <= fp.surface.lobe_along <= 1.6 for _, _, fp in frames)
    assert all(0.05 <= fp.surface.backbone <= 0.3 for _, _, fp in frames)
    default = list(simulate_session(40, np.random.default_rng(2)))
    assert all(fp.tip.profile == 2.0 and fp.surface.backbone is None for _, _, fp in default)

    # "profiledimers": the profile varies only for apices 0.7-1.3 Å wide, before and after a change.
    tips = [
        t
        for _, _, fp in simulate_session(
            200, np.random.default_rng(3), size=32, preset="profiledimers"
        )
        for t in (fp.tip, fp.tip_change.after if fp.tip_change else None)
        if t is not None
    ]
    inside = [t.profile for t in tips if 0.7 <= t.sigma < 1.3]
    assert len(set(inside)) > 10 and all(1.0 <= p <= 2.0 for p in inside)
    assert all(t.profile == 2.0 for t in tips if not 0.7 <= t.sigma < 1.3)


def test_the_ghost_share_is_a_sampling_option():
    from stm_sim.params import sample_tip

    def ghosts(**kw):
        rng = np.random.default_rng(3)
        # A ghost's extra apices weigh 0.3-0.9, a lopsided tip's second one 0.15-0.29.
        return np.mean([sample_tip(rng, "dimers", **kw).second_apex >= 0.3 for _ in range(4000)])

    assert 0.10 < ghosts() < 0.14
    assert ghosts(ghost_p=0.03) < 0.3 * ghosts()


def test_step_9_candidates_are_presets():
    from stm_sim.dataset import simulate_session
    from stm_sim.params import SIGMA_DIMERS, TIP_STATES

    rng = np.random.default_rng(4)
    widths = [fp.tip.sigma for _, _, fp in simulate_session(300, rng, preset="continuous")]
    # The tip states leave a gap below each threshold; the continuum fills it.
    gap = (TIP_STATES["dimers"][1], SIGMA_DIMERS)
    assert any(gap[0] < s <= gap[1] for s in widths)
    assert not any(gap[0] < fp.tip.sigma <= gap[1] for _, _, fp in simulate_session(300, rng))

    def line_power(wobble):
        fp = _clean(1.0, rotation=90.0)
        fp.scan.line_wobble = wobble
        img = render(fp, np.random.default_rng(1)).astype(float)
        p = np.abs(np.fft.fft2(img - img.mean())) ** 2
        k = np.abs(np.fft.fftfreq(128) * 128)
        # Between lines (rows) fast, along them (columns) slow: 1-8 cycles.
        return p[np.ix_(k > 30, (k >= 1) & (k < 9))].sum() / p.sum()

    assert line_power(0.05) > 5 * line_power(0.0)
    frames = list(simulate_session(20, np.random.default_rng(2), preset="wobble"))
    assert all(0.01 <= fp.scan.line_wobble <= 0.05 for _, _, fp in frames)


def test_output_lag_smooths_the_noise_along_lines_too():
    from stm_sim.dataset import simulate_session

    def roughness(output_lag):
        fp = FrameParams(
            tip=TipParams(sigma=4.0), scan=ScanParams(white_noise=1.0, output_lag=output_lag)
        )
        img = render(fp, np.random.default_rng(0)).astype(float)
        along = np.abs(np.diff(img, axis=1)).mean() / img.std()
        across = np.abs(np.diff(img, axis=0)).mean() / img.std()
        return along, across

    (a0, c0), (a1, c1) = roughness(0.0), roughness(2.0)
    # The feedback lag alone acts before the noise; the output lag smooths the noise as well.
    assert a1 < 0.6 * a0 and c1 > 0.8 * c0
    frames = list(simulate_session(20, np.random.default_rng(2), preset="postlag"))
    assert all(0.5 <= fp.scan.output_lag <= 2.0 for _, _, fp in frames)


def test_a_dimer_vacancy_is_a_dark_pit_and_leaves_the_labels():
    plain = _clean(1.0)
    pitted = _clean(1.0)
    pitted.surface.blobs = ((18.5, 18.5, -0.7, 1.6),)  # the frame's centre
    a = render(plain, np.random.default_rng(0)).astype(float)
    b = render(pitted, np.random.default_rng(0)).astype(float)
    iy, ix = np.unravel_index(np.argmin(b - a), a.shape)
    assert abs(iy - 64) <= 4 and abs(ix - 64) <= 4  # darkest against the plain frame
    assert (b - a)[60:69, 60:69].mean() < -20  # grey levels
    assert np.array_equal(labels_from_params(plain), labels_from_params(pitted))


def test_pits_are_in_the_default_and_off_in_the_nopits_preset():
    from stm_sim.dataset import simulate_session
    from stm_sim.params import PIT_P

    def share(preset):
        rng = np.random.default_rng(1)
        fps = [fp for _, _, fp in simulate_session(60, rng, size=32, preset=preset)]
        return np.mean([any(amp < 0 for _, _, amp, _ in fp.surface.blobs) for fp in fps])

    assert share("default") == pytest.approx(PIT_P, abs=0.15)
    assert share("nopits") == 0.0


def test_rows_paired_rule_is_opt_in_and_keeps_dimers_on_narrow_row_tips():
    from stm_sim.dataset import simulate_session

    narrow, wide = _clean(1.45), _clean(2.0)
    assert labels_from_params(narrow).tolist() == [0, 0, 0, 1, 0, 0]
    assert labels_from_params(narrow, rows_paired=1.48).tolist() == [0, 0, 1, 1, 0, 0]
    assert labels_from_params(wide, rows_paired=1.48).tolist() == [0, 0, 0, 1, 0, 0]
    # Images are untouched: the same stream gives the same frames under both presets.
    a = list(simulate_session(30, np.random.default_rng(4), size=48))
    b = list(simulate_session(30, np.random.default_rng(4), size=48, preset="rowspaired"))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert all(not (la[2] and la[3]) for _, la, _ in a)


def test_asym_dimers_rule_is_opt_in_and_keeps_dimers_only_under_mild_buckling():
    import dataclasses

    def buckled(b, second=0.0):
        fp = _clean(1.0)
        fp.surface = dataclasses.replace(fp.surface, buckling=b)
        if second:
            fp.tip = dataclasses.replace(
                fp.tip, apex_offsets=((0.0, 0.0), (2.0, 0.0)), apex_weights=(1.0, second)
            )
        return fp

    assert labels_from_params(buckled(0.35)).tolist() == [1, 0, 0, 0, 0, 0]
    assert labels_from_params(buckled(0.35), asym_dimers=0.47).tolist() == [1, 0, 1, 0, 0, 0]
    assert labels_from_params(buckled(0.6), asym_dimers=0.47).tolist() == [1, 0, 0, 0, 0, 0]
    # A lopsided apex is an asymmetry of the tip, not of the dimers: no Dimers label.
    assert labels_from_params(buckled(0.35, 0.2), asym_dimers=0.47).tolist() == [1, 0, 0, 0, 0, 0]


def test_minor_bad_tip_rule_is_opt_in_and_keeps_what_the_main_tip_resolves():
    from stm_sim.dataset import simulate_session

    def changed(line):
        fp = _clean(1.0)  # a dimer tip goes blunt at ``line``
        fp.tip_change = TipChange(line=line, after=TipParams(sigma=3.5))
        return fp

    short, long_, most = changed(110), changed(80), changed(40)
    # Default: any bad tip in the frame erases the dimers and makes the frame bad.
    assert labels_from_params(short).tolist() == [0, 0, 0, 0, 1, 1]
    assert labels_from_params(short, minor_bad_lines=32).tolist() == [0, 0, 1, 0, 1, 0]
    assert labels_from_params(long_, minor_bad_lines=32).tolist() == [0, 0, 1, 0, 1, 1]
    # The blunt tip scanned most of the frame: unchanged.
    assert (
        labels_from_params(most, minor_bad_lines=32).tolist() == labels_from_params(most).tolist()
    )
    a = list(simulate_session(30, np.random.default_rng(4), size=48))
    b = list(simulate_session(30, np.random.default_rng(4), size=48, preset="tcminor"))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def test_mixed_preset_draws_one_simulator_variant_per_session_reproducibly():
    from stm_sim.dataset import simulate_session

    def session(s):
        return list(simulate_session(3, np.random.default_rng([5, s]), size=32, preset="mixed"))

    kinds = set()
    for s in range(12):
        fps = [fp for _, _, fp in session(s)]
        lag = {fp.scan.output_lag > 0 for fp in fps}
        wobble = {fp.scan.line_wobble > 0 for fp in fps}
        assert len(lag) == 1 and len(wobble) == 1  # one variant for the whole session
        kinds.add((lag.pop(), wobble.pop()))
    assert len(kinds) >= 2
    a, b = session(3), session(3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def test_tallblobs_preset_adds_one_dominant_adsorbate_to_some_frames():
    from stm_sim.dataset import simulate_session

    fps = [
        fp
        for _, _, fp in simulate_session(80, np.random.default_rng(2), size=32, preset="tallblobs")
    ]
    tall = [fp for fp in fps if fp.surface.defect_contrast >= 4.0]
    assert 0 < len(tall) < len(fps) / 3
    for fp in tall:
        assert max(amp for _, _, amp, _ in fp.surface.blobs) == 4.0


def test_crowd_preset_splits_votes_near_a_threshold_and_keeps_the_frames():
    from stm_sim.dataset import crowd_scores, simulate_session

    rng = np.random.default_rng(0)
    far, near = _clean(1.0), _clean(1.3)  # a dimer tip; one on the Dimers/Rows threshold
    assert crowd_scores(far, rng, volunteers=8, spread=0.1).tolist() == [0, 0, 1, 0, 0, 0]
    s = crowd_scores(near, rng, volunteers=8, spread=0.1)
    assert 0 < s[2] < 1 and s[2] + s[3] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="volunteers"):
        crowd_scores(far, rng, volunteers=0, spread=0.1)
    # Same frames as without the volunteers; scores are crowd means, their majority the old rule.
    a = list(simulate_session(40, np.random.default_rng(4), size=32, preset="continuous"))
    b = list(simulate_session(40, np.random.default_rng(4), size=32, preset="crowd"))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    scores = np.array([la for _, la, _ in b])
    hard = np.array([la for _, la, _ in a])
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    assert ((scores > 0.5) == hard.astype(bool)).mean() > 0.9


def test_label_signatures_show_each_rule_in_the_spectrum(monkeypatch):
    """benchmarks/label_signatures.py on simulated frames: a tip change adds power at zero
    fast-axis frequency (its offset is constant along the line), Bad/blurry takes power out of
    the lattice frequencies, and two seeds of the generator agree on every signature."""
    import importlib.util

    from stm_sim.dataset import make_frameset

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("ls", ROOT / "benchmarks" / "label_signatures.py")
    ls = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ls)
    sigs = []
    for seed in (0, 1):
        fs = make_frameset(600, seed=seed)
        sigs.append(ls.signatures(ls.log_spectra(fs.images), fs.labels("gt0.5")))
    tip_change, bad = sigs[0][4], sigs[0][5]
    assert tip_change[:, 31:34].mean() > tip_change[:, 40:].mean() + 0.2
    ring = np.hypot(*np.mgrid[-32:32, -32:32])
    assert bad[(ring > 6) & (ring < 14)].mean() < bad[ring > 24].mean() - 0.1
    assert min(ls.agreement(sigs[0], sigs[1])) > 0.4  # Asymmetries: 60 frames a seed
    with pytest.raises(ValueError, match="expected frames"):
        ls.log_spectra(np.zeros((2, 32, 32)))


def _line_slopes(frames: np.ndarray) -> np.ndarray:
    """Per frame, the spread of its lines' least-squares slopes over a line, in frame std."""
    x = frames.astype(float)
    t = np.arange(x.shape[-1]) - (x.shape[-1] - 1) / 2
    slope = (x * t).sum(-1) / (t**2).sum()
    return slope.std(-1) * x.shape[-1] / x.std((-2, -1))


def test_export_levels_each_lines_offset_and_with_level_slope_its_slope():
    fp = sample_frame_params(np.random.default_rng(5), state="dimers")
    fp.scan.creep, fp.scan.pink_noise = 3.0, 0.05  # lines that lean
    leaning = render(fp, np.random.default_rng(5))
    fp.scan.level_slope = True
    level = render(fp, np.random.default_rng(5))
    assert _line_slopes(leaning[None])[0] > 0.1 and _line_slopes(level[None])[0] < 0.02
    for f in (leaning, level):
        assert np.ptp(f.astype(float).mean(1)) < 1.0  # no line offsets either way


@needs_shared
def test_real_frames_have_lines_without_slope_like_the_lineflat_preset():
    from training.data import load_frames

    real = load_frames(HSI_H5).images[:500]
    flat = make_arrays(100, seed=0, preset="lineflat")["images"]
    default = make_arrays(100, seed=0)["images"]
    assert np.median(_line_slopes(real)) < 0.02 and np.median(_line_slopes(flat)) < 0.02
    assert np.median(_line_slopes(default)) > 0.1  # the default keeps them (calibration 27b)


def test_quietsharp_quiets_the_1_over_f_noise_under_sharp_tips_only():
    from stm_sim.dataset import simulate_session

    a = list(simulate_session(200, np.random.default_rng(7)))
    b = list(simulate_session(200, np.random.default_rng(7), preset="quietsharp"))
    ratios = {}
    for (_, _, fa), (_, _, fb) in zip(a, b, strict=True):
        if fa.scan.pink_noise > 0:
            ratios.setdefault(fa.tip.sigma < 1.3, []).append(
                fb.scan.pink_noise / fa.scan.pink_noise
            )
    assert np.allclose(ratios[True], 0.3) and np.allclose(ratios[False], 1.0)


def test_white_option_spreads_the_measurement_noise_below_the_bad_threshold():
    from stm_sim.dataset import simulate_session

    frames = list(simulate_session(300, np.random.default_rng(3), size=32, preset="noisier2"))
    noise = np.array([fp.scan.white_noise for _, _, fp in frames])
    bad_by_noise = noise >= 0.25
    quiet = noise[~bad_by_noise]
    # A continuum, 0.003-0.1 of the span, where the default draws 0.002-0.0125 or >= 0.25.
    assert quiet.min() >= 0.003 and quiet.max() <= 0.1 and (quiet > 0.0125).mean() > 0.3
    # The frames made bad by noise stay so, and so labelled.
    assert bad_by_noise.any() and all(
        lab[5] == 1 for (_, lab, _), b in zip(frames, bad_by_noise, strict=True) if b
    )


def test_dashes_option_adds_short_line_jumps_more_under_blunt_tips():
    from stm_sim.dataset import PRESETS, _add_dashes

    rng = np.random.default_rng(6)
    added = {}
    for state in ("dimers", "blunt") * 100:
        fp = sample_frame_params(rng, state=state, size=32)
        before = fp.scan.glitches
        _add_dashes(rng, fp, state, PRESETS["dashes"]["dashes"])
        new = fp.scan.glitches[len(before) :]
        assert fp.scan.glitches[: len(before)] == before
        assert all(0 <= r < 32 and 0 < ln <= 32 and 0 <= x0 <= 32 - ln for r, x0, ln, _ in new)
        added.setdefault(state, []).append(len(new))
    assert np.mean(added["blunt"]) > 2 * np.mean(added["dimers"]) > 0


def test_asym_noise_rule_names_buckling_only_through_little_noise():
    from stm_sim.params import SurfaceParams

    fp = FrameParams(tip=TipParams(sigma=1.0), surface=SurfaceParams(buckling=0.5))
    fp.scan.white_noise = 0.05
    assert labels_from_params(fp).tolist() == [1, 0, 0, 0, 0, 0]
    assert labels_from_params(fp, asym_noise=0.02).tolist() == [0, 0, 1, 0, 0, 0]
    fp.scan.white_noise = 0.01
    assert labels_from_params(fp, asym_noise=0.02).tolist() == [1, 0, 0, 0, 0, 0]


def test_field_of_view_is_a_sampling_option():
    from stm_sim.dataset import PRESETS
    from stm_sim.params import FOV

    rng = np.random.default_rng(0)
    assert all(FOV[0] <= sample_frame_params(rng).fov <= FOV[1] for _ in range(50))
    small = [sample_frame_params(rng, fov=(31.0, 36.0)).fov for _ in range(50)]
    assert 31.0 <= min(small) and max(small) <= 36.0
    assert PRESETS["fovsmall"]["fov"] == (31.0, 36.0) and "fov" not in PRESETS["default"]
