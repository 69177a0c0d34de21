"""API of sopt.bayes: scikit-learn conventions of the estimators, input
validation, the non-positive-definite Laplace path, argument checks of
``laplace``, and posterior sampling."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.exceptions

import sopt
from sopt.bayes import (BayesianMLPClassifier, BayesianMLPRegressor, NotFittedError,
                        clip_negative_eigenvalues, evidence_fit, laplace)

REG_DEFAULTS = dict(hidden="auto", activation="tanh", alpha=0.01, beta=None,
                    groups="single", n_restarts=1, max_cycles=50, tol=1e-4,
                    hessian="gauss_newton", clip_negative=True, method="newton",
                    max_iter=200, random_state=0, verbose=False, inference="laplace",
                    n_draws=1000, n_warmup=500, n_chains=2, hyperprior="gamma",
                    structure="dense", n_jobs=None)
CLF_DEFAULTS = {k: v for k, v in REG_DEFAULTS.items() if k != "beta"}


def sine(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1))
    return x, np.sin(np.pi * x[:, 0]) + 0.1 * rng.standard_normal(n)


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return rng.standard_normal((n, 2)) + 2.0 * y[:, None], y


def quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        return est.fit(X, y)


# ------------------------------------------------------------ parameters
@pytest.mark.parametrize("cls, defaults", [(BayesianMLPRegressor, REG_DEFAULTS),
                                           (BayesianMLPClassifier, CLF_DEFAULTS)])
def test_get_set_params_round_trip(cls, defaults):
    est = cls()
    assert est.get_params() == defaults
    assert est.get_params(deep=False) == defaults
    assert repr(est) == f"{cls.__name__}()"
    assert est.set_params(hidden=(3, 2), alpha=0.5) is est
    assert est.hidden == (3, 2) and est.alpha == 0.5
    assert repr(est) == f"{cls.__name__}(alpha=0.5, hidden=(3, 2))"   # sklearn's order
    clone = cls(**est.get_params())
    assert clone.get_params() == est.get_params() and clone is not est
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        est.set_params(bogus=1)
    with pytest.raises(ValueError, match="beta" if cls is BayesianMLPClassifier
                       else "nonsense"):
        est.set_params(**{"beta" if cls is BayesianMLPClassifier else "nonsense": 1.0})
    assert est.get_params()["alpha"] == 0.5       # unchanged by the failed call


def test_constructor_does_not_validate_but_fit_does():
    X, t = sine()
    bad = dict(alpha=0.0, beta=-1.0, hidden=(0,), groups="neurons", n_restarts=0,
               max_cycles=0, tol=0.0, hessian="fd", method="simplex", max_iter=0,
               random_state=-1, activation="softmax", clip_negative="yes",
               verbose="loud")
    for name, value in bad.items():
        est = BayesianMLPRegressor(**{name: value})     # accepted, as in sklearn
        with pytest.raises(ValueError, match=name):
            est.fit(X, t)
    with pytest.raises(ValueError, match="activation"):
        BayesianMLPClassifier(activation="sigmoidal").fit(*blobs())
    with pytest.raises(ValueError, match="alpha"):
        BayesianMLPClassifier(alpha=-2.0).fit(*blobs())


def test_not_fitted():
    X, _ = sine()
    for est, methods in ((BayesianMLPRegressor(), ("predict", "score")),
                         (BayesianMLPClassifier(), ("predict", "predict_proba", "score"))):
        for m in methods:
            args = (X, np.zeros(len(X))) if m == "score" else (X,)
            with pytest.raises(NotFittedError, match="not fitted yet") as err:
                getattr(est, m)(*args)
            assert isinstance(err.value, ValueError)
            assert isinstance(err.value, AttributeError)
    assert NotFittedError is sklearn.exceptions.NotFittedError
    assert not hasattr(BayesianMLPRegressor(), "prior_precision_")


# ------------------------------------------------------------- input data
# The messages are scikit-learn's own (validate_data): users meet the same
# text from every scikit-learn estimator.
def test_input_validation_regressor():
    X, t = sine()
    reg = BayesianMLPRegressor(hidden=(2,))
    Xn = X.copy()
    Xn[3, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        reg.fit(Xn, t)
    tn = t.copy()
    tn[[1, 5]] = [np.inf, np.nan]
    with pytest.raises(ValueError, match="Input y contains"):
        reg.fit(X, tn)
    with pytest.raises(ValueError, match=r"(?s)Expected 2D array.*reshape\(-1, 1\)"):
        reg.fit(X[:, 0], t)
    with pytest.raises(ValueError, match="inconsistent numbers of samples.*40, 39"):
        reg.fit(X, t[:-1])
    with pytest.raises(ValueError, match="y"):
        reg.fit(X, t.reshape(len(t), 1, 1))
    # a TypeError by sopt's rule and a ValueError by scikit-learn's
    with pytest.raises((TypeError, ValueError), match="X: expected an array of real numbers"):
        reg.fit(np.array([["a"], ["b"]]), [1.0, 2.0])
    quiet_fit(reg, X, t)
    with pytest.raises(ValueError, match="X has 2 features.*expecting 1 features"):
        reg.predict(np.ones((3, 2)))
    with pytest.raises(ValueError, match="Expected 2D array"):
        reg.predict(np.ones(3))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        reg.predict(np.array([[np.nan]]))


def test_input_validation_classifier():
    X, y = blobs()
    clf = BayesianMLPClassifier(hidden=(2,))
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.full(len(X), "only"))
    yn = y.astype(float)
    yn[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        clf.fit(X, yn)
    yo = y.astype(object)
    yo[2] = None
    with pytest.raises((ValueError, TypeError)):
        clf.fit(X, yo)
    with pytest.raises(ValueError, match=r"y should be a 1d array.*\(40, 2\)"):
        clf.fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X[:-2], y)
    Xn = X.copy()
    Xn[0, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.fit(Xn, y)
    # a column vector of labels is accepted, as scikit-learn does (after a warning)
    with pytest.warns(sklearn.exceptions.DataConversionWarning):
        quiet_fit(clf, X, y[:, None])
    assert list(clf.classes_) == [0, 1]
    with pytest.raises(ValueError, match="X has 1 features.*expecting 2 features"):
        clf.predict_proba(X[:, :1])


def test_linear_model_and_verbose_output(capsys):
    """hidden=() is Bayesian linear regression; verbose prints one line per
    restart, one per evidence cycle and a summary per restart."""
    X, t = sine(30)
    reg = BayesianMLPRegressor(hidden=(), n_restarts=2, verbose=True,
                               random_state=None).fit(X, t)
    out = capsys.readouterr().out.splitlines()
    cycles = [line for line in out if line.lstrip().startswith("cycle")]
    starts = [line for line in out if "restart" in line and "(seed" in line]
    summaries = [line for line in out if line.startswith("  restart")]
    assert len(starts) == 2 and len(summaries) == 2
    assert len(out) == len(cycles) + 4
    per_run = [int(line.split(":")[1].split()[0]) for line in summaries]
    assert sum(per_run) == len(cycles)
    assert reg.n_cycles_ in per_run
    assert [c.shape for c in reg.coefs_] == [(1, 1)]
    # R^2 of the evidence-regularised line ~ that of least squares
    Phi = np.column_stack([X, np.ones(len(X))])
    r = t - Phi @ np.linalg.lstsq(Phi, t, rcond=None)[0]
    r2_ols = 1 - np.sum(r ** 2) / np.sum((t - t.mean()) ** 2)
    assert reg.score(X, t) == pytest.approx(r2_ols, abs=0.01)


# -------------------------------------------------------- Laplace checks
def _nonminimum():
    X, t = sine(50)
    net = sopt.mlp([1, 5, 1])
    w = net.init_weights(seed=0, scale=3.0)      # far from any minimum
    return net, X, t, w


def test_laplace_not_positive_definite_message():
    net, X, t, w = _nonminimum()
    alpha, beta = 0.01, 100.0
    H = sopt.Objective(net, X, t).hessian(w, kind="exact")
    lam = np.linalg.eigvalsh(beta * H + alpha * np.eye(net.n_weights))
    n_neg = int(np.sum(lam <= 0))
    assert n_neg > 0
    with pytest.raises(ValueError, match="not positive definite") as err:
        laplace(net, X, t, w, loss="sse", alpha=alpha, beta=beta, hessian="exact",
                clip_negative=False)
    msg = str(err.value)
    assert f"{n_neg} of {net.n_weights} eigenvalues" in msg
    assert "gauss_newton" in msg and "clip_negative" in msg
    # Netlab's remedy: negative eigenvalues of H clipped, precision >= alpha
    post = laplace(net, X, t, w, loss="sse", alpha=alpha, beta=beta,
                   hessian="exact", clip_negative=True)
    assert np.linalg.eigvalsh(post.precision)[0] >= alpha * (1 - 1e-8)
    assert np.isfinite(post.log_evidence)
    # the Gauss-Newton precision is PSD by construction
    post_gn = laplace(net, X, t, w, loss="sse", alpha=alpha, beta=beta,
                      hessian="gauss_newton")
    assert np.linalg.eigvalsh(post_gn.precision)[0] >= alpha * (1 - 1e-8)


@pytest.mark.parametrize("H", [np.diag([1.0, 1e-3, -5e-15]),        # round-off negative
                               np.diag([1.0, 0.0, 0.0]),            # a null space
                               np.diag([2.0, -1.0, 0.5]),           # truly indefinite
                               np.eye(3)])
def test_clipped_matrix_stays_psd_at_any_scale(H):
    """Clipping must leave no eigenvalue below zero, however small: the
    evidence loop multiplies H by beta up to 1e12, where -5e-15 becomes
    -5e-3, larger than a small alpha. Each result is within round-off
    (10 W eps |H|_inf) of the eigenvalues of H clipped at zero."""
    C = clip_negative_eigenvalues(H)
    lam = np.linalg.eigvalsh(C)
    assert lam.min() >= 0.0
    delta = 10 * 3 * np.finfo(float).eps * np.abs(H).sum(axis=1).max()
    np.testing.assert_allclose(lam, np.sort(np.maximum(np.diag(H), 0.0)),
                               rtol=0, atol=delta)
    assert np.linalg.cholesky(0.01 * np.eye(3) + 1e12 * C) is not None


def test_clip_negative_fits_tiny_targets():
    """Targets of size 1e-6 make beta about 1e12: a round-off negative
    eigenvalue of H must not make the clipped precision indefinite."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = 1e-6 * (np.sin(X[:, 0]) + 0.1 * rng.standard_normal(40))
    net = sopt.mlp([3, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evidence_fit(net, X, y, w0=net.init_weights(seed=0), alpha=0.01,
                           beta=1 / np.var(y), clip_negative=True)
    assert res.beta > 1e11
    assert np.linalg.eigvalsh(res.posterior.precision)[0] > 0


def test_laplace_argument_validation():
    net, X, t, w = _nonminimum()
    kw = dict(hessian="gauss_newton")
    with pytest.raises(ValueError, match="beta"):
        laplace(net, X, t, w, loss="sse", alpha=0.1, **kw)
    labels = (t > 0).astype(float)
    cnet = sopt.mlp([1, 5, 1], output="logistic")
    with pytest.raises(ValueError, match="beta"):
        laplace(cnet, X, labels, w, loss="binary_ce", alpha=0.1, beta=1.0, **kw)
    with pytest.raises(ValueError, match="hessian"):
        laplace(net, X, t, w, loss="sse", alpha=0.1, beta=1.0, hessian="fd")
    with pytest.raises(ValueError, match="loss"):
        laplace(net, X, t, w, loss="hinge", alpha=0.1, beta=1.0, **kw)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="alpha"):
            laplace(net, X, t, w, loss="sse", alpha=bad, beta=1.0, **kw)
    with pytest.raises(ValueError, match="alpha"):
        laplace(net, X, t, w, loss="sse", alpha=np.ones(3), beta=1.0, **kw)
    for bad in (0.0, -2.0):
        with pytest.raises(ValueError, match="beta"):
            laplace(net, X, t, w, loss="sse", alpha=0.1, beta=bad, **kw)
    with pytest.raises(ValueError, match="w"):
        laplace(net, X, t, w[:-1], loss="sse", alpha=0.1, beta=1.0, **kw)
    with pytest.raises(TypeError, match="net"):
        laplace("net", X, t, w, loss="sse", alpha=0.1, beta=1.0, **kw)
    # softmax outputs under binary_ce: a logistic predictive would be wrong
    snet = sopt.mlp([1, 5, 2], output="softmax")
    two = np.column_stack([labels, 1 - labels])
    ws = snet.init_weights(seed=0)
    with pytest.raises(ValueError, match="loss='softmax_ce'"):
        laplace(snet, X, two, ws, loss="binary_ce", alpha=0.1, **kw)
    with pytest.raises(ValueError, match="output='logistic'"):
        laplace(net, X, labels, w, loss="binary_ce", alpha=0.1, **kw)
    post = laplace(cnet, X, labels, w, loss="binary_ce", alpha=0.1, **kw)
    with pytest.raises(ValueError, match="predict_proba"):
        post.predict(X)
    with pytest.raises(ValueError, match="method"):
        post.predict_proba(X, method="laplace-bridge")


def test_sample_shape_and_covariance():
    """Whitened draws z = L^T (w - w_MAP), A = L L^T, must be N(0, I): each
    entry of their sample covariance has standard error sqrt(2/n) on the
    diagonal and sqrt(1/n) off it; 5 standard errors over the W(W+1)/2 = 136
    entries is exceeded with probability ~1e-4."""
    X, t = sine(40)
    net = sopt.mlp([1, 5, 1])
    obj = sopt.Objective(net, X, t, alpha=0.01 / 100)
    # any minimum serves; Newton reaches one in a quarter of trust-exact's time
    w = sopt.optimize.minimize(obj, net.init_weights(seed=1), method="newton",
                               options={"maxiter": 300}).x
    post = laplace(net, X, t, w, loss="sse", alpha=0.01, beta=100.0,
                   hessian="gauss_newton")
    n, W = 100_000, net.n_weights
    S = post.sample(n, seed=0)
    assert S.shape == (n, W)
    assert np.array_equal(post.sample(5, seed=3), post.sample(5, seed=3))
    L = np.linalg.cholesky(post.precision)
    Z = (S - w) @ L
    C = Z.T @ Z / n
    se = np.where(np.eye(W, dtype=bool), np.sqrt(2 / n), np.sqrt(1 / n))
    assert np.all(np.abs(C - np.eye(W)) < 5 * se)
    assert np.all(np.abs(Z.mean(axis=0)) < 5 / np.sqrt(n))
    # and directly against A^{-1}, relative to the posterior standard deviations
    d = np.sqrt(np.diag(post.covariance))
    assert np.max(np.abs(np.cov(S.T) - post.covariance) / np.outer(d, d)) < 5 * np.sqrt(2 / n)


def test_masked_weights_are_not_parameters():
    X, t = sine(30)
    net = sopt.Network(n_inputs=1)
    h = net.add_layer(3, "tanh", inputs=[net.input])
    mask = np.array([[1.0, 0.0, 1.0]])
    net.add_layer(1, "identity", inputs=[h], output=True, masks={h: mask})
    w = net.init_weights(seed=0)
    post = laplace(net, X, t, w, loss="sse", alpha=0.1, beta=10.0,
                   hessian="gauss_newton")
    masked = np.flatnonzero(net.used_weight_mask() == 0)
    assert len(masked) == 1 and masked[0] not in post.used
    assert post.precision.shape == (net.n_weights - 1,) * 2
    draws = post.sample(10, seed=0)
    assert np.all(draws[:, masked] == w[masked])


# ----------------------------------------------- evidence_fit's result
def test_evidence_result_matches_its_posterior_when_max_cycles_runs_out():
    """EvidenceResult documents "the final posterior (with the alpha and
    beta it was trained under)". When the loop stops at max_cycles without
    settling, ``res.alpha``/``res.beta`` must still be the hyperparameters of
    ``res.posterior`` (and of the last history entry), not the next
    re-estimate that was never used."""
    X, t = sine(30)
    net = sopt.mlp([1, 1], output="identity")
    res = evidence_fit(net, X, t, loss="sse", w0=np.zeros(2), alpha=1.0, beta=1.0,
                       max_cycles=2, tol=1e-12)
    assert not res.converged and res.n_cycles == 2
    assert np.array_equal(res.history["alpha"][-1], res.posterior.alpha[:1])
    assert res.beta == res.posterior.beta
    assert np.array_equal(res.alpha, res.history["alpha"][-1])


def test_evidence_fit_validates_max_cycles_and_tol():
    """Bad input is a ValueError naming the argument (docs/DESIGN.md, "Errors and input checks"), not an
    UnboundLocalError from the loop or a silent never-converging run."""
    X, t = sine(30)
    net = sopt.mlp([1, 1], output="identity")
    with pytest.raises(ValueError, match="max_cycles"):
        evidence_fit(net, X, t, loss="sse", max_cycles=0)
    for bad in (-1.0, np.nan):
        with pytest.raises(ValueError, match="tol"):
            evidence_fit(net, X, t, loss="sse", tol=bad, max_cycles=2)


def test_restarts_at_saddles_fail_clearly_unless_clipped():
    """max_iter=1 stops training far from a minimum: with the exact Hessian
    and clip_negative=False every restart's precision is indefinite, each is
    reported, and fit raises the laplace error; the default clipping fits."""
    X, t = sine(40)
    reg = BayesianMLPRegressor(hidden=(5,), hessian="exact", clip_negative=False,
                               max_iter=1, max_cycles=2, n_restarts=2)
    with pytest.warns(RuntimeWarning, match=r"restart \d \(seed \d\) failed") as rec:
        with pytest.raises(ValueError, match="all 2 restart.*gauss_newton"):
            reg.fit(X, t)
    assert len(rec) == 2 and "restart 1 (seed 0)" in str(rec[0].message)
    assert not hasattr(reg, "posterior_")
    quiet_fit(reg.set_params(clip_negative=True), X, t)
    assert np.all(np.isfinite(reg.restarts_log_evidence_))


def test_a_negative_gamma_is_never_reported_silently():
    """gamma = sum_i 1 - alpha (A^-1)_ii lies in [0, min(W, N K)] for a PSD
    data Hessian; at a minimum whose exact Hessian is indefinite (unclipped)
    it can fall far below 0 (-24.8 for 17 weights here), and laplace must
    say so; clipped, it is in range and nothing is said."""
    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, (60, 2))
    t = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.standard_normal(60)
    net = sopt.mlp([2, 4, 1])
    alpha, beta = 1.2, 117.0
    obj = sopt.Objective(net, X, t, alpha=alpha / beta)
    w = sopt.optimize.minimize(obj, net.init_weights(seed=0), method="newton",
                               options={"gtol": 1e-10, "maxiter": 500}).x
    with pytest.warns(RuntimeWarning, match="gamma = .* outside"):
        post = laplace(net, X, t, w, loss="sse", alpha=alpha, beta=beta,
                       hessian="exact", clip_negative=False)
    assert post.gamma < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        clipped = laplace(net, X, t, w, loss="sse", alpha=alpha, beta=beta,
                          hessian="exact")
    assert 0 <= clipped.gamma <= min(net.n_weights, len(X))
