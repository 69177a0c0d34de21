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

import copy
import functools
import inspect
import warnings

import numpy as np
from scipy.linalg import LinAlgError

from .._validation import (as_float_array, check_alpha, check_bool, check_choice,
                           check_finite, check_inputs, check_positive,
                           check_positive_int, check_weights)
from ..activations import ACTIVATIONS
from .._threads import blas_threads_for
from ..derivatives import SENSITIVITY_DOUBLES, items_in_budget
from ..losses import LIKELIHOODS, LOSSES, Loss, get_loss
from ..network import Network
from ..objective import (OBJECTIVE_MEMBERS, Objective, ObjectiveProtocol,
                         missing_members)
from . import _structures  # noqa: F401  (fills the registry)
from ._dense import clip_negative_eigenvalues  # noqa: F401  (public via sopt.bayes)
from ._structure import (CURVATURE_CLASSES, Curvature, Linearisation, check_assemble,
                         get_structure)
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
# version of LaplacePosterior.state (the file format has its own)
POSTERIOR_STATE_VERSION = 1
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
    """N(w_MAP, A^{-1}) on the covered weights, A in one curvature structure
    (dense by default; see :mod:`sopt.bayes._structure`) factorised once.
    The log evidence, gamma and every predictive are written here once, on
    the structure's primitives.

    Attributes
    ----------
    w_map : (W,) the mode, full layout.
    used : (W_c,) indices of the weights the posterior covers: the weights
        in use (subset structures: theirs; the others are fixed at w_MAP).
    structure : the structure's name ("dense", "diagonal", "kfac", ...);
        curvature : its :class:`~sopt.bayes._structure.Curvature` (H);
        factorised : its :class:`~sopt.bayes._structure.Precision` (A).
    precision : (W_c, W_c) A, assembled (dense structure: held; others:
        assembled on request, small W only); data_hessian : H likewise;
        covariance : A^{-1} likewise.
    alpha : (W,) prior precisions; beta : noise precision (a loss with
        one, e.g. sse) or None.
    loss : the loss's name; likelihood : its likelihood ("gaussian",
        "bernoulli" or "categorical"), which decides the predictive.
    log_det : ln |A|.
    gamma_per_weight : (W_c,) 1 - alpha_i (A^{-1})_ii.
    gamma : effective number of well-determined parameters,
        sum_i lambda_i / (alpha + lambda_i) = W_c - tr(diag(alpha) A^{-1})
        (PRML eq. 5.179; with one alpha per group, summed over groups),
        capped at the number of observations N K (MacKay 1992: no more
        parameters are determined than there are data; the cap bites only
        when the exact Hessian's residual term lifts the sum above N K).
        In [0, min(W_c, N K)] when H is PSD (clipped or Gauss-Newton).
    log_evidence : ln p(D | alpha, beta) (PRML eq. 5.175 for regression,
        eq. 5.183 for classification), without the ln(M! 2^M) symmetry term;
        the prior's terms over the covered weights only.
    gradient : (W_c,) gradient of the regularised error at w_map (zero
        at a mode); data_gradient : its data part (beta grad E_D or grad E_D).
    newton_decrement : g^T A^{-1} g / 2, the rise of the log posterior a
        Newton step from w_map would give; ~0 at a mode.
        These three are None for a posterior read from a file of format
        version 1, which did not store them: they need the training data.
    """

    def __init__(self, net: Network, data, w_map: Array, curvature: Curvature,
                 alpha: Array, beta: float | None):
        """``data``: the data term E_D as an objective without weight decay
        (``obj.with_alpha(0)``); ``curvature`` its curvature at w_map."""
        self.net, self.loss, self.w_map = net, data.loss.name, w_map
        self.likelihood = data.loss.likelihood
        self.curvature = curvature
        self.alpha, self.beta = alpha, beta
        self.n_data = data.n_patterns * net.n_outputs
        self.data_error = data.value(w_map)
        scale = 1.0 if beta is None else beta
        self.data_gradient = scale * data.gradient(w_map)[curvature.covered]
        self._derive()

    def _derive(self, decrement: bool = True) -> None:
        """Everything that follows from the curvature, alpha, beta, the data
        error and gradient: one factorisation (LinAlgError if A is not
        positive definite). Also what loading a saved posterior runs.
        ``decrement=False`` leaves the Newton decrement (one solve) None:
        the inner cycles of :func:`optimize_prior` do not need it."""
        self.used = self.curvature.covered
        self.structure = self.curvature.name
        a = self.alpha[self.used]
        scale = 1.0 if self.beta is None else self.beta
        self.factorised = self.curvature.precision(a, scale)
        self.log_det = self.factorised.log_det
        # gamma_i = 1 - alpha_i (A^{-1})_ii: summed over a group, MacKay's
        # gamma_g = W_g - alpha_g tr_g(A^{-1}) (PRML eq. 5.179 for one group)
        self.gamma_per_weight = 1.0 - a * self.factorised.inverse_diagonal()
        # the N K data determine at most N K directions: the exact Hessian's
        # residual term can push the sum past that on a few data points
        self.gamma = min(float(np.sum(self.gamma_per_weight)), float(self.n_data))
        if self.gamma < -GAMMA_ROUND_OFF * len(self.used):
            warnings.warn(_negative_gamma_message(self.gamma, len(self.used), self.n_data),
                          RuntimeWarning, stacklevel=4)
        wu = self.w_map[self.used]
        if self.data_gradient is None:          # format 1 stored no gradient
            self.gradient = self.newton_decrement = None
        else:
            # gradient of the regularised error beta E_D + alpha/2 |w|^2 (or
            # E_D + ...): zero at a true w_MAP
            self.gradient = self.data_gradient + a * wu
            self.newton_decrement = (0.5 * float(self.gradient @ self.solve(self.gradient))
                                     if decrement else None)
        self.weight_error = 0.5 * float(np.sum(a * wu * wu))
        self.log_evidence = self._log_evidence(a)

    def _log_evidence(self, a: Array) -> float:
        """PRML eqs. 5.175 / 5.183: -M(w_MAP) - ln|A|/2 + (W/2) ln alpha
        - N K ln Z(beta), Z the normaliser of the loss's likelihood (1 for
        the cross-entropies, (2 pi / beta)^(1/2) for the Gaussian)."""
        log_prior_norm = 0.5 * float(np.sum(np.log(a)))     # (W/2) ln alpha
        scale = 1.0 if self.beta is None else self.beta
        E = scale * self.data_error + self.weight_error
        log_z = LIKELIHOODS[self.likelihood].log_normaliser(self.beta)
        return -E - 0.5 * self.log_det + log_prior_norm - self.n_data * log_z

    def with_prior(self, alpha, beta: float | None = None, *,
                   decrement: bool = True) -> "LaplacePosterior":
        """The posterior at the same w_map and curvature under other
        hyperparameters (``beta`` for a loss with a noise precision only):
        no pass over the data, one factorisation in the structure (dense
        W^3 / 3; K-FAC O(W) on its eigendecomposed factors). w_map is then
        not the mode of the new posterior: its ``newton_decrement`` says
        by how much (the evidence at a fixed mode, as laplace-torch's
        prior optimisation uses); ``decrement=False`` skips it (None)."""
        W = self.net.n_weights
        alpha = np.broadcast_to(check_alpha(alpha, W, positive=True), (W,)).astype(float)
        if (beta is None) != (self.beta is None):
            raise ValueError("beta: give a noise precision exactly when the "
                             f"posterior has one (its beta is {self.beta})")
        beta = None if beta is None else check_positive(beta, "beta")
        new = copy.copy(self)
        new.alpha, new.beta = alpha, beta
        if self.data_gradient is not None and beta is not None:
            new.data_gradient = self.data_gradient * (beta / self.beta)
        new._derive(check_bool(decrement, "decrement"))
        return new

    # ----- saving: an explicit, versioned state, not the attributes -----
    def state(self) -> dict:
        """What rebuilds this posterior (:meth:`from_state`): the network,
        the mode, the hyperparameters, the data error and gradient at the
        mode and the structure's curvature state; everything else is derived
        again on loading (one factorisation)."""
        return {"version": POSTERIOR_STATE_VERSION, "net": self.net,
                "loss": self.loss, "likelihood": self.likelihood,
                "w_map": self.w_map, "alpha": self.alpha, "beta": self.beta,
                "n_data": self.n_data, "data_error": self.data_error,
                "data_gradient": self.data_gradient, "structure": self.structure,
                "curvature_class": type(self.curvature).__name__,
                "curvature": self.curvature.state()}

    @classmethod
    def from_state(cls, state: dict) -> "LaplacePosterior":
        """The posterior of a :meth:`state` dict (checked by the caller:
        sopt.bayes._storage)."""
        post = cls.__new__(cls)
        for name in ("net", "loss", "w_map", "likelihood"):     # __init__'s order
            setattr(post, name, state[name])
        curvature_class = CURVATURE_CLASSES[state["curvature_class"]]
        post.curvature = curvature_class.from_state(state["curvature"], post.net)
        post.curvature.name = state["structure"]
        for name in ("alpha", "beta", "n_data", "data_error", "data_gradient"):
            setattr(post, name, state[name])
        post._derive()
        return post

    # ----- dense views (the dense structure holds them; others assemble) -----
    @property
    def precision(self) -> Array:
        """A, (W_c, W_c)."""
        return self.factorised.matrix()

    @property
    def data_hessian(self) -> Array:
        """H (scaled by neither alpha nor beta), (W_c, W_c)."""
        return self.curvature.matrix()

    @property
    def covariance(self) -> Array:
        """A^{-1}, (W_c, W_c): the dense structure's (kept), else W_c solves."""
        held = getattr(self.factorised, "covariance", None)
        if held is not None:
            return held
        check_assemble(len(self.used), "covariance", self.structure)
        return self.solve(np.eye(len(self.used)))

    @property
    def _factor(self):
        """The dense structure's Cholesky factor (L, lower)."""
        return self.factorised.factor

    @_on_small_blas
    def solve(self, B) -> Array:
        """A^{-1} B for B of shape (W_c,) or (W_c, P). Cost: the
        structure's (dense O(W^2 P))."""
        B = as_float_array(B, "B")
        n = len(self.used)
        if B.ndim not in (1, 2) or B.shape[0] != n:
            raise ValueError(f"B: expected shape ({n},) or ({n}, P) (the covered "
                             f"weights, post.used), got {B.shape}")
        check_finite(B, "B")
        return self.factorised.solve(B)

    @_on_small_blas
    def sample(self, n: int, seed=None) -> Array:
        """n weight vectors from N(w_MAP, A^{-1}), shape (n, W) (full layout;
        uncovered entries stay at w_MAP's)."""
        n = check_positive_int(n, "n")
        rng = np.random.default_rng(seed)
        e = rng.standard_normal((len(self.used), n))
        out = np.tile(self.w_map, (n, 1))
        out[:, self.used] += self.factorised.draw(e).T
        return out

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

    def _outputs_and_covariance(self, X, of: str, full: bool):
        """f(X) at w_MAP (outputs y or pre-activations a), (N, K), and
        J A^{-1} J^T, (N, K) or (N, K, K), in row blocks of bounded memory."""
        X = check_inputs(X, self.net.n_inputs, "X_new")
        K = self.net.n_outputs
        per_row = getattr(self.factorised, "doubles_per_row", None)
        per_row = K * self.net.n_weights if per_row is None else per_row(K)
        size = items_in_budget(per_row, SENSITIVITY_DOUBLES)
        f = np.empty((len(X), K))
        var = np.empty((len(X), K, K) if full else (len(X), K))
        for start in range(0, len(X), size):
            rows = slice(start, start + size)
            lin = Linearisation(self.net, self.w_map, X[rows], of)
            f[rows] = lin.f
            var[rows] = self.factorised.output_covariance(lin, full)
        return f, var

    @_on_small_blas
    def predict(self, X_new, full_cov: bool = False, include_noise: bool = True):
        """Regression predictive: mean y(x, w_MAP), (N, K), and variance
        1/beta + g^T A^{-1} g with g = dy/dw (PRML eq. 5.173), (N, K); with
        ``full_cov`` the (N, K, K) covariance. ``include_noise=False`` gives
        the function-space part alone. Cost: N K of the structure's variance
        (dense O(N K W^2)). X_new may be a dask array: computed block by
        block, numpy arrays returned (so for every method on new inputs)."""
        if self.likelihood != "gaussian":
            raise ValueError("predict: this posterior is for classification; "
                             "use predict_proba")
        full_cov = check_bool(full_cov, "full_cov")
        include_noise = check_bool(include_noise, "include_noise")
        blocks = self._by_blocks(X_new, "predict", full_cov, include_noise)
        if blocks is not None:
            return blocks
        mean, var = self._outputs_and_covariance(X_new, "y", full_cov)
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
        return self._outputs_and_covariance(X_new, "a", True)

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


def _negative_eigenvalue_error(curvature: Curvature, alpha: Array,
                               beta) -> NotPositiveDefiniteError:
    lam = np.linalg.eigvalsh((beta or 1.0) * curvature.matrix() + np.diag(alpha))
    n_neg = int(np.sum(lam <= 0))
    form = "alpha I + H" if beta is None else "alpha I + beta H"
    return NotPositiveDefiniteError(
        f"hessian: the precision {form} is not positive definite "
        f"({n_neg} of {len(lam)} eigenvalues <= 0, smallest {lam[0]:.3g}): w_map is "
        "not a minimum of the regularised error. Train further, use "
        "hessian='gauss_newton' (PSD by construction), or pass "
        "clip_negative=True (Netlab's remedy: negative eigenvalues of the data "
        "Hessian set to zero).")


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

        laplace(objective, w_map, *, alpha=0.01, beta=None, structure="dense",
                hessian="gauss_newton", clip_negative=True, max_bytes=None)
        laplace(net, X, T, w_map, loss="sse", *, alpha=0.01, ...)   # convenience

    The first takes the network, the data and the loss from an objective:
    a :class:`sopt.Objective` or a :class:`sopt.distributed.ShardedObjective`
    (anything with :class:`sopt.objective.ObjectiveProtocol`). Its own weight
    decay is ignored: the prior and noise precisions are the ``alpha`` and
    ``beta`` given, and E_D and its curvature come from
    ``objective.with_alpha(0)``. The second builds ``sopt.Objective(net, X,
    T, loss=loss)`` first. On the same data both forms give the same
    posterior (to round-off: a sharded sum is taken in another order).

    Parameters
    ----------
    loss : "sse" (regression, needs ``beta``), "binary_ce", "softmax_ce",
        or any Loss that declares a likelihood (its ``likelihood``,
        ``noise_precision`` and predictive output are what is read)
    alpha : prior precision, a number or one per weight (W,)
    beta : noise precision (a loss with ``noise_precision`` only)
    structure : how the curvature is held, a name or a
        :class:`~sopt.bayes.StructureSpec` (``sopt.bayes.LowRank(rank=50)``):
        "dense" (the default: W x W, memory 8 W^2 bytes, W^3 / 3 per
        factorisation), "diagonal" (memory 8 W), "kfac" (Kronecker factors
        per layer, memory sum of fan_in^2 + fan_out^2), "lowrank",
        "last_layer" (dense on the output layer's weights, the rest fixed)
        or ``Subset(indices)``; see docs/DESIGN.md for each one's cost
    hessian : "gauss_newton" (the default: sum_n J_n^T M_n J_n, PSD) or
        "exact" (the Hessian of E_D; dense, lowrank and subset structures).
        On the estimators' default models the Gauss-Newton posterior's error
        bars covered the truth outside the data on 97% of a grid against 67%
        for the clipped exact Hessian (``experiments/curvature_choice.py``;
        docs/PERFORMANCE.md)
    clip_negative : set negative eigenvalues of the data Hessian to zero
        (default True, as :func:`evidence_fit` and the estimators: with
        False, an indefinite exact Hessian at w_map gives an error, or a
        gamma outside [0, min(W, N K)] with a warning)
    max_bytes : bound on the dense W x W matrix (dense structure)

    Cost (dense): the W x W Hessian (O(N W^2)) and one Cholesky
    factorisation (W^3 / 3); memory O(W^2). Other structures: their module's
    docstring.
    """
    post = in_either_form(net, args, kwargs, _laplace_data, _laplace_objective)
    if post.newton_decrement > NEWTON_DECREMENT_WARN:
        warnings.warn(_not_at_minimum_message(post), NotAtMinimumWarning, stacklevel=2)
    return post


def _laplace_data(net: Network, X, T, w_map, loss="sse", *, alpha=0.01,
                  beta: float | None = None, structure="dense",
                  hessian: str = "gauss_newton", clip_negative: bool = True,
                  max_bytes: float | None = None):
    loss = likelihood_loss(loss)
    return _posterior(net, lambda: Objective(net, X, T, loss=loss), loss, w_map,
                      alpha, beta, structure, hessian, clip_negative, max_bytes)


def _laplace_objective(objective, w_map, *, alpha=0.01, beta: float | None = None,
                       structure="dense", hessian: str = "gauss_newton",
                       clip_negative: bool = True, max_bytes: float | None = None):
    return _posterior(objective.net, lambda: objective.with_alpha(0.0),
                      likelihood_loss(objective.loss), w_map, alpha, beta,
                      structure, hessian, clip_negative, max_bytes)


laplace.__signature__ = inspect.signature(_laplace_objective)


def _posterior(net: Network, data_term, loss: Loss, w_map, alpha, beta, structure,
               hessian, clip_negative, max_bytes) -> LaplacePosterior:
    """Check the arguments, then build the data term (``data_term()``, an
    objective without weight decay), its curvature and the posterior."""
    spec = get_structure(structure)
    check_choice(hessian, "hessian", ("exact", "gauss_newton"))
    if hessian not in spec.kinds:
        raise ValueError(f"hessian: the {spec.name!r} structure is built from "
                         f"{' or '.join(map(repr, spec.kinds))} only, got {hessian!r}")
    clip_negative = check_bool(clip_negative, "clip_negative")
    _check_predictive_output(net, loss)
    beta = check_beta(beta, loss)
    w_map = check_weights(w_map, net.n_weights).copy()
    alpha = np.broadcast_to(check_alpha(alpha, net.n_weights, positive=True),
                            (net.n_weights,)).astype(float)
    data = data_term()
    used = np.flatnonzero(net.used_weight_mask())
    curvature = spec.build(data, w_map, used, hessian, clip_negative, max_bytes)
    try:
        return LaplacePosterior(net, data, w_map, curvature, alpha, beta)
    except LinAlgError:
        raise _negative_eigenvalue_error(curvature, alpha[curvature.covered],
                                         beta) from None


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
