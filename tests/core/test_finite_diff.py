"""Tests of sopt.finite_diff: numbers against analytic derivatives.

Tolerances are error bounds, not fudge factors. Every formula is central, so
the error is

    truncation  h^2 * (higher derivative) / const      (the O(h^2) term)
  + round-off   (error of one f value) / h  or  / h^2   (first / second diff.)

and the error of one f value is bounded by ROUND * (sum of |terms| of f),
with ROUND = (W + 4) macheps for the short sums used here (a dot product of
length W has relative error <= W macheps; exp, sin, tanh add a few ulps).
"""
import numpy as np
import pytest

from helpers import Counted, must_not_be_called
from sopt import finite_diff as fd

MACHEPS = np.finfo(np.float64).eps
H1 = MACHEPS ** (1 / 3)      # default step of first differences, ~6e-6
H2 = MACHEPS ** (1 / 4)      # default step of the four-point Hessian, ~1.2e-4


# --------------------------------------------------------------- fixtures

def quadratic(W=6, seed=0):
    """f = 1/2 w^T A w + b^T w, its gradient g, and sizes S of f, G of g."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((W, W))
    A = A + A.T
    b = rng.standard_normal(W)
    w = rng.standard_normal(W)

    def f(v):
        return 0.5 * v @ A @ v + b @ v

    def g(v):
        return A @ v + b

    S = 0.5 * np.abs(w) @ np.abs(A) @ np.abs(w) + np.abs(b) @ np.abs(w)
    G = np.max(np.abs(A) @ np.abs(w) + np.abs(b))
    return f, g, A, b, w, S, G


# Non-polynomial test function on |w_i| <= 0.9:
#   f(w) = sum_i exp(sin w_i) + (w_0 w_1)^3.
# With u = exp(sin x), s = sin x, c = cos x:
#   u' = u c,  u'' = u (c^2 - s),  u''' = -u c s (s + 3),
#   u'''' = -u [c^2 s (s + 3) - s^3 + 2 c^2 s - 3 s^2 + 3 c^2].
# Bounds on [-1, 1] (sampled): |u'''| <= 4.1, |u''''| <= 5.8; of the coupling
# term, third derivatives <= 18 and fourth derivatives <= 36.
M3 = 4.1 + 18.0              # |d^3 f / dw_i^2 dw_j| and friends
M4 = 5.8 + 36.0              # |fourth derivatives of f|
F_MAX = lambda W: W * np.e + 1.0   # noqa: E731  |f| on the box
G_MAX = 1.46 + 3.0                 # |g_k| on the box


def u_derivs(x):
    s, c, u = np.sin(x), np.cos(x), np.exp(np.sin(x))
    return (u, u * c, u * (c * c - s), -u * c * s * (s + 3),
            -u * (c * c * s * (s + 3) - s ** 3 + 2 * c * c * s - 3 * s * s
                  + 3 * c * c))


def f_nonpoly(w):
    return np.sum(np.exp(np.sin(w))) + (w[0] * w[1]) ** 3


def g_nonpoly(w):
    g = u_derivs(w)[1].copy()
    g[0] += 3 * w[0] ** 2 * w[1] ** 3
    g[1] += 3 * w[0] ** 3 * w[1] ** 2
    return g


def h_nonpoly(w):
    H = np.diag(u_derivs(w)[2])
    H[0, 0] += 6 * w[0] * w[1] ** 3
    H[1, 1] += 6 * w[0] ** 3 * w[1]
    H[0, 1] = H[1, 0] = 9 * w[0] ** 2 * w[1] ** 2
    return H


W_NP = np.array([0.3, -0.7, 0.9, 0.5])     # all u''' and u'''' away from 0


def round_err(W, size):
    """Bound on the error of one value of f (module docstring)."""
    return (W + 4) * MACHEPS * size


# ------------------------------------------------- exact on a quadratic

def test_quadratic_gradient_exact_up_to_roundoff():
    f, g, A, b, w, S, _ = quadratic()
    err = np.abs(fd.gradient(f, w) - g(w)).max()
    # f''' = 0: no truncation error; round-off 2 * round_err / (2h), h >= H1.
    assert err <= round_err(w.size, S) / H1


def test_quadratic_four_point_hessian_exact_and_symmetric():
    f, g, A, b, w, S, _ = quadratic()
    H = fd.hessian(f, w)
    assert np.array_equal(H, H.T)
    # The four-point formula is exact for quadratics; round-off is
    # 4 * round_err / (4 h_i h_j) with h >= H2.
    assert np.abs(H - A).max() <= round_err(w.size, S) / H2 ** 2


def test_quadratic_mixed_hessian_exact_and_symmetric():
    f, g, A, b, w, S, G = quadratic()
    H = fd.hessian_from_gradient(g, w)
    assert np.array_equal(H, H.T)
    # g is linear: no truncation; round-off of g is <= round_err(W, G).
    assert np.abs(H - A).max() <= round_err(w.size, G) / H1


# ------------------------------------------- non-polynomial, O(h^2) bounds

def test_gradient_nonpolynomial():
    w = W_NP
    err = np.abs(fd.gradient(f_nonpoly, w) - g_nonpoly(w)).max()
    # truncation h^2 |f_iii| / 6 + round-off round_err / h, at h = H1.
    tol = H1 ** 2 * M3 / 6 + round_err(w.size, F_MAX(w.size)) / H1
    assert err <= tol
    assert tol < 1e-8           # the bound itself is a strong check


def test_four_point_hessian_nonpolynomial():
    w = W_NP
    H = fd.hessian(f_nonpoly, w)
    assert np.array_equal(H, H.T)
    # off-diagonal truncation h^2 (f_iiij + f_ijjj) / 6 <= h^2 M4 / 3;
    # diagonal (2h)^2 f_iiii / 12 = h^2 f_iiii / 3; round-off round_err/h^2.
    tol = H2 ** 2 * M4 / 3 + round_err(w.size, F_MAX(w.size)) / H2 ** 2
    assert np.abs(H - h_nonpoly(w)).max() <= tol
    assert tol < 2e-6


def test_mixed_hessian_nonpolynomial():
    w = W_NP
    H = fd.hessian_from_gradient(g_nonpoly, w)
    assert np.array_equal(H, H.T)
    # truncation h^2 |d^3 g_k / dw_i^3| / 6 <= h^2 M4 / 6; round-off of g.
    tol = H1 ** 2 * M4 / 6 + round_err(w.size, G_MAX) / H1
    assert np.abs(H - h_nonpoly(w)).max() <= tol


def test_jacobian_of_gradient_is_the_hessian():
    w = W_NP
    J = fd.jacobian(g_nonpoly, w)
    assert J.shape == (4, 4)
    tol = H1 ** 2 * M4 / 6 + round_err(w.size, G_MAX) / H1
    assert np.abs(J - h_nonpoly(w)).max() <= tol


def test_jacobian_keeps_output_shape():
    # f(w) = outer(w, w)[:2], shape (2, W);
    # d f_ab / d w_i = d_ai w_b + w_a d_bi.
    w = np.array([0.5, -1.5, 2.0])
    J = fd.jacobian(lambda v: np.outer(v, v)[:2], w)
    I = np.eye(3)
    expected = (I[:2, None, :] * w[None, :, None]
                + w[:2, None, None] * I[None, :, :])
    assert J.shape == (2, 3, 3)
    # f is quadratic: no truncation; round-off ~ macheps |w|^2 / h.
    assert np.abs(J - expected).max() <= 10 * MACHEPS * 4.0 / H1


def test_jacobian_of_identity_returning_its_argument():
    # f returns (a view of) its argument: values must be copied before the
    # buffer moves on. Error: rounding of w - h, <= macheps |w| / (4h).
    w = np.array([0.1, -3.0, 7.0])
    J = fd.jacobian(lambda v: v, w)
    assert np.abs(J - np.eye(3)).max() <= MACHEPS * 7.0 / (4 * H1)


def test_jacobian_of_scalar_function_is_gradient():
    J = fd.jacobian(f_nonpoly, W_NP)
    assert J.shape == (4,)
    assert np.array_equal(J, fd.gradient(f_nonpoly, W_NP))


# ------------------------------------------------------------ rowwise

def tanh_layer(D=3, K=2, N=5, seed=1):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, D))
    X = rng.standard_normal((N, D))
    Y = np.tanh(X @ A.T)
    J = (1 - Y ** 2)[:, :, None] * A[None, :, :]        # (N, K, D)
    return A, X, J


def rowwise_tol(A, X):
    """Error bound for the default step on y = tanh(X A^T).

    d^3 y_nk / dx_ni^3 = tanh'''(a) A_ki^3 with |tanh'''| <= 2: truncation
    h^2 * 2 max|A|^3 / 6 with h = H1 max(1, |x|). Round-off: y has error
    <= (D + 4) macheps (|y| <= 1), divided by h >= H1.
    """
    h = H1 * max(1.0, np.abs(X).max())
    D = X.shape[1]
    return h ** 2 * 2 * np.abs(A).max() ** 3 / 6 + (D + 4) * MACHEPS / H1


def test_rowwise_jacobian_tanh_and_call_count():
    A, X, J = tanh_layer()
    f = Counted(lambda Z: np.tanh(Z @ A.T))
    Jfd = fd.rowwise_jacobian(f, X)
    assert Jfd.shape == J.shape == (5, 2, 3)
    assert f.calls == 2 * X.shape[1]
    assert np.abs(Jfd - J).max() <= rowwise_tol(A, X)


def test_rowwise_jacobian_vector_output_is_k1():
    A, X, J = tanh_layer(K=1)
    Jfd = fd.rowwise_jacobian(lambda Z: np.tanh(Z @ A[0]), X)     # (N,)
    assert Jfd.shape == (5, 1, 3)
    assert np.abs(Jfd - J).max() <= rowwise_tol(A, X)


def test_rowwise_jacobian_matches_pattern_by_pattern_jacobian():
    A, X, _ = tanh_layer()
    eps = np.array([1e-3, 2e-3, 4e-3])
    Jfd = fd.rowwise_jacobian(lambda Z: np.tanh(Z @ A.T), X, eps=eps)
    for n in range(X.shape[0]):
        Jn = fd.jacobian(lambda x: np.tanh(A @ x), X[n], eps=eps)
        # Same steps, same points; only the rounding of the matrix product
        # may differ: ~10 macheps / h.
        np.testing.assert_allclose(Jfd[n], Jn, rtol=0, atol=1e-11)


# --------------------------------------------------- error is O(h^2)

def _case_errors(name, h):
    w = W_NP
    if name == "gradient":
        return np.abs(fd.gradient(f_nonpoly, w, eps=h) - g_nonpoly(w)).max()
    if name == "jacobian":
        return np.abs(fd.jacobian(g_nonpoly, w, eps=h) - h_nonpoly(w)).max()
    if name == "hessian":
        return np.abs(fd.hessian(f_nonpoly, w, eps=h) - h_nonpoly(w)).max()
    if name == "hessian_from_gradient":
        H = fd.hessian_from_gradient(g_nonpoly, w, eps=h)
        return np.abs(H - h_nonpoly(w)).max()
    A, X, J = tanh_layer()
    Jfd = fd.rowwise_jacobian(lambda Z: np.tanh(Z @ A.T), X, eps=h)
    return np.abs(Jfd - J).max()


@pytest.mark.parametrize("name", ["gradient", "jacobian", "hessian",
                                  "hessian_from_gradient", "rowwise_jacobian"])
def test_error_is_second_order_in_h(name):
    # At h = 1e-2 the truncation error (~1e-5..1e-4) dwarfs round-off
    # (< 1e-10 even for the four-point formula), and the O(h^4) term is
    # ~1e-4 of the leading one, so halving h divides the error by ~4.
    ratio = _case_errors(name, 1e-2) / _case_errors(name, 5e-3)
    assert 3.0 <= ratio <= 5.0


def test_per_coordinate_steps_give_per_coordinate_errors():
    # Separable f: the error of coordinate i is h_i^2 u'''(w_i) / 6 to
    # leading order (next term ~ h^2 / 20 relative, < 1e-3 here).
    w = W_NP
    eps = np.array([1e-2, 2e-2, 4e-3, 8e-3])
    f = lambda v: np.sum(np.exp(np.sin(v)))       # noqa: E731
    u = u_derivs(w)
    err = fd.gradient(f, w, eps=eps) - u[1]
    np.testing.assert_allclose(err, eps ** 2 * u[3] / 6, rtol=2e-3)
    # Four-point diagonal: step 2h, error (2h)^2 u'''' / 12 = h^2 u'''' / 3;
    # off-diagonal entries vanish (f separable) up to round-off/h_i h_j.
    H = fd.hessian(f, w, eps=eps)
    np.testing.assert_allclose(np.diag(H) - u[2], eps ** 2 * u[4] / 3,
                               rtol=5e-3)
    off = H - np.diag(np.diag(H))
    assert np.abs(off).max() <= round_err(4, F_MAX(4)) / eps.min() ** 2
    # Mixed Hessian: column i error h_i^2 g_i''' / 6 = h_i^2 u'''' / 6.
    g = lambda v: u_derivs(v)[1]                  # noqa: E731
    Hm = fd.hessian_from_gradient(g, w, eps=eps)
    np.testing.assert_allclose(np.diag(Hm) - u[2], eps ** 2 * u[4] / 6,
                               rtol=2e-3)


def test_scalar_eps_equals_constant_array():
    f, g, A, b, w, S, G = quadratic()
    assert np.array_equal(fd.gradient(f, w, eps=1e-3),
                          fd.gradient(f, w, eps=np.full(w.size, 1e-3)))
    assert np.array_equal(fd.hessian(f, w, eps=1e-3),
                          fd.hessian(f, w, eps=np.full(w.size, 1e-3)))


def test_representable_step_is_used():
    # w = 1 + 2^-30, nominal h = 1e-7: w + h rounds, so the step really taken
    # differs from 1e-7 by up to ulp(1)/2 (relative ~1e-9). For f = 4 w_0
    # (exact in float64) both perturbed points and their distance are exact,
    # so dividing by the real step gives the slope 4 exactly; dividing by
    # the nominal step would not.
    w = np.array([1.0 + 2.0 ** -30])
    h = 1e-7
    assert (w[0] + h) - w[0] != h                # the nominal step rounds
    assert fd.gradient(lambda v: 4.0 * v[0], w, eps=h)[0] == 4.0
    assert fd.jacobian(lambda v: 4.0 * v, w, eps=h)[0, 0] == 4.0


# ------------------------------------------------------- call counts

def test_call_counts():
    f, g, A, b, w, S, G = quadratic(W=5)
    W = w.size
    for fun, fn, expected in [(fd.gradient, f, 2 * W),
                              (fd.jacobian, g, 2 * W),
                              (fd.hessian_from_gradient, g, 2 * W),
                              (fd.hessian, f, 2 * W * W + 1)]:
        counted = Counted(fn)
        fun(counted, w)
        assert counted.calls == expected, fun.__name__


# ------------------------------------------------------- no mutation

@pytest.mark.parametrize("fun, fn", [(fd.gradient, f_nonpoly),
                                     (fd.jacobian, g_nonpoly),
                                     (fd.hessian, f_nonpoly),
                                     (fd.hessian_from_gradient, g_nonpoly)])
def test_w_is_not_mutated_and_not_passed(fun, fn):
    w = W_NP.copy()
    w.flags.writeable = False            # would raise if written to
    seen = []
    fun(lambda v: seen.append(v is w) or fn(v), w)
    assert np.array_equal(w, W_NP)
    assert not any(seen)


def test_rowwise_X_is_not_mutated():
    A, X, _ = tanh_layer()
    X0 = X.copy()
    fd.rowwise_jacobian(lambda Z: np.tanh(Z @ A.T), X)
    assert np.array_equal(X, X0)


def test_f_that_writes_to_its_argument_fails_loudly():
    w = W_NP.copy()

    def f(v):
        v[0] = 0.0
        return 0.0
    with pytest.raises(ValueError, match="read-only"):
        fd.gradient(f, w)
    assert np.array_equal(w, W_NP)


def test_integer_and_list_w_are_accepted():
    g = fd.gradient(lambda v: float(v @ v), [1, 2, 3])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0], rtol=0, atol=1e-8)


# ------------------------------------------------------- bad input

SCALAR_FUNS = [fd.gradient, fd.hessian]
VECTOR_FUNS = [fd.jacobian, fd.hessian_from_gradient]
ALL_W_FUNS = SCALAR_FUNS + VECTOR_FUNS


def _good_fn(fun):
    return f_nonpoly if fun in SCALAR_FUNS else g_nonpoly


def _fname(fun):
    return "g" if fun is fd.hessian_from_gradient else "f"


@pytest.mark.parametrize("fun", ALL_W_FUNS)
@pytest.mark.parametrize("w", [np.ones((2, 2)), np.float64(1.0), np.array([]),
                               [1.0, np.nan], [np.inf, 1.0]],
                         ids=["2d", "0d", "empty", "nan", "inf"])
def test_bad_w(fun, w):
    with pytest.raises(ValueError, match=r"^w: "):
        fun(_good_fn(fun), w)


@pytest.mark.parametrize("fun", ALL_W_FUNS)
@pytest.mark.parametrize("w", [[1 + 2j, 0.0], ["a", "b"], [True, False]],
                         ids=["complex", "str", "bool"])
def test_w_of_the_wrong_type(fun, w):
    """A TypeError, as the Objective and the solvers raise for the same w."""
    with pytest.raises(TypeError, match=r"^w: expected an array of real numbers"):
        fun(_good_fn(fun), w)


@pytest.mark.parametrize("fun", ALL_W_FUNS + [fd.rowwise_jacobian])
def test_not_callable(fun):
    name = _fname(fun)
    x = np.ones((2, 2)) if fun is fd.rowwise_jacobian else W_NP
    with pytest.raises(TypeError, match=rf"^{name}: expected a callable"):
        fun(np.ones(4), x)


@pytest.mark.parametrize("fun", ALL_W_FUNS)
@pytest.mark.parametrize("eps", [0.0, -1e-3, np.nan, np.inf, [1e-3] * 3,
                                 np.full((4, 1), 1e-3), [1e-3, 1e-3, 0, 1e-3],
                                 1e-300],
                         ids=["zero", "negative", "nan", "inf", "short",
                              "2d", "one-zero", "underflow"])
def test_bad_eps(fun, eps):
    with pytest.raises(ValueError, match=r"^eps: "):
        fun(_good_fn(fun), W_NP, eps=eps)


@pytest.mark.parametrize("fun", ALL_W_FUNS)
@pytest.mark.parametrize("eps", ["abc", True], ids=["str", "bool"])
def test_eps_of_the_wrong_type(fun, eps):
    with pytest.raises(TypeError, match=r"^eps: "):
        fun(_good_fn(fun), W_NP, eps=eps)


@pytest.mark.parametrize("fun", SCALAR_FUNS)
@pytest.mark.parametrize("value", [np.ones(2), np.array([1.0]), np.nan, np.inf],
                         ids=["vector", "shape1", "nan", "inf"])
def test_f_must_return_finite_scalar(fun, value):
    with pytest.raises(ValueError, match=r"^f: "):
        fun(lambda v: value, W_NP)


@pytest.mark.parametrize("fun", SCALAR_FUNS)
@pytest.mark.parametrize("value", [None, 1j, "x"], ids=["none", "complex", "str"])
def test_f_must_return_a_real_number(fun, value):
    """A TypeError, as sopt.optimize.minimize raises for the same f."""
    with pytest.raises(TypeError, match=r"^f: must return a real number"):
        fun(lambda v: value, W_NP)


@pytest.mark.parametrize("fun", VECTOR_FUNS)
def test_vector_output_must_be_finite(fun):
    name = _fname(fun)
    with pytest.raises(ValueError, match=rf"^{name}: returned NaN"):
        fun(lambda v: np.full(4, np.nan), W_NP)
    with pytest.raises(TypeError, match=rf"^{name}: must return real"):
        fun(lambda v: np.ones(4) * 1j, W_NP)


def test_g_must_return_w_shape():
    with pytest.raises(ValueError, match=r"^g: expected output of shape"):
        fd.hessian_from_gradient(lambda v: np.ones(3), W_NP)


def test_jacobian_output_shape_must_not_change():
    # Shape depends on the sign of the perturbation of w_0.
    f = lambda v: np.ones(2 if v[0] > W_NP[0] else 3)    # noqa: E731
    with pytest.raises(ValueError, match=r"^f: expected output of shape"):
        fd.jacobian(f, W_NP)


@pytest.mark.parametrize("X", [np.ones(3), np.ones((2, 2, 2)),
                               np.zeros((0, 3)), [[1.0, np.nan]]],
                         ids=["1d", "3d", "empty", "nan"])
def test_rowwise_bad_X(X):
    with pytest.raises(ValueError, match=r"^X: "):
        fd.rowwise_jacobian(lambda Z: Z, X)


def test_rowwise_X_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"^X: expected an array of real numbers"):
        fd.rowwise_jacobian(lambda Z: Z, [["a", "b"]])


@pytest.mark.parametrize("out", [lambda Z: Z[:-1], lambda Z: Z[:, :, None],
                                 lambda Z: Z.sum(), lambda Z: Z * np.nan],
                         ids=["rows", "3d", "scalar", "nan"])
def test_rowwise_bad_output(out):
    with pytest.raises(ValueError, match=r"^f: "):
        fd.rowwise_jacobian(out, np.ones((3, 2)))


def test_rowwise_bad_eps():
    with pytest.raises(ValueError, match=r"^eps: .*shape \(2,\)"):
        fd.rowwise_jacobian(lambda Z: Z, np.ones((3, 2)), eps=[1e-3] * 3)
    with pytest.raises(ValueError, match=r"^eps: "):
        fd.rowwise_jacobian(lambda Z: Z, np.ones((3, 2)), eps=-1.0)


# ------------------------------------------------ dense Hessians: memory limit
@pytest.mark.parametrize("fn", [fd.hessian, fd.hessian_from_gradient])
def test_dense_fd_hessian_refused_before_f_is_called(fn):
    with pytest.raises(MemoryError, match=r"W = 25000 weights needs 5,000,000,000 "
                                          r"bytes \(4.66 GiB\).*raise max_bytes"):
        fn(must_not_be_called, np.zeros(25000))


@pytest.mark.parametrize("fn, f", [(fd.hessian, lambda w: w @ w),
                                   (fd.hessian_from_gradient, lambda w: 2 * w)])
def test_dense_fd_hessian_max_bytes(fn, f):
    np.testing.assert_allclose(fn(f, np.ones(3), max_bytes=8 * 9), 2 * np.eye(3),
                               atol=1e-6)
    with pytest.raises(MemoryError, match="W = 3"):
        fn(must_not_be_called, np.ones(3), max_bytes=8 * 9 - 1)
    with pytest.raises(ValueError, match="max_bytes"):
        fn(must_not_be_called, np.ones(3), max_bytes=-1)
