"""Bayesian MLP estimators in scikit-learn's conventions (no scikit-learn
dependency): the Laplace approximation around w_MAP with MacKay's evidence
framework choosing the hyperparameters (PRML sec. 5.7; MacKay 1992).

``fit`` runs :func:`sopt.bayes.evidence_fit` from ``n_restarts`` random
initial weight vectors and keeps the run with the highest log evidence.
Inputs are *not* scaled internally: the prior N(0, 1/alpha) is on the raw
weights, so standardise X (zero mean, unit variance per column) yourself
when the features have very different scales. Regression targets are not
scaled either; beta starts at 1/var(y) unless given.

Cost of one evidence cycle: one training run (``method``, ``max_iter``
iterations at most) and one W x W Hessian with its Cholesky factorisation,
O(N W^2 + W^3); memory O(W^2 + N K W) for prediction with error bars.
"""
from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np

from .._validation import as_float_array, check_finite, check_inputs, check_positive
from ..activations import get_activation
from ..network import mlp
from ..optimize import METHODS, ConvergenceWarning
from ._evidence import GROUPINGS, evidence_fit

Array = np.ndarray

__all__ = ["BayesianMLPRegressor", "BayesianMLPClassifier", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a Bayesian MLP estimator is used before ``fit`` (as
    scikit-learn's, a subclass of both ValueError and AttributeError)."""


# ----------------------------------------------------------------- checks
def _check_X(X, name: str = "X") -> Array:
    """X as a finite float (N, D) array; a 1-D X is refused as in scikit-learn."""
    X = as_float_array(X, name)
    if X.ndim != 2:
        hint = (" Reshape your data with X.reshape(-1, 1) if it has a single "
                "feature or X.reshape(1, -1) if it is a single sample."
                if X.ndim == 1 else "")
        raise ValueError(f"{name}: expected a 2-D array of shape (N, D), got "
                         f"{X.ndim}-D shape {X.shape}.{hint}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name}: needs at least one sample and one feature, "
                         f"got shape {X.shape}")
    check_finite(X, name)
    return X


def _check_n_samples(X: Array, y) -> None:
    if len(y) != len(X):
        raise ValueError(f"X and y: inconsistent numbers of samples, X has "
                         f"{len(X)} rows and y has {len(y)}")


def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def _check_hidden(hidden) -> tuple:
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        sizes = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden: expected a tuple of positive layer sizes, "
                         f"got {hidden!r}") from None
    for m in sizes:
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
            raise ValueError(f"hidden: expected a tuple of positive layer sizes, "
                             f"got {hidden!r}")
    return tuple(int(m) for m in sizes)


def _check_activation(activation):
    act = get_activation(activation)       # ValueError naming "activation"
    if act.name == "softmax":
        raise ValueError("activation: 'softmax' is for output layers only")
    return activation


def _check_sample_weight(sample_weight, n: int):
    if sample_weight is None:
        return np.ones(n)
    sw = as_float_array(sample_weight, "sample_weight")
    if sw.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), got {sw.shape}")
    check_finite(sw, "sample_weight")
    return sw


# ------------------------------------------------------------------- base
class _BayesianMLPBase:
    """Parameters, get/set_params, repr and the evidence fit shared by the
    regressor and the classifier. Subclasses define ``__init__`` (its
    signature is the list of parameters) and ``_loss``."""

    _estimator_type = ""

    # --- scikit-learn parameter protocol
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters as a dict (``deep`` has no effect:
        no parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; an unknown name is a ValueError.
        Validation happens at ``fit``, as in scikit-learn. Returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: "
                                 f"{sorted(valid)}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [f"{name}={getattr(self, name)!r}"
                   for name, p in sig.parameters.items()
                   if name != "self" and repr(getattr(self, name)) != repr(p.default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    # --- fitted state
    def _check_fitted(self) -> None:
        if not hasattr(self, "posterior_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator.")

    def _check_predict_X(self, X) -> Array:
        self._check_fitted()
        X = _check_X(X)
        return check_inputs(X, self.n_features_in_, "X")

    def _validated_params(self) -> dict:
        return dict(
            hidden=_check_hidden(self.hidden),
            activation=_check_activation(self.activation),
            alpha=check_positive(self.alpha, "alpha"),
            groups=_check_choice(self.groups, "groups", GROUPINGS),
            n_restarts=_check_int(self.n_restarts, "n_restarts"),
            max_cycles=_check_int(self.max_cycles, "max_cycles"),
            tol=check_positive(self.tol, "tol"),
            hessian=_check_choice(self.hessian, "hessian", ("exact", "gauss_newton")),
            clip_negative=self._check_bool(self.clip_negative, "clip_negative"),
            method=_check_choice(self.method, "method", METHODS),
            max_iter=_check_int(self.max_iter, "max_iter"),
            seed=self._check_seed(self.random_state),
            verbose=self._check_verbose(self.verbose))

    @staticmethod
    def _check_bool(value, name: str) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}: expected True or False, got {value!r}")
        return bool(value)

    @staticmethod
    def _check_verbose(value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"verbose: expected a bool or an integer >= 0, got {value!r}")
        return value > 0

    @staticmethod
    def _check_seed(random_state) -> int:
        if random_state is None:          # fresh entropy, as scikit-learn's None
            return int(np.random.default_rng().integers(2**31))
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) \
                or random_state < 0:
            raise ValueError(f"random_state: expected an integer >= 0 or None, "
                             f"got {random_state!r}")
        return int(random_state)

    def _evidence(self, X: Array, T: Array, n_outputs: int, output: str,
                  beta0: float | None, p: dict) -> None:
        """Evidence fits from n_restarts starts; keep the best; set attributes."""
        net = mlp([X.shape[1], *p["hidden"], n_outputs], hidden=p["activation"],
                  output=output)
        best, runs = None, []
        for r in range(p["n_restarts"]):
            seed = p["seed"] + r
            if p["verbose"]:
                print(f"{type(self).__name__}: restart {r + 1}/{p['n_restarts']} "
                      f"(seed {seed})", flush=True)
            try:
                res = evidence_fit(
                    net, X, T, loss=self._loss(n_outputs),
                    w0=net.init_weights(seed=seed), alpha=p["alpha"], beta=beta0,
                    groups=p["groups"], max_cycles=p["max_cycles"], tol=p["tol"],
                    hessian=p["hessian"], clip_negative=p["clip_negative"],
                    method=p["method"], options={"maxiter": p["max_iter"]},
                    verbose=p["verbose"])
            except ValueError as err:
                # only a non-PD precision (exact Hessian, clip_negative=False,
                # training stopped at a saddle) is a failure of one restart
                if "not positive definite" not in str(err):
                    raise
                failure = str(err)
                runs.append(np.nan)
                warnings.warn(f"{type(self).__name__}: restart {r + 1} (seed {seed}) "
                              f"failed: {failure}", RuntimeWarning, stacklevel=3)
                continue
            runs.append(res.log_evidence)
            if p["verbose"]:
                print(f"  restart {r + 1}: {res.n_cycles} cycles, log evidence "
                      f"{res.log_evidence:.6g}{'' if res.converged else ' (not converged)'}",
                      flush=True)
            if best is None or res.log_evidence > best.log_evidence:
                best = res
        if best is None:
            raise ValueError(f"{type(self).__name__}: all {p['n_restarts']} restart(s) "
                             f"failed; the last with: {failure}")
        if not best.converged:
            warnings.warn(f"{type(self).__name__}: the evidence iterations did not "
                          f"settle within max_cycles={p['max_cycles']} (tol="
                          f"{p['tol']:g}); increase max_cycles.", ConvergenceWarning,
                          stacklevel=3)
        self.network_ = net
        self.posterior_ = best.posterior
        self.w_ = best.w.copy()
        # the hyperparameters the kept posterior was computed with
        alpha = np.array(best.alpha, dtype=float)
        self.alpha_ = float(alpha[0]) if p["groups"] == "single" else alpha
        self.group_names_ = list(best.group_names)
        self.gamma_ = float(best.gamma)
        self.log_evidence_ = float(best.log_evidence)
        self.n_iter_ = int(best.n_cycles)
        self.converged_ = bool(best.converged)
        self.history_ = best.history
        self.restarts_log_evidence_ = np.array(runs)
        self.evidence_result_ = best
        params = net.unpack(self.w_)
        # scikit-learn's orientation: (fan_in, fan_out), the transpose of sopt's
        self.coefs_ = [lp.weights[0].T.copy() for lp in params]
        self.intercepts_ = [lp.bias.copy() for lp in params]
        self.n_features_in_ = X.shape[1]


# -------------------------------------------------------------- regressor
class BayesianMLPRegressor(_BayesianMLPBase):
    """Bayesian MLP regression: Laplace posterior with the evidence framework.

    Sum-of-squares error with Gaussian noise of precision beta and a
    Gaussian prior of precision alpha on the weights (PRML sec. 5.7.1);
    alpha and beta re-estimated from the data (eqs. 5.178, 5.180) in
    alternation with retraining.

    Parameters
    ----------
    hidden : tuple of int, default (10,)
        Hidden layer sizes M_1, ..., M_L (``()`` gives linear regression).
    activation : str, default "tanh"
        Hidden activation ("tanh", "logistic", "softplus", "relu", ...).
    alpha : float, default 0.01
        Initial prior precision.
    beta : float or None, default None
        Initial noise precision; None starts at 1/var(y).
    groups : {"single", "layers"}, default "single"
        One alpha for all weights, or one per layer's weights and biases.
    n_restarts : int, default 1
        Evidence fits from this many random initial weights; the one with
        the highest log evidence is kept. A restart whose Laplace precision
        is not positive definite (possible with hessian="exact" and
        clip_negative=False) is skipped with a RuntimeWarning; if all fail,
        fit raises that ValueError.
    max_cycles, tol : evidence cycles at most, and the relative change of
        alpha, beta and log evidence that counts as settled.
    hessian : {"exact", "gauss_newton"}, default "exact"
        Curvature of the Laplace precision.
    clip_negative : bool, default True
        Clip negative data-Hessian eigenvalues (Netlab's remedy).
    method, max_iter : training method of :func:`sopt.optimize.minimize`
        and its iteration limit per cycle.
    random_state : int or None, default 0
        Restart r starts from ``net.init_weights(seed=random_state + r)``.
    verbose : bool or int, default False
        If true, print one line per restart and per evidence cycle.

    Inputs are not scaled: standardise X yourself if its columns differ
    much in scale.

    Attributes
    ----------
    alpha_ : float (groups="single") or (n_groups,) array
    beta_ : float, noise precision
    gamma_ : float, effective number of well-determined parameters
    log_evidence_ : float, ln p(D | alpha_, beta_) of the kept run
    n_iter_ : int, evidence cycles of the kept run
    coefs_, intercepts_ : per layer (fan_in, fan_out) weights and biases
    history_ : dict of per-cycle lists (alpha, beta, gamma, log_evidence, ...)
    posterior_ : LaplacePosterior; network_ : Network; w_ : (W,) w_MAP
    restarts_log_evidence_ : (n_restarts,) log evidence of every run
        (NaN for a failed one)
    converged_ : bool, whether the kept run settled within max_cycles
    n_features_in_ : int
    """

    _estimator_type = "regressor"

    def __init__(self, hidden=(10,), activation="tanh", alpha=0.01, beta=None,
                 groups="single", n_restarts=1, max_cycles=50, tol=1e-4,
                 hessian="exact", clip_negative=True, method="trust-exact",
                 max_iter=200, random_state=0, verbose=False):
        self.hidden = hidden
        self.activation = activation
        self.alpha = alpha
        self.beta = beta
        self.groups = groups
        self.n_restarts = n_restarts
        self.max_cycles = max_cycles
        self.tol = tol
        self.hessian = hessian
        self.clip_negative = clip_negative
        self.method = method
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    @staticmethod
    def _loss(n_outputs: int) -> str:
        return "sse"

    def fit(self, X, y):
        """Fit to X (N, D) and real targets y, (N,) or (N, K). Returns self."""
        p = self._validated_params()
        beta = None if self.beta is None else check_positive(self.beta, "beta")
        X = _check_X(X)
        y = as_float_array(y, "y")
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
            raise ValueError(f"y: expected shape (N,) or (N, K), got {y.shape}")
        _check_n_samples(X, y)
        check_finite(y, "y")
        T = y.reshape(len(y), -1)
        if beta is None:
            var = float(np.var(T))
            beta = 1.0 / var if var > 0 else 1.0
        self._evidence(X, T, T.shape[1], "identity", beta, p)
        self._y_1d = y.ndim == 1
        self.beta_ = float(self.posterior_.beta)
        self.n_outputs_ = T.shape[1]
        return self

    def predict(self, X, return_std: bool = False):
        """Predictive mean y(x, w_MAP), (N,) for 1-D y else (N, K); with
        ``return_std`` also the predictive standard deviation
        sqrt(1/beta + g^T A^{-1} g) (PRML eq. 5.173, noise included as in
        scikit-learn's BayesianRidge). Cost O(N K W^2) with std."""
        X = self._check_predict_X(X)
        if return_std:
            mean, var = self.posterior_.predict(X)
            std = np.sqrt(var)
        else:
            mean = self.network_.forward(self.w_, X)
        if self._y_1d:
            mean = mean[:, 0]
            if return_std:
                std = std[:, 0]
        return (mean, std) if return_std else mean

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R^2 (scikit-learn's definition;
        several outputs: uniform average; a constant column scores 1 if
        predicted exactly, else 0)."""
        pred = self.predict(X)
        y = as_float_array(y, "y")
        _check_n_samples(pred, y)
        check_finite(y, "y")
        y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
        if y2.shape != p2.shape:
            raise ValueError(f"y: expected {p2.shape[1]} output column(s), "
                             f"got shape {y.shape}")
        sw = _check_sample_weight(sample_weight, len(y))[:, None]
        ss_res = np.sum(sw * (y2 - p2) ** 2, axis=0)
        mean = np.sum(sw * y2, axis=0) / np.sum(sw)
        ss_tot = np.sum(sw * (y2 - mean) ** 2, axis=0)
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                      np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(r2))


# ------------------------------------------------------------- classifier
class BayesianMLPClassifier(_BayesianMLPBase):
    """Bayesian MLP classification: Laplace posterior, evidence framework
    for alpha (PRML sec. 5.7.3) and moderated outputs.

    Two classes: one logistic output with cross-entropy; K > 2 classes:
    softmax outputs with cross-entropy. ``predict_proba`` returns the
    moderated probabilities sigma(kappa(s^2) a_MAP) (PRML eqs. 4.153-4.155,
    5.190); for softmax each logit is scaled by its own kappa (an
    approximation; ``method="mc"`` averages over the linearised logits
    instead). Labels can be any values; they are kept in ``classes_``.

    Parameters are those of :class:`BayesianMLPRegressor` without ``beta``.
    Inputs are not scaled: standardise X yourself.

    Attributes
    ----------
    classes_ : (n_classes,) the sorted labels
    alpha_, gamma_, log_evidence_, n_iter_, coefs_, intercepts_, history_,
    posterior_, network_, w_, restarts_log_evidence_, n_features_in_ :
        as for :class:`BayesianMLPRegressor`.
    """

    _estimator_type = "classifier"

    def __init__(self, hidden=(10,), activation="tanh", alpha=0.01,
                 groups="single", n_restarts=1, max_cycles=50, tol=1e-4,
                 hessian="exact", clip_negative=True, method="trust-exact",
                 max_iter=200, random_state=0, verbose=False):
        self.hidden = hidden
        self.activation = activation
        self.alpha = alpha
        self.groups = groups
        self.n_restarts = n_restarts
        self.max_cycles = max_cycles
        self.tol = tol
        self.hessian = hessian
        self.clip_negative = clip_negative
        self.method = method
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    @staticmethod
    def _loss(n_outputs: int) -> str:
        return "binary_ce" if n_outputs == 1 else "softmax_ce"

    @staticmethod
    def _check_labels(y) -> Array:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y: expected a 1-D array of class labels, got shape "
                             f"{y.shape}")
        if y.dtype.kind in "fc":
            check_finite(y, "y")
        elif y.dtype.kind == "O":
            bad = sum(v is None or (isinstance(v, float) and not np.isfinite(v))
                      for v in y)
            if bad:
                raise ValueError(f"y: contains {bad} missing (None or NaN) label(s)")
        return y

    def fit(self, X, y):
        """Fit to X (N, D) and class labels y (N,) of any values. Returns self."""
        p = self._validated_params()
        X = _check_X(X)
        y = self._check_labels(y)
        _check_n_samples(X, y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y: needs samples of at least 2 classes, got "
                             f"{len(classes)} class ({classes[0]!r})")
        if len(classes) == 2:
            T, K, output = labels.astype(float)[:, None], 1, "logistic"
        else:
            T, K, output = labels.astype(float), len(classes), "softmax"
        self._evidence(X, T, K, output, None, p)
        self.classes_ = classes
        return self

    def predict_proba(self, X, method: str = "probit") -> Array:
        """Moderated class probabilities, (N, n_classes) in ``classes_``
        order (two classes: columns [1 - p, p]). ``method``: "probit"
        (default) or "mc" (softmax outputs only, 1000 draws of the
        linearised logits). Cost O(N K W^2)."""
        X = self._check_predict_X(X)
        P = self.posterior_.predict_proba(X, method=method)
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - P[:, 0], P[:, 0]])
        return P

    def predict(self, X) -> Array:
        """The most probable class label for each row of X, (N,)."""
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of ``predict(X)`` against the labels y."""
        pred = self.predict(X)
        y = self._check_labels(y)
        _check_n_samples(pred, y)
        sw = _check_sample_weight(sample_weight, len(y))
        return float(np.sum(sw * (pred == y)) / np.sum(sw))
