"""The outcome of :func:`sopt.bayes.sample_posterior`: the draws, their
diagnostics, and the Monte Carlo predictive written once on the draws."""
from __future__ import annotations

import warnings

import numpy as np

from .._validation import check_bool, check_inputs, check_positive_int
from ..optimize import ConvergenceWarning
from ._diagnostics import ess_bulk, rhat

Array = np.ndarray
# Vehtari et al. (2021): trust the draws when every rank-normalised split
# R-hat is below 1.01 and every bulk ESS above 100 per chain
RHAT_WARN = 1.01
ESS_PER_CHAIN_WARN = 100
# rows of X_new per forward pass in the predictives: memory ~ this many
# rows times the widest layer, whatever N
BLOCK_ROWS = 4096


class SamplingWarning(ConvergenceWarning):
    """The chains may not have converged (R-hat above 1.01, bulk ESS below
    100 per chain, or divergent transitions): the draws are kept, but
    averages over them may be biased. A ConvergenceWarning, so that the
    filters for sopt's solvers apply too."""


class SampledPosterior:
    """Draws of the weights from the posterior, with diagnostics and the
    predictives averaged over the draws.

    Attributes
    ----------
    net, loss : the network and its loss name.
    w_map : (W,) the start; used : (W_used,) indices of the weights in use.
    draws : (M, S, W) M chains of S draws, full layout (masked entries stay
        at w_map's). Memory M S W doubles.
    log_density : (M, S) ln p(w | D, alpha, beta) up to a constant at each
        draw; with a hyperprior the joint density of w and the precisions
        (hyper_update="joint": of w, ln alpha, ln beta; "gibbs": of w,
        alpha, beta; "marginal": of w alone).
    alpha : (M, S, G) prior precision of each weight group per draw under a
        hyperprior, else None; group_names : the G names.
    prior_alpha : (W,) the alpha given (fixed, or the hyperprior's start).
    beta : (M, S) noise precision per draw (regression; constant when
        fixed) or None.
    accept_stat, tree_depth, n_steps, divergent : (M, S) per transition
        (n_steps is the number of leapfrog steps, i.e. gradient evaluations).
    step_size : (M,) each chain's adapted step size.
    n_gradients : gradient evaluations in all, warm-up included.
    rhat, ess : (W_used,) rank-normalised split R-hat and bulk ESS per weight
        in use; rhat_log_density, ess_log_density : the same for the
        log density; for a hyperprior also rhat_hyper, ess_hyper over
        ln alpha_g (and ln beta).
    fit_time : seconds of sampling.
    """

    def __init__(self, net, loss: str, w_map: Array, used: Array, records: dict,
                 group_names: list, prior_alpha: Array, hierarchical: bool,
                 fit_time: float):
        self.net, self.loss, self.w_map, self.used = net, loss, w_map, used
        self.prior_alpha = prior_alpha
        self.group_names, self.hierarchical = group_names, hierarchical
        u = records["draws"]                           # (M, S, W_used)
        self.draws = np.broadcast_to(w_map, u.shape[:2] + w_map.shape).copy()
        self.draws[:, :, used] = u
        for key in ("log_density", "alpha", "beta", "accept_stat", "tree_depth",
                    "n_steps", "divergent", "step_size"):
            setattr(self, key, records[key])
        self.n_gradients = int(records["n_gradients"])
        self.fit_time = fit_time
        self._diagnose(u)

    def _diagnose(self, u: Array) -> None:
        """R-hat and bulk ESS of every weight, of the log density and (with a
        hyperprior) of the log precisions. Cost O(M S W_used log S)."""
        self.rhat, self.ess = rhat(u), ess_bulk(u)
        ld = self.log_density[:, :, None]
        self.rhat_log_density = float(rhat(ld)[0])
        self.ess_log_density = float(ess_bulk(ld)[0])
        self.rhat_hyper = self.ess_hyper = None
        if self.hierarchical:
            h = np.log(self.alpha)
            if self.beta is not None:
                h = np.concatenate([h, np.log(self.beta)[:, :, None]], axis=2)
            self.rhat_hyper, self.ess_hyper = rhat(h), ess_bulk(h)

    @property
    def n_chains(self) -> int:
        return self.draws.shape[0]

    @property
    def n_draws(self) -> int:
        return self.draws.shape[1]

    @property
    def n_divergent(self) -> int:
        return int(np.sum(self.divergent))

    @property
    def max_rhat(self) -> float:
        """The largest R-hat over the weights, the log density and the
        hyperparameters."""
        parts = [self.rhat, [self.rhat_log_density]]
        if self.rhat_hyper is not None:
            parts.append(self.rhat_hyper)
        return float(np.max(np.concatenate(parts)))

    @property
    def min_ess(self) -> float:
        """The smallest bulk ESS over the same quantities."""
        parts = [self.ess, [self.ess_log_density]]
        if self.ess_hyper is not None:
            parts.append(self.ess_hyper)
        return float(np.min(np.concatenate(parts)))

    def summary(self) -> dict:
        """The diagnostics as plain numbers (for tables and logs)."""
        return {"n_chains": self.n_chains, "n_draws": self.n_draws,
                "max_rhat": self.max_rhat, "min_ess": self.min_ess,
                "ess_log_density": self.ess_log_density,
                "n_divergent": self.n_divergent,
                "accept_stat": float(np.mean(self.accept_stat)),
                "step_size": self.step_size.tolist(),
                "mean_tree_depth": float(np.mean(self.tree_depth)),
                "mean_n_steps": float(np.mean(self.n_steps)),
                "n_gradients": self.n_gradients, "fit_time": self.fit_time}

    def _weights(self):
        """Every draw's full weight vector, chain by chain (views)."""
        return self.draws.reshape(-1, self.draws.shape[2])

    def _row_blocks(self, X_new):
        X = check_inputs(X_new, self.net.n_inputs, "X_new")
        return [X[i:i + BLOCK_ROWS] for i in range(0, len(X), BLOCK_ROWS)]

    def sample(self, n: int, seed=None) -> Array:
        """n weight vectors (n, W), full layout, drawn with replacement from
        the chains' draws: what :meth:`LaplacePosterior.sample` gives for
        the Gaussian approximation (the posterior interface shared by every
        structure)."""
        n = check_positive_int(n, "n")
        flat = self.draws.reshape(-1, self.draws.shape[-1])
        return flat[np.random.default_rng(seed).integers(0, len(flat), n)].copy()

    def predict(self, X_new, include_noise: bool = True) -> tuple[Array, Array]:
        """Regression predictive mean (N, K) and variance (N, K) over the draws:
        the mean of y(x, w_s), and the variance of y(x, w_s) across draws
        plus the mean of 1/beta_s (the noise; beta_s drawn with the weights
        under a hyperprior). ``include_noise=False`` leaves the function part.

        Cost: S forward passes, O(S N W); memory O(BLOCK_ROWS x widest layer)
        per pass (the draws are taken one at a time, rows in blocks)."""
        if self.beta is None:
            raise ValueError("predict: this posterior is for classification; "
                             "use predict_proba")
        include_noise = check_bool(include_noise, "include_noise")
        means, variances = [], []
        for X in self._row_blocks(X_new):
            m, v = self._moments(X)
            means.append(m)
            variances.append(v)
        mean, var = np.concatenate(means), np.concatenate(variances)
        if include_noise:
            var = var + float(np.mean(1.0 / self.beta))
        return mean, var

    def _moments(self, X: Array) -> tuple[Array, Array]:
        """Mean and variance (divisor S) of y(X, w_s) over the draws by
        Welford's update: no S x N x K array, and no cancellation of
        E[y^2] - E[y]^2 when the spread is small against the mean."""
        mean = np.zeros((len(X), self.net.n_outputs))
        m2 = np.zeros_like(mean)
        for s, w in enumerate(self._weights(), start=1):
            y = self.net.forward(w, X)
            delta = y - mean
            mean += delta / s
            m2 += delta * (y - mean)
        return mean, m2 / s

    def predict_proba(self, X_new) -> Array:
        """Class probabilities (N, K): the network's output probabilities
        p(C | x, w_s) averaged over the draws, the Monte Carlo estimate of
        the predictive p(C | x, D) = int p(C | x, w) p(w | D) dw (never the
        output at the averaged logits). K = 1 for a logistic output.
        Cost O(S N W); memory as :meth:`predict`."""
        if self.beta is not None:
            raise ValueError("predict_proba: this posterior is for regression; "
                             "use predict")
        out = []
        for X in self._row_blocks(X_new):
            total = np.zeros((len(X), self.net.n_outputs))
            for w in self._weights():
                total += self.net.forward(w, X)
            out.append(total / len(self._weights()))
        return np.concatenate(out)

    def __repr__(self) -> str:
        return (f"SampledPosterior({self.loss}, chains={self.n_chains}, "
                f"draws={self.n_draws}, max_rhat={self.max_rhat:.3f}, "
                f"min_ess={self.min_ess:.0f}, divergent={self.n_divergent})")


def convergence_problems(post: SampledPosterior) -> list[str]:
    """Each failed check (R-hat, bulk ESS, divergences) in words; empty when
    all pass."""
    problems = []
    if not post.max_rhat < RHAT_WARN:
        problems.append(f"max R-hat {post.max_rhat:.3f} >= {RHAT_WARN}")
    needed = ESS_PER_CHAIN_WARN * post.n_chains
    if not post.min_ess >= needed:
        problems.append(f"min bulk ESS {post.min_ess:.0f} < {needed} "
                        f"({ESS_PER_CHAIN_WARN} per chain)")
    if post.n_divergent:
        problems.append(f"{post.n_divergent} divergent transition(s) of "
                        f"{post.divergent.size}")
    return problems


def warn_if_unconverged(post: SampledPosterior, stacklevel: int = 3) -> None:
    """A :class:`SamplingWarning` naming each failed check (R-hat, bulk ESS,
    divergences); silent when all pass."""
    problems = convergence_problems(post)
    if problems:
        warnings.warn("sample_posterior: the chains may not have converged: "
                      + "; ".join(problems) + ". Run longer (n_warmup, n_draws), "
                      "raise target_accept (divergences), or check the metric.",
                      SamplingWarning, stacklevel=stacklevel)
