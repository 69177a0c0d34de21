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

from .tanh_table import tanh as _tanh

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
    dh_z : callable z -> h'(a), optional
        h' written in terms of z = h(a) (``1 - z**2`` for tanh). The backward
        passes have z at hand, and on CPUs without float64 SIMD
        transcendentals one tanh costs many multiplications
        (docs/PERFORMANCE.md).
    d2h_z : callable (z, h'(a)) -> h''(a), optional
        h'' from z and h' (``-2 z h'`` for tanh), which the passes that need
        h'' have already computed: two array passes.
    h_into, dh_z_into : callable (x, out) -> out, optional
        h(a) and h'(a) from z written into ``out``, so that an evaluation at
        a new w can recycle the arrays of the last one (no fresh memory).
    """

    h: Callable[[Array], Array]
    dh: Callable[[Array], Array]
    d2h: Callable[[Array], Array]
    name: str = "custom"
    dh_z: Callable[[Array], Array] | None = None
    d2h_z: Callable[[Array, Array], Array] | None = None
    elementwise: bool = True
    h_into: Callable[[Array, Array], Array] | None = None
    dh_z_into: Callable[[Array, Array], Array] | None = None

    def value(self, a: Array, out: Array | None = None) -> Array:
        """h(a), written into ``out`` (shape of a) where the activation can."""
        into = self.h_into if out is not None else None
        return self.h(a) if into is None else into(a, out)

    def derivative(self, a: Array, z: Array, out: Array | None = None) -> Array:
        """h'(a), from z where that is cheaper; into ``out`` where it can."""
        if self.dh_z is None:
            return self.dh(a)
        into = self.dh_z_into if out is not None else None
        return self.dh_z(z) if into is None else into(z, out)

    def second_derivative(self, a: Array, z: Array, dh: Array | None = None) -> Array:
        """h''(a), from z (and h'(a), if given) where that is cheaper."""
        if self.d2h_z is None:
            return self.d2h(a)
        return self.d2h_z(z, self.derivative(a, z) if dh is None else dh)

    def vjp(self, a: Array, z: Array, g: Array) -> Array:
        """dE/da given g = dE/dz; a, z of shape (..., M), g broadcastable.
        h' is diagonal, so this is also the Jacobian-vector product."""
        return g * self.derivative(a, z)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def __reduce_ex__(self, protocol):
        return reduce_by_name(self, ACTIVATIONS, get_activation, protocol)



def expit(a: Array, out: Array | None = None) -> Array:
    """The logistic 1 / (1 + e^-a), scipy's (accurate in both tails),
    imported on first use: scipy.special costs ~0.4 s of import."""
    from scipy.special import expit as scipy_expit
    return scipy_expit(a, out=out)

def reduce_by_name(obj, table: dict, lookup: Callable, protocol):
    """``__reduce_ex__`` of an entry of a table of built-ins (activations,
    losses): a built-in pickles as its name, so that it unpickles as the
    table's own object (canonical pairs are recognised by identity); any
    other object pickles as usual."""
    if table.get(obj.name) is obj:
        return lookup, (obj.name,)
    return object.__reduce_ex__(obj, protocol)


def _tanh_dh_z(z: Array) -> Array:
    return _tanh_dh_z_into(z, np.empty_like(z))


def _tanh_dh_z_into(z: Array, out: Array) -> Array:
    np.multiply(z, z, out=out)
    return np.subtract(1.0, out, out=out)


def _tanh_into(a: Array, out: Array) -> Array:
    return _tanh(a, out=out)


def _logistic_into(a: Array, out: Array) -> Array:
    return expit(a, out=out)


def _logistic_dh_z_into(z: Array, out: Array) -> Array:
    np.subtract(1.0, z, out=out)
    return np.multiply(z, out, out=out)


def _tanh_d2h_z(z: Array, dh: Array) -> Array:
    d2h = -2.0 * z
    d2h *= dh
    return d2h


def _logistic_dh_z(z: Array) -> Array:
    return z * (1.0 - z)


def _logistic_d2h_z(z: Array, dh: Array) -> Array:
    d2h = 1.0 - 2.0 * z
    d2h *= dh
    return d2h


def _logistic_dh(a: Array) -> Array:
    return _logistic_dh_z(expit(a))


def _tanh_dh(a: Array) -> Array:
    return _tanh_dh_z(_tanh(a))


def _tanh_d2h(a: Array) -> Array:
    z = _tanh(a)
    return _tanh_d2h_z(z, _tanh_dh_z(z))


def _logistic_d2h(a: Array) -> Array:
    z = expit(a)
    return _logistic_d2h_z(z, _logistic_dh_z(z))


def _softplus(a: Array) -> Array:
    # log(1 + e^a) without overflow: max(a, 0) + log1p(e^-|a|)
    return np.logaddexp(0.0, a)


def _relu(a: Array) -> Array:
    return np.maximum(a, 0.0)


def _relu_dh(a: Array) -> Array:
    # h'(0) := 0, the usual subgradient choice
    return (np.asarray(a) > 0).astype(float)


@dataclass(frozen=True, repr=False)
class _Identity(Activation):
    def vjp(self, a: Array, z: Array, g: Array) -> Array:
        return g            # h' = 1: no multiplication, no copy


def _identity(a: Array) -> Array:
    return a


def _identity_d2h_z(z: Array, dh: Array) -> Array:
    return np.zeros_like(z)


IDENTITY = _Identity(_identity, np.ones_like, np.zeros_like, "identity",
                     np.ones_like, _identity_d2h_z)
TANH = Activation(_tanh, _tanh_dh, _tanh_d2h, "tanh", _tanh_dh_z, _tanh_d2h_z,
                  h_into=_tanh_into, dh_z_into=_tanh_dh_z_into)
LOGISTIC = Activation(expit, _logistic_dh, _logistic_d2h, "logistic",
                      _logistic_dh_z, _logistic_d2h_z,
                      h_into=_logistic_into, dh_z_into=_logistic_dh_z_into)
SOFTPLUS = Activation(_softplus, expit, _logistic_dh, "softplus")
RELU = Activation(_relu, _relu_dh, np.zeros_like, "relu")


def row_sums(A: Array) -> Array:
    """Sums over the last axis, as a matrix-vector product: for few columns
    (class outputs) BLAS takes a third of the time of numpy's reduction
    along the short axis (digits' 1257 x 10: 12 against 37 us)."""
    return A @ np.ones(A.shape[-1])


def softmax(a: Array) -> Array:
    """Row-wise softmax over the last axis, shifted by the max (no overflow)."""
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    e /= row_sums(e)[..., None]
    return e


@dataclass(frozen=True, repr=False)
class _Softmax(Activation):
    """y_k = exp(a_k) / sum_k' exp(a_k'); couples the units of its layer."""

    def vjp(self, a: Array, z: Array, g: Array) -> Array:
        # (diag(y) - y y^T) g, without forming the K x K Jacobian
        return z * (g - np.sum(z * g, axis=-1, keepdims=True))

    def derivative(self, a, z):
        raise TypeError("softmax is not elementwise; use vjp or jacobian")

    def second_derivative(self, a, z):
        raise TypeError("softmax is not elementwise; see sopt.losses.OutputLoss.curvature")

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
    return from_table(spec, Activation, ACTIVATIONS, "activation", (3,), "h, dh, d2h")


def from_table(spec, cls: type, table: dict, kind: str, arities: tuple, fields: str):
    """A built-in of ``table`` by name, an instance of ``cls`` as it is, or
    ``cls(*spec)`` for a tuple of callables of one of the ``arities``
    (the lookup behind get_activation and get_loss)."""
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        if spec not in table:
            raise ValueError(f"{kind}: unknown name {spec!r}; expected one of "
                             f"{sorted(table)} or a ({fields}) tuple")
        return table[spec]
    if isinstance(spec, tuple) and len(spec) in arities and all(map(callable, spec)):
        return cls(*spec)
    raise TypeError(f"{kind}: expected a name, a {cls.__name__} or a tuple of "
                    f"callables ({fields}), got {type(spec).__name__}")
