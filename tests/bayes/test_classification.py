"""BayesianMLPClassifier on Gaussian classes in 2-D (PRML sec. 5.7.3).

Two classes: unit-variance Gaussians at +-(1.5, 0.5), equally likely; the
Bayes-optimal (linear) rule has accuracy Phi(|mu_1 - mu_0| / 2) =
Phi(1.58) = 0.943, so a fitted classifier must beat 0.85 on 2000 fresh
points (binomial standard error 0.5%) with a wide margin. Three classes:
unit Gaussians at the corners of an equilateral triangle of radius 2.5
(Bayes accuracy ~0.96), threshold also 0.85.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from sopt.bayes import BayesianMLPClassifier

CORNERS = 2.5 * np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])


def two_classes(n: int, seed: int, labels=("a", "b")):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, [1.5, 0.5], [-1.5, -0.5])
    return X, np.asarray(labels)[y]


def three_classes(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.standard_normal((n, 2)) + CORNERS[y], y


@pytest.fixture(scope="module")
def binary():
    X, y = two_classes(200, 0)
    return BayesianMLPClassifier(hidden=(4,)).fit(X, y), X, y


def test_binary_fit_probabilities_and_accuracy(binary):
    clf, X, y = binary
    assert list(clf.classes_) == ["a", "b"]
    Xt, yt = two_classes(2000, 1)
    P = clf.predict_proba(Xt)
    assert P.shape == (2000, 2)
    assert np.allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    assert np.all((P >= 0) & (P <= 1))
    pred = clf.predict(Xt)
    assert pred.dtype == y.dtype and set(pred) <= {"a", "b"}
    assert np.array_equal(pred, clf.classes_[np.argmax(P, axis=1)])
    acc = clf.score(Xt, yt)
    assert acc == np.mean(pred == yt)
    assert acc > 0.85
    # one logistic output; column 1 is P(classes_[1]) moderated, the
    # posterior that of the network on standardised inputs
    assert clf.network_.n_outputs == 1
    Zt = (Xt - clf.x_mean_) / clf.x_scale_
    assert np.allclose(P[:, 1], clf.posterior_.predict_proba(Zt)[:, 0], rtol=1e-15)
    assert clf.converged_ and len(clf.history_["alpha"]) == clf.n_cycles_
    assert "beta" not in clf.get_params() and clf.history_["beta"][-1] is None


def test_string_labels_round_trip(binary):
    clf, X, y = binary
    # the same data with labels swapped in meaning: classes_ stay sorted, and
    # the predicted labels follow the data, not the label order
    swapped = np.where(y == "a", "z", "c")
    clf2 = BayesianMLPClassifier(hidden=(4,)).fit(X, swapped)
    assert list(clf2.classes_) == ["c", "z"]
    same = {"a": "z", "b": "c"}
    Xt, _ = two_classes(300, 2)
    mapped = np.array([same[v] for v in clf.predict(Xt)])
    assert np.mean(clf2.predict(Xt) == mapped) > 0.98
    # probabilities are in classes_ order: P(c) of clf2 ~ P(b) of clf
    assert np.max(np.abs(clf2.predict_proba(Xt)[:, 0] - clf.predict_proba(Xt)[:, 1])) < 0.05
    # integer labels with gaps work too
    clf3 = BayesianMLPClassifier(hidden=(4,)).fit(X, np.where(y == "a", -7, 42))
    assert list(clf3.classes_) == [-7, 42]
    assert set(clf3.predict(Xt)) <= {-7, 42}


def test_three_classes_softmax():
    X, y = three_classes(300, 0)
    clf = BayesianMLPClassifier(hidden=(4,)).fit(X, y + 10)
    assert list(clf.classes_) == [10, 11, 12]
    assert clf.network_.n_outputs == 3
    assert clf.posterior_.loss == "softmax_ce"
    Xt, yt = three_classes(2000, 1)
    P = clf.predict_proba(Xt)
    assert P.shape == (2000, 3)
    assert np.allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert clf.score(Xt, yt + 10) > 0.85
    P_mc = clf.predict_proba(Xt[:20], method="mc")
    assert P_mc.shape == (20, 3)
    assert np.allclose(P_mc.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    confident = P_mc.max(axis=1) > 0.6
    np.testing.assert_array_equal(P[:20].argmax(axis=1)[confident],
                                  P_mc.argmax(axis=1)[confident])
    # the default probit leaves out the logits' common shift: on held-out
    # points its NLL is lower than with the raw per-logit variances
    from sopt.bayes import moderated_softmax
    a, S = clf.posterior_.logit_variance((Xt - clf.x_mean_) / clf.x_scale_)
    raw = moderated_softmax(a, np.einsum("nkk->nk", S))
    rows = np.arange(len(yt))
    assert -np.mean(np.log(P[rows, yt])) < -np.mean(np.log(raw[rows, yt]))


def test_moderation_far_from_the_data(binary):
    """Far from the training inputs the weight uncertainty of the logit is
    large, and the moderated probability is pulled towards 1/2, while the
    MAP network stays (over)confident."""
    clf, X, _ = binary
    far = np.array([[8.0, -8.0], [-3.0, 9.0], [10.0, 10.0], [-12.0, 0.0]])
    # the network and its posterior take standardised inputs
    a, S = clf.posterior_.logit_variance((far - clf.x_mean_) / clf.x_scale_)
    s2 = S[:, 0, 0]
    _, S_data = clf.posterior_.logit_variance((X - clf.x_mean_) / clf.x_scale_)
    assert np.min(s2) > np.median(S_data[:, 0, 0])
    p_map = clf.network_.forward(clf.w_, (far - clf.x_mean_) / clf.x_scale_)[:, 0]
    assert np.allclose(p_map, expit(a[:, 0]), rtol=1e-12)
    p_mod = clf.predict_proba(far)[:, 1]
    assert np.all(np.abs(p_mod - 0.5) < np.abs(p_map - 0.5) - 0.005)
    assert np.all(np.sign(p_mod - 0.5) == np.sign(p_map - 0.5))
    assert np.allclose(p_mod, expit(a[:, 0] / np.sqrt(1 + np.pi * s2 / 8)), rtol=1e-12)
