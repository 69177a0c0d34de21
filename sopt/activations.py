"""Activation functions h(a) with their first and second derivatives.

Every activation is a value of :class:`Activation`: three vectorised functions of
the pre-activation ``a`` (``h``, ``dh``, ``d2h``; the Hessian needs ``d2h``) that
never overflow nor warn for |a| up to 1e3 and beyond. The table ``ACTIVATIONS``
holds the built-in ones by name. ``softmax`` couples the units of a layer, so it
is not elementwise; it is allowed on output layers only and is handled through
its Jacobian diag(y) - y y^T (PRML eq. 4.106).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import expit

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """An elementwise activation h with h' and h'' as functions of a.

    Parameters
    ----------
    h, dh, d2h : callable
        Vectorised maps of an array of pre-activations to an array of the same
        shape: h(a), h'(a), h''(a).
    name : str
        Shown in reprs and error messages.
    dh_from_z : callable, optional
        h'(a) written in terms of z = h(a) (``1 - z**2`` for tanh), cheaper in
        the backward pass where z is at hand. Must write into ``out``.
    """

    h: Callable[[Array], Array]
    dh: Callable[[Array], Array]
    d2h: Callable[[Array], Array]
    name: str = "custom"
    dh_from_z: Callable[[Array, Array], Array] | None = None
    elementwise: bool = True

    def derivative(self, a: Array, z: Array, out: Array | None = None) -> Array:
        """h'(a) from whichever of a, z is cheaper; written into ``out`` if given."""
        if self.dh_from_z is not None:
            if out is None:
                out = np.empty_like(z)
            return self.dh_from_z(z, out)
        d = self.dh(a)
        if out is None:
            return d
        out[...] = d
        return out

    def vjp(self, a: Array, z: Array, g: Array) -> Array:
        """dE/da given g = dE/dz; a, z of shape (..., M), g broadcastable."""
        return g * self.derivative(a, z)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _tanh_dh_from_z(z: Array, out: Array) -> Array:
    np.multiply(z, z, out=out)
    np.subtract(1.0, out, out=out)
    return out


def _logistic_dh_from_z(z: Array, out: Array) -> Array:
    np.subtract(1.0, z, out=out)
    np.multiply(out, z, out=out)
    return out


def _tanh_d2h(a: Array) -> Array:
    z = np.tanh(a)
    return -2.0 * z * (1.0 - z * z)


def _logistic_dh(a: Array) -> Array:
    s = expit(a)
    return s * (1.0 - s)


def _logistic_d2h(a: Array) -> Array:
    s = expit(a)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _softplus(a: Array) -> Array:
    # log(1 + e^a) without overflow: max(a, 0) + log1p(e^-|a|)
    return np.logaddexp(0.0, a)


def _relu(a: Array) -> Array:
    return np.maximum(a, 0.0)


def _relu_dh(a: Array) -> Array:
    # h'(0) := 0, the usual subgradient choice
    return (np.asarray(a) > 0).astype(float)


def _identity_dh_from_z(z: Array, out: Array) -> Array:
    out.fill(1.0)
    return out


IDENTITY = Activation(lambda a: a, np.ones_like, np.zeros_like, "identity",
                      _identity_dh_from_z)
TANH = Activation(np.tanh, lambda a: 1.0 - np.tanh(a) ** 2, _tanh_d2h, "tanh",
                  _tanh_dh_from_z)
LOGISTIC = Activation(expit, _logistic_dh, _logistic_d2h, "logistic",
                      _logistic_dh_from_z)
SOFTPLUS = Activation(_softplus, expit, _logistic_dh, "softplus")
RELU = Activation(_relu, _relu_dh, np.zeros_like, "relu")


def softmax(a: Array) -> Array:
    """Row-wise softmax over the last axis, shifted by the max (no overflow)."""
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


@dataclass(frozen=True)
class _Softmax(Activation):
    """y_k = exp(a_k) / sum_k' exp(a_k'); couples the units of its layer."""

    def vjp(self, a: Array, z: Array, g: Array) -> Array:
        # (diag(y) - y y^T) g, without forming the K x K Jacobian
        return z * (g - np.sum(z * g, axis=-1, keepdims=True))

    def derivative(self, a, z, out=None):
        raise TypeError("softmax is not elementwise; use vjp or jacobian")

    @staticmethod
    def jacobian(z: Array) -> Array:
        """dy/da = diag(y) - y y^T, shape (..., K, K)."""
        return z[..., :, None] * (np.eye(z.shape[-1]) - z[..., None, :])


def _not_elementwise(a):
    raise TypeError("softmax is not elementwise: it has no scalar h'(a)")


SOFTMAX = _Softmax(softmax, _not_elementwise, _not_elementwise, "softmax",
                   elementwise=False)

ACTIVATIONS: dict[str, Activation] = {
    act.name: act for act in (IDENTITY, TANH, LOGISTIC, SOFTPLUS, RELU, SOFTMAX)
}


def get_activation(spec) -> Activation:
    """An Activation from a name, an Activation, or an (h, dh, d2h) triple."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec]
        except KeyError:
            raise ValueError(
                f"activation: unknown name {spec!r}; expected one of "
                f"{sorted(ACTIVATIONS)} or an (h, dh, d2h) triple") from None
    if isinstance(spec, tuple) and len(spec) == 3 and all(map(callable, spec)):
        return Activation(*spec)
    raise TypeError(
        "activation: expected a name, an Activation or a tuple of three "
        f"callables (h, dh, d2h), got {type(spec).__name__}")
