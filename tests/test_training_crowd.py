import numpy as np
import pytest

from training.crowd import TwoCoin, fit_two_coin, posterior, yes_counts


def _crowd(rng, n_frames=20000):
    n = rng.choice([1, 2, 3], n_frames, p=[0.5, 0.4, 0.1])
    truth = rng.random(n_frames) < 0.2
    k = rng.binomial(n, np.where(truth, 0.8, 0.05))
    return k, n, truth


def test_two_coin_fit_recovers_the_volunteers(rng):
    k, n, _ = _crowd(rng)
    fit = fit_two_coin(k, n)
    assert fit.prevalence == pytest.approx(0.2, abs=0.03)
    assert fit.sensitivity == pytest.approx(0.8, abs=0.04)
    assert fit.specificity == pytest.approx(0.95, abs=0.01)


def test_posterior_weighs_answers_by_how_many_and_how_reliable(rng):
    fit = TwoCoin(prevalence=0.1, sensitivity=0.7, specificity=0.95)
    p = posterior([0, 1, 1, 2, 3], [1, 1, 2, 2, 3], fit)
    assert np.all((p > 0) & (p < 1))
    assert p[0] < p[2] < p[1] < p[3] < p[4]  # one yes of two is weaker than one yes of one
    k, n, truth = _crowd(rng)
    post = posterior(k, n, fit_two_coin(k, n))
    assert abs(post.mean() - truth.mean()) < 0.02  # calibrated on average


def test_crowd_inputs_are_checked():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        posterior([2], [1], TwoCoin(0.5, 0.9, 0.9))
    assert yes_counts(np.array([[0.5, np.nan]]), np.array([2])).tolist() == [[1, 0]]


def test_posterior_targets_follow_the_answers(rng):
    from training.config import TrainConfig
    from training.data import CATEGORIES, FrameSet
    from training.trainer import _targets

    k, n, _ = _crowd(rng, 2000)
    scores = np.zeros((len(n), len(CATEGORIES)), np.float32)
    scores[:, 2] = k / n
    fs = FrameSet(
        images=np.zeros((len(n), 8, 8), np.uint8),
        mean_scores=scores,
        sessions=np.zeros(len(n), int),
        names=np.arange(len(n)),
        n_responses=n,
    )
    y, hard = _targets(fs, TrainConfig(targets="posterior"), 2)
    assert y.dtype == np.float32 and np.all((y > 0) & (y < 1))
    assert y[k == n].min() > y[k == 0].max()
    assert np.array_equal(hard, (k / n > 0.5).astype(hard.dtype))
    one_answer = FrameSet(
        images=fs.images, mean_scores=scores, sessions=fs.sessions, names=fs.names
    )
    with pytest.raises(ValueError, match="two or more answers"):
        _targets(one_answer, TrainConfig(targets="posterior"), 2)
