"""MacKay's evidence framework: alternate training w_MAP with re-estimating
the hyperparameters from the Laplace posterior (PRML sec. 5.7.2).

    gamma = sum_i lambda_i / (alpha + lambda_i)           (eq. 5.179)
    alpha = gamma / w^T w                                  (eq. 5.178)
    1/beta = sum_n |y_n - t_n|^2 / (N K - gamma)           (eq. 5.180)

With weight groups (MacKay 1992; Netlab's ``mlpprior``) each group g has its
own alpha_g = gamma_g / |w_g|^2, gamma_g = W_g - alpha_g tr_g(A^{-1}).
A loss with a noise precision (regression: sse) trains beta E_D +
alpha/2 |w|^2, i.e. an Objective with decay alpha / beta, and has beta
re-estimated; any other (classification) trains E_D + alpha/2 |w|^2. Which
is which is read from the loss's ``noise_precision`` field.

Small data and noise-free data. Eq. 5.180 is the fixed-point form of the
stationarity condition of the evidence in beta, N K - gamma(beta) =
2 beta E_D, where gamma(beta) = sum_i beta nu_i / (1 + beta nu_i) grows with
beta (nu_i the eigenvalues of alpha^{-1/2} H alpha^{-1/2}, clipped at 0).
With the exact Hessian on a few data points gamma can exceed N K (the
residual term of H has rank beyond N K) and the fixed-point step would give
beta <= 0; the condition itself always has one root in beta > 0 when
E_D > 0, since its left side falls from N K at beta = 0. Then the new beta
is that root (at the current w and alpha), found by bracketing. When E_D is
zero (or the root lies beyond it) beta is capped at :data:`BETA_MAX` over the
targets' mean square, and alpha at :data:`ALPHA_MAX`: an interpolating fit,
or weights at zero, would otherwise drive them to infinity.

Fewer cycles. The plain re-estimation converges linearly (each cycle
shrinks the distance to the fixed point by 0.4-0.5 on the bench sets), and
stopping once a cycle changes alpha and beta by less than tol left them
about tol / (1 - rate) from it. Near the fixed point the cycles move to the
secant (Anderson(1)) extrapolation of the last two re-estimates instead
(:class:`_Secant`), and once settled a few polish cycles go on until a
cycle changes them by less than POLISH * tol: the same fixed point, nearer
(within 1e-6 of it on the bench sets) and in fewer cycles. For a linear
model on a canonical pair (convex, one w_MAP and one fixed point whatever
the path) the training of a cycle stops at EARLY_GTOL_REL * min(1, last
change) of its starting gradient, the last cycle at gtol.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.optimize import brentq

from ..losses import Loss, closed_form_of
from ..network import Network
from ..objective import Objective
from ..optimize import ConvergenceWarning, check_method_options, minimize
from .._validation import (as_float_array, check_bool, check_choice, check_nonnegative,
                           check_positive, check_positive_int, check_weights)
from ._posterior import (NEWTON_DECREMENT_WARN, LaplacePosterior,
                         NotAtMinimumWarning, _not_at_minimum_message,
                         check_beta, in_either_form, laplace, likelihood_loss)

Array = np.ndarray
GROUPINGS = ("single", "layers", "inputs")
# Caps of the re-estimates (not from the literature: guards). A noise
# variance below 1e-12 of the targets' mean square (noise std 1e-6 of their
# RMS) and a prior std below 1e-6 (a weight pruned to zero) are as good as
# exact; the precision A = alpha I + beta H stays well inside float64.
BETA_MAX = 1e12
ALPHA_MAX = 1e12
#: After the loop settles (changes below tol), polish cycles go on until alpha
#: and beta change by less than POLISH * tol, at most MAX_POLISH of them.
POLISH = 1e-3
MAX_POLISH = 3
#: The loosest relative gradient threshold of a cycle's training (see _loosened).
EARLY_GTOL_REL = 0.1


class AllPrunedWarning(RuntimeWarning):
    """:func:`evidence_fit` ended with every weight group switched off
    (every alpha at :data:`ALPHA_MAX`) while the targets are not fitted
    exactly: the model says the targets are noise around f(x; w = 0)."""


def weight_groups(net: Network, grouping: str = "single") -> tuple[Array, list[str]]:
    """Group index of every weight, (W,), and the group names.

    "single": one alpha for all. "layers": per layer one group for each
    incoming edge's weights and one for the biases (MacKay 1992; for a
    two-layer MLP this is Netlab's ``mlpprior``: first-layer weights,
    biases, second-layer weights, biases; a skip-layer edge gets its own).
    "inputs": automatic relevance determination, one group per input unit
    holding every weight leaving it (MacKay 1995; Neal 1996), the other
    weights grouped as for "layers".
    """
    check_choice(grouping, "groups", GROUPINGS)
    index = np.zeros(net.n_weights, dtype=int)
    if grouping == "single":
        return index, ["all"]
    names = ([f"input {i + 1}" for i in range(net.n_inputs)]
             if grouping == "inputs" else [])
    for l, layer in enumerate(net.layers, start=1):
        for src, s in zip(layer.sources, layer.weight_slices):
            if grouping == "inputs" and src.index == 0:
                # row-major (fan_out, fan_in): column i is input i
                index[s] = np.tile(np.arange(src.size), layer.size)
                continue
            index[s] = len(names)
            names.append(f"layer {l} weights" if len(layer.sources) == 1
                         else f"layer {l} weights from {_node_name(src)}")
        index[layer.bias_slice] = len(names)
        names.append(f"layer {l} biases")
    return index, names


def _node_name(node) -> str:
    return "the inputs" if node.index == 0 else f"layer {node.index}"


@dataclass
class EvidenceResult:
    """Outcome of :func:`evidence_fit`: the final posterior (with the alpha and
    beta it was trained under), per-group alpha, and the history per cycle."""

    posterior: LaplacePosterior
    w: Array
    alpha: Array
    beta: float | None
    groups: Array
    group_names: list
    n_cycles: int
    converged: bool
    history: dict = field(default_factory=dict)

    @property
    def log_evidence(self) -> float:
        return self.posterior.log_evidence

    @property
    def gamma(self) -> float:
        return self.posterior.gamma

    @property
    def alpha_per_weight(self) -> Array:
        """alpha of each weight's group, (W,): what :func:`laplace` takes."""
        return np.asarray(self.alpha, dtype=float)[self.groups]


def _train(objective, w, alpha_w, beta, method, options):
    """Minimise E_D + (alpha / beta) / 2 |w|^2 (regression; = M(w) / beta
    with M = beta E_D + alpha/2 |w|^2) or E_D + alpha/2 |w|^2, the data term
    that of ``objective`` (its own decay replaced). ``gtol`` is
    on the gradient of M, the log posterior whose Hessian is the Laplace
    precision: for regression it is divided by beta, so a large beta (small
    noise) does not leave w_MAP short of the minimum that laplace() checks."""
    decay = alpha_w / beta if beta is not None else alpha_w
    if beta is not None:
        options = {**options, "gtol": options["gtol"] / beta}
    obj = objective.with_alpha(decay)
    hess = _gauss_newton if gauss_newton_is_exact(objective) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(obj, w, method=method, options=options,
                       hess=None if hess is None else partial(hess, obj))
    return res


def gauss_newton_is_exact(objective) -> bool:
    """Whether the data term's Gauss-Newton matrix is its exact Hessian: a
    network without hidden layers (outputs linear in w before the output
    activation, so the residual term sum_n dE/da_n d2a_n/dw2 vanishes)
    whose loss and output activation are a canonical pair (the output
    curvature d2E/da2 is the Gauss-Newton one; PRML sec. 5.4.2)."""
    net = objective.net
    if len(net.layers) != 1:
        return False
    closed_form = closed_form_of(objective.loss, net.layers[0].activation)
    return closed_form is not None and closed_form.canonical


def _gauss_newton(obj, w) -> Array:
    """The Gauss-Newton matrix of ``obj`` at w, (W, W), weight decay
    included: where it is the exact Hessian, the training's Newton steps
    take it under that name, so the Laplace step at w_MAP finds it in the
    evaluation's cache instead of building it again. Cost O(N W^2), as the
    exact one (digits' linear model, W = 650: 46 against 48 ms; a closed
    form sum_n M_n (x) z_n z_n^T written out took 52 ms)."""
    return obj.hessian(w, "gauss_newton")


def _cycle_once(objective, w, alpha_g, beta, groups, structure, hessian, clip,
                method, options, max_bytes):
    res = _train(objective, w, alpha_g[groups], beta, method, options)
    with warnings.catch_warnings():     # evidence_fit warns once, at the end
        warnings.simplefilter("ignore", NotAtMinimumWarning)
        post = laplace(objective, res.x, alpha=alpha_g[groups], beta=beta,
                       structure=structure, hessian=hessian, clip_negative=clip,
                       max_bytes=max_bytes)
    return res, post


def _group_gamma(post: LaplacePosterior, groups: Array, n_groups: int) -> Array:
    """gamma_g = sum over the group's weights in use of 1 - alpha_i (A^-1)_ii."""
    return np.bincount(groups[post.used], weights=post.gamma_per_weight,
                       minlength=n_groups)


def _beta_max(T) -> float:
    """BETA_MAX / mean(t^2) (BETA_MAX when the targets are all zero)."""
    t2 = np.square(as_float_array(T, "T"))
    return _beta_cap(t2.sum(), t2.size)


def _beta_cap(sum_of_squares, size: int) -> float:
    ms = float(sum_of_squares / max(size, 1))
    return BETA_MAX / ms if np.isfinite(ms) and ms > 0 else BETA_MAX


def _objective_beta_max(objective) -> float:
    """:func:`_beta_max` of an objective's targets: from ``objective.T`` in
    memory, else ``objective.target_sum_of_squares()`` (computed where the
    data are), else BETA_MAX."""
    if hasattr(objective, "T"):
        return _beta_max(objective.T)
    if hasattr(objective, "target_sum_of_squares"):
        return _beta_cap(objective.target_sum_of_squares(),
                         objective.n_patterns * objective.net.n_outputs)
    return BETA_MAX


def _beta_stationary(post: LaplacePosterior, beta_max: float) -> float:
    """The root in (0, beta_max] of N K - gamma(beta) = 2 beta E_D at the
    posterior's w and alpha (the condition behind PRML eq. 5.180); beta_max
    if there is none below it. One eigendecomposition in the posterior's
    structure (dense: W_used^3)."""
    nu = np.maximum(post.curvature.scaled_eigenvalues(post.alpha[post.used]), 0.0)

    def excess(beta):
        return post.n_data - np.sum(beta * nu / (1.0 + beta * nu)) \
            - 2.0 * beta * post.data_error

    if excess(beta_max) >= 0:
        return beta_max
    return brentq(excess, 0.0, beta_max, xtol=1e-300, rtol=1e-12)


def _reestimate(post: LaplacePosterior, groups: Array, gamma_g: Array, beta,
                beta_max: float = BETA_MAX, alpha_g: Array | None = None):
    """alpha_g = gamma_g / |w_g|^2 (eq. 5.178 per group) and beta (eq. 5.180).

    A group whose gamma_g is zero up to round-off has no well-determined
    parameter: its weights are switched off (MacKay's pruning), and its
    alpha is capped at ALPHA_MAX instead of reaching 0 / 0. A group with no
    weight the posterior covers (a subset structure) keeps ``alpha_g``'s."""
    used = post.used
    w = post.w_map[used]
    if np.any(gamma_g < -1e-8 * max(1.0, len(used))):
        raise ValueError(
            f"gamma: a group's number of well-determined parameters is < 0 "
            f"({np.array2string(gamma_g, precision=3)}): the data Hessian has "
            "negative curvature at w_MAP. Use clip_negative=True or "
            "hessian='gauss_newton'.")
    gamma_g = np.maximum(gamma_g, 0.0)
    ww_g = np.bincount(groups[used], weights=w * w, minlength=len(gamma_g))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_g_new = np.where(gamma_g > 0, gamma_g / ww_g, ALPHA_MAX)
    new_alpha = np.minimum(np.nan_to_num(alpha_g_new, nan=ALPHA_MAX), ALPHA_MAX)
    if alpha_g is not None:
        covered = np.bincount(groups[used], minlength=len(gamma_g)) > 0
        new_alpha = np.where(covered, new_alpha, alpha_g)
    alpha_g = new_alpha
    if beta is None:
        return alpha_g, None
    residual_dof = post.n_data - post.gamma_per_weight.sum()    # N K - gamma
    if residual_dof <= 0:
        return alpha_g, _beta_stationary(post, beta_max)
    # sum_n |y - t|^2 = 2 E_D
    if residual_dof >= 2.0 * post.data_error * beta_max:
        return alpha_g, beta_max
    return alpha_g, residual_dof / (2.0 * post.data_error)


def evidence_fit(net, *args, **kwargs) -> EvidenceResult:
    """Alternate training and hyperparameter re-estimation until alpha, beta
    and the log evidence change by less than ``tol`` (relative) in a cycle,
    then polish to changes below POLISH * tol (see "Fewer cycles" in the
    module docstring). Two call forms::

        evidence_fit(objective, w0=None, *, alpha=0.01, beta=None,
                     structure="dense", groups="single", ...)
        evidence_fit(net, X, T, loss="sse", w0=None, alpha=0.01, ...)  # convenience

    The first takes the network, the data and the loss from an objective
    (a :class:`sopt.Objective`, a :class:`sopt.distributed.ShardedObjective`,
    or anything :func:`laplace` accepts); each cycle trains
    ``objective.with_alpha(decay)`` (its own weight decay is replaced), so a
    sharded objective's data stay on the workers throughout. On the same data
    both forms follow the same path (to round-off). The loss is any that
    :func:`laplace` takes (one that declares a likelihood); beta (default
    1) is re-estimated for a loss with a noise precision only.

    Each cycle costs one training run (``method``, default damped Newton on
    the exact Hessian, from the last cycle's w_MAP) and one W x W curvature
    matrix of the data term with its factorisation (``structure``, as in
    :func:`laplace`: "dense" by default, "diagonal", "kfac", "lowrank",
    "last_layer"; a subset structure re-estimates only the alphas of the
    groups it covers): ``hessian``, the Gauss-Newton matrix by default
    (as :func:`laplace`), or the exact Hessian, whose negative eigenvalues
    ``clip_negative`` (default True, as Netlab) clips so that an
    unconverged w_MAP does not stop the loop. For a linear model on a
    canonical pair the two are the same matrix: the training uses the
    Gauss-Newton one, and the Laplace step finds the last one built.
    ``max_bytes`` bounds the dense Hessian (passed to :func:`laplace`).
    On small or noise-free data see the module docstring: beta stays in
    (0, BETA_MAX / mean(t^2)], alpha in (0, ALPHA_MAX], gamma in [0, N K].
    """
    result = in_either_form(net, args, kwargs, _evidence_data, _evidence_objective)
    post = result.posterior
    if post.newton_decrement > NEWTON_DECREMENT_WARN:    # training stopped early
        warnings.warn("evidence_fit: the last cycle's training stopped short of a "
                      "minimum (lower options['gtol'] or raise options['maxiter']). "
                      + _not_at_minimum_message(post), NotAtMinimumWarning,
                      stacklevel=2)
    if all_pruned(result):
        warnings.warn(_all_pruned_message(result), AllPrunedWarning, stacklevel=2)
    return result


def all_pruned(result: EvidenceResult) -> bool:
    """Whether every weight group ended switched off (alpha at ALPHA_MAX)
    while the targets are not fitted exactly (data error > 0)."""
    return bool(np.all(result.alpha >= ALPHA_MAX) and result.posterior.data_error > 0)


def _all_pruned_message(result: EvidenceResult) -> str:
    """What the all-pruned fixed point means and what to try. It is the
    evidence's answer for pure-noise targets; from too strong a start
    (alpha / beta large against the targets' scale) the first cycle
    shrinks every weight to ~0, where a tanh network's data gradient
    nearly vanishes (hidden units at tanh(0) = 0), and the loop stays
    there (alpha at the cap) whatever the data."""
    start = result.history["alpha"][0]
    beta0 = result.history["beta"][0]
    return ("evidence_fit: every weight group was switched off (alpha at its cap "
            f"{ALPHA_MAX:g}, gamma = {result.gamma:.3g}): the fit says the targets "
            "are noise around the network's output at w = 0. If they are not, "
            f"the start (alpha={np.max(start):g}"
            + ("" if beta0 is None else f", beta={beta0:g}")
            + ") was too strong a prior for them: start from a smaller alpha"
            + ("" if beta0 is None else " or a larger beta (1 / variance of the targets)")
            + ", or standardise the targets.")


def _evidence_data(net: Network, X, T, loss="sse", *args, **kwargs
                   ) -> EvidenceResult:
    loss = likelihood_loss(loss)
    beta_max = (lambda: _beta_max(T)) if loss.noise_precision else None
    return _fit(net, lambda: Objective(net, X, T, loss=loss), loss, beta_max,
                *args, **kwargs)


def _evidence_objective(objective, *args, **kwargs) -> EvidenceResult:
    loss = likelihood_loss(objective.loss)
    beta_max = (lambda: _objective_beta_max(objective)) if loss.noise_precision else None
    return _fit(objective.net, lambda: objective, loss, beta_max, *args, **kwargs)


def _fit(net: Network, make_objective, loss: Loss, beta_cap, w0=None,
         alpha: float = 0.01, beta: float | None = None, groups: str = "single",
         max_cycles: int = 50, tol: float = 1e-4, structure="dense",
         hessian: str = "gauss_newton",
         clip_negative: bool = True, method: str = "newton",
         options: dict | None = None, verbose: bool = False,
         max_bytes: float | None = None) -> EvidenceResult:
    """The evidence loop, after the arguments are checked; the objective
    (``make_objective()``, any decay) is built once, after the checks."""
    regression = loss.noise_precision
    beta = check_beta(beta, loss, default=1.0)
    max_cycles = check_positive_int(max_cycles, "max_cycles")
    clip_negative = check_bool(clip_negative, "clip_negative")
    tol = check_nonnegative(tol, "tol")
    beta_max = beta_cap() if regression else None
    group_index, names = weight_groups(net, groups)
    alpha_g = np.full(len(names), check_positive(alpha, "alpha"))
    w = (net.init_weights(seed=0) if w0 is None
         else check_weights(w0, net.n_weights, "w0").copy())
    # checked here as minimize would: _train divides gtol by beta first
    method, options = check_method_options(method, options)
    options = {"maxiter": 200, "gtol": 1e-7, **options}
    objective = make_objective()
    cycles = _cycles(objective, w, alpha_g, beta, (group_index, len(names)),
                     (structure, hessian, clip_negative, method, options, max_bytes),
                     max_cycles, tol, beta_max, verbose)
    cycle, converged, res, post, alpha_g, beta, hist = cycles
    return EvidenceResult(post, res.x, alpha_g, beta if regression else None,
                          group_index, names, cycle, converged, hist)


def _cycles(objective, w, alpha_g, beta, grouping, settings, max_cycles: int,
            tol: float, beta_max, verbose: bool):
    """Cycles of training and re-estimation from w, alpha_g, beta until
    :func:`_settled` (or max_cycles); between cycles the re-estimate, or
    its secant extrapolation (:class:`_Secant`). Once settled, steps go on
    (a polish, see :func:`_polished`) until alpha and beta change by less
    than POLISH * tol in a cycle: a settled point is within about tol / (1 - rho) of MacKay's fixed
    point (rho the rate of the plain re-estimation, 0.4-0.5 on the bench
    sets), which moves the log evidence by up to 1e-4 relative; near the
    fixed point each polish costs a Newton step or two.

    Returns (cycles run, converged, the last training result, its
    posterior, the alpha_g and beta it was built with, the history)."""
    group_index, n_groups = grouping
    hist = {k: [] for k in ("alpha", "beta", "gamma", "gamma_groups", "log_evidence",
                            "data_error", "train_iterations", "train_converged")}
    secant, polished = _Secant(beta_max), 0
    structure, hessian, clip, method, options, max_bytes = settings
    early = _early_stopping(objective)
    change = loosen_by = np.inf
    short = False
    for cycle in range(1, max_cycles + 1):
        last = cycle == max_cycles      # trained to gtol, as a settled cycle is
        cycle_options = _loosened(options, loosen_by) if early and not last else options
        res, post = _cycle_once(objective, w, alpha_g, beta, group_index, structure,
                                hessian, clip, method, cycle_options, max_bytes)
        w = res.x
        _record(hist, alpha_g, beta, res, post, cycle if verbose else None)
        gamma_g = _group_gamma(post, group_index, n_groups)
        hist["gamma_groups"].append(gamma_g)
        new_alpha, new_beta = _reestimate(post, group_index, gamma_g, beta, beta_max,
                                          alpha_g)
        # a move measured after a loosely trained cycle is biased: not compared
        last_change = np.inf if short else change
        change = loosen_by = _change(alpha_g, new_alpha, beta, new_beta)
        short = _stopped_short(res, options, beta)
        settled = _settled(hist, alpha_g, new_alpha, beta, new_beta, tol)
        if settled and short:
            settled, loosen_by = False, 0.0     # once more, trained to gtol
        polished = polished + 1 if settled else 0
        # on leaving, alpha_g and beta stay the pair the posterior was built with
        if last or (settled and _polished(change, last_change, polished, tol)):
            break
        jump = secant.extrapolate(alpha_g, beta, new_alpha, new_beta)
        alpha_g, beta = jump if jump is not None else (new_alpha, new_beta)
    return cycle, settled, res, post, alpha_g, beta, hist


def _polished(change: float, last_change: float, polished: int, tol: float) -> bool:
    """Whether the polish that follows the first settled cycle (``polished``
    counts the settled cycles in a row) is done, or not worth starting: the
    last re-estimate moved alpha and beta by less than POLISH * tol, or
    MAX_POLISH polish cycles ran, or the re-estimates stopped contracting
    (a move above 0.9 of the one before, the contraction the secant
    trusts): nothing to gain where a pruned group's alpha grows without
    bound and the loop settled on the evidence and gamma alone."""
    return (change < POLISH * tol or polished > MAX_POLISH
            or change > _Secant.RHO_HIGH * last_change)


def _early_stopping(objective) -> bool:
    """Whether the cycles' training may stop early (:func:`_loosened`): for a
    convex data term (a linear model on a canonical pair), whose w_MAP and
    evidence fixed point do not depend on the path to them."""
    return gauss_newton_is_exact(objective)


def _loosened(options: dict, change: float) -> dict:
    """The training options of a cycle after the hyperparameters changed by
    ``change`` (relative; inf before the first): |g|_inf down to
    EARLY_GTOL_REL * min(1, change) of its value at the cycle's start, or
    gtol if that is larger. Far from the fixed point a w_MAP more precise
    than the next re-estimate's move is wasted (the first cycle, at a
    guessed alpha, spent 32 of the 69 Newton steps of digits' linear
    model); near it the relative threshold falls below gtol, which then
    decides. EARLY_GTOL_REL = 0.1: on the linear models of five bench sets
    79 Newton steps in all, against 104 with 1e-2 and 81 with 0.3 (more
    cycles), the same fixed points."""
    rel = EARLY_GTOL_REL * min(1.0, change)
    return {**options, "gtol_rel": max(rel, options.get("gtol_rel", 0.0))}


def _stopped_short(res, options: dict, beta) -> bool:
    """Whether a training run stopped above the gtol of ``options`` (as
    :func:`_train` scales it), e.g. on a loosened threshold."""
    gtol = options["gtol"] / (1.0 if beta is None else beta)
    return bool(np.max(np.abs(res.jac)) > gtol)


def _record(hist: dict, alpha_g, beta, res, post, cycle: int | None) -> None:
    """One cycle's entries of the history; printed when ``cycle`` is given."""
    for key, value in (("alpha", alpha_g.copy()), ("beta", beta),
                       ("gamma", post.gamma), ("log_evidence", post.log_evidence),
                       ("data_error", post.data_error),
                       ("train_iterations", res.nit),
                       ("train_converged", bool(res.success))):
        hist[key].append(value)
    if cycle is not None:
        b = "" if beta is None else f" beta {beta:.4g}"
        print(f"  cycle {cycle:3d}: alpha {np.array2string(alpha_g, precision=4)}{b} "
              f"gamma {post.gamma:.3f} log evidence {post.log_evidence:.4f}", flush=True)


class _Secant:
    """The secant (Anderson(1)) acceleration of the re-estimation
    x -> F(x) of x = (ln alpha_g, ln beta) (Walker & Ni, SIAM J. Numer.
    Anal. 49, 2011, with memory one).

    MacKay's re-estimation converges linearly: on the bench sets each step
    shrinks the distance to the fixed point by a steady rho of 0.4-0.5 in
    log space. With the residual f = F(x) - x at this cycle's x and the
    last one's, gamma = df.f / df.df (df the change of f) and the next x is
    F(x) - gamma dF: where F is linear with rate rho along the step, its
    fixed point, whatever rho (for one alpha this is the secant method on
    F(x) - x, of order 1.6). The same fixed point is kept; F is only
    evaluated at better guesses.

    Taken only near the fixed point, where that model is credible: the
    plain step f and the jump beyond F(x) each change no hyperparameter by
    more than a factor 2 (NEAR; further out a jump of diabetes' 4-unit
    candidate from alpha 0.12 to 427 switched its hidden units off, a fixed
    point the plain loop does not reach), the rate the step implies, rho =
    1 + df.dx / dx.dx, in (-1/2, 0.9) (a contraction), the jump at most
    9 |f| (what rho = 0.9 gives), and no group pruned (alpha at ALPHA_MAX)
    nor beta at its cap in either cycle; otherwise x moves to F(x).
    O(groups)."""

    RHO_LOW, RHO_HIGH, MAX_JUMP, NEAR = -0.5, 0.9, 9.0, float(np.log(2.0))

    def __init__(self, beta_max):
        self.beta_max = beta_max
        self._last = None           # (x, F(x)) of the last cycle, log space

    def extrapolate(self, alpha, beta, new_alpha, new_beta):
        """Record the cycle's step x -> F(x) = (new_alpha, new_beta); the
        accelerated next point (alpha_g, beta), or None where the secant
        model is not credible or there is no earlier cycle."""
        x, fx = self._log(alpha, beta), self._log(new_alpha, new_beta)
        last, self._last = self._last, (x, fx)
        if self._capped(alpha, beta) or self._capped(new_alpha, new_beta):
            self._last = None
            return None
        jump = None if last is None else self._jump(*last, x, fx)
        if jump is None:
            return None
        return self._from_log(fx + jump, len(alpha), new_beta is not None)

    def _jump(self, x0, fx0, x1, fx1):
        """-gamma (F(x1) - F(x0)), the secant's move beyond F(x1), or None."""
        dx, f1 = x1 - x0, fx1 - x1
        df = f1 - (fx0 - x0)
        dxx, dff = float(dx @ dx), float(df @ df)
        if dxx == 0.0 or dff == 0.0:
            return None
        rho = 1.0 + float(df @ dx) / dxx
        jump = -float(df @ f1) / dff * (fx1 - fx0)
        near = max(np.max(np.abs(f1)), np.max(np.abs(jump))) <= self.NEAR
        if not (near and self.RHO_LOW < rho < self.RHO_HIGH) or \
                np.linalg.norm(jump) > self.MAX_JUMP * np.linalg.norm(f1):
            return None
        return jump

    @staticmethod
    def _log(alpha, beta):
        return np.log(np.append(alpha, [] if beta is None else [beta]))

    def _capped(self, alpha, beta) -> bool:
        return bool(np.any(alpha >= ALPHA_MAX)
                    or (beta is not None and beta >= self.beta_max))

    def _from_log(self, x, n_groups: int, regression: bool):
        """alpha_g and beta from a log point, held within their caps."""
        alpha = np.minimum(np.exp(x[:n_groups]), ALPHA_MAX)
        beta = float(min(np.exp(x[n_groups]), self.beta_max)) if regression else None
        return alpha, beta


def _change(alpha, new_alpha, beta, new_beta) -> float:
    """The largest relative change of alpha_g and beta in a re-estimate."""
    beta_change = 0.0 if beta is None else _relative(new_beta, beta)
    return max(_relative(new_alpha, alpha), beta_change)


def optimize_prior(posterior: LaplacePosterior, groups: str = "single",
                   max_cycles: int = 100, tol: float = 1e-6,
                   update_beta: bool = True) -> EvidenceResult:
    """MacKay's re-estimates of alpha (per group) and beta at a FIXED w_MAP
    and curvature: each cycle is one :meth:`LaplacePosterior.with_prior`
    (no data pass, no training), until alpha and beta change by less than
    ``tol`` (relative). What a large network can afford where retraining
    per cycle is not (laplace-torch's ``optimize_prior_precision`` also
    keeps the mode fixed; it climbs the same evidence by gradient steps).
    The result's ``w`` is the posterior's w_map; ``n_cycles`` counts
    re-factorisations."""
    max_cycles = check_positive_int(max_cycles, "max_cycles")
    tol = check_nonnegative(tol, "tol")
    update_beta = check_bool(update_beta, "update_beta")
    group_index, names = weight_groups(posterior.net, groups)
    counts = np.bincount(group_index, minlength=len(names))
    alpha_g = np.bincount(group_index, weights=posterior.alpha,
                          minlength=len(names)) / np.maximum(counts, 1)
    if not np.allclose(alpha_g[group_index], posterior.alpha, rtol=1e-12, atol=0):
        raise ValueError(f"posterior: its alpha is not constant on the {groups!r} groups")
    beta, post = posterior.beta, posterior
    hist = {k: [] for k in ("alpha", "beta", "gamma", "log_evidence")}
    converged = False
    for cycle in range(1, max_cycles + 1):
        for key, value in (("alpha", alpha_g.copy()), ("beta", beta),
                           ("gamma", post.gamma), ("log_evidence", post.log_evidence)):
            hist[key].append(value)
        gamma_g = _group_gamma(post, group_index, len(names))
        new_alpha, new_beta = _reestimate(post, group_index, gamma_g, beta,
                                          BETA_MAX, alpha_g)
        new_beta = new_beta if update_beta else beta
        change = max(_relative(new_alpha, alpha_g),
                     0.0 if beta is None else _relative(new_beta, beta))
        alpha_g, beta = new_alpha, new_beta
        if change < tol:
            converged = True
            break
        post = post.with_prior(alpha_g[group_index], beta, decrement=False)
    post = post.with_prior(alpha_g[group_index], beta)
    return EvidenceResult(post, post.w_map, alpha_g, beta, group_index, names,
                          cycle, converged, hist)


def _objective_form_signature() -> inspect.Signature:
    """evidence_fit(objective, w0=None, *, alpha=..., ...) as help() shows it:
    the options of :func:`_fit`, keyword-only after w0."""
    params = list(inspect.signature(_fit).parameters.values())[4:]
    first = [inspect.Parameter("objective", inspect.Parameter.POSITIONAL_OR_KEYWORD),
             params[0]]
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
    return inspect.Signature(first + rest, return_annotation=EvidenceResult)


evidence_fit.__signature__ = _objective_form_signature()


def _relative(new, old) -> float:
    new, old = np.atleast_1d(new), np.atleast_1d(old)
    return float(np.max(np.abs(new - old) / np.maximum(np.abs(old), 1e-300)))


def _settled(hist, alpha, new_alpha, beta, new_beta, tol) -> bool:
    """Settled when the re-estimate leaves alpha and beta put, or when gamma
    (per group), beta and the log evidence stopped moving over the last
    cycle: a group of unneeded weights has alpha -> infinity (MacKay's
    pruning) while everything that matters is fixed."""
    beta_change = 0.0 if beta is None else _relative(new_beta, beta)
    if max(_relative(new_alpha, alpha), beta_change) < tol:
        return True
    if len(hist["log_evidence"]) < 2:
        return False
    ev, g = hist["log_evidence"], hist["gamma_groups"]
    ev_change = abs(ev[-1] - ev[-2]) / max(1.0, abs(ev[-2]))
    gamma_change = float(np.max(np.abs(g[-1] - g[-2]) / np.maximum(1.0, g[-2])))
    return max(ev_change, gamma_change, beta_change) < tol
