"""Numerical derivatives of any function of the flat weight vector w.

These are the finite-difference twins of every analytic derivative in
`sopt.derivatives`. They are for two jobs:

- *checks*: compare a backpropagated gradient, Jacobian or Hessian with its
  central-difference estimate on a few small cases (PRML sec. 5.3.3: "results
  should be compared with numerical differentiation ... for some test
  cases");
- the *mixed Hessian*: central differences of a backpropagated gradient,
  which costs O(W^2) instead of the O(W^3) of differencing the error itself
  (PRML eq. 5.91).

All functions take any callable of a 1-D float64 vector, not only networks.

Formulas (h_i is the step of coordinate i, e_i the i-th unit vector):

- `gradient`, `jacobian`::

      d f / d w_i  ~  [f(w + h_i e_i) - f(w - h_i e_i)] / (2 h_i)

- `rowwise_jacobian`: the same, perturbing column i of every row of X at
  once, for a function whose row n depends only on row n of X;
- `hessian` (four-point formula, PRML eq. 5.90)::

      H_ij ~ [f(w + h_i e_i + h_j e_j) - f(w + h_i e_i - h_j e_j)
              - f(w - h_i e_i + h_j e_j) + f(w - h_i e_i - h_j e_j)]
             / (4 h_i h_j)

  which for i = j reads
  [f(w + 2h_i e_i) - 2 f(w) + f(w - 2h_i e_i)] / (4 h_i^2);
- `hessian_from_gradient` (mixed, PRML eq. 5.91)::

      H[:, i] ~ [g(w + h_i e_i) - g(w - h_i e_i)] / (2 h_i),  then (H + H^T)/2.

Errors. Every formula is symmetric about w, so the odd terms of the Taylor
series cancel and the truncation error is O(h^2) for all of them: h^2 f'''/6
for the first differences, h^2 (f_iiij + f_ijjj)/6 off the diagonal and
h^2 f''''/3 on the diagonal of the four-point Hessian. Round-off adds
O(macheps |f| / h) to first differences and O(macheps |f| / h^2) to the
four-point Hessian. Balancing the two gives the default steps
h ~ macheps^(1/3) ~ 6e-6 (error ~ macheps^(2/3) ~ 4e-11) and
h ~ macheps^(1/4) ~ 1.2e-4 (error ~ macheps^(1/2) ~ 1.5e-8), each times
max(1, |w_i|) so that the step scales with the coordinate (Nocedal & Wright
2006, Numerical Optimization, 2nd ed., sec. 8.1).

The step actually used is the representable one, h_i = (w_i + h_i) - w_i,
so the division is by the distance the argument really moved.

The caller's w is never modified: each function works on one private copy,
sets one or two entries, calls f, and restores them. f receives a read-only
view of that buffer; it must not modify its argument, and must copy it if it
wants to keep it (the buffer changes after the call returns).

References
----------
C. M. Bishop (1995), Neural Networks for Pattern Recognition, Oxford
University Press, ch. 4: numerical differentiation of the error (sec. 4.8)
and of the Hessian (sec. 4.10).
C. M. Bishop (2006), Pattern Recognition and Machine Learning, Springer,
sec. 5.3.3 (eq. 5.69) and sec. 5.4.4 (eqs. 5.90, 5.91).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from ._validation import as_float_array, check_dense_size, check_finite

__all__ = ["gradient", "jacobian", "rowwise_jacobian", "hessian",
           "hessian_from_gradient"]

Array = np.ndarray

_MACHEPS = float(np.finfo(np.float64).eps)
# Step constants: minimise c1 h^2 + c2 macheps / h^k over h (module docstring).
FIRST_DIFF_STEP = _MACHEPS ** (1.0 / 3.0)    # k = 1: ~6.06e-6
SECOND_DIFF_STEP = _MACHEPS ** (1.0 / 4.0)   # k = 2: ~1.22e-4

_REAL_KINDS = "iuf"   # signed/unsigned integer, float; not bool or complex


# ----------------------------------------------------------------- checks

def _check_callable(fun, name: str) -> Callable:
    if not callable(fun):
        raise TypeError(f"{name}: expected a callable, "
                        f"got {type(fun).__name__}")
    return fun


def _check_point(x, name: str, ndim: int) -> Array:
    """x as a finite, non-empty float64 array with ``ndim`` dimensions."""
    arr = as_float_array(x, name, bool_ok=False)
    if arr.ndim != ndim:
        want = "(W,)" if ndim == 1 else "(N, D)"
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {want}, "
                         f"got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one entry, "
                         f"got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def _steps(x: Array, eps, c: float, arg: str) -> Array:
    """Representable steps h, same shape as x, along its last axis.

    eps is None (h = c * max(1, |x|)), a positive scalar, or a positive array
    of shape (x.shape[-1],). Returns (x + h) - x, the distance the coordinate
    really moves, which must be positive and finite.
    """
    if eps is None:
        h = c * np.maximum(1.0, np.abs(x))
    else:
        e = np.asarray(eps)
        n = x.shape[-1]
        if e.dtype.kind not in _REAL_KINDS:
            raise TypeError(f"eps: expected None, a positive number or an "
                            f"array of shape ({n},), got dtype {e.dtype}")
        if e.shape not in ((), (n,)):
            raise ValueError(f"eps: expected None, a positive number or an "
                             f"array of shape ({n},), got shape {e.shape}")
        e = e.astype(np.float64, copy=False)
        bad = ~(np.isfinite(e) & (e > 0))
        if bad.any():
            shown = e if e.ndim == 0 else e[bad][0]
            raise ValueError(f"eps: expected finite steps > 0, got {shown}")
        h = np.broadcast_to(e, x.shape)
    h = (x + h) - x
    ok = np.isfinite(h) & (h > 0)
    if not ok.all():
        where = np.unravel_index(np.argmin(ok), x.shape)
        index = ", ".join(str(int(k)) for k in where)
        raise ValueError(f"eps: the step for {arg}[{index}] = "
                         f"{float(x[where])!r} rounds to {float(h[where])!r} "
                         f"in float64 (step too small or too large)")
    return h


def _where(arg: str, *moves: tuple[int, int]) -> str:
    """Human-readable point, e.g. 'w + h[2] e_2 - 2h[5] e_5'."""
    terms = [f"{'+' if s > 0 else '-'} {'' if abs(s) == 1 else abs(s)}"
             f"h[{i}] e_{i}" for i, s in moves]
    return " ".join([arg, *terms])


def _scalar(value, name: str, where: Callable[[], str]) -> float:
    """value (returned by ``name``) as a finite Python float."""
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"{name}: must return a scalar, got an array of "
                         f"shape {arr.shape} at {where()}")
    if arr.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{name}: must return a real number, got "
                        f"{type(value).__name__} at {where()}")
    v = float(arr)
    if not math.isfinite(v):
        raise ValueError(f"{name}: returned {v} at {where()}")
    return v


def _array(value, name: str, where: Callable[[], str]) -> Array:
    """A float64 copy of value (returned by ``name``), checked finite.

    Copied because f may return a view of its argument or a reused buffer.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{name}: must return real numbers, got dtype "
                        f"{arr.dtype} at {where()}")
    arr = arr.astype(np.float64, copy=True)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: returned NaN or infinite values at "
                         f"{where()}")
    return arr


def _array_reader(name: str, shape: tuple | None = None):
    """Reader ``(value, where) -> array`` that also fixes the output shape.

    ``shape=None`` takes the shape of the first value; every later value
    must match it.
    """
    seen = [shape]

    def read(value, where):
        arr = _array(value, name, where)
        if seen[0] is None:
            seen[0] = arr.shape
        elif arr.shape != seen[0]:
            raise ValueError(f"{name}: expected output of shape {seen[0]}, "
                             f"got {arr.shape} at {where()}")
        return arr
    return read


# ------------------------------------------------------------ core loop

def _workspace(x: Array) -> tuple[Array, Array]:
    """A private writable copy of x and a read-only view of it for f."""
    buf = x.copy()
    view = buf.view()
    view.flags.writeable = False
    return buf, view


def _central_pairs(fun: Callable, x: Array, h: Array, read,
                   arg: str) -> Iterator[tuple[int, object, object]]:
    """Yield (i, fun(x + h_i e_i), fun(x - h_i e_i)) for i over the last axis.

    For a 2-D x, coordinate i is column i of every row. 2 x.shape[-1] calls.
    ``read(value, where)`` validates and converts each returned value.
    """
    buf, view = _workspace(x)
    for i in range(x.shape[-1]):
        buf[..., i] = x[..., i] + h[..., i]
        plus = read(fun(view), lambda: _where(arg, (i, +1)))
        buf[..., i] = x[..., i] - h[..., i]
        minus = read(fun(view), lambda: _where(arg, (i, -1)))
        buf[..., i] = x[..., i]
        yield i, plus, minus


# ------------------------------------------------------------ public API

def gradient(f: Callable[[Array], float], w, eps=None) -> Array:
    """Gradient of a scalar function by central differences.

    ``g_i = [f(w + h_i e_i) - f(w - h_i e_i)] / (2 h_i)`` (PRML eq. 5.69),
    truncation error h_i^2 f'''/6 = O(h^2).

    Parameters
    ----------
    f : callable
        ``f(w) -> float``, a scalar function of a (W,) float64 vector. It
        is called with a read-only buffer that changes between calls: it
        must not write to it, and must copy it to keep it.
    w : array_like, shape (W,)
        Point of evaluation, finite. Not modified.
    eps : None, float or array_like of shape (W,), optional
        Nominal step(s) h. Default ``macheps**(1/3) * max(1, |w_i|)`` (~6e-6),
        which balances the O(h^2) truncation error against the
        O(macheps |f| / h) round-off; the error is then ~1e-10 |f|.

    Returns
    -------
    g : ndarray, shape (W,)

    Notes
    -----
    Cost: exactly 2W calls of f, i.e. Theta(W) calls and Theta(W^2) work
    for a network whose forward pass is Theta(W) (backpropagation does it
    in Theta(W), PRML sec. 5.3.3). Extra memory: two (W,) vectors.
    """
    _check_callable(f, "f")
    w = _check_point(w, "w", ndim=1)
    h = _steps(w, eps, FIRST_DIFF_STEP, "w")
    read = lambda value, where: _scalar(value, "f", where)  # noqa: E731
    g = np.empty(w.size)
    for i, plus, minus in _central_pairs(f, w, h, read, "w"):
        g[i] = (plus - minus) / (2.0 * h[i])
    return g


def jacobian(f: Callable[[Array], Array], w, eps=None) -> Array:
    """Jacobian of an array-valued function by central differences.

    ``J[..., i] = [f(w + h_i e_i) - f(w - h_i e_i)] / (2 h_i)``, truncation
    error O(h^2). Applied to a gradient function it gives the raw
    (unsymmetrised) mixed Hessian, ``J[k, i] ~ d g_k / d w_i``.

    Parameters
    ----------
    f : callable
        ``f(w) -> array_like`` of any fixed shape S (a scalar gives S = ()).
        Called with a read-only buffer, as in `gradient`.
    w : array_like, shape (W,)
        Point of evaluation, finite. Not modified.
    eps : None, float or array_like of shape (W,), optional
        Nominal step(s); default ``macheps**(1/3) * max(1, |w_i|)`` as in
        `gradient`.

    Returns
    -------
    J : ndarray, shape S + (W,)
        ``J[..., i] ~ d f(w)[...] / d w_i``.

    Notes
    -----
    Cost: exactly 2W calls of f. Peak extra memory: prod(S) * W doubles
    for J plus a few copies of f(w).
    """
    _check_callable(f, "f")
    w = _check_point(w, "w", ndim=1)
    h = _steps(w, eps, FIRST_DIFF_STEP, "w")
    read = _array_reader("f")
    J = None
    for i, plus, minus in _central_pairs(f, w, h, read, "w"):
        if J is None:
            shape = plus.shape
            J = np.empty((plus.size, w.size))
        J[:, i] = ((plus - minus) / (2.0 * h[i])).ravel()
    return J.reshape(shape + (w.size,))


def rowwise_jacobian(f: Callable[[Array], Array], X, eps=None) -> Array:
    """Per-pattern Jacobians dy_nk/dx_ni of a row-wise function.

    For f mapping an (N, D) array to (N, K) *row by row* (row n of the
    output depends only on row n of X, like a network forward pass), column
    i of every row is perturbed at once::

        J[n, :, i] = [f(X + h_{:,i} E_i)[n] - f(X - h_{:,i} E_i)[n]] / (2 h_ni)

    where E_i is 1 in column i and 0 elsewhere. Truncation error O(h^2).
    If f is not row-wise the result is wrong (rows leak into each other).

    Parameters
    ----------
    f : callable
        ``f(X) -> (N, K)`` or ``(N,)`` (treated as K = 1). Called with a
        read-only (N, D) buffer, as in `gradient`.
    X : array_like, shape (N, D)
        Inputs, one pattern per row, finite. Not modified.
    eps : None, float or array_like of shape (D,), optional
        Nominal step(s) per input coordinate; default
        ``macheps**(1/3) * max(1, |X_ni|)`` per entry.

    Returns
    -------
    J : ndarray, shape (N, K, D)
        ``J[n, k, i] ~ d y_nk / d x_ni`` (the layout of ``Network.jacobian``).

    Notes
    -----
    Cost: exactly 2D calls of f, i.e. O(D N W) work for a network, instead
    of 2 N D calls for a pattern-by-pattern loop. Peak extra memory: the
    (N, K, D) result, an (N, D) copy of X and a few (N, K) outputs.
    """
    _check_callable(f, "f")
    X = _check_point(X, "X", ndim=2)
    h = _steps(X, eps, FIRST_DIFF_STEP, "X")
    N, D = X.shape

    read_array = _array_reader("f")

    def read(value, where):
        y = read_array(value, where)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[0] != N:
            raise ValueError(f"f: expected output of shape ({N}, K) or "
                             f"({N},) for X of shape {X.shape}, got "
                             f"{np.shape(value)} at {where()}")
        return y

    J = None
    for i, plus, minus in _central_pairs(f, X, h, read, "X"):
        if J is None:
            J = np.empty((N, plus.shape[1], D))
        J[:, :, i] = (plus - minus) / (2.0 * h[:, i, None])
    return J


def _check_dense(w: Array, max_bytes) -> None:
    """Refuse a W x W result over max_bytes (default 4 GiB) before f runs."""
    check_dense_size(w.size, max_bytes, "finite-difference Hessian",
                     "check along a few directions instead "
                     "(sopt.testing.check_gradient / check_jacobian)")


def hessian(f: Callable[[Array], float], w, eps=None,
            max_bytes: float | None = None) -> Array:
    """Hessian of a scalar function by the four-point formula.

    ``H_ij = [f(w + h_i e_i + h_j e_j) - f(w + h_i e_i - h_j e_j)
    - f(w - h_i e_i + h_j e_j) + f(w - h_i e_i - h_j e_j)] / (4 h_i h_j)``
    (PRML eq. 5.90) for i < j, mirrored so that H is exactly symmetric; the
    diagonal is the same formula with i = j,
    ``[f(w + 2h_i e_i) - 2 f(w) + f(w - 2h_i e_i)] / (4 h_i^2)``.
    Truncation error O(h^2).

    Parameters
    ----------
    f : callable
        ``f(w) -> float``, called with a read-only buffer, as in `gradient`.
    w : array_like, shape (W,)
        Point of evaluation, finite. Not modified.
    eps : None, float or array_like of shape (W,), optional
        Nominal step(s) h. Default ``macheps**(1/4) * max(1, |w_i|)``
        (~1.2e-4): a second difference divides by h^2, so its round-off is
        O(macheps |f| / h^2), and balancing that against the O(h^2)
        truncation error gives h ~ macheps^(1/4) and an error ~1e-8 |f|.
    max_bytes : float, optional
        Refuse (MemoryError, before f is called) if the W x W result would
        take more bytes than this; default
        :data:`sopt._validation.DEFAULT_MAX_BYTES` (4 GiB).

    Returns
    -------
    H : ndarray, shape (W, W)
        Exactly symmetric.

    Notes
    -----
    Cost: 2W^2 + 1 calls of f, so O(W^3) work for a network (PRML
    sec. 5.4.4); only for checks on small networks. `hessian_from_gradient`
    needs 2W gradient calls, O(W^2) work. Peak extra memory: W^2 doubles.
    """
    _check_callable(f, "f")
    w = _check_point(w, "w", ndim=1)
    _check_dense(w, max_bytes)
    h = _steps(w, eps, SECOND_DIFF_STEP, "w")
    h2 = (w + 2.0 * h) - w      # representable double step for the diagonal
    W = w.size
    buf, view = _workspace(w)

    def value(*moves):
        return _scalar(f(view), "f", lambda: _where("w", *moves))

    f0 = value()
    H = np.empty((W, W))
    # d_plus[j] = f(w + h_i e_i + h_j e_j) - f(w + h_i e_i - h_j e_j);
    # d_minus[j] the same with w_i - h_i.
    d_plus = np.empty(W)
    d_minus = np.empty(W)
    for i in range(W):
        buf[i] = w[i] + h2[i]
        f_pp = value((i, +2))
        buf[i] = w[i] - h2[i]
        f_mm = value((i, -2))
        buf[i] = w[i]
        H[i, i] = (f_pp - 2.0 * f0 + f_mm) / (h2[i] * h2[i])
        for s, d in ((+1, d_plus), (-1, d_minus)):
            buf[i] = w[i] + s * h[i]
            for j in range(i + 1, W):
                buf[j] = w[j] + h[j]
                a = value((i, s), (j, +1))
                buf[j] = w[j] - h[j]
                b = value((i, s), (j, -1))
                buf[j] = w[j]
                d[j] = a - b
            buf[i] = w[i]
        row = (d_plus[i + 1:] - d_minus[i + 1:]) / (4.0 * h[i] * h[i + 1:])
        H[i, i + 1:] = row
        H[i + 1:, i] = row
    return H


def hessian_from_gradient(g: Callable[[Array], Array], w, eps=None,
                          max_bytes: float | None = None) -> Array:
    """The "mixed" Hessian: central differences of a gradient function.

    ``H[:, i] = [g(w + h_i e_i) - g(w - h_i e_i)] / (2 h_i)`` (PRML
    eq. 5.91), then symmetrised, ``(H + H^T) / 2``. Truncation error
    O(h^2). With g computed by backpropagation this is the cheap numerical
    Hessian; its asymmetry before symmetrising (see `jacobian`) is a check
    on g.

    Parameters
    ----------
    g : callable
        ``g(w) -> (W,)``, the gradient of some scalar function. Called
        with a read-only buffer, as in `gradient`.
    w : array_like, shape (W,)
        Point of evaluation, finite. Not modified.
    eps : None, float or array_like of shape (W,), optional
        Nominal step(s) h. Default ``macheps**(1/3) * max(1, |w_i|)``
        (~6e-6): a first difference of g, so truncation O(h^2) against
        round-off O(macheps |g| / h), as in `gradient`.
    max_bytes : float, optional
        As for `hessian`: refuse (MemoryError, before g is called) a W x W
        result of more bytes than this.

    Returns
    -------
    H : ndarray, shape (W, W), exactly symmetric.

    Notes
    -----
    Cost: exactly 2W calls of g, so O(W^2) work for a network whose
    gradient is Theta(W) (PRML sec. 5.4.4). Peak extra memory: 2 W^2
    doubles (H and H^T summed).
    """
    _check_callable(g, "g")
    w = _check_point(w, "w", ndim=1)
    _check_dense(w, max_bytes)
    h = _steps(w, eps, FIRST_DIFF_STEP, "w")
    read = _array_reader("g", (w.size,))
    H = np.empty((w.size, w.size))
    for i, plus, minus in _central_pairs(g, w, h, read, "w"):
        # Row i holds column i of the Jacobian of g; transposition does not
        # matter once symmetrised, and a row is a contiguous write.
        H[i] = (plus - minus) / (2.0 * h[i])
    H = H + H.T
    H *= 0.5
    return H
