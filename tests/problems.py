"""Small problems shared by test modules (a plain module: tests import it
by name; pytest's conftest is for fixtures)."""
import warnings

import numpy as np

from sopt.bayes import evidence_fit


def noisy_sine(n: int, d: int, noise: float, seed: int = 0):
    """X (n, d) standard normal and t = sin(x_1) + noise * N(0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sin(X[:, 0]) + noise * rng.standard_normal(n)


def quiet_evidence_fit(net, X, t, **kwargs):
    """evidence_fit from init_weights(seed=0), its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evidence_fit(net, X, t, w0=net.init_weights(seed=0), **kwargs)
