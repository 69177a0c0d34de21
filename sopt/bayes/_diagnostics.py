"""Convergence diagnostics of Markov chains: rank-normalised split R-hat and
bulk effective sample size (Vehtari, Gelman, Simpson, Carpenter and Buerkner
2021, "Rank-normalization, folding, and localization: an improved R-hat",
Bayesian Analysis 16(2)), with autocorrelations summed by Geyer's initial
monotone sequence (Geyer 1992, "Practical Markov chain Monte Carlo",
Statistical Science 7(4)).

Every function takes draws of shape (M, S, P): M chains of S draws of P
scalar quantities, and works on all P at once.
"""
from __future__ import annotations

import numpy as np

Array = np.ndarray


def _split(x: Array) -> Array:
    """(M, S, P) -> (2M, S // 2, P): each chain's halves as two chains (a
    trend within a chain then shows as disagreement between chains). An odd
    middle draw is dropped, as in Vehtari et al."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _rank_normalise(x: Array) -> Array:
    """Normal scores of the pooled ranks, (M, S, P): Phi^{-1}((r - 3/8) /
    (MS + 1/4)) (Blom's offset), so that R-hat and ESS do not hinge on
    heavy tails. Ties get their average rank."""
    # scipy.stats and scipy.special cost ~0.8 s of import: only when sampling
    from scipy.special import ndtri
    from scipy.stats import rankdata
    M, S, P = x.shape
    r = rankdata(x.reshape(M * S, P), axis=0, method="average")
    return ndtri((r - 0.375) / (M * S + 0.25)).reshape(M, S, P)


def _classic_rhat(x: Array) -> Array:
    """sqrt(var+ / W) per quantity, (P,): var+ = (S-1)/S W + B/S (Gelman and
    Rubin 1992). A quantity constant over all draws gives 1."""
    S = x.shape[1]
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    between = S * np.var(np.mean(x, axis=1), axis=0, ddof=1)
    var_plus = (S - 1) / S * within + between / S
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / within)
    return np.where(within > 0, r, np.where(between > 0, np.inf, 1.0))


def rhat(x: Array) -> Array:
    """Rank-normalised split R-hat, (P,): the larger of the bulk one (on
    rank-normalised draws) and the tail one (on rank-normalised
    |x - median|). Needs M S >= 4. Cost O(M S P log(M S))."""
    x = _split(np.asarray(x, dtype=float))
    bulk = _classic_rhat(_rank_normalise(x))
    folded = np.abs(x - np.median(x.reshape(-1, x.shape[2]), axis=0))
    tail = _classic_rhat(_rank_normalise(folded))
    return np.maximum(bulk, tail)


def _autocovariance(x: Array) -> Array:
    """Biased autocovariance of each chain by FFT, (M, S, P); lag 0 is the
    chain's variance with divisor S."""
    S = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    n_fft = 1 << (2 * S - 1).bit_length()      # zero-padded: no wrap-around
    f = np.fft.rfft(centred, n=n_fft, axis=1)
    return np.fft.irfft(f * np.conj(f), n=n_fft, axis=1)[:, :S] / S


def ess(x: Array) -> Array:
    """Effective sample size of the mean, (P,), from the draws as given
    (chains are not split and values not rank-normalised here; see
    :func:`ess_bulk`). Stan's multi-chain estimator: rho_t = 1 - (W -
    mean_m acov_m(t)) / var+, summed in pairs while the pair sums stay
    positive and forced monotone (Geyer's initial monotone sequence), then
    ESS = M S / tau with tau = -1 + 2 sum_k (rho_2k + rho_2k+1), capped at
    M S log10(M S) as Stan does."""
    x = np.asarray(x, dtype=float)
    M, S, _ = x.shape
    acov = _autocovariance(x)
    chain_var = acov[:, 0] * S / (S - 1.0)                   # (M, P), ddof=1
    within = chain_var.mean(axis=0)
    var_plus = within * (S - 1.0) / S
    if M > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within - acov.mean(axis=0)) / var_plus  # (S, P)
    rho[0] = 1.0
    n_pairs = S // 2
    pairs = rho[:2 * n_pairs:2] + rho[1:2 * n_pairs:2]       # (S//2, P)
    # keep the pairs before the first negative one, then make them monotone
    keep = np.cumprod(pairs > 0, axis=0).astype(bool)
    pairs = np.minimum.accumulate(np.where(keep, pairs, 0.0), axis=0)
    tau = np.maximum(-1.0 + 2.0 * pairs.sum(axis=0), 1.0 / np.log10(M * S))
    out = M * S / tau
    # a constant quantity has no autocorrelation to speak of
    return np.where(var_plus > 0, out, float(M * S))


def ess_bulk(x: Array) -> Array:
    """Bulk ESS, (P,): :func:`ess` of the rank-normalised split chains (Vehtari
    et al. 2021). Cost O(M S P log S); memory a few copies of x."""
    return ess(_rank_normalise(_split(np.asarray(x, dtype=float))))


def mcse_mean(x: Array) -> Array:
    """Monte Carlo standard error of the mean of each quantity, (P,):
    sd / sqrt(ESS) with the ESS of the draws as they are (not ranks)."""
    x = np.asarray(x, dtype=float)
    sd = np.std(x.reshape(-1, x.shape[2]), axis=0, ddof=1)
    return sd / np.sqrt(ess(_split(x)))
