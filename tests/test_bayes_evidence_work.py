"""The work of an evidence fit: how many curvature matrices, Newton steps
and cycles it takes, counted on small problems (timings live in
experiments/bench_evidence_counts.py, never here)."""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from problems import noisy_sine, quiet_evidence_fit
from sopt.bayes._evidence import gauss_newton_is_exact
from sopt.evaluation import Evaluation


@pytest.fixture
def built(monkeypatch):
    """(method, w) of every data-term curvature matrix built (not served
    from an evaluation's cache)."""
    calls = []
    original = Evaluation._data_curvature

    def counting(self, method, algorithm):
        calls.append((method, self.w.tobytes()))
        return original(self, method, algorithm)

    monkeypatch.setattr(Evaluation, "_data_curvature", counting)
    return calls


def softmax_problem(n: int = 90, d: int = 4, k: int = 3, seed: int = 0):
    """Overlapping Gaussian classes: X (n, d), one-hot T (n, k)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = rng.standard_normal((n, d)) + 0.8 * np.eye(k, d)[labels]
    return X, np.eye(k)[labels]


@pytest.mark.parametrize("output, loss", [("identity", "sse"),
                                          ("logistic", "binary_ce"),
                                          ("softmax", "softmax_ce")])
def test_gauss_newton_is_the_hessian_of_a_linear_model_on_a_canonical_pair(output, loss):
    """Where gauss_newton_is_exact says so, the two matrices agree to
    round-off (they are sums of the same N K outer products; 1e-12 of the
    largest entry allows for a different order of summation)."""
    rng = np.random.default_rng(1)
    k = 1 if output != "softmax" else 3
    net = sopt.mlp([4, k], output=output)
    X = rng.standard_normal((30, 4))
    T = rng.random((30, k)) if loss == "binary_ce" else (
        np.eye(k)[rng.integers(0, k, 30)] if loss == "softmax_ce"
        else rng.standard_normal((30, k)))
    obj = sopt.Objective(net, X, T, loss=loss)
    w = net.init_weights(seed=2)
    assert gauss_newton_is_exact(obj)
    H, G = obj.hessian(w, method="exact"), obj.hessian(w, method="gauss_newton")
    assert np.allclose(H, G, rtol=0, atol=1e-12 * np.abs(H).max())


@pytest.mark.parametrize("sizes, output, loss", [
    ([4, 3, 1], "identity", "sse"),            # a hidden layer: residual term
    ([4, 1], "logistic", "sse"),               # not a canonical pair
])
def test_gauss_newton_is_not_exact_elsewhere(sizes, output, loss):
    rng = np.random.default_rng(3)
    net = sopt.mlp(sizes, output=output)
    obj = sopt.Objective(net, rng.standard_normal((30, 4)), rng.random(30), loss=loss)
    assert not gauss_newton_is_exact(obj)
    w = net.init_weights(seed=4)
    H, G = obj.hessian(w, method="exact"), obj.hessian(w, method="gauss_newton")
    assert np.abs(H - G).max() > 1e-6 * np.abs(H).max()


def test_the_laplace_step_of_a_linear_model_reuses_the_last_newton_matrix(built):
    """Linear softmax model: Newton trains on the Gauss-Newton matrix (its
    exact Hessian), so the Laplace step at each cycle's w_MAP finds the
    matrix of the last Newton step at that w. One matrix per Newton
    iterate: the start, then one per iteration (each cycle starts where the
    last ended); with a separate Laplace matrix there would be one more per
    cycle."""
    X, T = softmax_problem()
    res = quiet_evidence_fit(sopt.mlp([4, 3], output="softmax"), X, T,
                             loss="softmax_ce")
    assert res.n_cycles >= 3 and all(res.history["train_converged"])
    assert {method for method, _ in built} == {"gauss_newton"}
    assert len(built) == len(set(built)) == 1 + sum(res.history["train_iterations"])


def test_a_network_with_hidden_units_still_trains_on_the_exact_hessian(built):
    X, t = noisy_sine(60, 3, 0.1)
    res = quiet_evidence_fit(sopt.mlp([3, 5, 1]), X, t)
    exact = [b for b in built if b[0] == "exact"]
    assert len(exact) == 1 + sum(res.history["train_iterations"])
    assert len(built) == len(set(built))
