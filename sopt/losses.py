"""Error functions E_n(y, t) per pattern, with dE/dy and d2E/dy2.

A :class:`Loss` evaluates the error of each pattern from the network outputs y,
shape (N, K). A built-in loss also records its *canonical* output activation:
for the pairs sse + identity, binary_ce + logistic and softmax_ce + softmax the
output error signal is delta_k = dE/da_k = y_k - t_k (PRML eqs. 4.91, 5.18), and
the value is computed from the pre-activations a in a stable form (log-sigmoid,
log-sum-exp), so saturated outputs never produce log(0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .activations import ACTIVATIONS, Activation, reduce_by_name

Array = np.ndarray


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
    canonical : str, optional
        Name of the output activation for which dE/da = y - t.
    """

    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array] | None = None
    name: str = "custom"
    canonical: str | None = None
    value_from_logits: Callable[[Array, Array], Array] | None = None

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


SSE = Loss(_sse, _sse_grad, _sse_hess, "sse", "identity", _sse)


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


def _binary_ce_logits(a, T):
    # -t log s(a) - (1-t) log(1-s(a)) = softplus(a) - t a, stable for any a
    return (np.logaddexp(0.0, a) - T * a).sum(axis=1)


def _binary_ce_grad(y, T):
    y = _clip_probabilities(y)
    return (y - T) / (y * (1 - y))


def _binary_ce_hess(y, T):
    y = _clip_probabilities(y, _Y_MIN_HESS)
    return _diag(T / y**2 + (1 - T) / (1 - y) ** 2)


BINARY_CE = Loss(_binary_ce, _binary_ce_grad, _binary_ce_hess, "binary_ce",
                 "logistic", _binary_ce_logits)


# --- cross-entropy for K exclusive classes (PRML eq. 5.24) ---
def _softmax_ce(y, T):
    return -np.where(T > 0, T * np.log(_clip_probabilities(y)), 0.0).sum(axis=1)


def logsumexp_rows(a: Array) -> Array:
    """log sum_k exp(a_k) per row, shifted by the row max: no overflow."""
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _softmax_ce_logits(a, T):
    # -sum_k t_k log y_k = sum_k t_k (logsumexp(a) - a_k)
    return T.sum(axis=1) * logsumexp_rows(a) - np.einsum("nk,nk->n", T, a)


def _softmax_ce_grad(y, T):
    return -T / _clip_probabilities(y)


def _softmax_ce_hess(y, T):
    return _diag(T / _clip_probabilities(y, _Y_MIN_HESS) ** 2)


SOFTMAX_CE = Loss(_softmax_ce, _softmax_ce_grad, _softmax_ce_hess,
                  "softmax_ce", "softmax", _softmax_ce_logits)

LOSSES: dict[str, Loss] = {loss.name: loss for loss in (SSE, BINARY_CE, SOFTMAX_CE)}


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


def _softmax_binary_ce_value(a: Array, T: Array) -> Array:
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


def canonical_delta(loss: Loss, a: Array, y: Array, T: Array) -> Array:
    """dE/da for a canonical pair: y - t (softmax_ce: y sum_k t_k - t)."""
    if loss is SOFTMAX_CE:
        return y * T.sum(axis=1, keepdims=True) - T
    return y - T


def get_loss(spec) -> Loss:
    """A Loss from a name, a Loss, or a (value, grad[, hess]) tuple."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        try:
            return LOSSES[spec]
        except KeyError:
            raise ValueError(
                f"loss: unknown name {spec!r}; expected one of {sorted(LOSSES)} "
                "or a (value, grad, hess) tuple") from None
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(map(callable, spec)):
        return Loss(*spec)
    raise TypeError(
        "loss: expected a name, a Loss or a tuple of callables "
        f"(value, grad, hess), got {type(spec).__name__}")



# Built-in activations whose outputs lie in (0, 1), as the cross-entropies need
_PROBABILITY_OUTPUTS = {"binary_ce": ("logistic", "softmax"),
                        "softmax_ce": ("softmax",)}
_BUILTIN = ("identity", "tanh", "logistic", "softplus", "relu", "softmax")


class OutputError:
    """The error as a function of the output pre-activations: a loss paired
    with the output activation.

    Canonical pairs use the stable value from a and delta = y - t; any other
    pair goes through the chain rule dE/da = h'(a) dE/dy (softmax: its
    Jacobian), which is exact too.
    """

    def __init__(self, loss: Loss, activation: Activation):
        allowed = _PROBABILITY_OUTPUTS.get(loss.name)
        if (allowed and activation.name in _BUILTIN
                and activation.name not in allowed):
            raise ValueError(
                f"loss: {loss.name!r} needs outputs in (0, 1); the output "
                f"activation {activation.name!r} does not give them "
                f"(use {' or '.join(map(repr, allowed))})")
        self.loss = loss
        self.activation = activation
        # the built-in activation object itself, not just its name: a user
        # Activation called "logistic" gets the general chain rule
        self.canonical = (loss.canonical is not None
                          and loss.value_from_logits is not None
                          and activation is ACTIVATIONS.get(loss.canonical))
        # binary_ce on the built-in softmax: evaluated from the logits
        self._softmax_bce = loss is BINARY_CE and activation is ACTIVATIONS["softmax"]

    def values(self, a: Array, y: Array, T: Array) -> Array:
        """E_n for each pattern, shape (N,)."""
        if self.canonical:
            return self.loss.value_from_logits(a, T)
        if self._softmax_bce:
            return _softmax_binary_ce_value(a, T)
        return self.loss.value(y, T)

    def delta(self, a: Array, y: Array, T: Array) -> Array:
        """dE_n/da at the outputs, shape (N, K)."""
        if self.canonical:
            return canonical_delta(self.loss, a, y, T)
        if self._softmax_bce:
            Q, P = _softmax_binary_ce_factors(a, y)
            return np.einsum("nk,nki->ni", 1 - T, P) - np.einsum("nk,nki->ni", T, Q)
        return self.activation.vjp(a, y, self.loss.grad(y, T))

    def curvature(self, a: Array, y: Array, T: Array) -> Array:
        """Exact d2E_n/da2 at the outputs, shape (N, K, K).

        Canonical pairs: I (sse), diag(y(1-y)) (binary_ce), s (diag(y) - y y^T)
        with s = sum_k t_k (softmax_ce). Otherwise J^T (d2E/dy2) J plus the
        curvature of the output activation weighted by g = dE/dy: diag(g h'')
        elementwise; for softmax diag(c) - c y^T - y c^T with c = J g.
        """
        if self.canonical:
            return self.gauss_newton_curvature(a, y, T)
        M = self.gauss_newton_curvature(a, y, T)
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
        if self.canonical:
            if self.loss is SSE:
                return _diag(np.ones_like(y))
            if self.loss is BINARY_CE:
                return _diag(y * (1 - y))
            s = T.sum(axis=1)[:, None, None]
            return s * (_diag(y) - y[:, :, None] * y[:, None, :])
        if self._softmax_bce:
            Q, P = _softmax_binary_ce_factors(a, y)
            return (np.einsum("nk,nki,nkj->nij", T, Q, Q)
                    + np.einsum("nk,nki,nkj->nij", 1 - T, P, P))
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
        curvature, without forming M for the canonical pairs."""
        if self.canonical:
            if self.loss is SSE:
                return R
            if self.loss is BINARY_CE:
                return (y * (1 - y))[:, None, :] * R
            yb = y[:, None, :]
            s = T.sum(axis=1)[:, None, None]
            return s * yb * (R - np.sum(yb * R, axis=2, keepdims=True))
        M = (self.gauss_newton_curvature(a, y, T) if gauss_newton
             else self.curvature(a, y, T))
        return np.einsum("nkl,npl->npk", M, R)

    def gauss_newton_factor(self, a: Array, y: Array, T: Array) -> Array | None:
        """B with B^T B = the Gauss-Newton curvature, when one is cheap:
        (N, K) for a diagonal B, (N, K, K) otherwise; None if unknown (the
        curvature may then be indefinite, e.g. a robust user loss)."""
        if self.canonical:
            if self.loss is SSE:
                return np.ones_like(y)
            if self.loss is BINARY_CE:
                return np.sqrt(y * (1 - y))
            # diag(y) - y y^T = B^T B with B = diag(sqrt y) - sqrt(y) y^T
            # (uses sum_k y_k = 1); scaled by sqrt(sum_k t_k)
            r = np.sqrt(y)
            B = _diag(r) - r[:, :, None] * y[:, None, :]
            return B * np.sqrt(T.sum(axis=1))[:, None, None]
        if self.loss is SSE and self.activation.elementwise:
            return self.activation.derivative(a, y)
        return None

    def __repr__(self) -> str:
        kind = "canonical" if self.canonical else "chain rule"
        return f"OutputError({self.loss.name} on {self.activation.name}, {kind})"
