"""The spectral companion: features that follow the frame, a JSON model, a fourth voter."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from cnn_family.spectral import (
    FILE_NAME,
    N_FEATURES,
    CompanionFormatError,
    SpectralCompanion,
    fit_companion,
    main,
    spectral_features,
)
from training.data import CATEGORIES


@pytest.fixture(scope="module")
def companion(sim_frames):
    return fit_companion(sim_frames.images, sim_frames.labels())


def _stripes(period: float, *, across: bool = False) -> np.ndarray:
    x = 127 + 100 * np.sin(2 * np.pi * np.arange(128) / period)
    frame = np.tile(x, (128, 1))
    return (frame.T if across else frame).astype(np.uint8)[None]


def _ring_features_directly(frame: np.ndarray) -> np.ndarray:
    """The 75 per-ring features the slow, obvious way: full-plane FFT, one mask per cell."""
    f = frame.astype(np.float64) / 255.0
    f -= f.mean()
    fn = f / (f.std() + 1e-6)
    w = np.outer(np.hanning(128), np.hanning(128))
    p = np.abs(np.fft.fft2(fn * w)) ** 2
    k = np.fft.fftfreq(128) * 128
    ky, kx = np.meshgrid(k, k, indexing="ij")
    kr, ang = np.hypot(kx, ky), np.arctan2(ky, kx) % np.pi
    sector = np.minimum((ang / np.pi * 12).astype(int), 11)
    edges = np.arange(1.0, 40.0, 1.5)
    out = []
    for lo, hi in itertools.pairwise(edges):
        ring = (kr >= lo) & (kr < hi)
        mean = p[ring].mean() + 1e-12
        cells = [p[ring & (sector == s)].mean() for s in range(12) if (ring & (sector == s)).any()]
        out += [
            np.log(mean / (p.sum() + 1e-12) + 1e-12),
            np.log(max(cells) / (np.mean(cells) + 1e-12) + 1e-12),
            np.log(p[ring].max() / mean + 1e-12),
        ]
    return np.array(out)


def test_the_fast_ring_statistics_equal_the_direct_ones(sim_frames):
    x = sim_frames.images[:4]
    fast = spectral_features(x)[:, :75]
    direct = np.stack([_ring_features_directly(frame) for frame in x])
    np.testing.assert_allclose(fast, direct, rtol=1e-9, atol=1e-9)


def test_features_are_finite_deterministic_and_follow_the_lattice(sim_frames):
    f = spectral_features(sim_frames.images[:7])
    assert f.shape == (7, N_FEATURES) and np.isfinite(f).all()
    np.testing.assert_array_equal(f, spectral_features(sim_frames.images[:7]))
    # the power sits in the ring of the stripes' frequency: 8 cycles in ring 4, 16 in ring 10
    assert np.argmax(spectral_features(_stripes(16))[0, 0:75:3]) == 4
    assert np.argmax(spectral_features(_stripes(8))[0, 0:75:3]) == 10
    # a blank frame (an aborted scan) gives finite numbers, not NaN
    assert np.isfinite(spectral_features(np.zeros((1, 128, 128), np.uint8))).all()


def test_a_tip_change_shows_as_a_line_jump():
    calm = _stripes(16)
    jump = calm.copy()
    jump[0, 64:] = 255 - jump[0, 64:]  # the lattice flips at line 64, as a new tip draws it
    line_max = N_FEATURES - 10  # largest jump between neighbouring lines over the median
    assert spectral_features(jump)[0, line_max] > spectral_features(calm)[0, line_max] + 1


def test_bad_frames_say_what_was_expected():
    with pytest.raises(ValueError, match=r"expected 128x128 frames, got \(64, 64\)"):
        spectral_features(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"labels: expected \(N, 6\)"):
        fit_companion(np.zeros((4, 128, 128), np.uint8), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="'Asymmetries' needs positive and negative frames"):
        fit_companion(np.zeros((4, 128, 128), np.uint8), np.zeros((4, 6)))


def test_companion_learns_on_simulated_frames_and_round_trips_as_json(
    tmp_path, companion, sim_frames
):
    from sklearn.metrics import roc_auc_score

    p = companion.predict(sim_frames.images)
    assert p.shape == (len(sim_frames), 6) and ((p > 0) & (p < 1)).all()
    y = sim_frames.labels()
    fitted = [roc_auc_score(y[:, j], p[:, j]) for j in range(6) if 0 < y[:, j].sum() < len(y)]
    assert np.mean(fitted) > 0.8  # on its own training frames

    path = companion.save(tmp_path)
    assert path.name == FILE_NAME
    doc = json.loads(path.read_text())  # plain JSON: coefficients, no pickle
    assert doc["kind"] == "spectral_companion" and doc["frames"] == len(sim_frames)
    back = SpectralCompanion.load(tmp_path)
    np.testing.assert_allclose(back.predict(sim_frames.images), p, rtol=1e-12)
    assert back.categories == tuple(CATEGORIES)


def test_loading_something_else_is_refused(tmp_path, companion):
    with pytest.raises(FileNotFoundError, match=r"cnn_family\.spectral fit"):
        SpectralCompanion.load(tmp_path / "nothing")
    path = companion.save(tmp_path)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "feature_version": 0}))
    with pytest.raises(CompanionFormatError, match="expected feature_version 1, got 0"):
        SpectralCompanion.load(path)
    path.write_text(json.dumps({**doc, "coef": doc["coef"][:3]}))
    with pytest.raises(CompanionFormatError, match=r"expected coef \(6, 85\)"):
        SpectralCompanion.load(path)


def test_the_companion_votes_as_one_more_member(tiny_family, companion, sim_frames):
    from cnn_family import FamilyFormatError

    x = sim_frames.images[:9]
    plain = tiny_family.vote(x, companion=False)
    assert plain.member_probs.shape == (9, 6, 3)
    both = tiny_family.vote(x, companion=companion)
    assert both.member_probs.shape == (9, 6, 4)
    np.testing.assert_allclose(both.member_probs[:, :, :3], plain.member_probs)
    np.testing.assert_allclose(both.member_probs[:, :, 3], companion.predict(x), rtol=1e-6)
    np.testing.assert_allclose(both.soft, both.member_probs.mean(axis=2), rtol=1e-6)
    # hard: a strict majority of the four (three of them)
    np.testing.assert_array_equal(both.hard, (both.member_probs >= 0.5).sum(axis=2) >= 3)

    other = SpectralCompanion(
        ("Rows",), companion.mean, companion.scale, companion.coef[:1], companion.intercept[:1]
    )
    with pytest.raises(FamilyFormatError, match="expected a SpectralCompanion for the family's"):
        tiny_family.vote(x, companion=other)


def test_a_trained_family_has_its_own_companion_and_votes_with_it(tiny_family, sim_frames):
    from cnn_family import majority_polling
    from cnn_family.spectral import FILE_NAME, fit_companion

    x = sim_frames.images[:9]
    # fitted by train_family on the family's training frames, loaded with the family
    assert (tiny_family.path / FILE_NAME).exists()
    assert tiny_family.manifest["companion"] == {"file": FILE_NAME, "frames": 60}
    assert "more than 2 of 4 per category" in tiny_family.manifest["vote"]
    assert "spectral companion" in repr(tiny_family)
    own = fit_companion(sim_frames.images, sim_frames.labels())
    np.testing.assert_allclose(tiny_family.companion.coef, own.coef, rtol=1e-6)
    v = tiny_family.vote(x)
    assert v.member_probs.shape == (9, 6, 4)
    np.testing.assert_allclose(v.member_probs[:, :, 3], own.predict(x), rtol=1e-5)
    # the 2018 vote stays the members' alone
    assert majority_polling(tiny_family, x).member_probs.shape == (9, 6, 3)
    with pytest.raises(ValueError, match="expected None"):
        tiny_family.vote(x, companion=True)


def test_an_exported_family_carries_its_companion(tiny_family, sim_frames, tmp_path):
    from cnn_family import Family

    x = sim_frames.images[:5]
    (tmp_path / "one").mkdir()
    back = Family.load(tiny_family.export(tmp_path / "one" / "fam.keras"))
    assert back.companion is not None
    np.testing.assert_allclose(back.vote(x).soft, tiny_family.vote(x).soft, rtol=1e-4, atol=1e-5)
    # a file exported without one picks up the companion of the family folder it sits in,
    # when that family was trained on the same data
    bare = Family(
        fused=back.fused, categories=back.categories, k=back.k, manifest=tiny_family.manifest
    )
    alone = bare.export(tmp_path / "alone.keras")
    assert Family.load(alone).companion is None
    tiny_family.companion.save(tmp_path)
    assert Family.load(alone).companion is None  # no family folder here
    (tmp_path / "manifest.json").write_text(json.dumps(tiny_family.manifest))
    assert Family.load(alone).companion is not None
    other = {**tiny_family.manifest, "data": {"fingerprint": "another"}}
    (tmp_path / "manifest.json").write_text(json.dumps(other))
    assert Family.load(alone).companion is None


def test_the_shipped_family_votes_with_its_companion_from_either_form():
    from conftest import ROOT

    from cnn_family import Family

    for path in (ROOT / "models" / "hsi_family", ROOT / "models" / "hsi_family" / "family.keras"):
        comp = Family.load(path).companion
        assert comp is not None and comp.about["frames"] == 3978


def test_training_without_a_companion_or_with_one_sided_labels(tmp_path, sim_frames, capsys):
    from conftest import TINY

    from cnn_family.spectral import FILE_NAME
    from training.config import TrainConfig
    from training.trainer import train_family

    cfg = TrainConfig(**{**TINY, "companion": False, "categories": ("Rows",)})
    d = train_family(sim_frames.subset(range(20)), cfg, tmp_path / "off", verbose=0)
    assert not (d / FILE_NAME).exists()
    manifest = json.loads((d / "manifest.json").read_text())
    assert "companion" not in manifest
    assert manifest["vote"].endswith("more than 1 of 3 per category")

    few = sim_frames.subset(np.flatnonzero(sim_frames.labels()[:, 3] == 0)[:12])
    cfg = TrainConfig(**{**TINY, "categories": ("Rows",)})
    d = train_family(few, cfg, tmp_path / "one_sided", verbose=0)
    assert not (d / FILE_NAME).exists()
    assert "no spectral companion: no positive or no negative frames in ['Rows']" in (
        capsys.readouterr().out
    )
    assert "no positive" in json.loads((d / "manifest.json").read_text())["companion"]["why"]


def test_fitting_one_into_a_family_folder_restates_its_vote(tmp_path, tiny_family_dir, sim_frames):
    # The shipped family's companion was fitted after training, and its manifest went on
    # saying "2 of 3" while the family voted 3 of 4.
    import shutil

    from training.data import save_frames

    fam = shutil.copytree(tiny_family_dir, tmp_path / "fam")
    manifest = json.loads((fam / "manifest.json").read_text())
    manifest.pop("companion")
    manifest["vote"] = "each member's probability rounded at 0.5; 2 of 3 per category"
    (fam / "manifest.json").write_text(json.dumps(manifest))
    save_frames(sim_frames, tmp_path / "frames.h5")
    assert main(["fit", str(fam), "--data", str(tmp_path / "frames.h5")]) == 0
    manifest = json.loads((fam / "manifest.json").read_text())
    assert manifest["companion"]["frames"] == 60
    assert "companion votes as one more member: more than 2 of 4" in manifest["vote"]


def test_fit_and_use_it_from_the_command_line(tmp_path, tiny_family_dir, sim_frames, capsys):
    import main_evaluate_guess
    from training.data import save_frames

    save_frames(sim_frames, tmp_path / "frames.h5")
    assert main(["fit", str(tmp_path / "comp"), "--data", str(tmp_path / "frames.h5")]) == 0
    assert "spectral companion (60 frames)" in capsys.readouterr().out
    report = tmp_path / "report.json"
    args = ["--family", str(tiny_family_dir), "--data", str(tmp_path / "frames.h5")]
    args += ["--report", str(report), "--out-dir", str(tmp_path / "out")]
    assert main_evaluate_guess.main([*args, "--companion", str(tmp_path / "comp")]) == 0
    assert json.loads(report.read_text())["spectral_companion"] is True
    assert main_evaluate_guess.main([*args, "--companion", str(tmp_path / "none")]) == 2
    assert "expected spectral_companion.json" in capsys.readouterr().err
    # the family's own companion by default; --no-companion leaves it out
    assert main_evaluate_guess.main(args) == 0
    assert "with the family's spectral companion" in capsys.readouterr().out
    assert json.loads(report.read_text())["spectral_companion"] is True
    assert main_evaluate_guess.main([*args, "--no-companion"]) == 0
    assert json.loads(report.read_text())["spectral_companion"] is False

    # the live loop: the bridge server votes with it too
    log = tmp_path / "live"
    live = ["--live", "sim", "--scans", "3", "--family", str(tiny_family_dir)]
    live += ["--companion", str(tmp_path / "comp"), "--log-dir", str(log)]
    assert main_evaluate_guess.main(live) == 0
    assert json.loads((log / "summary.json").read_text())["server"]["verdicts"] == 3
