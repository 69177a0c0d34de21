"""The input checks of sopt/_validation.py as the public entry points
apply them: one bad input, one exception type, in every module that takes
it; and messages that name the argument (w, X, T) wherever it is passed.

The rule (``sopt/_validation.py``): a value of the wrong *type* (a string
where a number is expected, complex where real, an object array, None where
the argument is required, a float where a count is expected) raises
TypeError; a value of the right type but the wrong *value* (negative, NaN,
wrong shape, out of range, an unknown name) raises ValueError.

The table below feeds each bad input to every public entry point that takes
that argument. Each entry point is a function of (setup, bad value); the
setup is built once per module from tiny networks. Checks of one module's
own arguments (a network's topology, an Objective's targets, a solver's
options, ...) are in that module's tests.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import sopt
from sopt import finite_diff as fd
from sopt import testing
from sopt.bayes import (BayesianMLPClassifier, BayesianMLPRegressor,
                        evidence_fit, laplace)

D, M, K, N = 2, 3, 1, 6


class Setup:
    """A tiny regression problem, its objective and posteriors, and a
    fitted estimator (one evidence cycle of two training iterations)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.net = sopt.mlp([D, M, K])
        self.W = self.net.n_weights
        self.X = rng.standard_normal((N, D))
        self.T = rng.standard_normal((N, K))
        self.w = self.net.init_weights(seed=0)
        self.v = rng.standard_normal(self.W)
        self.obj = sopt.Objective(self.net, self.X, self.T)
        self.f, self.g = self.obj.value, self.obj.gradient
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.post = laplace(self.obj, self.w, alpha=1.0, beta=1.0,
                                hessian="gauss_newton")
            self.cnet = sopt.mlp([D, M, 1], output="logistic")
            labels = (self.X[:, 0] > 0).astype(float)
            self.cpost = laplace(self.cnet, self.X, labels,
                                 self.cnet.init_weights(seed=0),
                                 loss="binary_ce", alpha=1.0,
                                 hessian="gauss_newton")
            self.reg = BayesianMLPRegressor(hidden=2, max_cycles=1,
                                            max_iter=2).fit(self.X, self.T[:, 0])


@pytest.fixture(scope="module")
def s():
    return Setup()


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _fit_reg(s, **params):
    return BayesianMLPRegressor(hidden=2, max_cycles=1, max_iter=2, **params)


# ------------------------------------------------------ entry points by argument
# name -> f(setup, bad value): one call of a public entry point with the bad
# value in the argument's place and good values everywhere else
TAKES = {
    "w": {
        "Network.forward": lambda s, w: s.net.forward(w, s.X),
        "Network.jacobian": lambda s, w: s.net.jacobian(w, s.X),
        "Network.unpack": lambda s, w: s.net.unpack(w),
        "Objective.value": lambda s, w: s.obj.value(w),
        "Objective.gradient": lambda s, w: s.obj.gradient(w),
        "Objective.hvp": lambda s, w: s.obj.hvp(w, s.v),
        "Objective.hessian": lambda s, w: s.obj.hessian(w),
        "finite_diff.gradient": lambda s, w: fd.gradient(s.f, w),
        "finite_diff.hessian": lambda s, w: fd.hessian(s.f, w),
        "finite_diff.hessian_from_gradient":
            lambda s, w: fd.hessian_from_gradient(s.g, w),
        "optimize.minimize": lambda s, w: sopt.optimize.minimize(
            s.obj, w, method="newton", options={"maxiter": 1}),
        "bayes.laplace(obj)": lambda s, w: laplace(s.obj, w, alpha=1.0, beta=1.0),
        "bayes.laplace(net, X, T)": lambda s, w: laplace(
            s.net, s.X, s.T, w, alpha=1.0, beta=1.0),
        "bayes.evidence_fit": lambda s, w: evidence_fit(
            s.obj, w0=w, beta=1.0, max_cycles=1, options={"maxiter": 1}),
        "testing.check_gradient": lambda s, w: testing.check_gradient(s.f, s.g, w),
        "testing.check_hvp": lambda s, w: testing.check_hvp(s.g, s.obj.hvp, w),
        "testing.check_hessian": lambda s, w: testing.check_hessian(
            s.g, s.obj.hessian, w),
        "testing.check_network": lambda s, w: testing.check_network(s.net, w, s.X, s.T),
    },
    "X": {
        "Objective": lambda s, X: sopt.Objective(s.net, X, s.T),
        "Network.forward": lambda s, X: s.net.forward(s.w, X),
        "Network.jacobian": lambda s, X: s.net.jacobian(s.w, X),
        "bayes.laplace(net, X, T)": lambda s, X: laplace(
            s.net, X, s.T, s.w, alpha=1.0, beta=1.0),
        "bayes.evidence_fit": lambda s, X: evidence_fit(
            s.net, X, s.T, beta=1.0, max_cycles=1),
        "LaplacePosterior.predict": lambda s, X: s.post.predict(X),
        "LaplacePosterior.predict_proba": lambda s, X: s.cpost.predict_proba(X),
        "testing.check_network": lambda s, X: testing.check_network(s.net, s.w, X, s.T),
        "BayesianMLPRegressor.fit": lambda s, X: _fit_reg(s).fit(X, s.T[:, 0]),
        "BayesianMLPClassifier.fit": lambda s, X: BayesianMLPClassifier(
            hidden=2, max_cycles=1, max_iter=2).fit(X, np.arange(N) % 2),
        "BayesianMLPRegressor.predict": lambda s, X: s.reg.predict(X),
    },
    "T": {
        "Objective": lambda s, T: sopt.Objective(s.net, s.X, T),
        "bayes.laplace(net, X, T)": lambda s, T: laplace(
            s.net, s.X, T, s.w, alpha=1.0, beta=1.0),
        "bayes.evidence_fit": lambda s, T: evidence_fit(
            s.net, s.X, T, beta=1.0, max_cycles=1),
        "testing.check_network": lambda s, T: testing.check_network(s.net, s.w, s.X, T),
        "BayesianMLPRegressor.fit": lambda s, T: _fit_reg(s).fit(s.X, T),
    },
    "alpha": {
        "Objective": lambda s, a: sopt.Objective(s.net, s.X, s.T, alpha=a),
        "Objective.with_alpha": lambda s, a: s.obj.with_alpha(a),
        "bayes.laplace": lambda s, a: laplace(s.obj, s.w, alpha=a, beta=1.0),
        "bayes.evidence_fit": lambda s, a: evidence_fit(
            s.obj, alpha=a, beta=1.0, max_cycles=1),
        "testing.check_network": lambda s, a: testing.check_network(
            s.net, s.w, s.X, s.T, alpha=a),
    },
    "beta": {
        "bayes.laplace": lambda s, b: laplace(s.obj, s.w, alpha=1.0, beta=b),
        "bayes.evidence_fit": lambda s, b: evidence_fit(
            s.obj, beta=b, max_cycles=1),
    },
    "v": {
        "Objective.hvp": lambda s, v: s.obj.hvp(s.w, v),
        "Objective.gnvp": lambda s, v: s.obj.gnvp(s.w, v),
    },
    "eps": {
        "finite_diff.gradient": lambda s, e: fd.gradient(s.f, s.w, eps=e),
        "finite_diff.hessian": lambda s, e: fd.hessian(s.f, s.w, eps=e),
        "finite_diff.hessian_from_gradient":
            lambda s, e: fd.hessian_from_gradient(s.g, s.w, eps=e),
        "finite_diff.jacobian": lambda s, e: fd.jacobian(s.g, s.w, eps=e),
        "testing.check_gradient": lambda s, e: testing.check_gradient(
            s.f, s.g, s.w, eps=e),
        "testing.check_hvp": lambda s, e: testing.check_hvp(s.g, s.obj.hvp, s.w, eps=e),
        "testing.check_network": lambda s, e: testing.check_network(
            s.net, s.w, s.X, s.T, eps=e),
        "testing.check_activation": lambda s, e: testing.check_activation("tanh", eps=e),
    },
    "count": {        # a positive integer: chunk sizes, sample and cycle counts
        "Objective(chunk_size)": lambda s, c: sopt.Objective(
            s.net, s.X, s.T, chunk_size=c),
        "Network.output_sensitivities(chunk_size)":
            lambda s, c: s.net.output_sensitivities(s.w, s.X, chunk_size=c),
        "LaplacePosterior.sample(n)": lambda s, c: s.post.sample(c),
        "LaplacePosterior.predict_proba(n_samples)":
            lambda s, c: s.cpost.predict_proba(s.X, n_samples=c),
        "evidence_fit(max_cycles)": lambda s, c: evidence_fit(
            s.obj, beta=1.0, max_cycles=c),
        "testing.check_gradient(n_directions)": lambda s, c: testing.check_gradient(
            s.f, s.g, s.w, n_directions=c),
        "optimize.minimize(maxiter)": lambda s, c: sopt.optimize.minimize(
            s.obj, s.w, method="newton", options={"maxiter": c}),
        "Network(n_inputs)": lambda s, c: sopt.Network(c),
        "Network.add_layer(size)": lambda s, c: sopt.Network(2).add_layer(
            c, "tanh", inputs=[0]),
        "mlp(sizes)": lambda s, c: sopt.mlp([2, c, 1]),
        "testing.random_network(max_units)":
            lambda s, c: testing.random_network(seed=0, max_units=c),
        "BayesianMLPRegressor(hidden=[c])": lambda s, c: BayesianMLPRegressor(
            hidden=[c], max_cycles=1, max_iter=2).fit(s.X, s.T[:, 0]),
    },
    "name": {         # a method, loss or activation chosen by name
        "Objective(loss)": lambda s, n: sopt.Objective(s.net, s.X, s.T, loss=n),
        "Objective.hessian(kind)": lambda s, n: s.obj.hessian(s.w, kind=n),
        "Objective.hessian(algorithm)": lambda s, n: s.obj.hessian(s.w, algorithm=n),
        "optimize.minimize(method)": lambda s, n: sopt.optimize.minimize(
            s.obj, s.w, method=n),
        "bayes.laplace(hessian)": lambda s, n: laplace(
            s.obj, s.w, alpha=1.0, beta=1.0, hessian=n),
        "bayes.evidence_fit(groups)": lambda s, n: evidence_fit(
            s.obj, beta=1.0, groups=n, max_cycles=1),
        "LaplacePosterior.predict_proba(method)":
            lambda s, n: s.cpost.predict_proba(s.X, method=n),
        "mlp(hidden)": lambda s, n: sopt.mlp([2, 3, 1], hidden=n),
        "mlp(output)": lambda s, n: sopt.mlp([2, 3, 1], output=n),
        "Network.add_layer(activation)": lambda s, n: sopt.Network(2).add_layer(
            3, n, inputs=[0]),
    },
    "max_bytes": {
        "Objective.hessian": lambda s, b: s.obj.hessian(s.w, max_bytes=b),
        "finite_diff.hessian": lambda s, b: fd.hessian(s.f, s.w, max_bytes=b),
        "finite_diff.hessian_from_gradient":
            lambda s, b: fd.hessian_from_gradient(s.g, s.w, max_bytes=b),
        "bayes.laplace": lambda s, b: laplace(s.obj, s.w, alpha=1.0, beta=1.0,
                                              max_bytes=b),
        "bayes.evidence_fit": lambda s, b: evidence_fit(
            s.obj, beta=1.0, max_cycles=1, max_bytes=b),
    },
    "tolerance": {
        "bayes.evidence_fit(tol)": lambda s, t: evidence_fit(
            s.obj, beta=1.0, max_cycles=1, tol=t),
        "optimize.minimize(gtol)": lambda s, t: sopt.optimize.minimize(
            s.obj, s.w, options={"gtol": t}),
        "Network.init_weights(scale)": lambda s, t: s.net.init_weights(seed=0, scale=t),
    },
    "flag": {
        "bayes.laplace(clip_negative)": lambda s, f: laplace(
            s.obj, s.w, alpha=1.0, beta=1.0, clip_negative=f),
        "bayes.evidence_fit(clip_negative)": lambda s, f: evidence_fit(
            s.obj, beta=1.0, max_cycles=1, clip_negative=f),
        "LaplacePosterior.predict(full_cov)": lambda s, f: s.post.predict(
            s.X, full_cov=f),
        "optimize.minimize(disp)": lambda s, f: sopt.optimize.minimize(
            s.obj, s.w, method="bfgs", options={"disp": f, "maxiter": 1}),
    },
    "seed": {
        "Network.init_weights": lambda s, r: s.net.init_weights(seed=r),
        "LaplacePosterior.sample": lambda s, r: s.post.sample(2, seed=r),
        "testing.check_gradient": lambda s, r: testing.check_gradient(
            s.f, s.g, s.w, seed=r),
        "testing.random_network": lambda s, r: testing.random_network(seed=r),
    },
    "path": {
        "save": lambda s, p: sopt.save(p, s.net),
        "load": lambda s, p: sopt.load(p),
    },
    "returned": {     # what the user's f (scalar) or g (vector) returns
        "finite_diff.gradient": lambda s, r: fd.gradient(lambda w: r, s.w),
        "finite_diff.hessian": lambda s, r: fd.hessian(lambda w: r, s.w),
        "finite_diff.hessian_from_gradient": lambda s, r: fd.hessian_from_gradient(
            lambda w: np.full(s.W, r), s.w),
        "optimize.minimize": lambda s, r: sopt.optimize.minimize(
            lambda w: r, s.w, jac=s.g, method="bfgs"),
        "optimize.minimize(jac)": lambda s, r: sopt.optimize.minimize(
            s.f, s.w, jac=lambda w: np.full(s.W, r), method="bfgs"),
        "testing.check_gradient": lambda s, r: testing.check_gradient(
            lambda w: r, s.g, s.w),
        "testing.check_gradient(grad)": lambda s, r: testing.check_gradient(
            s.f, lambda w: np.full(s.W, r), s.w),
        "testing.check_hvp": lambda s, r: testing.check_hvp(
            lambda w: np.full(s.W, r), s.obj.hvp, s.w),
    },
}

# argument -> [(id, make bad value from the setup, expected exception)]
BAD = {
    "w": [
        ("complex", lambda s: s.w + 0j, TypeError),
        ("strings", lambda s: np.array(["1"] * s.W), TypeError),
        ("objects", lambda s: np.array([1.0] * s.W, dtype=object), TypeError),
        ("None", lambda s: None, TypeError),
        ("booleans", lambda s: s.w > 0, TypeError),
        ("wrong length", lambda s: s.w[:-1], ValueError),
        ("2-D", lambda s: s.w[None, :], ValueError),
        ("NaN", lambda s: np.where(np.arange(s.W) == 1, np.nan, s.w), ValueError),
        ("inf", lambda s: np.where(np.arange(s.W) == 1, np.inf, s.w), ValueError),
    ],
    "X": [
        ("strings", lambda s: s.X.astype(str), TypeError),
        ("complex", lambda s: s.X + 0j, TypeError),
        ("objects", lambda s: s.X.astype(object), TypeError),
        ("None", lambda s: None, TypeError),
        ("wrong width", lambda s: np.zeros((N, D + 1)), ValueError),
        ("1-D", lambda s: s.X[:, 0], ValueError),
        ("NaN", lambda s: np.where(s.X > 1, np.nan, s.X), ValueError),
    ],
    "T": [
        ("strings", lambda s: s.T.astype(str), TypeError),
        ("complex", lambda s: s.T + 0j, TypeError),
        ("None", lambda s: None, TypeError),
        ("wrong length", lambda s: s.T[:-1], ValueError),
        ("NaN", lambda s: np.full_like(s.T, np.nan), ValueError),
    ],
    "alpha": [
        ("'big'", lambda s: "big", TypeError),
        ("complex", lambda s: 1j, TypeError),
        ("None", lambda s: None, TypeError),
        ("True", lambda s: True, TypeError),
        ("-1", lambda s: -1.0, ValueError),
        ("NaN", lambda s: np.nan, ValueError),
        ("inf", lambda s: np.inf, ValueError),
        ("wrong length", lambda s: np.ones(s.W + 1), ValueError),
        ("negative entry", lambda s: -np.ones(s.W), ValueError),
    ],
    "beta": [
        ("'big'", lambda s: "big", TypeError),
        ("complex", lambda s: 1j, TypeError),
        ("-1", lambda s: -1.0, ValueError),
        ("0", lambda s: 0.0, ValueError),
        ("NaN", lambda s: np.nan, ValueError),
    ],
    "v": [
        ("complex", lambda s: s.v + 0j, TypeError),
        ("strings", lambda s: s.v.astype(str), TypeError),
        ("wrong length", lambda s: s.v[:-1], ValueError),
        ("NaN", lambda s: np.full(s.W, np.nan), ValueError),
    ],
    "eps": [
        ("'big'", lambda s: "big", TypeError),
        ("complex", lambda s: 1e-4j, TypeError),
        ("True", lambda s: True, TypeError),
        ("0", lambda s: 0.0, ValueError),
        ("-1e-4", lambda s: -1e-4, ValueError),
        ("NaN", lambda s: np.nan, ValueError),
    ],
    "count": [
        ("1.5", lambda s: 1.5, TypeError),
        ("2.0", lambda s: 2.0, TypeError),
        ("'8'", lambda s: "8", TypeError),
        ("None", lambda s: None, TypeError),
        ("True", lambda s: True, TypeError),
        ("0", lambda s: 0, ValueError),
        ("-3", lambda s: -3, ValueError),
    ],
    "max_bytes": [
        ("'big'", lambda s: "big", TypeError),
        ("list", lambda s: [1e9], TypeError),
        ("-1", lambda s: -1.0, ValueError),
        ("NaN", lambda s: np.nan, ValueError),
    ],
    "tolerance": [
        ("'small'", lambda s: "small", TypeError),
        ("complex", lambda s: 1e-6j, TypeError),
        ("-1", lambda s: -1.0, ValueError),
        ("NaN", lambda s: np.nan, ValueError),
    ],
    "flag": [
        ("'yes'", lambda s: "yes", TypeError),
        ("1", lambda s: 1, TypeError),
        ("None", lambda s: None, TypeError),
    ],
    "seed": [
        ("'x'", lambda s: "x", TypeError),
        ("1.5", lambda s: 1.5, TypeError),
        ("-1", lambda s: -1, ValueError),
    ],
    "path": [
        ("None", lambda s: None, TypeError),
        ("number", lambda s: 3.5, TypeError),
    ],
    "returned": [
        ("complex", lambda s: 1j, TypeError),
        ("string", lambda s: "x", TypeError),
        ("None", lambda s: None, TypeError),
    ],
    "name": [
        ("unknown", lambda s: "no-such-name", ValueError),
        ("number", lambda s: 3, TypeError),
        ("None", lambda s: None, TypeError),
    ],
}

# Cells where the bad value is not bad, with the reason.
NOT_BAD = {
    # None means "the default", not a missing value
    ("count", "None", "Objective(chunk_size)"): "None: no chunking",
    ("count", "None", "Network.output_sensitivities(chunk_size)"): "None: no chunking",
    ("w", "None", "bayes.evidence_fit"): "w0=None: net.init_weights(seed=0)",
    ("T", "None", "testing.check_network"): "T=None: zero targets",
    # a count of 0 is allowed
    ("count", "0", "optimize.minimize(maxiter)"): "maxiter=0 returns w0",
    # fit learns the width of X
    ("X", "wrong width", "BayesianMLPRegressor.fit"): "fit sets n_features_in_",
    ("X", "wrong width", "BayesianMLPClassifier.fit"): "fit sets n_features_in_",
    # scikit-learn estimators accept object arrays of numbers (a mixed-type
    # DataFrame; sklearn's check_dtype_object requires it)
    ("X", "objects", "BayesianMLPRegressor.fit"): "scikit-learn convention",
    ("X", "objects", "BayesianMLPClassifier.fit"): "scikit-learn convention",
    ("X", "objects", "BayesianMLPRegressor.predict"): "scikit-learn convention",
}

# Cells where the argument is a number only (no per-weight array): an array
# is then a wrong type, TypeError, where the others say ValueError (wrong shape)
NUMBER_ONLY = {("alpha", "wrong length", "bayes.evidence_fit"),
               ("alpha", "negative entry", "bayes.evidence_fit")}

# Exceptions that are a TypeError and a ValueError at once, on purpose
BOTH = ("InvalidParameterError", "DataTypeError")

# Known to break the rule, left to the owner of the code (strict: the test
# fails once they are fixed, so that the mark is removed)
KNOWN: dict = {}  # (argument, bad input, entry) -> why it still differs


def _cases():
    for arg, entries in TAKES.items():
        for entry in entries:
            for bad_id, make, exc in BAD[arg]:
                if (arg, bad_id, entry) in NOT_BAD:
                    continue
                if (arg, bad_id, entry) in NUMBER_ONLY:
                    exc = TypeError
                marks = ([pytest.mark.xfail(strict=True, reason=KNOWN[arg, bad_id, entry])]
                         if (arg, bad_id, entry) in KNOWN else [])
                yield pytest.param(arg, entry, make, exc, marks=marks,
                                   id=f"{arg}={bad_id}-{entry}")


@pytest.mark.parametrize("arg, entry, make, exc", _cases())
def test_same_bad_input_same_exception(s, arg, entry, make, exc):
    call = TAKES[arg][entry]
    bad = make(s)
    with pytest.raises(exc) as info:
        _quiet(lambda: call(s, bad))
    # an exception of both types would pass for either rule
    other = ValueError if exc is TypeError else TypeError
    if isinstance(info.value, other):
        assert type(info.value).__name__ in BOTH, \
            f"{entry} raised {type(info.value).__name__}, both a TypeError and a ValueError"



# ------------------------------------- messages that name w, X and T
def _call_all_w(s, w):
    """Every public entry point of the core that takes w, called with this w."""
    net, X, obj = s.net, s.X, s.obj
    return [lambda: net.forward(w, X), lambda: net.jacobian(w, X),
            lambda: net.unpack(w), lambda: net.parameters(w),
            lambda: obj.value(w), lambda: obj.gradient(w),
            lambda: net.output_sensitivities(w, X), lambda: obj.fun(w),
            lambda: obj.jac(w), lambda: obj.pattern_errors(w)]


@pytest.mark.parametrize("bad", [lambda W: np.zeros(W - 1), lambda W: np.zeros(W + 1),
                                 lambda W: np.zeros((W, 1)), lambda W: np.zeros((1, W)),
                                 lambda W: np.float64(0.0)],
                         ids=["short", "long", "column", "row", "scalar"])
def test_w_wrong_shape(s, bad):
    for call in _call_all_w(s, bad(s.W)):
        with pytest.raises(ValueError, match=rf"w: .*\({s.W},\)"):
            call()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_w_not_finite(s, value):
    w = s.w.copy()
    w[3] = value
    for call in _call_all_w(s, w):
        with pytest.raises(ValueError, match=r"w: .*NaN or infinite"):
            call()


def test_w_not_numbers(s):
    for call in _call_all_w(s, ["a"] * s.W):
        with pytest.raises(TypeError, match="w"):
            call()


def test_w_complex_is_rejected_not_silently_truncated(s):
    """A complex w is outside the domain (real numbers); dropping the
    imaginary part (with at most a ComplexWarning) gives wrong numbers.
    (sopt/_validation.py as_float_array: np.asarray(x, dtype=float) casts.)"""
    for call in _call_all_w(s, s.w + 1j):
        with pytest.raises((TypeError, ValueError), match="w"):
            call()


def test_X_and_T_complex_are_rejected(s):
    with pytest.raises((TypeError, ValueError), match="X"):
        s.net.forward(s.w, s.X + 1j)
    with pytest.raises((TypeError, ValueError), match="X"):
        sopt.Objective(s.net, s.X + 1j, s.T)
    with pytest.raises((TypeError, ValueError), match="T"):
        sopt.Objective(s.net, s.X, s.T + 1j)


@pytest.mark.parametrize("shape", [(N, D + 1), (N, D - 1), (N, D, 1), (N * D,), ()],
                         ids=["wide", "narrow", "3d", "1d", "scalar"])
def test_X_wrong_shape(s, shape):
    X_bad = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        s.net.forward(s.w, X_bad)
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        s.net.jacobian(s.w, X_bad)
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        sopt.Objective(s.net, X_bad, s.T)


def test_X_1d_for_single_input_hints_reshape():
    net = sopt.mlp([1, 2, 1])
    w = net.init_weights(seed=0)
    with pytest.raises(ValueError, match=r"X: .*reshape\(-1, 1\)"):
        net.forward(w, np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match=r"X: .*reshape\(-1, 1\)"):
        sopt.Objective(net, np.linspace(0, 1, 5), np.zeros(5))


def test_X_empty(s):
    with pytest.raises(ValueError, match="X: .*at least one"):
        s.net.forward(s.w, np.zeros((0, D)))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_X_not_finite(s, value):
    X = s.X.copy()
    X[2, 1] = value
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        s.net.forward(s.w, X)
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        s.net.jacobian(s.w, X)
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        sopt.Objective(s.net, X, s.T)


def test_X_not_numbers(s):
    with pytest.raises(TypeError, match="X"):
        s.net.forward(s.w, [["a"] * D])


def test_sparse_inputs_are_refused_with_advice(s):
    with pytest.raises(TypeError, match=r"X: .*sparse.*toarray"):
        sopt.Objective(s.net, sp.csr_matrix(s.X), s.T)
    with pytest.raises(TypeError, match=r"T: .*sparse"):
        sopt.Objective(s.net, s.X, sp.csr_matrix(s.T))


# ------------------------------------------- the same on a Dask cluster
def ShardedObjective(*args, **kwargs):
    from sopt.distributed import ShardedObjective
    return ShardedObjective(*args, **kwargs)


SHARDED = {
    "w": lambda s, sh, w: sh.value(w),
    "v": lambda s, sh, v: sh.hvp(s.w, v),
    "alpha": lambda s, sh, a: sh.with_alpha(a),
    "count": lambda s, sh, c: ShardedObjective(
        s.net, *_dask(s.X, s.T), chunk_size=c),
    "X": lambda s, sh, X: ShardedObjective(s.net, *_dask(X, s.T)),
    "T": lambda s, sh, T: ShardedObjective(s.net, *_dask(s.X, T)),
}


def _dask(X, T):
    """X and T as dask arrays of two row chunks; T cut to the rows of X."""
    import dask.array as dask_array
    X, T = np.asarray(X), np.asarray(T)
    n = min(len(X), len(T))
    rows = (n // 2, n - n // 2)
    return (dask_array.from_array(X[:n], chunks=(rows,) + X.shape[1:]),
            dask_array.from_array(T[:n], chunks=(rows,) + T.shape[1:]))


def _sharded_cases():
    for arg in SHARDED:
        for bad_id, make, exc in BAD[arg]:
            if bad_id == "None" or (arg, bad_id) in {("X", "1-D"), ("T", "wrong length")}:
                continue        # not dask arrays / not expressible as one
            yield pytest.param(arg, make, exc, id=f"{arg}={bad_id}")


@pytest.fixture(scope="module")
def sharded(s, client):
    pytest.importorskip("dask.array")
    sh = ShardedObjective(s.net, *_dask(s.X, s.T), client=client)
    yield sh
    sh.close()


@pytest.mark.parametrize("arg, make, exc", _sharded_cases())
def test_sharded_objective_same_exception(s, sharded, arg, make, exc):
    with pytest.raises(exc):
        _quiet(lambda: SHARDED[arg](s, sharded, make(s)))
