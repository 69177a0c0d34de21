"""Derivative checks a user can run on their own network, activation or loss.

Directional checks in the spirit of autograd's ``check_grads``: compare
u^T J v from the analytic derivative with a central difference of u^T f along
v, for a few random unit directions. Each check costs a handful of function
evaluations whatever the number of weights W. Every function returns relative
errors (numbers), to be compared with the O(eps^2) truncation error of the
central difference (about 1e-10 relative for eps ~ 6e-6 on smooth functions)
plus round-off of order macheps * |f| / eps.

Also here: :func:`random_network`, a seeded generator of random feed-forward
DAGs (skip connections, masks, mixed activations) for tests and ``sopt check``.
"""
from __future__ import annotations

import numpy as np

from ._validation import (as_float_array, check_finite, check_int,
                          check_positive_int, check_real)
from .activations import get_activation
from .losses import get_loss
from .network import Network
from .objective import Objective

Array = np.ndarray
_EPS1 = np.finfo(float).eps ** (1 / 3)     # optimal central-difference step
_TINY = np.finfo(float).tiny
SMOOTH_HIDDEN = ("tanh", "logistic", "softplus", "identity")


def _unit(rng, shape) -> Array:
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v)


def _step(eps, x=None) -> float:
    """eps checked finite > 0, or the default macheps^(1/3) max(1, max|x|)."""
    if eps is not None:
        return check_real(eps, "eps", low=0.0, low_open=True)
    return _EPS1 * (1.0 if x is None else max(1.0, np.abs(x).max()))


def _setup(x, n_directions, eps, name: str = "w"):
    """The point x, n_directions and eps of every check_*, checked."""
    x = as_float_array(x, name, bool_ok=False)
    check_finite(x, name)
    return x, check_positive_int(n_directions, "n_directions"), _step(eps, x)


def _returned(value, name: str) -> Array:
    """What the user's function ``name`` returned, as a float array: a
    TypeError (as finite_diff and minimize raise) if not real numbers."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: must return real numbers, got "
                        f"{type(value).__name__} of dtype {arr.dtype}")
    return arr.astype(float, copy=False)


def _central(f, x: Array, v: Array, eps: float, name: str) -> Array:
    return (_returned(f(x + eps * v), name)
            - _returned(f(x - eps * v), name)) / (2 * eps)


def check_gradient(fun, grad, w, n_directions: int = 5, eps: float | None = None,
                   seed=0) -> Array:
    """Relative errors of u^T grad(w) against central differences of fun.

    Returns ``|u^T g - (f(w + eps u) - f(w - eps u)) / (2 eps)| / |g|`` for
    ``n_directions`` random unit vectors u, shape (n_directions,). The
    scale |g| bounds |u^T g|, so the error is relative to the gradient's size.
    Cost: 2 * n_directions calls of fun and one of grad.
    """
    w, n_directions, eps = _setup(w, n_directions, eps)
    g = _returned(grad(w), "grad")
    if g.shape != w.shape:
        raise ValueError(f"grad: returned shape {g.shape}, expected {w.shape}")
    rng = np.random.default_rng(seed)
    scale = max(np.linalg.norm(g), _TINY)
    errs = []
    for _ in range(n_directions):
        u = _unit(rng, w.shape)
        errs.append(abs(u @ g - _central(fun, w, u, eps, "fun")) / scale)
    return np.array(errs)


def check_jacobian(f, jac, x, n_directions: int = 5, eps: float | None = None,
                   seed=0) -> Array:
    """Relative errors of u^T J v against central differences of u^T f(x).

    ``f`` maps an array x to an array y; ``jac(x)`` returns dy/dx with shape
    y.shape + x.shape. Errors are relative to the Frobenius norm of J.
    Cost: 2 * n_directions calls of f and one of jac.
    """
    x, n_directions, eps = _setup(x, n_directions, eps, "x")
    J = _returned(jac(x), "jac")
    y_shape = J.shape[:J.ndim - x.ndim]
    if J.shape[len(y_shape):] != x.shape:
        raise ValueError(f"jac: returned shape {J.shape}, expected "
                         f"f(x).shape + {x.shape}")
    J2 = J.reshape(int(np.prod(y_shape)), x.size)
    rng = np.random.default_rng(seed)
    scale = max(np.linalg.norm(J2), _TINY)
    errs = []
    for _ in range(n_directions):
        u, v = _unit(rng, J2.shape[0]), _unit(rng, x.size)
        fd = np.ravel(_central(f, x, v.reshape(x.shape), eps, "f"))
        errs.append(abs(u @ J2 @ v - u @ fd) / scale)
    return np.array(errs)


def _grad_difference(grad, w: Array, v: Array, eps: float) -> Array:
    """(g(w + eps v) - g(w - eps v)) / (2 eps) ~ H v, checked for shape."""
    out = _central(grad, w, v, eps, "grad")
    if out.shape != w.shape:
        raise ValueError(f"grad: returned shape {out.shape}, expected {w.shape}")
    return out


def check_hvp(grad, hvp, w, n_directions: int = 3, eps: float | None = None,
              seed=0) -> Array:
    """Relative errors of hvp(w, v) against central differences of the
    gradient along v, |H v - (g(w + eps v) - g(w - eps v)) / (2 eps)| / |H v|,
    for ``n_directions`` random unit vectors v; shape (n_directions,).

    The second-order check of autograd's ``check_grads(order=2)``: its cost
    (2 gradients and one product per direction) does not grow with W.
    """
    w, n_directions, eps = _setup(w, n_directions, eps)
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(n_directions):
        v = _unit(rng, w.shape)
        Hv = _returned(hvp(w, v), "hvp")
        if Hv.shape != w.shape:
            raise ValueError(f"hvp: returned shape {Hv.shape}, expected {w.shape}")
        fd = _grad_difference(grad, w, v, eps)
        errs.append(np.linalg.norm(Hv - fd) / max(np.linalg.norm(Hv), _TINY))
    return np.array(errs)


def check_hessian(grad, hess, w, n_directions: int = 3, eps: float | None = None,
                  seed=0) -> Array:
    """Relative errors of u^T H v, H = hess(w) a (W, W) matrix, against
    u^T of the central difference of the gradient along v, divided by
    |H v|; shape (n_directions,). Cost: one Hessian and 2 gradients per
    direction (the differences do not grow with W)."""
    w, n_directions, eps = _setup(w, n_directions, eps)
    H = _returned(hess(w), "hess")
    if H.shape != w.shape * 2:
        raise ValueError(f"hess: returned shape {H.shape}, expected {w.shape * 2}")
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(n_directions):
        u, v = _unit(rng, w.shape), _unit(rng, w.shape)
        Hv = H @ v
        fd = _grad_difference(grad, w, v, eps)
        errs.append(abs(u @ Hv - u @ fd) / max(np.linalg.norm(Hv), _TINY))
    return np.array(errs)


def check_network(net: Network, w, X, T=None, loss="sse", alpha: float = 0.0,
                  n_directions: int = 5, eps: float | None = None,
                  seed=0) -> dict[str, float]:
    """Largest directional relative errors of the backprop gradient, the input
    Jacobian dy/dx and the output sensitivities d a_out/dw.

    ``T`` defaults to random targets valid for ``loss``. Returns
    ``{"gradient": ..., "jacobian": ..., "sensitivities": ...}``.
    """
    rng = np.random.default_rng(seed)
    X = as_float_array(X, "X")
    if T is None:
        T = random_targets(rng, len(X), net.n_outputs, loss)
    obj = Objective(net, X, T, loss=loss, alpha=alpha)
    w = as_float_array(w, "w", bool_ok=False)
    kw = dict(n_directions=n_directions, eps=eps, seed=seed)
    out_a = lambda v: net.propagate(v, obj.X).a[-1]
    return {
        "gradient": float(check_gradient(obj.value, obj.gradient, w, **kw).max()),
        "jacobian": float(check_jacobian(
            lambda x: net.forward(w, x),
            lambda x: _block_jacobian(net.jacobian(w, x)), obj.X, **kw).max()),
        "sensitivities": float(check_jacobian(
            out_a, lambda v: net.output_sensitivities(v, obj.X), w, **kw).max()),
    }


def _block_jacobian(J: Array) -> Array:
    """(N, K, D) per-pattern Jacobians -> (N, K, N, D) of the whole batch."""
    N = J.shape[0]
    full = np.zeros((N, J.shape[1], N, J.shape[2]))
    full[np.arange(N), :, np.arange(N), :] = J
    return full


def check_activation(activation, a=None, eps: float | None = None) -> dict:
    """Relative errors of h' and h'' against central differences of h and h'.

    ``a`` defaults to 101 points on [-6, 6] shifted off 0 (kinks). Returns
    ``{"dh": ..., "d2h": ...}``, max errors relative to max |h'| and max |h''|
    (or 1 where that is 0).
    """
    act = get_activation(activation)
    if not act.elementwise:
        raise ValueError("activation: only elementwise activations can be "
                         "checked pointwise")
    a = np.linspace(-6, 6, 101) + 0.0123 if a is None else as_float_array(a, "a")
    eps = _step(eps)
    out = {}
    for name, f, df in (("dh", act.h, act.dh), ("d2h", act.dh, act.d2h)):
        exact = np.asarray(df(a), dtype=float)
        fd = (f(a + eps) - f(a - eps)) / (2 * eps)
        out[name] = float(np.abs(exact - fd).max() / max(np.abs(exact).max(), 1.0))
    return out


def check_loss(loss, y, T, eps: float | None = None) -> dict:
    """Relative errors of dE/dy and d2E/dy2 of a loss against central
    differences, at outputs y and targets T of shape (N, K).

    Returns ``{"grad": ..., "hess": ...}`` (hess only if the loss has one).
    """
    loss = get_loss(loss)
    y, T = as_float_array(y, "y"), as_float_array(T, "T")
    eps = _step(eps)
    K = y.shape[1]
    cols = [(y + eps * e, y - eps * e) for e in np.eye(K)]
    fd_grad = np.stack([(loss.value(p, T) - loss.value(m, T)) / (2 * eps)
                        for p, m in cols], axis=1)
    g = loss.grad(y, T)
    out = {"grad": float(np.abs(g - fd_grad).max() / max(np.abs(g).max(), 1.0))}
    if loss.hess is not None:
        fd_hess = np.stack([(loss.grad(p, T) - loss.grad(m, T)) / (2 * eps)
                            for p, m in cols], axis=2)
        H = loss.hess(y, T)
        out["hess"] = float(np.abs(H - fd_hess).max() / max(np.abs(H).max(), 1.0))
    return out


def random_targets(rng, n: int, k: int, loss_name) -> Array:
    """Targets valid for a loss (``loss_name``: its name or the Loss), by
    what its ``targets``
    field accepts: standard normal ("real"), uniform in [0, 1] ("unit", soft
    targets, which exercise more of the loss than 0/1 ones) or one-hot rows
    ("simplex"). For targets drawn from a loss's likelihood given outputs,
    see :meth:`sopt.losses.Loss.sample_targets`."""
    targets = get_loss(loss_name).targets
    if targets == "unit":
        return rng.random((n, k))
    if targets == "simplex":
        return np.eye(k)[rng.integers(0, k, n)]
    return rng.standard_normal((n, k))


def random_network(seed=None, n_inputs: int | None = None,
                   n_hidden_layers: int | None = None, max_units: int = 5,
                   n_outputs: int | None = None, output: str = "identity",
                   hidden=SMOOTH_HIDDEN, skip_prob: float = 0.5,
                   mask_prob: float = 0.3) -> Network:
    """A random feed-forward DAG for tests and checks.

    Each hidden layer is fed by the previous node and, with probability
    ``skip_prob`` each, by every earlier node (skip-layer connections); each
    edge gets a random 0/1 mask with probability ``mask_prob``. The output
    layer is fed by the last hidden layer and by random earlier nodes.
    Activations are drawn from ``hidden``.
    """
    _check_topology(n_inputs, n_hidden_layers, max_units, n_outputs, hidden,
                    skip_prob, mask_prob)
    rng = np.random.default_rng(seed)
    D = n_inputs or int(rng.integers(1, 4))
    L = int(rng.integers(1, 4)) if n_hidden_layers is None else n_hidden_layers
    # softmax over a single unit is the constant 1: draw K >= 2 for it
    K = n_outputs or int(rng.integers(2 if output == "softmax" else 1, 4))
    net = Network(D)
    nodes = [net.input]
    for l in range(L + 1):
        is_out = l == L
        size = K if is_out else int(rng.integers(1, max_units + 1))
        inputs = [nodes[-1]] + [n for n in nodes[:-1] if rng.random() < skip_prob]
        masks = {src: (rng.random((size, src.size)) < 0.7).astype(float)
                 for src in inputs if rng.random() < mask_prob}
        act = output if is_out else hidden[int(rng.integers(len(hidden)))]
        nodes.append(net.add_layer(size, act, inputs=inputs, masks=masks,
                                   output=is_out))
    return net


def _check_topology(n_inputs, n_hidden_layers, max_units, n_outputs, hidden,
                    skip_prob, mask_prob) -> None:
    """random_network's arguments: counts (None draws them) and probabilities."""
    for name, value, low in (("n_inputs", n_inputs, 1), ("n_outputs", n_outputs, 1),
                             ("n_hidden_layers", n_hidden_layers, 0)):
        if value is not None:           # None: drawn at random
            check_int(value, name, low)
    check_positive_int(max_units, "max_units")
    for name, value in (("skip_prob", skip_prob), ("mask_prob", mask_prob)):
        check_real(value, name, 0.0, 1.0)
    if isinstance(hidden, str) or len(hidden) == 0:
        raise ValueError(f"hidden: expected a non-empty sequence of activations "
                         f"to draw from, got {hidden!r}")


def rel_err(a, b) -> float:
    """Norm-wise relative error |a - b| / |b| (|b| floored at the smallest
    normal float, so b = 0 gives |a| / tiny rather than a division by 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:      # broadcasting would compare the wrong things
        raise ValueError(f"rel_err: shapes differ, {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))
