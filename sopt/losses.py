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

from .activations import ACTIVATIONS, Activation

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
        # a built-in pickles as its name and unpickles as the table's object
        if LOSSES.get(self.name) is self:
            return get_loss, (self.name,)
        return super().__reduce_ex__(protocol)


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


# --- cross-entropy for K independent binary targets (PRML eq. 5.21) ---
def _binary_ce(y, T):
    with np.errstate(divide="ignore", invalid="ignore"):
        e = -(np.where(T > 0, T * np.log(y), 0.0)
              + np.where(T < 1, (1 - T) * np.log1p(-y), 0.0))
    return e.sum(axis=1)


def _binary_ce_logits(a, T):
    # -t log s(a) - (1-t) log(1-s(a)) = softplus(a) - t a, stable for any a
    return (np.logaddexp(0.0, a) - T * a).sum(axis=1)


def _binary_ce_grad(y, T):
    return (y - T) / (y * (1 - y))


def _binary_ce_hess(y, T):
    return _diag(T / y**2 + (1 - T) / (1 - y) ** 2)


BINARY_CE = Loss(_binary_ce, _binary_ce_grad, _binary_ce_hess, "binary_ce",
                 "logistic", _binary_ce_logits)


# --- cross-entropy for K exclusive classes (PRML eq. 5.24) ---
def _softmax_ce(y, T):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(T > 0, T * np.log(y), 0.0).sum(axis=1)


def logsumexp_rows(a: Array) -> Array:
    """log sum_k exp(a_k) per row, shifted by the row max: no overflow."""
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _softmax_ce_logits(a, T):
    # -sum_k t_k log y_k = sum_k t_k (logsumexp(a) - a_k)
    return T.sum(axis=1) * logsumexp_rows(a) - np.einsum("nk,nk->n", T, a)


def _softmax_ce_hess(y, T):
    return _diag(T / y**2)


def _softmax_ce_grad(y, T):
    return -T / y


SOFTMAX_CE = Loss(_softmax_ce, _softmax_ce_grad, _softmax_ce_hess,
                  "softmax_ce", "softmax", _softmax_ce_logits)

LOSSES: dict[str, Loss] = {loss.name: loss for loss in (SSE, BINARY_CE, SOFTMAX_CE)}


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

    def values(self, a: Array, y: Array, T: Array) -> Array:
        """E_n for each pattern, shape (N,)."""
        if self.canonical:
            return self.loss.value_from_logits(a, T)
        return self.loss.value(y, T)

    def delta(self, a: Array, y: Array, T: Array) -> Array:
        """dE_n/da at the outputs, shape (N, K)."""
        if self.canonical:
            return canonical_delta(self.loss, a, y, T)
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
        g = self.loss.grad(y, T)
        if self.activation.elementwise:
            idx = np.arange(y.shape[1])
            M[:, idx, idx] += g * self.activation.second_derivative(a, y)
        else:                       # softmax, see the docstring
            c = self.activation.vjp(a, y, g)
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
