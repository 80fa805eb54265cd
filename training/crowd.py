"""The volunteers behind the labels: a two-coin crowd model and the posterior of each label.

Each frame of the Nottingham data carries, per category, the share of its 1-8 volunteers who
said "yes" (``mean_scores``) and how many answered (``n_responses``). The two-coin model of
Dawid & Skene (1979) explains those counts by a hidden true label T ~ Bernoulli(prevalence) and
volunteers who say "yes" with probability ``sensitivity`` when T holds and ``1 - specificity``
when it does not. Fitted per category by maximum likelihood, it gives

* the noise of the labels (``benchmarks/label_ceiling.py``: how well an oracle could score), and
* for every frame, P(T = 1 | its answers): a training target that says how sure the crowd is
  (``TrainConfig(targets="posterior")``). One "yes" from one volunteer for a category that
  volunteers over-call is worth less than three "yes" from three.

>>> fit = fit_two_coin(k=[2, 0, 1, 2, 0], n=[2, 2, 2, 2, 1])  # doctest: +SKIP
>>> posterior(k=[1], n=[1], fit=fit)                          # doctest: +SKIP
array([0.83])
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TwoCoin:
    """One category's crowd: true prevalence and the volunteers' sensitivity and specificity."""

    prevalence: float
    sensitivity: float
    specificity: float


def _check(k, n) -> tuple[np.ndarray, np.ndarray]:
    k, n = np.asarray(k, float), np.asarray(n, float)
    if k.shape != n.shape or np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError(
            f"k, n: expected equal shapes with 0 <= k <= n and n >= 1, got shapes {k.shape}, "
            f"{n.shape} (k {k.min(initial=0):.0f}..{k.max(initial=0):.0f}, n min "
            f"{n.min(initial=1):.0f})"
        )
    return k, n


def fit_two_coin(k, n) -> TwoCoin:
    """Maximum-likelihood two-coin fit to yes-counts ``k`` out of ``n`` answers per frame."""
    from scipy.optimize import minimize
    from scipy.special import expit, gammaln

    k, n = _check(k, n)
    log_comb = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    def nll(z):
        pi, se, sp = expit(z)
        lp = np.log(pi) + k * np.log(se) + (n - k) * np.log1p(-se)
        ln = np.log1p(-pi) + k * np.log1p(-sp) + (n - k) * np.log(sp)
        return -np.sum(log_comb + np.logaddexp(lp, ln))

    # Start from "volunteers are mostly right": the other optimum (se, sp < 0.5) is the same
    # likelihood with the classes swapped.
    prev0 = float(np.clip(np.mean(k / n), 0.01, 0.99))
    best = minimize(
        nll,
        x0=np.log([prev0 / (1 - prev0), 9.0, 9.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 4000},
    )
    return TwoCoin(*(float(v) for v in expit(best.x)))


def posterior(k, n, fit: TwoCoin) -> np.ndarray:
    """P(true label = 1 | k of n volunteers said yes) under ``fit``."""
    k, n = _check(k, n)
    pi, se, sp = fit.prevalence, fit.sensitivity, fit.specificity
    lp = np.log(pi) + k * np.log(se) + (n - k) * np.log1p(-se)
    ln = np.log1p(-pi) + k * np.log1p(-sp) + (n - k) * np.log(sp)
    return 1.0 / (1.0 + np.exp(ln - lp))


def yes_counts(mean_scores: np.ndarray, n_responses: np.ndarray) -> np.ndarray:
    """Yes-counts (N, C) back from crowd means and answer counts (NaN means count as 0)."""
    n = np.asarray(n_responses, float).reshape(-1, 1)
    return np.rint(np.nan_to_num(np.asarray(mean_scores, float)) * n).astype(int)
