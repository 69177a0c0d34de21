"""Posterior sampling of the weights by dynamic Hamiltonian Monte Carlo on
sopt's exact gradient (Neal 2011, "MCMC using Hamiltonian dynamics";
Hoffman and Gelman 2014, the No-U-Turn sampler; Betancourt 2017, "A
conceptual introduction to Hamiltonian Monte Carlo", multinomial sampling
from the trajectory; the sampler itself is :mod:`sopt.bayes._nuts`).

Without a hyperprior the target is the posterior over the weights in use,

    -ln p(w | D, alpha, beta) = beta E_D(w) + 1/2 sum_i alpha_i w_i^2 + const

(beta = 1 for the cross-entropy errors), whose gradient is one backward pass,
O(N W). With Gamma hyperpriors on alpha (one per weight group) and, for
regression, on beta, three ways of integrating them
(:mod:`sopt.bayes._sampling_targets`): jointly with the weights, partially
non-centred (w = z / alpha^(kappa / 2), the degree chosen in the warm-up)
with a centred Gibbs step of alpha and beta between transitions (the
default), by Gibbs steps alone (Neal 1996, sec. 3.2), or analytically.

The metric (mass matrix) is the Laplace precision A = beta H + diag(alpha)
from the data Hessian H at w_MAP, so that the momentum p ~ N(0, A) and the
velocity A^{-1} p match the posterior's scales and correlations to second
order: for a Gaussian posterior with covariance A^{-1} the dynamics are
then those of an isotropic one (Neal 2011 sec. 4.1). The sampler runs on
the whitened coordinates x = L^T (w - w_MAP), A = L L^T. In the partially
non-centred coordinates the precision reads D^{-1/2} A D^{-1/2} (D =
diag(alpha^kappa)); ln alpha_g and ln beta get MacKay's (1992) error bars
sqrt(2 / gamma_g) and sqrt(2 / (N K - gamma)) as scales. The warm-up
(Stan's windows) rescales the whitened coordinates by the spread the chain
shows and moves the metric to the precisions the chain finds.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time

import numpy as np
from scipy.linalg import solve_triangular

from .._threads import one_thread_per_process
from .._validation import (check_alpha, check_bool, check_choice, check_int,
                           check_positive, check_positive_int, check_real,
                           check_weights)
from ..losses import Loss
from ..network import Network
from ..objective import Objective
from ._evidence import weight_groups
from ._nuts import NUTS, DualAveraging, initial_step_size
from ._posterior import (LaplacePosterior, _check_predictive_output, in_either_form,
                         laplace, likelihood_loss)
from ._sampled import SampledPosterior, warn_if_unconverged
from ._sampling_targets import Centred, Collapsed, Hyperprior, NonCentred, Whitened

Array = np.ndarray
METRICS = ("laplace", "diagonal", "identity")
HYPER_UPDATES = ("joint", "gibbs", "marginal")
#: The fewest draws per chain the diagnostics can be computed from.
MIN_DRAWS = 4
# Gamma(1, 1e-3) on each precision (shape, rate): flat in alpha up to
# ~1e3, and proper in ln alpha at both ends. The scale-free Gamma(1e-3,
# 1e-3) of Neal (1996) and BUGS's examples is improper in practice on
# (near-)separable classes: there the likelihood stays near 1 as alpha -> 0
# (the evidence tends to the prior mass of the separating cone), so the
# posterior of ln alpha is flat down to ln alpha ~ -1/a and no chain can
# mix over it (wine: flat from -2 to below -12; experiments/bench_sampling.py).
DEFAULT_HYPERPRIOR = (1.0, 1e-3)
# a variance estimated from n draws is shrunk towards 1 (the whitened
# scale) as (n v + 5) / (n + 5), Stan's regularisation of its metric
SHRINK_DRAWS = 5.0


class _Curvature:
    """The data term's curvature at w_map on the weights in use, from which
    the metric is built for any prior and noise precisions: the Hessian H
    (dense, "laplace") or its diagonal ("diagonal"; also kept for
    "laplace"), nothing for "identity". Memory W_used^2 for the dense one."""

    def __init__(self, kind: str, H: Array | None, h_diag: Array | None):
        self.kind, self.H, self.h_diag = kind, H, h_diag

    def factor(self, alpha_w: Array, beta, prior_scale: Array | None = None):
        """The metric's factors (see :class:`Whitened`) for the precision
        A = beta H + diag(alpha_w) (beta = 1 for the cross-entropies), read
        in the coordinates z = prior_scale * w when given (the non-centred
        ones, where A becomes D^{-1/2} A D^{-1/2}, D = diag(prior_scale^2)).
        Dense: a Cholesky factorisation and a triangular inverse, 2 W^3 / 3;
        diagonal: O(W); the identity: None."""
        scale = 1.0 if beta is None else beta
        if self.kind == "laplace":
            A = scale * self.H
            A[np.diag_indices_from(A)] += alpha_w
            L = np.linalg.cholesky(A)
            if prior_scale is not None:
                L = L / prior_scale[:, None]
            return solve_triangular(L, np.eye(len(L)), lower=True).T, L.T
        if self.kind == "diagonal":
            d = scale * self.h_diag + alpha_w
            if prior_scale is not None:
                d = d / prior_scale ** 2
            return 1.0 / np.sqrt(d), np.sqrt(d)
        return None


def _hyper_scale(post: LaplacePosterior | None, hyper: Hyperprior,
                 beta) -> Array:
    """Scales of ln alpha_g (G,) and ln beta in the non-centred metric:
    MacKay's (1992) error bars sqrt(2 / gamma_g), sqrt(2 / (N K - gamma))
    (gamma_g at least 1: a group the data switch off is sampled on its
    prior's scale); 1 without a posterior. The warm-up corrects them."""
    G = hyper.n_groups
    if post is None:
        gamma_g, gamma = np.ones(G), 0.0
    else:
        gamma_g = np.bincount(hyper.groups, weights=post.gamma_per_weight, minlength=G)
        gamma = float(np.sum(gamma_g))
    out = list(np.sqrt(2.0 / np.maximum(gamma_g, 1.0)))
    if beta is not None:
        out.append(np.sqrt(2.0 / max(hyper.n_data - gamma, 1.0)))
    return np.array(out)


def _kappa(post: LaplacePosterior | None, hyper: Hyperprior) -> Array:
    """kappa_g = 1 - gamma_g / W_g, the prior's mean share of a group's
    posterior precision at the start (1 without a posterior): how far to
    non-centre each group (see :class:`NonCentred`)."""
    if post is None:
        return np.ones(hyper.n_groups)
    gamma_g = np.bincount(hyper.groups, weights=post.gamma_per_weight,
                          minlength=hyper.n_groups)
    return np.clip(1.0 - gamma_g / hyper.counts, 0.0, 1.0)


def _whitened_target(curvature: _Curvature, data, w_map: Array, used: Array,
                     alpha: Array, beta, hyper: Hyperprior | None, update: str,
                     post) -> Whitened:
    """The target for one chain (fresh: Gibbs steps change it) seen through
    the metric at (w_map, alpha, beta), its reference point there."""
    u = w_map[used]
    if hyper is not None and update == "joint":
        target = NonCentred(data, w_map, used, hyper, _kappa(post, hyper))
        alpha_g = (np.bincount(hyper.groups, weights=alpha[used], minlength=hyper.n_groups)
                   / hyper.counts)
        return Whitened(target, target.start(u, alpha_g, beta),
                        curvature.factor(alpha_g[hyper.groups], beta, target.scale(alpha_g)),
                        _hyper_scale(post, hyper, beta))
    if hyper is not None and update == "marginal":
        target = Collapsed(data, w_map, used, hyper)
    else:
        target = Centred(data, w_map, used, alpha[used], beta, hyper)
    return Whitened(target, target.start(u), curvature.factor(alpha[used], beta),
                    np.empty(0))


def adaptation_windows(n_warmup: int) -> list[tuple[int, int]]:
    """The warm-up's slow windows [start, end) after which the metric is
    adapted (Stan's schedule: 75 iterations of step-size adaptation alone,
    windows of 25, 50, 100, ... iterations, the last one stretched to end
    50 iterations before the warm-up does; 15% / 10% buffers and one window
    below 150 iterations; none below 20)."""
    if n_warmup < 20:
        return []
    if n_warmup < 150:
        return [(int(0.15 * n_warmup), int(0.9 * n_warmup))]
    windows, start, size, end_all = [], 75, 25, n_warmup - 50
    while start < end_all:
        end = start + size if start + 3 * size <= end_all else end_all
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def _iteration(sampler: NUTS, whitened: Whitened, z, step: float, rng):
    """A NUTS transition, then the target's step between transitions (Gibbs
    or interweaving draws of the hyperparameters; none without them).
    Returns the point (re-evaluated when that step moved it or changed U),
    q there, and the transition's statistics."""
    z, stats = sampler.transition(z, step, rng)
    q = whitened.to_q(z.x)
    moved = whitened.target.after_transition(q, rng)
    if moved is not None:
        q = moved
        z = sampler.point(whitened.from_q(q))
    return z, q, stats


def _warm_up(sampler: NUTS, whitened: Whitened, x0: Array, rng, opts: dict):
    """n_warmup iterations of dual averaging of the step size (Hoffman and
    Gelman 2014, alg. 5), the metric adapted after each window of
    :func:`adaptation_windows` (``adapt_metric``; :func:`_adapt_metric`)
    and the step-size search started again; for the joint target the
    non-centring chosen on the way (:class:`_KappaPilot`). Returns the last
    point and the step size for sampling."""
    z = sampler.point(x0)
    step = initial_step_size(sampler, z, rng)
    adapt = DualAveraging(step, opts["target_accept"])
    windows = adaptation_windows(opts["n_warmup"])
    ends = {end: k for k, (start, end) in enumerate(windows)}
    pilot = _KappaPilot(whitened.target, len(windows))
    window, n0 = [], whitened.n_gradients
    for i in range(opts["n_warmup"]):
        z, q, stats = _iteration(sampler, whitened, z, step, rng)
        step = adapt.update(stats["accept_stat"])
        if opts["adapt_metric"]:
            window.append(q)
            if i + 1 in ends:
                k = ends[i + 1]
                window = np.array(window[-(i + 1 - windows[k][0]):])
                kappa = pilot.after_window(k, window, whitened.n_gradients - n0)
                q = _adapt_metric(whitened, window, opts["curvature"], q, kappa)
                z = sampler.point(whitened.from_q(q))
                step = initial_step_size(sampler, z, rng, step)
                adapt, window, n0 = DualAveraging(step, opts["target_accept"]), [], whitened.n_gradients
        _progress(opts, i, step)
    return z, (adapt.final if opts["n_warmup"] else step)


class _KappaPilot:
    """Chooses the joint target's non-centring by measurement: the second
    warm-up window runs with the target's kappa (1 - gamma_g / W_g at the
    start: right for Gaussian likelihoods), the third with kappa = 1 (fully
    non-centred: right for near-separable classes, whose one-sided walls
    the curvature mistakes for data-determined directions), and the rest
    with the one whose chain moved ln alpha, ln beta further per gradient
    (the expected squared jump distance, in units of their spread: Pasarica
    and Gelman 2010, "Adaptively scaling the Metropolis algorithm using
    expected squared jumped distance", Statistica Sinica 20). Without three
    windows, or when the two agree, nothing is tried."""

    def __init__(self, target, n_windows: int):
        self.active = (isinstance(target, NonCentred) and n_windows >= 3
                       and not np.all(target.kappa == 1.0))
        self.candidates = [target.kappa.copy(), np.ones_like(target.kappa)] if self.active else []
        self.n_hyper = target.hyper.n_groups + target.regression if self.active else 0
        self.jumps = []

    def after_window(self, k: int, window: Array, n_gradients: int):
        """The kappa for the windows after window k (or None: unchanged)."""
        if not self.active or k not in (1, 2):
            return None
        h = window[:, -self.n_hyper:]
        var = np.maximum(np.var(h, axis=0), 1e-12)
        self.jumps.append(np.sum(np.mean(np.diff(h, axis=0) ** 2, axis=0) / var)
                          / max(n_gradients, 1))
        if k == 1:
            return self.candidates[1]
        return self.candidates[int(np.argmax(self.jumps))]


def _adapt_metric(whitened: Whitened, window: Array, curvature: _Curvature,
                  q: Array, kappa: Array | None = None) -> Array:
    """After a warm-up window of draws q (n, d): for the non-centred target
    the metric and the centring moved to the window (:func:`_recentre`);
    for every target the whitened coordinates then rescaled by the standard
    deviations the window shows in them, regularised towards 1 (Stan's
    regularisation of its diagonal metric). Returns the current point q in
    the new coordinates. Cost O(n W^2) + the rebuild."""
    if isinstance(whitened.target, NonCentred):
        window, q = _recentre(whitened, window, curvature, q, kappa)
    n = len(window)
    whitened.scale = np.ones(len(whitened.q0))
    x = np.array([whitened.from_q(v) for v in window])
    var = (n * np.var(x, axis=0) + SHRINK_DRAWS) / (n + SHRINK_DRAWS)
    whitened.scale = np.sqrt(var)
    return q


def _recentre(whitened: Whitened, window: Array, curvature: _Curvature, q: Array,
              kappa: Array | None = None):
    """The non-centred target's metric rebuilt at the window's mean ln
    alpha_g and ln beta: where the chain finds alpha far from the evidence
    value (near-separable classes: 100 times smaller on digits) the
    data-determined directions of z scale with it; with new non-centring
    exponents ``kappa`` if given. ln alpha and ln beta get the window's
    spread as their scales (regularised towards the old ones). Returns the
    window and q in the new coordinates."""
    target, W, n = whitened.target, whitened.n_weights, len(window)
    var = np.var(window[:, W:], axis=0)
    var = (n * var + SHRINK_DRAWS * whitened.hyper_scale ** 2) / (n + SHRINK_DRAWS)
    natural = [target.natural(v) for v in window]
    now = target.natural(q)
    mean = np.mean(window[:, W:], axis=0)
    alpha_g = np.exp(mean[:target.hyper.n_groups])
    beta = float(np.exp(mean[-1])) if target.regression else None
    if kappa is not None:
        target.set_kappa(kappa)
    w_mean = np.mean([v[0] for v in natural], axis=0)
    whitened.reset(target.start(w_mean, alpha_g, beta),
                   curvature.factor(alpha_g[target.hyper.groups], beta,
                                    target.scale(alpha_g)), np.sqrt(var))
    return np.array([target.start(*v) for v in natural]), target.start(*now)


def _progress(opts: dict, i: int, step: float) -> None:
    total = opts["n_warmup"] + opts["n_draws"]
    if opts["progress"] and (i + 1) % max(1, total // 10) == 0:
        line = f"  {opts['label']}: iteration {i + 1}/{total}, step size {step:.3g}"
        if _PROGRESS_QUEUE is not None:      # a forked worker: the parent prints
            _PROGRESS_QUEUE.put(line)
        else:
            print(line, file=sys.stderr, flush=True)


def _run_chain(whitened: Whitened, x0: Array, rng, opts: dict) -> dict:
    """One chain: the warm-up, then n_draws recorded iterations. An
    iteration is a NUTS transition, then (Gibbs) a draw of the
    hyperparameters given w."""
    sampler = NUTS(whitened.potential, opts["max_tree_depth"])
    z, step = _warm_up(sampler, whitened, x0, rng, opts)
    target = whitened.target
    rec = _empty_record(opts["n_draws"], whitened.n_weights, opts["n_groups"],
                        opts["beta"] is not None)
    for j in range(opts["n_draws"]):
        z, q, stats = _iteration(sampler, whitened, z, step, rng)
        _store(rec, j, target.weights(q), target.record(q, z.U), stats)
        _progress(opts, opts["n_warmup"] + j, step)
    rec["step_size"] = step
    rec["n_gradients"] = whitened.n_gradients
    return rec


def _empty_record(n_draws: int, n_used: int, n_groups: int, regression: bool) -> dict:
    """Arrays for one chain's recorded iterations."""
    rec = {"draws": np.empty((n_draws, n_used)), "log_density": np.empty(n_draws),
           "alpha": np.empty((n_draws, n_groups)),
           "beta": np.empty(n_draws) if regression else None}
    for key, dtype in (("accept_stat", float), ("tree_depth", int),
                       ("n_steps", int), ("divergent", bool)):
        rec[key] = np.empty(n_draws, dtype=dtype)
    return rec


def _store(rec: dict, j: int, w_used: Array, recorded: tuple, stats: dict) -> None:
    log_density, alpha_g, beta = recorded
    rec["draws"][j] = w_used
    rec["log_density"][j] = log_density
    if alpha_g is not None:
        rec["alpha"][j] = alpha_g
    if rec["beta"] is not None:
        rec["beta"][j] = beta
    rec["accept_stat"][j] = stats["accept_stat"]
    rec["tree_depth"][j] = stats["tree_depth"]
    rec["n_steps"][j] = stats["n_steps"]
    rec["divergent"][j] = stats["diverging"]


def sample_posterior(net, *args, **kwargs) -> SampledPosterior:
    """Draws of the weights from the posterior by dynamic HMC (NUTS). Two
    call forms, as :func:`laplace`::

        sample_posterior(net, X, T, w_map, loss="sse", alpha=None, beta=None, ...)
        sample_posterior(objective, w_map, alpha=None, beta=None, ...)

    The second takes the network, the data and the loss from an objective
    (:class:`sopt.Objective`, :class:`sopt.distributed.ShardedObjective`);
    its own weight decay is ignored (E_D comes from ``with_alpha(0)``).

    Parameters
    ----------
    w_map : (W,) the mode the chains start near (the evidence fit's w).
    alpha : prior precision, a number or (W,) (as :func:`laplace`); with a
        hyperprior, the start of the per-group precisions (group means of it).
        May be left out when ``posterior`` is given (its alpha is taken).
    beta : noise precision (regression: fixed, or the start with a hyperprior).
    n_draws, n_warmup, n_chains : recorded iterations per chain (at least
        4, for the split R-hat), warm-up iterations (adaptation; discarded),
        chains.
    n_jobs : processes the chains run in (forked, one BLAS thread each);
        None: one per chain up to the CPUs available on Linux (in turn
        elsewhere, and in a process running other threads); 1: in turn, in
        this process. The draws are the same for any n_jobs (each chain has its
        own generator spawned from ``seed``).
    metric : "laplace" (dense: the Laplace precision A at w_map, its
        Cholesky factor reused), "diagonal" (diag A: for large W; from
        ``posterior`` if given, else Becker and Le Cun's O(N W)
        approximation of the data Hessian's diagonal, clipped at 0, plus
        alpha) or "identity".
    adapt_metric : rescale the metric's coordinates by the spread the chain
        shows during the warm-up (a diagonal correction of the whitened
        coordinates; needs n_warmup >= 67 to act).
    seed : seed of the generators (one per chain, spawned from it) that
        drive starts, momenta and draws.
    target_accept : in (0, 1), the mean acceptance statistic the step size
        is adapted to (raise it when there are divergences).
    hyperprior : None (alpha, beta fixed), "gamma" (Gamma(1, 1e-3), shape
        and rate, on every alpha_g and on beta), or a pair (a, b).
    groups : "single", "layers" or "inputs" (:func:`weight_groups`): one
        alpha per group under a hyperprior.
    hyper_update : under a hyperprior, "joint" (default: HMC on the weights
        and ln alpha, ln beta together, w = z / alpha^(kappa / 2) with
        kappa_g = 1 - gamma_g / W_g or 1, whichever moves ln alpha further
        per gradient in the warm-up, and a centred Gibbs draw of alpha and
        beta after each transition), "gibbs" (Neal's alternation: HMC on w
        given alpha, beta, then a Gibbs draw of them) or "marginal" (HMC on
        w with alpha and beta integrated out analytically, drawn afterwards
        from their conditionals). On wine (linear softmax, Gamma(1, 1e-3),
        2 x 1000 draws) the held-out probabilities' smallest bulk ESS was
        883 joint, 25 gibbs, 44 marginal (``experiments/bench_sampling.py
        --hyper-update``).
    posterior : a :class:`LaplacePosterior` at w_map to take the metric and
        the start's scale from (else built by :func:`laplace` with
        ``hessian``, negative curvature clipped).
    max_tree_depth : at most 2^depth - 1 leapfrog steps per transition.
    jitter : the chains start at w_map + jitter times a Laplace draw.
    progress : print progress to stderr.

    Returns
    -------
    SampledPosterior ; a :class:`SamplingWarning` if R-hat >= 1.01, the bulk
    ESS < 100 per chain, or any transition diverged.

    Cost: per iteration about 2^tree_depth gradients, O(N W) each (the
    Laplace metric adds O(W^2) per step); memory O(W^2) for the metric
    plus M S W doubles for the draws.
    """
    return in_either_form(net, args, kwargs, _sample_data, _sample_objective)


def _sample_data(net: Network, X, T, w_map, loss="sse", **kwargs):
    loss = likelihood_loss(loss)
    return _sample(net, Objective(net, X, T, loss=loss), w_map, **kwargs)


def _sample_objective(objective, w_map, **kwargs):
    return _sample(objective.net, objective.with_alpha(0.0), w_map, **kwargs)


def _options(n_draws, n_warmup, n_chains, target_accept, max_tree_depth, jitter,
             progress, metric, adapt_metric) -> dict:
    check_choice(metric, "metric", METRICS)
    # split R-hat halves each chain, and each half needs two draws
    return {"n_draws": check_int(n_draws, "n_draws", low=MIN_DRAWS),
            "n_warmup": check_int(n_warmup, "n_warmup", low=0),
            "n_chains": check_positive_int(n_chains, "n_chains"),
            "target_accept": check_real(target_accept, "target_accept", 0.0, 1.0,
                                        low_open=True, high_open=True),
            "max_tree_depth": check_positive_int(max_tree_depth, "max_tree_depth"),
            "jitter": check_real(jitter, "jitter", 0.0),
            "progress": check_bool(progress, "progress"), "metric": metric,
            "adapt_metric": check_bool(adapt_metric, "adapt_metric")}


def _hyperprior(hyperprior) -> tuple[float, float] | None:
    """(shape, rate) of the Gamma hyperprior, or None."""
    if hyperprior is None:
        return None
    if isinstance(hyperprior, str):
        check_choice(hyperprior, "hyperprior", ("gamma",))
        return DEFAULT_HYPERPRIOR
    if not (isinstance(hyperprior, tuple) and len(hyperprior) == 2):
        raise TypeError(f"hyperprior: expected None, 'gamma' or a pair (shape, rate) "
                        f"of a Gamma prior, got {hyperprior!r}")
    return (check_positive(hyperprior[0], "hyperprior shape"),
            check_positive(hyperprior[1], "hyperprior rate"))


def _precisions(loss: Loss, alpha, beta, posterior, n_weights: int):
    """alpha (W,) and beta, checked; taken from ``posterior`` when left out."""
    if posterior is not None and not isinstance(posterior, LaplacePosterior):
        raise TypeError(f"posterior: expected a LaplacePosterior, got "
                        f"{type(posterior).__name__}")
    if alpha is None:
        if posterior is None:
            raise ValueError("alpha: give the prior precision (or a posterior)")
        alpha = posterior.alpha
    alpha = np.broadcast_to(check_alpha(alpha, n_weights, positive=True),
                            (n_weights,)).astype(float)
    if loss.noise_precision:
        if beta is None and posterior is not None:
            beta = posterior.beta
        if beta is None:
            raise ValueError("beta: regression (loss='sse') needs the noise precision beta")
        return alpha, check_positive(beta, "beta")
    if beta is not None:
        raise ValueError("beta: only regression (loss='sse') has a noise precision")
    return alpha, None


def _sample(net: Network, data, w_map, *, alpha=None, beta=None, n_draws=1000,
            n_warmup=500, n_chains=2, metric="laplace", adapt_metric=True, seed=0,
            target_accept=0.8, hyperprior=None, groups="single", posterior=None,
            max_tree_depth=10, jitter=0.1, hessian="exact", hyper_update="joint",
            progress=False, n_jobs=None) -> SampledPosterior:
    """Check everything, then build the metric, run the chains in turn and
    gather them (``data``: E_D as an objective without weight decay)."""
    loss = likelihood_loss(data.loss)
    if loss.likelihood == "gaussian" and not loss.noise_precision:
        raise ValueError(f"loss: {loss.name!r} is Gaussian without a noise "
                         "precision; sampling needs one (noise_precision=True)")
    _check_predictive_output(net, loss)
    opts = _options(n_draws, n_warmup, n_chains, target_accept, max_tree_depth,
                    jitter, progress, metric, adapt_metric)
    prior = _hyperprior(hyperprior)
    check_choice(hyper_update, "hyper_update", HYPER_UPDATES)
    w_map = check_weights(w_map, net.n_weights, "w_map").copy()
    alpha, beta = _precisions(loss, alpha, beta, posterior, net.n_weights)
    group_index, names = weight_groups(net, groups)
    used = np.flatnonzero(net.used_weight_mask())
    opts.update(beta=beta, n_groups=len(names))
    n_jobs = _n_jobs(n_jobs, opts["n_chains"])
    start = time.perf_counter()
    post, opts["curvature"] = _curvature(data, w_map, used, alpha, beta, metric,
                                         posterior, hessian)
    hyper = None
    if prior is not None:
        n_data = data.n_patterns * net.n_outputs if beta is not None else None
        hyper = Hyperprior(group_index[used], len(names), *prior, n_data)
    chains = []
    # one generator per chain, spawned from the seed: a chain's draws do
    # not depend on the order the chains run in, or on the process
    for c, rng in enumerate(_chain_generators(seed, opts["n_chains"])):
        whitened = _whitened_target(opts["curvature"], data, w_map, used, alpha,
                                    beta, hyper, hyper_update, post)
        x0 = opts["jitter"] * rng.standard_normal(len(whitened.q0))
        _check_start(whitened, x0)
        chains.append((whitened, x0, rng, dict(opts, label=f"chain {c + 1}/{opts['n_chains']}")))
    records = run_chains(chains, n_jobs)
    out = SampledPosterior(net, loss.name, w_map, used, _gather(records, hyper is not None),
                           names, alpha, hyper is not None, time.perf_counter() - start)
    warn_if_unconverged(out, stacklevel=6)     # the caller of sample_posterior
    return out


def _chain_generators(seed, n_chains: int) -> list:
    """One generator per chain, spawned from ``seed`` (None, an integer or
    a Generator, from which one integer is drawn)."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_chains)]


def _n_jobs(n_jobs, n_chains: int) -> int:
    """Processes to run the chains in: ``n_jobs``, or (None) one per chain
    up to the CPUs this process may use; 1 where processes cannot be
    forked. None also means 1 off Linux (macOS's system libraries are not
    fork-safe) and inside a process running other threads (a fork copies
    only the calling thread, and a lock another thread holds stays locked
    in the child: a worker of a threaded pool or a Dask worker samples in
    turn)."""
    if n_jobs is None:
        if threading.active_count() > 1 or not sys.platform.startswith("linux"):
            return 1
        n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    else:
        n_jobs = check_positive_int(n_jobs, "n_jobs")
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(n_jobs, n_chains))


# The chains a forked worker runs, set by run_chains before the pool
# forks: the workers inherit them (no pickling of targets and metrics);
# and the queue their progress lines go to (the parent's stderr may be a
# notebook's or a test's capture, which a child cannot write to).
_FORKED_CHAINS: list = []
_PROGRESS_QUEUE = None


def _run_forked_chain(c: int) -> dict:
    whitened, x0, rng, opts = _FORKED_CHAINS[c]
    with one_thread_per_process():          # one core per chain
        return _run_chain(whitened, x0, rng, opts)


def run_chains(chains: list, n_jobs: int) -> list:
    """The records of the chains (whitened target, start, generator,
    options), run in turn (``n_jobs`` 1) or in ``n_jobs`` forked processes
    on one BLAS thread each. Each chain owns its generator, so the draws
    are the same either way. Costs a fork per worker and the records'
    transfer back (S W doubles per chain)."""
    global _FORKED_CHAINS, _PROGRESS_QUEUE
    if n_jobs == 1 or len(chains) == 1:
        return [_run_chain(*chain) for chain in chains]
    context = multiprocessing.get_context("fork")
    _FORKED_CHAINS, _PROGRESS_QUEUE = chains, context.SimpleQueue()
    try:
        with context.Pool(n_jobs) as pool:
            result = pool.map_async(_run_forked_chain, range(len(chains)), chunksize=1)
            while not result.ready():
                result.wait(0.05)
                _print_progress(_PROGRESS_QUEUE)
            _print_progress(_PROGRESS_QUEUE)
            return result.get()
    finally:
        _FORKED_CHAINS, _PROGRESS_QUEUE = [], None


def _print_progress(queue) -> None:
    """The workers' progress lines so far, to this process's stderr."""
    while not queue.empty():
        print(queue.get(), file=sys.stderr, flush=True)


def _curvature(data, w_map: Array, used: Array, alpha: Array, beta, metric: str,
               posterior, hessian: str):
    """(LaplacePosterior or None, :class:`_Curvature`): the data Hessian on
    the weights in use read off the posterior's precision (built by
    :func:`laplace` for the Laplace metric when not given: O(N W^2) +
    W^3 / 3), else Becker and Le Cun's O(N W) diagonal, clipped at 0."""
    if metric == "identity":
        return posterior, _Curvature(metric, None, None)
    if posterior is None and metric == "laplace":
        posterior = laplace(data, w_map, alpha=alpha, beta=beta, hessian=hessian,
                            clip_negative=True)
    if posterior is None:
        return None, _Curvature(metric, None,
                                np.maximum(data.hessian_diagonal(w_map)[used], 0.0))
    if posterior.precision.shape != (len(used), len(used)):
        raise ValueError(f"posterior: its precision is {posterior.precision.shape}, "
                         f"the network has {len(used)} weights in use")
    scale = 1.0 if posterior.beta is None else posterior.beta
    H = posterior.precision.copy()
    H[np.diag_indices_from(H)] -= posterior.alpha[used]
    H /= scale
    return posterior, _Curvature(metric, H if metric == "laplace" else None,
                                 np.diag(H).copy())


def _check_start(whitened: Whitened, x0: Array) -> None:
    """ValueError unless the log posterior is finite at w_map and at the
    chain's jittered start (HMC cannot move from an infinite energy)."""
    for x, name in ((np.zeros_like(x0), "w_map"), (x0, "jitter")):
        value = whitened.target.value(whitened.to_q(x))
        if not np.isfinite(value):
            raise ValueError(f"{name}: the log posterior is not finite at the "
                             f"{'start w_map' if name == 'w_map' else 'jittered start'} "
                             f"(-ln p = {value}); "
                             + ("train to w_MAP first" if name == "w_map"
                                else "lower jitter"))


def _gather(records: list, hierarchical: bool) -> dict:
    """The chains' records stacked: (M, S, ...) arrays, step_size (M,)."""
    out = {key: np.stack([r[key] for r in records])
           for key in ("draws", "log_density", "accept_stat", "tree_depth",
                       "n_steps", "divergent", "alpha")}
    out["beta"] = (None if records[0]["beta"] is None
                   else np.stack([r["beta"] for r in records]))
    out["step_size"] = np.array([r["step_size"] for r in records])
    if not hierarchical:
        out["alpha"] = None
    out["n_gradients"] = sum(r["n_gradients"] for r in records)
    return out
