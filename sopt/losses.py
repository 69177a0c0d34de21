"""Error functions E_n(y, t) per pattern, with dE/dy and d2E/dy2.

A :class:`Loss` evaluates the error of each pattern from the network outputs y,
shape (N, K), and says what targets and built-in outputs it takes. The table
:data:`CLOSED_FORMS` holds the closed forms of a built-in loss on a built-in
output activation: for the canonical pairs sse + identity, binary_ce + logistic and
softmax_ce + softmax the output error signal is delta_k = dE/da_k = y_k - t_k
(PRML eqs. 4.91, 5.18), and the value is computed from the pre-activations a
in a stable form (log-sigmoid, log-sum-exp), so saturated outputs never
produce log(0). A loss may also say which likelihood p(t | y) it is the
negative log of (:data:`LIKELIHOODS`): the Bayesian layer reads its noise
precision, normaliser, predictive output and target sampler from there, not
from the loss's name. Adding a loss is one :class:`Loss`; adding closed forms
for a pair, one entry of :data:`CLOSED_FORMS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._deprecation import renamed_attributes, renamed_method, renamed_property
from ._validation import check_choice
from .activations import ACTIVATIONS, Activation, from_table, reduce_by_name, row_sums

Array = np.ndarray


# ----- likelihoods: p(t | y) = exp(-beta E_n(y, t)) / Z(beta) -----
@dataclass(frozen=True)
class Likelihood:
    """A conditional distribution of the targets of which a loss is the
    negative log (up to the normaliser): p(t | y) = exp(-beta E_n) / Z.

    Parameters
    ----------
    name : str
    log_normaliser : callable (beta or None) -> float
        ln Z per target value (N K of them): the log evidence adds
        -N K ln Z. beta None means no noise precision (beta = 1).
    predictive_output : str or None
        The built-in output activation the moderated predictive assumes
        (None: any output).
    sample : callable (y, rng, beta or None) -> (N, K) targets
        Draws t ~ p(t | y) for outputs y (N, K).
    noise_precision : bool
        Whether a noise precision beta may scale E_D (Gaussian noise); the
        others are normalised for beta = 1 only.
    """

    name: str
    log_normaliser: Callable
    predictive_output: str | None
    sample: Callable
    noise_precision: bool = False


def _gaussian_log_normaliser(beta) -> float:
    # Z = (2 pi / beta)^(1/2) per target value (PRML eq. 5.175's N K/2 ln beta/2pi)
    beta = 1.0 if beta is None else beta
    return -0.5 * (np.log(beta) - np.log(2 * np.pi))


def _normalised(beta) -> float:
    # exp(-E_n) of a cross-entropy is already a distribution over t: Z = 1
    return 0.0


def _gaussian_sample(y, rng, beta):
    std = 1.0 if beta is None else 1.0 / np.sqrt(beta)
    return y + std * rng.standard_normal(y.shape)


def _bernoulli_sample(y, rng, beta):
    return (rng.random(y.shape) < y).astype(float)


def _categorical_sample(y, rng, beta):
    # one class per row from the row's probabilities, by inverse CDF
    u = rng.random((len(y), 1))
    k = np.minimum((np.cumsum(y, axis=1) < u).sum(axis=1), y.shape[1] - 1)
    return np.eye(y.shape[1])[k]


#: The likelihoods a :class:`Loss` can declare, by name.
LIKELIHOODS: dict[str, Likelihood] = {lik.name: lik for lik in (
    Likelihood("gaussian", _gaussian_log_normaliser, None, _gaussian_sample,
               noise_precision=True),
    Likelihood("bernoulli", _normalised, "logistic", _bernoulli_sample),
    Likelihood("categorical", _normalised, "softmax", _categorical_sample),
)}


@dataclass(frozen=True)
class Loss:
    """A per-pattern error function and its derivatives in the outputs y.

    Parameters
    ----------
    value : callable (y, T) -> (N,)
        E_n for each pattern; y and T of shape (N, K).
    grad : callable (y, T) -> (N, K)
        dE_n/dy.
    hess : callable (y, T) -> (N, K, K), optional
        d2E_n/dy2 (needed by second derivatives only).
    name : str
    targets : "real", "unit" or "simplex"
        What T may hold: any numbers; numbers in [0, 1]; rows of
        probabilities summing to 1 (then 1-D class labels are accepted too).
    outputs : tuple of activation names, optional
        The built-in output activations the loss is defined on (None: any).
    diagonal_hess : bool
        d2E/dy2 is diagonal and PSD, so sqrt of its diagonal factors the
        Gauss-Newton curvature of an elementwise output activation.
    likelihood : "gaussian", "bernoulli", "categorical" or None
        The p(t | y) of :data:`LIKELIHOODS` with E_n = -ln p(t_n | y_n) up
        to its normaliser; None for a loss with no probabilistic reading
        (the Laplace posterior and the evidence refuse it).
    noise_precision : bool
        A noise precision beta scales E_D (beta E_D in the log posterior,
        -N K ln Z(beta) in the log evidence); only for a likelihood that
        has one (Gaussian).
    """

    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array] | None = None
    name: str = "custom"
    targets: str = "real"
    outputs: tuple[str, ...] | None = None
    diagonal_hess: bool = False
    likelihood: str | None = None
    noise_precision: bool = False

    def __post_init__(self):
        if self.likelihood is not None:
            check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        if self.noise_precision and not (self.likelihood is not None and
                                         LIKELIHOODS[self.likelihood].noise_precision):
            raise ValueError(f"noise_precision: the likelihood {self.likelihood!r} "
                             "has no noise precision (only 'gaussian' has one)")

    def _likelihood(self) -> Likelihood:
        if self.likelihood is None:
            raise ValueError(f"loss: {self.name!r} has no likelihood "
                             "(Loss.likelihood is None)")
        return LIKELIHOODS[self.likelihood]

    def log_normaliser(self, beta: float | None = None) -> float:
        """ln Z per target value of p(t | y) = exp(-beta E_n) / Z(beta)
        (beta None: no noise precision, beta = 1)."""
        return self._likelihood().log_normaliser(beta)

    @property
    def predictive_output(self) -> str | None:
        """The built-in output activation the likelihood's predictive
        assumes (logistic for bernoulli, softmax for categorical), or None:
        any output, or no likelihood."""
        if self.likelihood is None:
            return None
        return LIKELIHOODS[self.likelihood].predictive_output

    def sample_targets(self, y, rng, beta: float | None = None) -> Array:
        """Targets drawn from p(t | y) for outputs y (N, K), e.g. for
        posterior predictive checks: y plus Gaussian noise of variance
        1/beta; 0/1 with P(t_k = 1) = y_k; one-hot rows with class
        probabilities y. ``rng`` a numpy Generator (or a seed)."""
        y = np.asarray(y, dtype=float)
        if y.ndim != 2:
            raise ValueError(f"y: expected outputs of shape (N, K), got {y.shape}")
        return self._likelihood().sample(y, np.random.default_rng(rng), beta)

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"

    def __reduce_ex__(self, protocol):
        return reduce_by_name(self, LOSSES, get_loss, protocol)


def _diag(d: Array) -> Array:
    """(N, K) -> (N, K, K) batch of diagonal matrices."""
    out = np.zeros(d.shape + d.shape[-1:])
    np.einsum("nkk->nk", out)[...] = d
    return out


# --- sum-of-squares: E_n = 1/2 |y - t|^2 (PRML eq. 5.11) ---
def _sse(y, T):
    r = y - T
    return 0.5 * np.einsum("nk,nk->n", r, r)


def _sse_grad(y, T):
    return y - T


def _sse_hess(y, T):
    return _diag(np.ones_like(y))


SSE = Loss(_sse, _sse_grad, _sse_hess, "sse", diagonal_hess=True,
           likelihood="gaussian", noise_precision=True)


# Outputs y given as numbers alone (a user activation: no logits to work
# from) are clipped into the open interval (0, 1) before the cross-entropies'
# y-forms: [tiny, 1 - 2^-53] for E and dE/dy, [sqrt(tiny), 1 - 2^-53] for
# d2E/dy2 (1/y^2 must not overflow). Only y that rounded to 0 or 1 (or a
# subnormal) moves; there E is capped near 708 (at 0) or 36.7 (at 1) per
# output instead of inf, and its derivatives are those of the capped value.
_Y_MAX = np.nextafter(1.0, 0.0)
_Y_MIN = np.finfo(float).tiny
_Y_MIN_HESS = np.sqrt(_Y_MIN)


def _clip_probabilities(y, low=_Y_MIN):
    return np.clip(y, low, _Y_MAX)


# --- cross-entropy for K independent binary targets (PRML eq. 5.21) ---
def _binary_ce(y, T):
    y = _clip_probabilities(y)
    e = -(np.where(T > 0, T * np.log(y), 0.0)
          + np.where(T < 1, (1 - T) * np.log1p(-y), 0.0))
    return e.sum(axis=1)


def _binary_ce_grad(y, T):
    y = _clip_probabilities(y)
    return (y - T) / (y * (1 - y))


def _binary_ce_hess(y, T):
    y = _clip_probabilities(y, _Y_MIN_HESS)
    return _diag(T / y**2 + (1 - T) / (1 - y) ** 2)


BINARY_CE = Loss(_binary_ce, _binary_ce_grad, _binary_ce_hess, "binary_ce",
                 targets="unit", outputs=("logistic", "softmax"),
                 diagonal_hess=True, likelihood="bernoulli")


# --- cross-entropy for K exclusive classes (PRML eq. 5.24) ---
def _softmax_ce(y, T):
    return -np.where(T > 0, T * np.log(_clip_probabilities(y)), 0.0).sum(axis=1)


def _softmax_ce_grad(y, T):
    return -T / _clip_probabilities(y)


def _softmax_ce_hess(y, T):
    return _diag(T / _clip_probabilities(y, _Y_MIN_HESS) ** 2)


SOFTMAX_CE = Loss(_softmax_ce, _softmax_ce_grad, _softmax_ce_hess,
                  "softmax_ce", targets="simplex", outputs=("softmax",),
                  diagonal_hess=True, likelihood="categorical")

LOSSES: dict[str, Loss] = {loss.name: loss for loss in (SSE, BINARY_CE, SOFTMAX_CE)}


def get_loss(spec) -> Loss:
    """A Loss from a name, a Loss, or a (value, grad[, hess]) tuple."""
    return from_table(spec, Loss, LOSSES, "loss", (2, 3), "value, grad, hess")


# ----- closed forms of a built-in loss on a built-in output activation -----
@dataclass(frozen=True)
class ClosedForm:
    """The algebra of one loss on one output activation in closed form, as
    functions of the output pre-activations a, the outputs y and T (N, K).

    ``canonical``: dE/da = y - t (PRML eqs. 4.91, 5.18) and the exact output
    curvature equals the Gauss-Newton one. ``value`` is written in a (log-
    sigmoid, log-sum-exp), so saturated outputs never give log(0).
    ``product(a, y, T, R)`` is M R for R (N, P, K) without forming M, and
    ``factor`` a B with B^T B = M; None where there is no cheap one.
    """

    value: Callable
    delta: Callable
    gauss_newton: Callable
    canonical: bool
    product: Callable | None = None
    factor: Callable | None = None


def logsumexp_rows(a: Array) -> Array:
    """log sum_k exp(a_k) per row, shifted by the row max: no overflow."""
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _binary_ce_logits(a, y, T):
    # -t log s(a) - (1-t) log(1-s(a)) = softplus(a) - t a, stable for any a
    return (np.logaddexp(0.0, a) - T * a).sum(axis=1)


def _softmax_ce_logits(a, y, T):
    # -sum_k t_k log y_k = sum_k t_k (logsumexp(a) - a_k), with logsumexp(a)
    # read off the softmax y = exp(a - logsumexp(a)) at its largest entry,
    # a_k - ln y_k for k = argmax a, where y_k >= 1/K: no log(0), and no
    # second exp over the outputs (it halves the cost of this function)
    lse = a.max(axis=1) - np.log(y.max(axis=1))
    return row_sums(T) * lse - np.einsum("nk,nk->n", T, a)


def _residual(a, y, T):
    return y - T


def _sse_logits(a, y, T):
    return _sse(a, T)


def _sse_curvature(a, y, T):
    return _diag(np.ones_like(y))


def _sse_product(a, y, T, R):
    return R


def _sse_factor(a, y, T):
    return np.ones_like(y)


def _logistic_curvature(a, y, T):
    return _diag(y * (1 - y))


def _logistic_product(a, y, T, R):
    return (y * (1 - y))[:, None, :] * R


def _logistic_factor(a, y, T):
    return np.sqrt(y * (1 - y))


def _softmax_ce_delta(a, y, T):
    # dE/da = y sum_k t_k - t (= y - t for probability rows)
    return y * row_sums(T)[:, None] - T


def _softmax_ce_curvature(a, y, T):
    s = T.sum(axis=1)[:, None, None]
    return s * (_diag(y) - y[:, :, None] * y[:, None, :])


def _softmax_ce_product(a, y, T, R):
    yb = y[:, None, :]
    s = T.sum(axis=1)[:, None, None]
    return s * yb * (R - np.sum(yb * R, axis=2, keepdims=True))


def _softmax_ce_factor(a, y, T):
    # diag(y) - y y^T = B^T B with B = diag(sqrt y) - sqrt(y) y^T
    # (uses sum_k y_k = 1); scaled by sqrt(sum_k t_k)
    r = np.sqrt(y)
    B = _diag(r) - r[:, :, None] * y[:, None, :]
    return B * np.sqrt(T.sum(axis=1))[:, None, None]


# --- binary_ce on softmax outputs (allowed, not canonical), from the logits ---
# E = -sum_k t_k log y_k + (1 - t_k) log(1 - y_k) with log y_k = a_k - lse(a)
# and log(1 - y_k) = lse_{j != k}(a_j) - lse(a): finite for any finite a,
# where y rounds to 0 or 1 and the y-forms give inf and NaN.
def _log_softmax_parts(a: Array) -> tuple[Array, Array]:
    """log y and log(1 - y), each (N, K), for y = softmax(a); O(N K^2)."""
    K = a.shape[1]
    lse = logsumexp_rows(a)[:, None]
    others = np.where(np.eye(K, dtype=bool), -np.inf, a[:, None, :])  # row k: j != k
    m = others.max(axis=2, keepdims=True)
    lse_others = m[:, :, 0] + np.log(np.exp(others - m).sum(axis=2))
    return a - lse, lse_others - lse


def _softmax_binary_ce_value(a, y, T):
    log_y, log_1my = _log_softmax_parts(a)
    return -(T * log_y + (1 - T) * log_1my).sum(axis=1)


def _softmax_binary_ce_factors(a: Array, y: Array) -> tuple[Array, Array]:
    """Q, P of shape (N, K, K) with rows q_k = e_k - y and p_k = y_k (e_k - y)
    / (1 - y_k), so that dE/da = sum_k (1 - t_k) p_k - t_k q_k and the
    Gauss-Newton curvature J^T diag(d2E/dy2) J = sum_k t_k q_k q_k^T
    + (1 - t_k) p_k p_k^T. Off the diagonal p_ki = -y_i y_k / (1 - y_k) is
    formed in logs (bounded by 1: y_i <= 1 - y_k)."""
    K = a.shape[1]
    log_y, log_1my = _log_softmax_parts(a)
    eye = np.eye(K, dtype=bool)
    P = -np.exp(np.where(eye, -np.inf,      # the diagonal is set below
                         log_y[:, None, :] + (log_y - log_1my)[:, :, None]))
    np.einsum("nkk->nk", P)[...] = y
    Q = np.where(eye, 1.0, 0.0) - y[:, None, :]
    return Q, P


def _softmax_binary_ce_delta(a, y, T):
    Q, P = _softmax_binary_ce_factors(a, y)
    return np.einsum("nk,nki->ni", 1 - T, P) - np.einsum("nk,nki->ni", T, Q)


def _softmax_binary_ce_gauss_newton(a, y, T):
    Q, P = _softmax_binary_ce_factors(a, y)
    return (np.einsum("nk,nki,nkj->nij", T, Q, Q)
            + np.einsum("nk,nki,nkj->nij", 1 - T, P, P))


#: (loss name, output activation name) -> its closed forms. Used only when
#: both are the tables' own objects: a user Activation called "logistic"
#: goes through the general chain rule.
CLOSED_FORMS: dict[tuple[str, str], ClosedForm] = {
    ("sse", "identity"): ClosedForm(
        _sse_logits, _residual, _sse_curvature, True,
        product=_sse_product, factor=_sse_factor),
    ("binary_ce", "logistic"): ClosedForm(
        _binary_ce_logits, _residual, _logistic_curvature, True,
        product=_logistic_product, factor=_logistic_factor),
    ("softmax_ce", "softmax"): ClosedForm(
        _softmax_ce_logits, _softmax_ce_delta, _softmax_ce_curvature, True,
        product=_softmax_ce_product, factor=_softmax_ce_factor),
    ("binary_ce", "softmax"): ClosedForm(
        _softmax_binary_ce_value, _softmax_binary_ce_delta,
        _softmax_binary_ce_gauss_newton, False),
}


def closed_form_of(loss: Loss, activation: Activation) -> ClosedForm | None:
    """The table's closed forms for this loss on this output activation, or
    None (then the general chain rule applies)."""
    if LOSSES.get(loss.name) is not loss or ACTIVATIONS.get(activation.name) is not activation:
        return None
    return CLOSED_FORMS.get((loss.name, activation.name))


class OutputLoss:
    """A loss paired with the output activation, as a function of the output
    pre-activations a: E_n(h(a), t) and its derivatives in a.

    A pair in :data:`CLOSED_FORMS` uses its closed forms; any other goes
    through the chain rule dE/da = h'(a) dE/dy (softmax: its Jacobian), which
    is exact too.
    """

    def __init__(self, loss: Loss, activation: Activation):
        built_in = ACTIVATIONS.get(activation.name) is activation
        if loss.outputs is not None and built_in and activation.name not in loss.outputs:
            raise ValueError(
                f"loss: {loss.name!r} needs outputs in (0, 1); the output "
                f"activation {activation.name!r} does not give them "
                f"(use {' or '.join(map(repr, loss.outputs))})")
        self.loss = loss
        self.activation = activation
        self.closed_form = closed_form_of(loss, activation)
        self.canonical = self.closed_form is not None and self.closed_form.canonical

    def pattern_errors(self, a: Array, y: Array, T: Array) -> Array:
        """E_n for each pattern, shape (N,)."""
        if self.closed_form is not None:
            return self.closed_form.value(a, y, T)
        return self.loss.value(y, T)

    def delta(self, a: Array, y: Array, T: Array) -> Array:
        """dE_n/da at the outputs, shape (N, K)."""
        if self.closed_form is not None:
            return self.closed_form.delta(a, y, T)
        return self.activation.vjp(a, y, self.loss.grad(y, T))

    def curvature(self, a: Array, y: Array, T: Array) -> Array:
        """Exact d2E_n/da2 at the outputs, shape (N, K, K).

        Canonical pairs: the Gauss-Newton curvature (I for sse, diag(y(1-y))
        for binary_ce, s (diag(y) - y y^T) with s = sum_k t_k for
        softmax_ce). Otherwise J^T (d2E/dy2) J plus the curvature of the
        output activation weighted by g = dE/dy: diag(g h'') elementwise; for
        softmax diag(c) - c y^T - y c^T with c = J g.
        """
        M = self.gauss_newton_curvature(a, y, T)
        if self.canonical:
            return M
        if self.activation.elementwise:
            idx = np.arange(y.shape[1])
            g = self.loss.grad(y, T)
            M[:, idx, idx] += g * self.activation.second_derivative(a, y)
        else:                       # softmax, see the docstring; c = J g = delta
            c = self.delta(a, y, T)
            M += _diag(c) - c[:, :, None] * y[:, None, :] - y[:, :, None] * c[:, None, :]
        return M

    def gauss_newton_curvature(self, a: Array, y: Array, T: Array) -> Array:
        """J_y^T (d2E/dy2) J_y with J_y = dy/da: the generalised Gauss-Newton
        curvature of the outputs, (N, K, K). Equal to the exact curvature for
        canonical pairs (PRML eq. 5.83 and sec. 5.4.2)."""
        if self.closed_form is not None:
            return self.closed_form.gauss_newton(a, y, T)
        if self.loss.hess is None:
            raise ValueError(f"loss: {self.loss.name!r} has no hess (d2E/dy2); "
                             "second derivatives need one")
        L = self.loss.hess(y, T)
        if self.activation.elementwise:
            d = self.activation.derivative(a, y)
            return d[:, :, None] * L * d[:, None, :]
        J = self.activation.jacobian(y)
        return J @ L @ J

    def curvature_product(self, a: Array, y: Array, T: Array, R: Array,
                          gauss_newton: bool = False) -> Array:
        """M R for R of shape (N, P, K), M the exact (or Gauss-Newton) output
        curvature, without forming M where the closed form has a product."""
        p = self.closed_form
        if p is not None and p.product is not None and (gauss_newton or p.canonical):
            return p.product(a, y, T, R)
        M = (self.gauss_newton_curvature(a, y, T) if gauss_newton
             else self.curvature(a, y, T))
        return np.einsum("nkl,npl->npk", M, R)

    def gauss_newton_factor(self, a: Array, y: Array, T: Array) -> Array | None:
        """B with B^T B = the Gauss-Newton curvature, when one is cheap:
        (N, K) for a diagonal B, (N, K, K) otherwise; None if unknown (the
        curvature may then be indefinite, e.g. a robust user loss)."""
        form = self.closed_form
        if form is not None:
            return None if form.factor is None else form.factor(a, y, T)
        if self.loss.diagonal_hess and self.activation.elementwise:
            root = np.sqrt(np.einsum("nkk->nk", self.loss.hess(y, T)))
            return root * self.activation.derivative(a, y)
        return None

    def __repr__(self) -> str:
        kind = ("canonical" if self.canonical
                else "closed form" if self.closed_form is not None else "chain rule")
        return f"OutputLoss({self.loss.name} on {self.activation.name}, {kind})"

    pairing = renamed_property("pairing", "closed_form")
    values = renamed_method("values", "pattern_errors")


__getattr__ = renamed_attributes(__name__, {
    "OutputError": "OutputLoss", "PAIRINGS": "CLOSED_FORMS", "Pairing": "ClosedForm",
    "pairing_of": "closed_form_of"})
