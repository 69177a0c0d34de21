"""Posterior sampling of the weights by dynamic Hamiltonian Monte Carlo on
sopt's exact gradient (Neal 2011, "MCMC using Hamiltonian dynamics";
Hoffman and Gelman 2014, the No-U-Turn sampler; Betancourt 2017, "A
conceptual introduction to Hamiltonian Monte Carlo", multinomial sampling
from the trajectory).

The target is the posterior over the weights in use,

    -ln p(w | D, alpha, beta) = beta E_D(w) + 1/2 sum_i alpha_i w_i^2 + const

(beta = 1 for the cross-entropy errors), whose gradient is one backward pass,
O(N W). The transitions are mici's (``DynamicMultinomialHMC``: Stan's NUTS
without its adaptation), driven one iteration at a time here so that
hierarchical priors can put a Gibbs step for the hyperparameters between two
HMC transitions (Neal 1996, "Bayesian Learning for Neural Networks", sec.
3.2): with alpha_g ~ Gamma(a, b) (shape, rate) per weight group and, for
regression, beta ~ Gamma(a, b),

    alpha_g | w ~ Gamma(a + W_g / 2, b + |w_g|^2 / 2)
    beta | w    ~ Gamma(a + N K / 2, b + E_D(w)).

The metric (mass matrix) is the Laplace precision A at w_MAP, so that the
momentum p ~ N(0, A) and the velocity A^{-1} p match the posterior's scales
and correlations to second order: for a Gaussian posterior with covariance
A^{-1} the dynamics are then those of an isotropic one (Neal 2011 sec. 4.1).
Its Cholesky factor is the one :func:`laplace` already computed. mici is an
optional dependency (``pip install sopt-backprop[sampling]``), imported here
on first use.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from scipy.linalg import solve_triangular

from .._validation import (check_alpha, check_bool, check_choice, check_int,
                           check_positive, check_positive_int, check_real,
                           check_weights)
from ..losses import Loss
from ..network import Network
from ..objective import Objective
from ._evidence import weight_groups
from ._posterior import (LaplacePosterior, _check_predictive_output, in_either_form,
                         laplace, likelihood_loss)
from ._sampled import SampledPosterior, warn_if_unconverged

Array = np.ndarray
METRICS = ("laplace", "diagonal", "identity")
#: The fewest draws per chain the diagnostics can be computed from.
MIN_DRAWS = 4
# Gamma(1e-3, 1e-3) on each precision: mean 1, and nearly the scale-free
# 1/alpha on the scales of interest (1e-3 << alpha << 1e3), as in Neal
# (1996) and BUGS's examples; the conditionals stay proper (shape
# a + W_g / 2 > 0) for any data.
DEFAULT_HYPERPRIOR = (1e-3, 1e-3)


def _import_mici():
    try:
        import mici
    except ImportError:
        raise ImportError("sample_posterior needs mici: pip install "
                          "'sopt-backprop[sampling]' (or pip install mici)") from None
    return mici


class _Target:
    """The negative log posterior of the weights in use under the current
    hyperparameters (which the Gibbs step changes in place).

    ``data`` is E_D as an objective without weight decay; its kept evaluation
    makes value then gradient at one w a single forward pass."""

    def __init__(self, data, w_map: Array, used: Array, alpha: Array, beta):
        self.data, self.used = data, used
        self.w = w_map.copy()             # full layout, masked entries fixed
        self.alpha = np.array(alpha, dtype=float)          # (W_used,)
        self.beta = beta
        self.n_gradients = 0

    def full(self, u: Array) -> Array:
        self.w[self.used] = u
        return self.w

    def data_error(self, u: Array) -> float:
        return float(self.data.value(self.full(u)))

    def neg_log_dens(self, u: Array) -> float:
        scale = 1.0 if self.beta is None else self.beta
        return scale * self.data_error(u) + 0.5 * float(np.sum(self.alpha * u * u))

    def grad_and_value(self, u: Array):
        """(gradient, value): mici takes both from one call."""
        w = self.full(u)
        scale = 1.0 if self.beta is None else self.beta
        value = scale * float(self.data.value(w)) + 0.5 * float(np.sum(self.alpha * u * u))
        grad = scale * self.data.gradient(w)[self.used] + self.alpha * u
        self.n_gradients += 1
        return grad, value


class _Hyper:
    """Conjugate Gibbs updates of the prior precisions (one per group) and of
    the noise precision (regression), Neal (1996)."""

    def __init__(self, groups: Array, n_groups: int, shape: float, rate: float,
                 n_data: int | None):
        self.groups, self.n_groups = groups, n_groups       # groups: (W_used,)
        self.shape, self.rate = shape, rate
        self.counts = np.bincount(groups, minlength=n_groups)
        self.n_data = n_data                                 # N K, or None

    def draw(self, target: _Target, u: Array, rng) -> tuple[Array, float | None]:
        """New alpha_g (G,) and beta given u; written into ``target``."""
        ww = np.bincount(self.groups, weights=u * u, minlength=self.n_groups)
        # numpy's gamma takes the scale, 1 / rate
        alpha_g = rng.gamma(self.shape + 0.5 * self.counts,
                            1.0 / (self.rate + 0.5 * ww))
        target.alpha = alpha_g[self.groups]
        if self.n_data is not None:
            target.beta = float(rng.gamma(self.shape + 0.5 * self.n_data,
                                          1.0 / (self.rate + target.data_error(u))))
        return alpha_g, target.beta

    def log_density(self, alpha_g: Array, beta) -> float:
        """ln p(alpha, beta) under the Gamma(a, b) priors plus the
        normalisers (W_g / 2) ln alpha_g and (N K / 2) ln beta of the
        Gaussian prior and likelihood: with -U(w | alpha, beta) it makes the
        joint log density whose trace the diagnostics read."""
        a, b = self.shape, self.rate
        out = float(np.sum((a - 1 + 0.5 * self.counts) * np.log(alpha_g) - b * alpha_g))
        if beta is not None:
            out += (a - 1 + 0.5 * self.n_data) * np.log(beta) - b * beta
        return out



class _CollapsedTarget(_Target):
    """The posterior of w with the hyperparameters integrated out
    analytically: for alpha_g ~ Gamma(a, b) the prior of w_g is the
    multivariate Student-t int N(w_g | 0, I / alpha_g) Gamma(alpha_g | a, b)
    d alpha_g, proportional to (b + |w_g|^2 / 2)^-(a + W_g / 2); for beta ~
    Gamma(a, b) the likelihood becomes (b + E_D)^-(a + N K / 2) (Neal 1996,
    sec. 3.2, notes the same integrals). HMC then moves w without waiting
    for Gibbs steps, whose alternation mixes slowly when |w|^2 and alpha are
    tightly coupled; alpha and beta are drawn afterwards from their Gamma
    conditionals given each draw of w, which makes exact joint draws."""

    def __init__(self, data, w_map: Array, used: Array, hyper: "_Hyper"):
        super().__init__(data, w_map, used, np.ones(len(used)), None)
        self.hyper = hyper
        self.regression = hyper.n_data is not None

    def _parts(self, u: Array):
        """(U, dU/dE_D, dU/du of the prior term)."""
        h = self.hyper
        ww = np.bincount(h.groups, weights=u * u, minlength=h.n_groups)
        c = h.shape + 0.5 * h.counts                         # (G,)
        prior = float(np.sum(c * np.log(h.rate + 0.5 * ww)))
        prior_grad = (c / (h.rate + 0.5 * ww))[h.groups] * u
        e_d = float(self.data.value(self.full(u)))
        if not self.regression:
            return e_d + prior, 1.0, prior_grad
        c_beta = h.shape + 0.5 * h.n_data
        return (c_beta * np.log(h.rate + e_d) + prior, c_beta / (h.rate + e_d),
                prior_grad)

    def neg_log_dens(self, u: Array) -> float:
        return self._parts(u)[0]

    def grad_and_value(self, u: Array):
        value, d_data, prior_grad = self._parts(u)
        grad = d_data * self.data.gradient(self.w)[self.used] + prior_grad
        self.n_gradients += 1
        return grad, value


def _metric(mici, kind: str, post: LaplacePosterior | None, diagonal: Array):
    """mici's matrix for the metric: the Laplace precision from its Cholesky
    factor (no second factorisation), its diagonal, or the identity."""
    if kind == "laplace":
        L = np.tril(post._factor[0])     # cho_factor leaves junk above the diagonal
        return mici.matrices.TriangularFactoredPositiveDefiniteMatrix(L, factor_is_lower=True)
    if kind == "diagonal":
        return mici.matrices.PositiveDiagonalMatrix(diagonal)
    return mici.matrices.IdentityMatrix(len(diagonal))


def _starts(u_map: Array, post, diagonal: Array, n_chains: int, jitter: float,
            rng) -> list[Array]:
    """w_MAP plus jitter times a draw from the Laplace posterior (or from
    N(0, diag(A)^{-1}) without its factor): chains start apart, inside the
    posterior's bulk, so that R-hat can see whether they forget the start."""
    out = []
    for _ in range(n_chains):
        e = rng.standard_normal(len(u_map))
        if post is not None:
            step = solve_triangular(post._factor[0], e, lower=True, trans="T")
        else:
            step = e / np.sqrt(diagonal)
        out.append(u_map + jitter * step)
    return out


def _run_chain(mici, target: _Target, hyper: _Hyper | None, metric, u0: Array,
               rng, opts: dict, label: str) -> dict:
    """One chain: n_warmup iterations adapting the step size by dual
    averaging (Hoffman and Gelman 2014, alg. 5; mici's adapter), then n_draws
    recorded ones. An iteration is a momentum refresh and a multinomial
    dynamic HMC transition of w given the hyperparameters, then (with a
    hyperprior) a Gibbs draw of the hyperparameters given w."""
    system = mici.systems.EuclideanMetricSystem(
        neg_log_dens=target.neg_log_dens, grad_neg_log_dens=target.grad_and_value,
        metric=metric)
    integrator = mici.integrators.LeapfrogIntegrator(system)
    sampler = mici.samplers.DynamicMultinomialHMC(
        system, integrator, rng, max_tree_depth=opts["max_tree_depth"])
    momentum = sampler.transitions["momentum_transition"]
    move = sampler.transitions["integration_transition"]
    adapter = mici.adapters.DualAveragingStepSizeAdapter(
        adapt_stat_target=opts["target_accept"])
    state = mici.states.ChainState(pos=u0, mom=None, dir=1)
    state.mom = system.sample_momentum(state, rng)
    adapt_state = adapter.initialize(state, move)
    n_warmup, n_draws = opts["n_warmup"], opts["n_draws"]
    collapsed = isinstance(target, _CollapsedTarget)
    rec = _empty_record(n_draws, len(u0), hyper, opts["beta"])
    for i in range(n_warmup + n_draws):
        state, _ = momentum.sample(state, rng)
        state, stats = move.sample(state, rng)
        hyper_now = None
        if hyper is not None:
            hyper_now = hyper.draw(target, state.pos, rng)
            if not collapsed:
                # mici caches U(w) in the state: a new state forgets the
                # value computed under the old hyperparameters
                state = mici.states.ChainState(pos=state.pos, mom=None, dir=1)
        if i < n_warmup:
            adapter.update(adapt_state, state, stats, move)
            if i == n_warmup - 1:
                adapter.finalize(adapt_state, state, move, rng)
        else:
            # U(w) under the hyperparameters now in force, cached in the state
            # for the next transition
            _store(rec, i - n_warmup, system.neg_log_dens(state),
                   None if collapsed else hyper, hyper_now, state, stats)
        if opts["progress"] and (i + 1) % max(1, (n_warmup + n_draws) // 10) == 0:
            print(f"  {label}: iteration {i + 1}/{n_warmup + n_draws}, step size "
                  f"{integrator.step_size:.3g}", file=sys.stderr, flush=True)
    rec["step_size"] = integrator.step_size
    return rec


def _empty_record(n_draws: int, n_used: int, hyper, beta) -> dict:
    """Arrays for one chain's recorded iterations; alpha and beta are
    filled in here when fixed (no hyperprior)."""
    n_groups = 1 if hyper is None else hyper.n_groups
    rec = {"draws": np.empty((n_draws, n_used)), "log_density": np.empty(n_draws),
           "alpha": np.empty((n_draws, n_groups)),
           "beta": None if beta is None else np.full(n_draws, float(beta))}
    for key, dtype in (("accept_stat", float), ("tree_depth", int),
                       ("n_steps", int), ("divergent", bool)):
        rec[key] = np.empty(n_draws, dtype=dtype)
    return rec


def _store(rec: dict, j: int, neg_log_dens: float, hyper, hyper_now, state,
           stats) -> None:
    rec["draws"][j] = state.pos
    log_density = -float(neg_log_dens)
    if hyper is not None:
        alpha_g, beta = hyper_now
        log_density += hyper.log_density(alpha_g, beta)
        rec["alpha"][j] = alpha_g
        if rec["beta"] is not None:
            rec["beta"][j] = beta
    rec["log_density"][j] = log_density
    if hyper is None and hyper_now is not None:      # collapsed: U is marginal
        rec["alpha"][j], beta = hyper_now
        if rec["beta"] is not None:
            rec["beta"][j] = beta
    rec["accept_stat"][j] = stats["accept_stat"]
    rec["tree_depth"][j] = stats["tree_depth"]
    rec["n_steps"][j] = stats["n_step"]
    rec["divergent"][j] = stats["diverging"]


def sample_posterior(net, *args, **kwargs) -> SampledPosterior:
    """Draws of the weights from the posterior by dynamic HMC. Two call
    forms, as :func:`laplace`::

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
        4, for the split R-hat), warm-up
        iterations (step-size adaptation; discarded), chains (run in turn).
    metric : "laplace" (dense: the Laplace precision A at w_map, its
        Cholesky factor reused), "diagonal" (diag A: for large W; from
        ``posterior`` if given, else Becker and Le Cun's O(N W)
        approximation of the data Hessian's diagonal, clipped at 0, plus
        alpha) or "identity".
    seed : seed of the one generator that drives starts, momenta and draws.
    target_accept : in (0, 1), the mean acceptance statistic the step size
        is adapted to (raise it when there are divergences).
    hyperprior : None (alpha, beta fixed), "gamma" (Gamma(1e-3, 1e-3),
        shape and rate, on every alpha_g and on beta), or a pair (a, b).
    groups : "single", "layers" or "inputs" (:func:`weight_groups`): one
        alpha per group under a hyperprior.
    hyper_update : under a hyperprior, "marginal" (default: HMC on w with
        alpha and beta integrated out analytically, then alpha, beta drawn
        from their Gamma conditionals at every draw of w) or "gibbs" (Neal's
        alternation: HMC on w given alpha, beta, then a Gibbs draw of them).
        On wine with Gamma(1e-3, 1e-3), "gibbs" gave the right predictive
        but mixed badly (2 x 1000 draws: R-hat 1.36, ESS 5, ~155 leapfrog
        steps per iteration): under the vague prior alpha and |w|^2 are
        tightly coupled and the alternation moves them slowly.
    posterior : a :class:`LaplacePosterior` at w_map to take the metric and
        the start's scale from (else built by :func:`laplace` with
        ``hessian``, negative curvature clipped).
    max_tree_depth : at most 2^depth leapfrog steps per transition.
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
             progress, metric) -> dict:
    check_choice(metric, "metric", METRICS)
    # split R-hat halves each chain, and each half needs two draws
    return {"n_draws": check_int(n_draws, "n_draws", low=MIN_DRAWS),
            "n_warmup": check_int(n_warmup, "n_warmup", low=0),
            "n_chains": check_positive_int(n_chains, "n_chains"),
            "target_accept": check_real(target_accept, "target_accept", 0.0, 1.0,
                                        low_open=True, high_open=True),
            "max_tree_depth": check_positive_int(max_tree_depth, "max_tree_depth"),
            "jitter": check_real(jitter, "jitter", 0.0),
            "progress": check_bool(progress, "progress"), "metric": metric}


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
            n_warmup=500, n_chains=2, metric="laplace", seed=0, target_accept=0.8,
            hyperprior=None, groups="single", posterior=None, max_tree_depth=10,
            jitter=0.1, hessian="exact", hyper_update="marginal",
            progress=False) -> SampledPosterior:
    """Check everything, then build the metric, run the chains in turn and
    gather them (``data``: E_D as an objective without weight decay)."""
    loss = likelihood_loss(data.loss)
    if loss.likelihood == "gaussian" and not loss.noise_precision:
        raise ValueError(f"loss: {loss.name!r} is Gaussian without a noise "
                         "precision; sampling needs one (noise_precision=True)")
    _check_predictive_output(net, loss)
    opts = _options(n_draws, n_warmup, n_chains, target_accept, max_tree_depth,
                    jitter, progress, metric)
    prior = _hyperprior(hyperprior)
    check_choice(hyper_update, "hyper_update", ("marginal", "gibbs"))
    w_map = check_weights(w_map, net.n_weights, "w_map").copy()
    alpha, beta = _precisions(loss, alpha, beta, posterior, net.n_weights)
    opts["beta"] = beta
    group_index, names = weight_groups(net, groups)
    used = np.flatnonzero(net.used_weight_mask())
    mici = _import_mici()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    post, diagonal = _curvature(data, w_map, used, alpha, beta, metric,
                                posterior, hessian)
    mici_metric = _metric(mici, metric, post, diagonal)
    hyper = None
    if prior is not None:
        n_data = data.n_patterns * net.n_outputs if beta is not None else None
        hyper = _Hyper(group_index[used], len(names), *prior, n_data)
    starts = _starts(w_map[used], post, diagonal, opts["n_chains"],
                     opts["jitter"], rng)
    records, n_gradients = [], 0
    for c, u0 in enumerate(starts):
        target = (_CollapsedTarget(data, w_map, used, hyper)
                  if hyper is not None and hyper_update == "marginal"
                  else _Target(data, w_map, used, alpha[used], beta))
        _check_start(target, w_map[used], u0)
        records.append(_run_chain(mici, target, hyper, mici_metric, u0, rng,
                                  opts, f"chain {c + 1}/{len(starts)}"))
        n_gradients += target.n_gradients
    gathered = _gather(records, hyper is not None, n_gradients)
    out = SampledPosterior(net, loss.name, w_map, used, gathered, names, alpha,
                           hyper is not None, time.perf_counter() - start)
    warn_if_unconverged(out, stacklevel=6)     # the caller of sample_posterior
    return out


def _curvature(data, w_map: Array, used: Array, alpha: Array, beta, metric: str,
               posterior, hessian: str):
    """(LaplacePosterior or None, diag A on the weights in use). The dense
    posterior is built only for the Laplace metric (O(N W^2) + W^3 / 3)."""
    if posterior is None and metric == "laplace":
        posterior = laplace(data, w_map, alpha=alpha, beta=beta, hessian=hessian,
                            clip_negative=True)
    if posterior is not None:
        if posterior.precision.shape != (len(used), len(used)):
            raise ValueError(f"posterior: its precision is {posterior.precision.shape}, "
                             f"the network has {len(used)} weights in use")
        return posterior, np.diag(posterior.precision).copy()
    scale = 1.0 if beta is None else beta
    h = np.maximum(data.hessian_diagonal(w_map)[used], 0.0)
    return None, scale * h + alpha[used]


def _check_start(target: _Target, u_map: Array, u0: Array) -> None:
    """ValueError unless the log posterior is finite at w_map and at the
    chain's jittered start (HMC cannot move from an infinite energy)."""
    for u, name in ((u_map, "w_map"), (u0, "jitter")):
        value = target.neg_log_dens(u)
        if not np.isfinite(value):
            raise ValueError(f"{name}: the log posterior is not finite at the "
                             f"{'start w_map' if name == 'w_map' else 'jittered start'} "
                             f"(-ln p = {value}); "
                             + ("train to w_MAP first" if name == "w_map"
                                else "lower jitter"))


def _gather(records: list, hierarchical: bool, n_gradients: int) -> dict:
    """The chains' records stacked: (M, S, ...) arrays, step_size (M,)."""
    out = {key: np.stack([r[key] for r in records])
           for key in ("draws", "log_density", "accept_stat", "tree_depth",
                       "n_steps", "divergent", "alpha")}
    out["beta"] = (None if records[0]["beta"] is None
                   else np.stack([r["beta"] for r in records]))
    out["step_size"] = np.array([r["step_size"] for r in records])
    if not hierarchical:
        out["alpha"] = None
    out["n_gradients"] = n_gradients
    return out
