"""sopt.derivatives and sopt.hessian on the worked example of PRML
sec. 5.3.2: two-layer tanh network, linear outputs, sum-of-squares.

Everything here is recomputed with explicit numpy from the textbook
equations, never with sopt's backward pass:

    a_j = sum_i w_ji x_i + b_j,   z_j = tanh(a_j),   y_k = sum_j w_kj z_j + b_k
    delta_k = y_k - t_k,          delta_j = (1 - z_j^2) sum_k w_kj delta_k
    dE/dw_kj = sum_n delta_k z_j,  dE/dw_ji = sum_n delta_j x_i   (+ biases)

Weight layout (docs/DESIGN.md): W1 (M, D) row-major, b1, W2 (K, M) row-major, b2.
"""
import numpy as np
import pytest

import sopt

from helpers import FD_RTOL, fd_gradient
from sopt.testing import rel_err

# The hand formulas and backprop do the same few float operations in a
# different order: they agree to a few ulps of the O(1)-O(10) numbers involved.
HAND_RTOL = 1e-12


def by_hand(W1, b1, W2, b2, X, T):
    """E, dE/dW1, dE/db1, dE/dW2, dE/db2 and dy/dx, pattern by pattern."""
    E = 0.0
    gW1, gb1 = np.zeros_like(W1), np.zeros_like(b1)
    gW2, gb2 = np.zeros_like(W2), np.zeros_like(b2)
    J = []
    for x, t in zip(X, T):
        a = W1 @ x + b1
        z = np.tanh(a)
        y = W2 @ z + b2
        delta_k = y - t
        delta_j = (1 - z**2) * (W2.T @ delta_k)
        E += 0.5 * delta_k @ delta_k
        gW2 += np.outer(delta_k, z)
        gb2 += delta_k
        gW1 += np.outer(delta_j, x)
        gb1 += delta_j
        J.append(W2 @ np.diag(1 - z**2) @ W1)        # dy_k/dx_i
    return E, gW1, gb1, gW2, gb2, np.array(J)


@pytest.mark.parametrize("D, M, K, N", [(1, 1, 1, 1), (2, 3, 1, 5), (4, 6, 3, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_backprop_equals_hand_formulas(D, M, K, N, seed):
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((M, D)), rng.standard_normal(M)
    W2, b2 = rng.standard_normal((K, M)), rng.standard_normal(K)
    X, T = rng.standard_normal((N, D)), rng.standard_normal((N, K))
    w = np.concatenate([W1.ravel(), b1, W2.ravel(), b2])

    net = sopt.mlp([D, M, K], hidden="tanh", output="identity")
    assert net.n_weights == M * D + M + K * M + K
    obj = sopt.Objective(net, X, T, loss="sse")
    E, gW1, gb1, gW2, gb2, J = by_hand(W1, b1, W2, b2, X, T)

    assert obj.value(w) == pytest.approx(E, rel=HAND_RTOL)
    g = obj.gradient(w)
    expected = np.concatenate([gW1.ravel(), gb1, gW2.ravel(), gb2])
    assert rel_err(g, expected) <= HAND_RTOL
    (GW1, Gb1), (GW2, Gb2) = [(lp.weights[0], lp.bias) for lp in net.unpack(g)]
    for got, want in ((GW1, gW1), (Gb1, gb1), (GW2, gW2), (Gb2, gb2)):
        np.testing.assert_allclose(got, want, rtol=HAND_RTOL,
                                   atol=HAND_RTOL * np.abs(expected).max())
    assert rel_err(net.jacobian(w, X), J) <= HAND_RTOL
    y = np.tanh(X @ W1.T + b1) @ W2.T + b2
    assert rel_err(net.forward(w, X), y) <= HAND_RTOL
    # and the textbook gradient is the true one (central differences)
    assert rel_err(expected, fd_gradient(obj.value, w)) <= FD_RTOL


def test_tiny_network_numbers_worked_on_paper():
    """D = M = K = 1. w = [w1, b1, w2, b2] = [ln(2)/2, 0, 2, 0.3].

    Pattern 1: x = 2, t = 0.5.  a = ln 2, z = tanh(ln 2) = (2 - 1/2)/(2 + 1/2)
      = 0.6, 1 - z^2 = 0.64, y = 2 * 0.6 + 0.3 = 1.5, delta_k = 1.0,
      E_1 = 0.5, delta_j = 0.64 * 2 * 1 = 1.28,
      dE/dw1 = 1.28 * 2 = 2.56, dE/db1 = 1.28, dE/dw2 = 1 * 0.6 = 0.6,
      dE/db2 = 1, dy/dx = w2 (1 - z^2) w1 = 0.64 ln 2.
    Pattern 2: x = 0, t = 1.3.  a = 0, z = 0, 1 - z^2 = 1, y = 0.3,
      delta_k = -1, E_2 = 0.5, delta_j = 1 * 2 * (-1) = -2,
      dE/dw1 = 0, dE/db1 = -2, dE/dw2 = 0, dE/db2 = -1, dy/dx = 2 * ln(2)/2 = ln 2.
    Sum: E = 1, gradient = [2.56, -0.72, 0.6, 0].
    """
    net = sopt.mlp([1, 1, 1], hidden="tanh", output="identity")
    ln2 = np.log(2.0)
    w = np.array([ln2 / 2, 0.0, 2.0, 0.3])
    X = np.array([[2.0], [0.0]])
    T = np.array([[0.5], [1.3]])
    obj = sopt.Objective(net, X, T, loss="sse")

    np.testing.assert_allclose(net.forward(w, X), [[1.5], [0.3]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(obj.pattern_errors(w), [0.5, 0.5], rtol=0, atol=1e-12)
    assert obj.value(w) == pytest.approx(1.0, rel=0, abs=1e-12)
    np.testing.assert_allclose(obj.gradient(w), [2.56, -0.72, 0.6, 0.0],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.jacobian(w, X)[:, 0, 0], [0.64 * ln2, ln2],
                               rtol=0, atol=1e-12)
    # weight decay alpha = 0.5 adds 0.5 * w and 0.25 |w|^2
    dec = sopt.Objective(net, X, T, loss="sse", alpha=0.5)
    np.testing.assert_allclose(dec.gradient(w), [2.56 + ln2 / 4, -0.72, 1.6, 0.15],
                               rtol=0, atol=1e-12)
    assert dec.value(w) == pytest.approx(1.0 + 0.25 * (ln2**2 / 4 + 4 + 0.09),
                                         rel=0, abs=1e-12)


def test_tiny_network_logistic_cross_entropy_on_paper():
    """D = K = 1, no hidden layer, logistic output + binary_ce (canonical).

    w = [w, b] = [ln 3, 0], x = 1, t = 1: a = ln 3, y = 3/4,
    E = -ln(3/4) = ln(4/3), delta = y - t = -1/4, dE/dw = -1/4, dE/db = -1/4.
    """
    net = sopt.mlp([1, 1], output="logistic")
    w = np.array([np.log(3.0), 0.0])
    obj = sopt.Objective(net, [[1.0]], [[1.0]], loss="binary_ce")
    assert net.forward(w, [[1.0]])[0, 0] == pytest.approx(0.75, abs=1e-12)
    assert obj.value(w) == pytest.approx(np.log(4 / 3), abs=1e-12)
    np.testing.assert_allclose(obj.gradient(w), [-0.25, -0.25], rtol=0, atol=1e-12)


def test_tiny_network_softmax_on_paper():
    """D = 1, K = 2, no hidden layer, softmax + softmax_ce (canonical).

    W = [[ln 3], [0]], b = 0, x = 1, class 0: a = (ln 3, 0), y = (3/4, 1/4),
    E = ln(4/3), delta = y - t = (-1/4, 1/4): dE/dW = (-1/4, 1/4), dE/db the same.
    Layout: W (2, 1) row-major then b: [W00, W10, b0, b1].
    """
    net = sopt.mlp([1, 2], output="softmax")
    w = np.array([np.log(3.0), 0.0, 0.0, 0.0])
    obj = sopt.Objective(net, [[1.0]], [0], loss="softmax_ce")
    np.testing.assert_allclose(net.forward(w, [[1.0]]), [[0.75, 0.25]], atol=1e-12)
    assert obj.value(w) == pytest.approx(np.log(4 / 3), abs=1e-12)
    np.testing.assert_allclose(obj.gradient(w), [-0.25, 0.25, -0.25, 0.25],
                               rtol=0, atol=1e-12)
    # dy/dx = (diag(y) - y y^T) W = [[3/16, -3/16]] * ln 3 (column)
    np.testing.assert_allclose(net.jacobian(w, [[1.0]])[0, :, 0],
                               [3 / 16 * np.log(3.0), -3 / 16 * np.log(3.0)],
                               rtol=0, atol=1e-12)
