"""The Laplace approximation of the posterior over weights (PRML sec. 5.7).

Around w_MAP the posterior is N(w_MAP, A^{-1}) with precision
A = diag(alpha) + beta H for a loss with a noise precision (H the Hessian of
the data error E_D, e.g. the sum-of-squares 1/2 sum |y - t|^2, PRML eq.
5.166) and A = diag(alpha) + H otherwise (the cross-entropy errors, eq.
5.184). What the loss means as a likelihood (Gaussian, Bernoulli,
categorical; its noise precision, normaliser and predictive output) is read
from the :class:`~sopt.losses.Loss`'s fields, never from its name. This
module only does linear
algebra on H (asked of the curvature code once) and on the output
sensitivities d y/dw; it never differentiates anything itself.

Masked-out weights are not parameters: everything here lives on the W_used
weights in use (``post.used`` indexes them in the full vector).
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh, solve_triangular

from .._validation import (as_float_array, check_alpha, check_bool, check_choice,
                           check_finite, check_inputs, check_positive,
                           check_positive_int, check_weights)
from ..activations import ACTIVATIONS
from .._threads import blas_threads_for
from ..losses import LOSSES, Loss, get_loss
from ..network import Network
from ..objective import (OBJECTIVE_MEMBERS, Objective, ObjectiveProtocol,
                         missing_members)
from ._moderation import (moderated_logistic, moderated_softmax, monte_carlo_softmax,
                          shift_free_variances)

Array = np.ndarray
# The built-in losses by their likelihood, and the output activation each
# classification loss's predictive assumes. Kept for code that imported
# them: sopt.bayes itself reads the Loss's fields.
REGRESSION = tuple(n for n, l in LOSSES.items() if l.likelihood == "gaussian")
CLASSIFICATION = tuple(n for n, l in LOSSES.items()
                       if l.likelihood in ("bernoulli", "categorical"))
PREDICTIVE_OUTPUT = {n: ACTIVATIONS[l.predictive_output]
                     for n, l in LOSSES.items() if l.predictive_output is not None}
# laplace warns when a Newton step from w_map would raise the log posterior
# by more than this many nats (g^T A^{-1} g / 2): the Laplace log evidence is
# then off by about as much, and log evidences are compared at ~1 nat.
NEWTON_DECREMENT_WARN = 1e-2
# gamma below -GAMMA_ROUND_OFF W_used is no round-off of terms in [0, 1]
GAMMA_ROUND_OFF = np.sqrt(np.finfo(float).eps)


class NotAtMinimumWarning(UserWarning):
    """:func:`laplace` was given a w_map that is not a minimum of the
    regularised error (a UserWarning, like scikit-learn's ConvergenceWarning:
    it is about the caller's input, not a floating-point event)."""


class NotPositiveDefiniteError(ValueError):
    """The Laplace precision A is not positive definite: w_map is not a
    minimum of the regularised error (a ValueError, as before)."""


def _on_small_blas(method):
    """Run a posterior method under :func:`blas_threads_for` its W_used."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with blas_threads_for(len(self.used)):
            return method(self, *args, **kwargs)
    return run


class LaplacePosterior:
    """N(w_MAP, A^{-1}) on the weights in use, A factorised once (Cholesky).

    Attributes
    ----------
    w_map : (W,) the mode, full layout.
    used : (W_used,) indices of the weights in use.
    precision : (W_used, W_used) A.
    alpha : (W,) prior precisions; beta : noise precision (a loss with
        one, e.g. sse) or None.
    loss : the loss's name; likelihood : its likelihood ("gaussian",
        "bernoulli" or "categorical"), which decides the predictive.
    log_det : ln |A|.
    gamma_per_weight : (W_used,) 1 - alpha_i (A^{-1})_ii.
    gamma : effective number of well-determined parameters,
        sum_i lambda_i / (alpha + lambda_i) = W_used - tr(diag(alpha) A^{-1})
        (PRML eq. 5.179; with one alpha per group, summed over groups),
        capped at the number of observations N K (MacKay 1992: no more
        parameters are determined than there are data; the cap bites only
        when the exact Hessian's residual term lifts the sum above N K).
        In [0, min(W_used, N K)] when H is PSD (clipped or Gauss-Newton).
    log_evidence : ln p(D | alpha, beta) (PRML eq. 5.175 for regression,
        eq. 5.183 for classification), without the ln(M! 2^M) symmetry term.
    gradient : (W_used,) gradient of the regularised error at w_map (zero
        at a mode); data_gradient : its data part (beta grad E_D or grad E_D).
    newton_decrement : g^T A^{-1} g / 2, the rise of the log posterior a
        Newton step from w_map would give; ~0 at a mode.
        These three are None for a posterior read from a file of format
        version 1, which did not store them: they need the training data.
    """

    def __init__(self, net: Network, data, w_map: Array, H: Array,
                 alpha: Array, beta: float | None):
        """``data``: the data term E_D as an objective without weight decay
        (``obj.with_alpha(0)``); ``H`` its Hessian on the weights in use."""
        self.net, self.loss, self.w_map = net, data.loss.name, w_map
        self.likelihood = data.loss.likelihood
        self.used = np.flatnonzero(net.used_weight_mask())
        self.alpha, self.beta = alpha, beta
        self.data_hessian = H
        a = alpha[self.used]
        scale = 1.0 if beta is None else beta
        self.precision = scale * H
        self.precision[np.diag_indices_from(self.precision)] += a
        self._factor = cho_factor(self.precision, lower=True)
        L = self._factor[0]
        self.log_det = 2.0 * float(np.sum(np.log(np.diag(L))))
        self._covariance = None
        # gamma_i = 1 - alpha_i (A^{-1})_ii: summed over a group, MacKay's
        # gamma_g = W_g - alpha_g tr_g(A^{-1}) (PRML eq. 5.179 for one group)
        self.gamma_per_weight = 1.0 - a * np.diag(self.covariance)
        self.n_data = data.n_patterns * net.n_outputs
        # the N K data determine at most N K directions: the exact Hessian's
        # residual term can push the sum past that on a few data points
        self.gamma = min(float(np.sum(self.gamma_per_weight)), float(self.n_data))
        if self.gamma < -GAMMA_ROUND_OFF * len(self.used):
            warnings.warn(_negative_gamma_message(self.gamma, len(self.used), self.n_data),
                          RuntimeWarning, stacklevel=3)
        self.data_error = data.value(w_map)
        # gradient of the regularised error beta E_D + alpha/2 |w|^2 (or
        # E_D + ...): zero at a true w_MAP
        self.data_gradient = scale * data.gradient(w_map)[self.used]
        self.gradient = self.data_gradient + a * w_map[self.used]
        self.newton_decrement = 0.5 * float(self.gradient @ self.solve(self.gradient))
        wu = w_map[self.used]
        self.weight_error = 0.5 * float(np.sum(a * wu * wu))
        self.log_evidence = self._log_evidence(a, data.loss)

    def _log_evidence(self, a: Array, loss: Loss) -> float:
        """PRML eqs. 5.175 / 5.183: -M(w_MAP) - ln|A|/2 + (W/2) ln alpha
        - N K ln Z(beta), Z the normaliser of the loss's likelihood (1 for
        the cross-entropies, (2 pi / beta)^(1/2) for the Gaussian)."""
        log_prior_norm = 0.5 * float(np.sum(np.log(a)))     # (W/2) ln alpha
        scale = 1.0 if self.beta is None else self.beta
        E = scale * self.data_error + self.weight_error
        return (-E - 0.5 * self.log_det + log_prior_norm
                - self.n_data * loss.log_normaliser(self.beta))

    @property
    def covariance(self) -> Array:
        """A^{-1}, (W_used, W_used), from the Cholesky factor (W^3 / 3); the
        constructor already needs its diagonal for gamma."""
        if self._covariance is None:
            self._covariance = cho_solve(self._factor, np.eye(len(self.used)))
        return self._covariance

    @_on_small_blas
    def solve(self, B) -> Array:
        """A^{-1} B for B of shape (W_used,) or (W_used, P). Cost O(W^2 P)."""
        B = as_float_array(B, "B")
        n = len(self.used)
        if B.ndim not in (1, 2) or B.shape[0] != n:
            raise ValueError(f"B: expected shape ({n},) or ({n}, P) (the weights "
                             f"in use, post.used), got {B.shape}")
        check_finite(B, "B")
        return cho_solve(self._factor, B)

    @_on_small_blas
    def sample(self, n: int, seed=None) -> Array:
        """n weight vectors from N(w_MAP, A^{-1}), shape (n, W) (full layout;
        masked entries stay at w_MAP's)."""
        n = check_positive_int(n, "n")
        rng = np.random.default_rng(seed)
        L = self._factor[0]
        # w = w_MAP + L^{-T} e with A = L L^T gives covariance A^{-1}
        e = rng.standard_normal((len(self.used), n))
        out = np.tile(self.w_map, (n, 1))
        out[:, self.used] += solve_triangular(L, e, lower=True, trans="T").T
        return out

    def _function_variance(self, G: Array, full: bool) -> Array:
        """Rows of G (N, K, W_used): var g^T A^{-1} g (N, K) or the (N, K, K)
        covariances, via V = L^{-1} G^T."""
        N, K, _ = G.shape
        V = solve_triangular(self._factor[0], G.reshape(N * K, -1).T, lower=True)
        V = V.T.reshape(N, K, -1)
        if full:
            return np.einsum("nkw,nlw->nkl", V, V)
        return np.einsum("nkw,nkw->nk", V, V)

    def _by_blocks(self, X_new, method: str, *args):
        """``method`` on each row block of a dask array X_new, the results
        concatenated (numpy); None if X_new is not a dask array. Duck-typed
        (``to_delayed``, ``rechunk``): sopt.bayes does not import dask. One
        block at a time comes to this process, so memory is that of a block."""
        if not (hasattr(X_new, "to_delayed") and hasattr(X_new, "rechunk")):
            return None
        if X_new.ndim == 2:
            X_new = X_new.rechunk({1: -1})      # whole rows in every block
        parts = [getattr(self, method)(np.asarray(block.compute()), *args)
                 for block in X_new.to_delayed().ravel()]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(p) for p in zip(*parts))
        return np.concatenate(parts)

    def _linearise(self, X, of: str):
        """f(X) at w_MAP (outputs y or pre-activations a) and df/dw on the
        weights in use, from one forward pass."""
        X = check_inputs(X, self.net.n_inputs, "X_new")
        f, S = self.net.linearise(self.w_map, X, of=of)
        return f, S[:, :, self.used]

    @_on_small_blas
    def predict(self, X_new, full_cov: bool = False, include_noise: bool = True):
        """Regression predictive: mean y(x, w_MAP), (N, K), and variance
        1/beta + g^T A^{-1} g with g = dy/dw (PRML eq. 5.173), (N, K); with
        ``full_cov`` the (N, K, K) covariance. ``include_noise=False`` gives
        the function-space part alone. Cost O(N K W^2). X_new may be a dask
        array: computed block by block, numpy arrays returned (so for every
        method on new inputs)."""
        if self.likelihood != "gaussian":
            raise ValueError("predict: this posterior is for classification; "
                             "use predict_proba")
        full_cov = check_bool(full_cov, "full_cov")
        include_noise = check_bool(include_noise, "include_noise")
        blocks = self._by_blocks(X_new, "predict", full_cov, include_noise)
        if blocks is not None:
            return blocks
        mean, G = self._linearise(X_new, "y")
        var = self._function_variance(G, full_cov)
        if include_noise:
            # without a noise precision exp(-E_n) is unit-variance noise
            beta = 1.0 if self.beta is None else self.beta
            if full_cov:
                var = var + np.eye(var.shape[1]) / beta
            else:
                var = var + 1.0 / beta
        return mean, var

    @_on_small_blas
    def logit_variance(self, X_new) -> tuple[Array, Array]:
        """a_MAP (N, K) and the (N, K, K) covariance B A^{-1} B^T of the
        linearised output pre-activations, B = d a/dw."""
        blocks = self._by_blocks(X_new, "logit_variance")
        if blocks is not None:
            return blocks
        a, G = self._linearise(X_new, "a")
        return a, self._function_variance(G, True)

    @_on_small_blas
    def predict_proba(self, X_new, method: str = "probit", n_samples: int = 1000,
                      seed=0) -> Array:
        """Moderated class probabilities, (N, K).

        ``method="probit"``: sigma(kappa(s^2) a_MAP) with
        kappa(s^2) = (1 + pi s^2 / 8)^(-1/2) and s^2 = b^T A^{-1} b (PRML eqs.
        4.153-4.155, 5.190); for softmax outputs each logit is scaled by its
        own kappa, an approximation, with s^2 its variance after the common
        shift of all K logits is taken out (softmax ignores the shift and no
        data determine it, so its prior variance would only flatten every
        row: :func:`~sopt.bayes._moderation.shift_free_variances`).
        ``method="mc"``: softmax outputs
        averaged over ``n_samples`` draws of the linearised logits, the same
        standard normal draws from ``seed`` for every row (a row's
        probabilities do not depend on the other rows or the dask blocks),
        in blocks of rows of bounded memory.
        """
        if self.likelihood not in ("bernoulli", "categorical"):
            raise ValueError("predict_proba: this posterior is for regression; "
                             "use predict")
        check_choice(method, "method", ("probit", "mc"))
        n_samples = check_positive_int(n_samples, "n_samples")
        blocks = self._by_blocks(X_new, "predict_proba", method, n_samples, seed)
        if blocks is not None:
            return blocks
        a, S = self.logit_variance(X_new)
        if self.likelihood == "bernoulli":
            if method == "mc":
                raise ValueError("method: 'mc' is for softmax outputs; logistic "
                                 "outputs use the probit approximation")
            return moderated_logistic(a, np.einsum("nkk->nk", S))
        if method == "mc":
            return monte_carlo_softmax(a, S, n_samples, seed)
        return moderated_softmax(a, shift_free_variances(S))

    def __repr__(self) -> str:
        beta = "" if self.beta is None else f", beta={self.beta:.4g}"
        return (f"LaplacePosterior({self.loss}, W_used={len(self.used)}, "
                f"gamma={self.gamma:.3g}{beta}, log_evidence={self.log_evidence:.6g})")


def _negative_eigenvalue_error(H: Array, alpha: Array, beta) -> NotPositiveDefiniteError:
    lam = np.linalg.eigvalsh((beta or 1.0) * H + np.diag(alpha))
    n_neg = int(np.sum(lam <= 0))
    form = "alpha I + H" if beta is None else "alpha I + beta H"
    return NotPositiveDefiniteError(
        f"hessian: the precision {form} is not positive definite "
        f"({n_neg} of {len(lam)} eigenvalues <= 0, smallest {lam[0]:.3g}): w_map is "
        "not a minimum of the regularised error. Train further, use "
        "hessian='gauss_newton' (PSD by construction), or pass "
        "clip_negative=True (Netlab's remedy: negative eigenvalues of the data "
        "Hessian set to zero).")


def clip_negative_eigenvalues(H: Array) -> Array:
    """H with its negative eigenvalues set to zero (as Netlab's evidence
    does): a positive semi-definite (W, W) matrix, whatever scale the caller
    multiplies it by (the evidence loop uses beta H with beta up to 1e12).

    Two shortcuts avoid the eigendecomposition (about 9 W^3) where one or two
    Cholesky factorisations (W^3 / 3 each) settle it: a positive definite H
    is returned as it is; where only H + delta I is (delta = 10 W eps
    |H|_inf, about the round-off of forming and factorising H), every
    eigenvalue of H lies in [-delta, inf), and H + delta I is returned: it is
    positive definite and within delta (2-norm) of the clipped matrix, as a
    PSD H with a null space (softmax outputs) gives. Otherwise the
    eigenvalues below zero are set to zero."""
    if _is_positive_definite(H):
        return H
    delta = 10 * len(H) * np.finfo(float).eps * float(np.abs(H).sum(axis=1).max(initial=0.0))
    shifted = H + delta * np.eye(len(H))
    if _is_positive_definite(shifted):
        return shifted
    lam, V = eigh(H)
    return (V * np.maximum(lam, 0.0)) @ V.T


def _is_positive_definite(H: Array) -> bool:
    """Whether H has a Cholesky factor (an empty H has one)."""
    try:
        cho_factor(H, lower=True)
        return True
    except LinAlgError:
        return False


# the members of sopt.objective.ObjectiveProtocol (the old name of the list)
OBJECTIVE_PROTOCOL = OBJECTIVE_MEMBERS


def check_objective(objective, name: str = "net"):
    """objective, if it is a :class:`sopt.objective.ObjectiveProtocol` on a
    Network; else TypeError naming what it lacks."""
    if not isinstance(objective, ObjectiveProtocol):
        raise TypeError(f"{name}: expected a Network (with X, T) or an objective "
                        f"(sopt.objective.ObjectiveProtocol: sopt.Objective, "
                        f"sopt.distributed.ShardedObjective), got "
                        f"{type(objective).__name__} (no "
                        f"{', '.join(missing_members(objective))})")
    if not isinstance(objective.net, Network):
        raise TypeError(f"{name}: the objective's net is not a Network")
    return objective


def in_either_form(net, args: tuple, kwargs: dict, on_data, on_objective):
    """The two call forms of :func:`laplace`, :func:`evidence_fit` and
    :func:`sample_posterior`: ``on_data(net, X, T, ...)`` for a Network,
    ``on_objective(objective, ...)`` for an objective (checked), either on
    one BLAS thread below :data:`sopt._threads.BLAS_MIN_SIZE` weights."""
    if isinstance(net, Network):
        with blas_threads_for(net.n_weights):
            return on_data(net, *args, **kwargs)
    objective = check_objective(net)
    with blas_threads_for(objective.net.n_weights):
        return on_objective(objective, *args, **kwargs)


def likelihood_loss(loss) -> Loss:
    """The Loss of ``loss`` (a name, a Loss or a (value, grad, hess) tuple)
    if it declares a likelihood; else ValueError naming ``loss``."""
    loss = get_loss(loss)
    if loss.likelihood is None:
        raise ValueError(
            f"loss: {loss.name!r} has no likelihood (Loss.likelihood is None), "
            "and the Laplace posterior and the evidence need p(t | y) = "
            "exp(-E_n) / Z: use a built-in loss or declare likelihood="
            "'gaussian', 'bernoulli' or 'categorical' on the Loss")
    return loss


def check_beta(beta, loss: Loss, default: float | None = None):
    """beta checked against the loss: a noise precision > 0 (``default``
    when None) for a loss with one, None for any other."""
    if loss.noise_precision:
        if beta is None:
            beta = default
        if beta is None:
            raise ValueError(f"beta: loss {loss.name!r} has a noise precision "
                             "(Gaussian noise); it needs the noise precision beta")
        return check_positive(beta, "beta")
    if beta is not None:
        raise ValueError(f"beta: only a loss with a noise precision (e.g. 'sse', "
                         f"regression) has one; {loss.name!r} has none")
    return None


def laplace(net, *args, **kwargs) -> LaplacePosterior:
    """The Laplace posterior at w_map. Two call forms::

        laplace(net, X, T, w_map, loss="sse", alpha=0.01, beta=None,
                hessian="gauss_newton", clip_negative=True, max_bytes=None)
        laplace(objective, w_map, alpha=0.01, beta=None, hessian="gauss_newton",
                clip_negative=True, max_bytes=None)

    The second takes the network, the data and the loss from an objective:
    a :class:`sopt.Objective` or a :class:`sopt.distributed.ShardedObjective`
    (anything with :class:`sopt.objective.ObjectiveProtocol`). Its own weight decay is
    ignored: the prior and noise precisions are the ``alpha`` and ``beta``
    given, and E_D and its Hessian come from ``objective.with_alpha(0)``.
    On the same data both forms give the same posterior (to round-off:
    a sharded sum is taken in another order).

    Parameters
    ----------
    loss : "sse" (regression, needs ``beta``), "binary_ce", "softmax_ce",
        or any Loss that declares a likelihood (its ``likelihood``,
        ``noise_precision`` and predictive output are what is read)
    alpha : prior precision, a number or one per weight (W,)
    beta : noise precision (a loss with ``noise_precision`` only)
    hessian : "gauss_newton" (the default: sum_n J_n^T M_n J_n, PSD) or
        "exact" (the Hessian of E_D). On the estimators' default models the
        Gauss-Newton posterior's error bars covered the truth outside the
        data on 97% of a grid against 67% for the clipped exact Hessian
        (``experiments/curvature_choice.py``; docs/PERFORMANCE.md)
    clip_negative : set negative eigenvalues of the data Hessian to zero
        (default True, as :func:`evidence_fit` and the estimators: with
        False, an indefinite exact Hessian at w_map gives an error, or a
        gamma outside [0, min(W, N K)] with a warning)

    Cost: the W x W Hessian (O(N W^2)) and one Cholesky factorisation
    (W^3 / 3); memory O(W^2).
    """
    post = in_either_form(net, args, kwargs, _laplace_data, _laplace_objective)
    if post.newton_decrement > NEWTON_DECREMENT_WARN:
        warnings.warn(_not_at_minimum_message(post), NotAtMinimumWarning, stacklevel=2)
    return post


def _laplace_data(net: Network, X, T, w_map, loss="sse", alpha=0.01,
                  beta: float | None = None, hessian: str = "gauss_newton",
                  clip_negative: bool = True, max_bytes: float | None = None):
    loss = likelihood_loss(loss)
    return _posterior(net, lambda: Objective(net, X, T, loss=loss), loss, w_map,
                      alpha, beta, hessian, clip_negative, max_bytes)


def _laplace_objective(objective, w_map, alpha=0.01, beta: float | None = None,
                       hessian: str = "gauss_newton", clip_negative: bool = True,
                       max_bytes: float | None = None):
    return _posterior(objective.net, lambda: objective.with_alpha(0.0),
                      likelihood_loss(objective.loss), w_map, alpha, beta,
                      hessian, clip_negative, max_bytes)


def _posterior(net: Network, data_term, loss: Loss, w_map, alpha, beta, hessian,
               clip_negative, max_bytes) -> LaplacePosterior:
    """Check the arguments, then build the data term (``data_term()``, an
    objective without weight decay), its Hessian and the posterior."""
    check_choice(hessian, "hessian", ("exact", "gauss_newton"))
    clip_negative = check_bool(clip_negative, "clip_negative")
    _check_predictive_output(net, loss)
    beta = check_beta(beta, loss)
    w_map = check_weights(w_map, net.n_weights).copy()
    alpha = np.broadcast_to(check_alpha(alpha, net.n_weights, positive=True),
                            (net.n_weights,)).astype(float)
    data = data_term()
    used = np.flatnonzero(net.used_weight_mask())
    H = data.hessian(w_map, hessian, max_bytes=max_bytes)[np.ix_(used, used)]
    if clip_negative:
        H = clip_negative_eigenvalues(H)
    try:
        return LaplacePosterior(net, data, w_map, H, alpha, beta)
    except LinAlgError:
        raise _negative_eigenvalue_error(H, alpha[used], beta) from None


def _negative_gamma_message(gamma: float, n_used: int, n_data: int) -> str:
    return (f"laplace: gamma = {gamma:.3g} lies outside [0, min(W_used, N K)] = "
            f"[0, {min(n_used, n_data)}]: the data Hessian at w_map has negative "
            "eigenvalues (exact Hessian, clip_negative=False), so gamma and the "
            "log evidence are not MacKay's. Pass clip_negative=True or "
            "hessian='gauss_newton'.")


def _check_predictive_output(net: Network, loss: Loss) -> None:
    """Refuse a loss on outputs its likelihood's predictive does not model
    (softmax outputs with binary_ce would be read as logistic ones)."""
    if loss.predictive_output is None:
        return
    wanted = ACTIVATIONS[loss.predictive_output]
    output = net.layers[-1].activation if net.layers else None
    if output is not wanted:
        name = getattr(output, "name", type(output).__name__)
        fitting = [n for n, l in LOSSES.items()
                   if output is not None and l.predictive_output is not None
                   and ACTIVATIONS[l.predictive_output] is output]
        raise ValueError(
            f"loss: the Laplace predictive for {loss.name!r} needs the built-in "
            f"{wanted.name!r} output activation, the network's is {name!r}; "
            + (f"use loss={fitting[0]!r} for {name} outputs" if fitting
               else f"build the network with output={wanted.name!r}"))


def _not_at_minimum_message(post: LaplacePosterior) -> str:
    g_inf = float(np.max(np.abs(post.gradient)))
    scale = float(np.max(np.abs(post.data_gradient))
                  + np.max(np.abs(post.alpha[post.used] * post.w_map[post.used])))
    return (f"laplace: w_map is not a minimum of the regularised error: "
            f"|g|_inf = {g_inf:.3g} ({g_inf / max(scale, np.finfo(float).tiny):.2g} "
            f"of |data gradient|_inf + |alpha w|_inf = {scale:.3g}, which cancel "
            f"at a minimum); a Newton step would raise the log posterior by "
            f"{post.newton_decrement:.3g} nats, and the log evidence is off by "
            "about as much. Train to convergence first.")
