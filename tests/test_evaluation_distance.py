"""FID and KID: known values, size behaviour and bad input."""

import numpy as np
import pytest

from evaluation.distance import frechet_distance, kernel_distance


def test_frechet_distance_of_gaussians_matches_the_closed_form(rng):
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + 1.0
    # |mu|^2 = 3; tr(I + 4I - 2 * 2I) = 3
    assert frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # More dimensions than rows: singular covariances still give a real, finite distance.
    wide = frechet_distance(rng.normal(size=(50, 200)), rng.normal(size=(50, 200)))
    assert np.isfinite(wide) and wide > 0


def test_kernel_distance_is_unbiased_and_grows_with_the_shift(rng):
    same = [kernel_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), subsets=5)]
    assert abs(np.mean([m for m, _ in same])) < 0.02
    near = kernel_distance(rng.normal(size=(400, 16)), rng.normal(size=(400, 16)) + 0.3)[0]
    far = kernel_distance(rng.normal(size=(400, 16)), rng.normal(size=(400, 16)) + 1.0)[0]
    assert 0 < near < far
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(500, 4)) + 0.5
    k1 = kernel_distance(a, b, subsets=10, subset_size=100, seed=3)
    assert k1 == kernel_distance(a, b, subsets=10, subset_size=100, seed=3)  # seeded
    assert k1[1] > 0  # subsets of 100 differ


def test_distances_reject_mismatched_or_broken_features(rng):
    with pytest.raises(ValueError, match="equal D"):
        frechet_distance(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        kernel_distance(rng.normal(size=(1, 3)), rng.normal(size=(10, 3)))
    bad = rng.normal(size=(10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(bad, bad)
    with pytest.raises(ValueError, match="subsets"):
        kernel_distance(bad[1:], bad[1:], subsets=0)


def test_realism_benchmark_feature_distances_on_a_tiny_family(
    tiny_family_dir, sim_frames, monkeypatch
):
    """benchmarks/realism.py: real vs real and real vs simulated on equal-sized sets."""
    import importlib.util

    from conftest import ROOT

    from stm_sim.dataset import make_frameset
    from training.data import CATEGORIES

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its helper module _real
    spec = importlib.util.spec_from_file_location("realism", ROOT / "benchmarks" / "realism.py")
    realism = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realism)
    fake_real = make_frameset(40, seed=5, session_length=10)  # stands in for the real frames
    other = make_frameset(30, seed=11, preset="fast-axis")
    d = realism.feature_distances(
        fake_real,
        fake_real.labels(),
        other,
        other.labels(),
        CATEGORIES,
        family=tiny_family_dir,
    )
    assert 2 <= d["n_per_set"] <= 30
    assert d["feature_dims"] > 0
    for k in ("real_vs_real", "real_vs_sim"):
        assert np.isfinite(d[k]["fid"]) and d[k]["fid"] >= 0 and np.isfinite(d[k]["kid"])
    assert set(d["kid_per_category"]) <= set(CATEGORIES)
    with pytest.raises(ValueError, match="2 or more sessions"):
        realism.feature_distances(
            sim_frames,
            sim_frames.labels(),
            other,
            other.labels(),
            CATEGORIES,
            family=tiny_family_dir,
        )
