"""Moderated outputs: class probabilities averaged over the Gaussian
posterior of the output pre-activations (PRML sec. 4.5.2 and 5.7.3)."""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from .._validation import check_positive_int
from ..activations import softmax

Array = np.ndarray


def kappa(var: Array) -> Array:
    """kappa(s^2) = (1 + pi s^2 / 8)^(-1/2) (PRML eq. 4.154)."""
    return 1.0 / np.sqrt(1.0 + np.pi * var / 8.0)


def moderated_logistic(a: Array, var: Array) -> Array:
    """int sigma(a) N(a | a_MAP, s^2) da ~ sigma(kappa(s^2) a_MAP) (eq. 4.153)."""
    return expit(kappa(var) * a)


def moderated_softmax(a: Array, var: Array) -> Array:
    """Softmax of kappa-scaled logits: each logit moderated by its own
    variance. An approximation (the probit trick is exact for one logit only)."""
    return softmax(kappa(var) * a)


def monte_carlo_softmax(a: Array, S: Array, n_samples: int, seed=0) -> Array:
    """E[softmax(a)] for a ~ N(a_MAP, S) per pattern, by ``n_samples`` draws.
    a: (N, K), S: (N, K, K). Memory O(n_samples N K)."""
    n_samples = check_positive_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    N, K = a.shape
    # factor each S_n (PSD, possibly singular: softmax logits share a shift)
    lam, V = np.linalg.eigh(S)
    root = V * np.sqrt(np.maximum(lam, 0.0))[:, None, :]
    e = rng.standard_normal((n_samples, N, K))
    samples = a[None] + np.einsum("nkl,snl->snk", root, e)
    return softmax(samples).mean(axis=0)
