"""Small problems shared by test modules (a plain module, like helpers.py:
tests import it by name; conftest.py is for fixtures)."""
import warnings

import numpy as np

import sopt
from helpers import Counted
from sopt.bayes import evidence_fit


def small_regression():
    """(net, X, w): mlp [2, 3, 1] (13 weights), X (10, 2) standard normal
    (a fresh array each call, the caller may change it), w =
    init_weights(seed=0)."""
    rng = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1])
    return net, rng.normal(size=(10, 2)), net.init_weights(0)


def small_objective():
    """(Objective, w) of :func:`small_regression`, the target the first input."""
    net, X, w = small_regression()
    return sopt.Objective(net, X, X[:, 0]), w


def nowhere_lower():
    """(f, w0) with f(w0) = 0 and 1 everywhere else, f counting its calls:
    no step can ever be accepted (a finite value, as a NaN stops the
    solvers at once)."""
    w0 = np.array([0.5, -0.5])
    return Counted(lambda x: 0.0 if np.array_equal(x, w0) else 1.0), w0


def noisy_sine(n: int, d: int, noise: float, seed: int = 0):
    """X (n, d) standard normal and t = sin(x_1) + noise * N(0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sin(X[:, 0]) + noise * rng.standard_normal(n)


def noise_free_sine(n: int, seed: int = 0):
    """X (n, 1) uniform in (-1, 1) and t = sin(pi x), no noise: the data
    error at the evidence fixed point can reach 0."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    return X, np.sin(np.pi * X[:, 0])


def quiet_evidence_fit(net, X, t, **kwargs):
    """evidence_fit from init_weights(seed=0), its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evidence_fit(net, X, t, w0=net.init_weights(seed=0), **kwargs)
