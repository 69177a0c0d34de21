"""Bayesian MLP estimators for scikit-learn: the Laplace approximation
around w_MAP with MacKay's evidence framework choosing the hyperparameters
(PRML sec. 5.7; MacKay 1992).

The estimators are scikit-learn estimators: parameters are validated
declaratively at ``fit``, inputs with ``validate_data``, and they work in
``Pipeline``, ``GridSearchCV``, ``cross_val_score(n_jobs=...)``, ``clone``
and pickling. ``fit`` runs :func:`sopt.bayes.evidence_fit` from
``n_restarts`` random initial weight vectors and keeps the run with the
highest log evidence. ``fit`` standardises X's columns (and, for the
regressor, each column of y) before the evidence fit, so the fit does not
depend on their units or offsets (the prior N(0, 1/alpha) is on the
weights of the standardised problem); everything a user reads back
(predictions, error bars, ``noise_precision_``, the log evidences,
``coefs_``) is in the user's units.

The fitted precisions are named for what they are: ``prior_precision_`` (the
alpha of PRML sec. 5.7, the prior N(0, I / alpha) on the weights) and
``noise_precision_`` (beta), not ``alpha_`` and ``beta_``, because
scikit-learn's ``BayesianRidge.alpha_`` is the noise precision;
``n_cycles_`` counts evidence cycles (each a whole training run), not
solver iterations. The old names are deprecated read-only aliases.

Cost of one evidence cycle: one training run (``method``, ``max_iter``
iterations at most) and one W x W Hessian with its Cholesky factorisation,
O(N W^2 + W^3); memory O(W^2 + N K W) for prediction with error bars.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._deprecation import renamed_property
from ..activations import ACTIVATIONS, Activation, get_activation
from ..network import Network, mlp
from .._validation import check_estimator_data, check_positive_int
from ..optimize import METHODS
from ..optimize import ConvergenceWarning as _SolverConvergenceWarning
from ._evidence import BETA_MAX, GROUPINGS, AllPrunedWarning, all_pruned, evidence_fit
from ._posterior import NotPositiveDefiniteError
from ._structure import StructureSpec, get_structure
from ._subset import Subset
from ._structures import STRUCTURES
from ._sampled import SamplingWarning, convergence_problems
from ._sampling import MIN_DRAWS, sample_posterior
from ._storage import register_estimators, rename_fitted_attributes

Array = np.ndarray

__all__ = ["BayesianMLPRegressor", "BayesianMLPClassifier", "NotFittedError"]


class ConvergenceWarning(_SolverConvergenceWarning, _SklearnConvergenceWarning):
    """The evidence iterations did not settle: sopt's ConvergenceWarning and
    scikit-learn's, so either's warnings filter applies."""


class SamplingConvergenceWarning(SamplingWarning, ConvergenceWarning):
    """inference="sampling": the chains may not have converged (R-hat,
    bulk ESS or divergences). sopt's SamplingWarning and ConvergenceWarning
    and scikit-learn's ConvergenceWarning at once."""


def _check_hidden(hidden, owner: str) -> tuple:
    """Layer sizes as a tuple of positive ints: an int is one layer, a list,
    tuple or 1-D array one entry per layer (the type of the container is
    checked by the parameter constraints; a bool or an array of another
    rank is refused here, in scikit-learn's words)."""
    if isinstance(hidden, (bool, np.bool_)) or (isinstance(hidden, np.ndarray)
                                                and hidden.ndim != 1):
        raise InvalidParameterError(
            f"The 'hidden' parameter of {owner} must be 'auto', a positive int "
            f"or a sequence (list, tuple, 1-D array) of positive ints. Got "
            f"{hidden!r} instead.")
    sizes = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
    return tuple(check_positive_int(m, f"hidden[{i}]") for i, m in enumerate(sizes))


def _column_scaling(A: Array) -> tuple[Array, Array]:
    """Column means and standard deviations of A (N, D), each (D,); a
    column constant up to round-off gets scale 1 (it is only centred), as
    scikit-learn's StandardScaler does, so that it cannot produce NaN."""
    scaler = StandardScaler().fit(A)
    return scaler.mean_, scaler.scale_


def _check_auto_structure(structure) -> None:
    """hidden="auto" compares log evidences across network sizes; a subset
    structure's evidence leaves the other weights' prior out, so it grows
    with every hidden unit added (diabetes: -333 for the linear model, -73
    with 16 units, whose held-out NLL was 15 nats per point)."""
    spec = get_structure(structure)
    if isinstance(spec, Subset):
        raise ValueError(
            f"structure: {spec.name!r} covers only some weights, so its evidence "
            "cannot compare network sizes (it grows with every hidden unit): "
            "give hidden explicitly, e.g. hidden=(8,), or use a structure over "
            "all weights with hidden='auto'")


def _check_activation(activation) -> Activation:
    act = get_activation(activation)       # ValueError naming "activation"
    if not act.elementwise:
        raise ValueError(f"activation: {act.name!r} is for output layers only")
    return act


#: The default initial prior precision (of the standardised weights).
ALPHA_START = 0.01

#: Hidden-layer sizes hidden="auto" tries after the linear model, in order.
AUTO_HIDDEN = (2, 4, 8, 16)


def skip_layer_network(D: int, M: int, K: int, activation, output: str) -> Network:
    """One hidden layer of M units and a linear skip-layer connection from
    the inputs to the K outputs: y = f(W2 h(W1 x + b1) + V x + b2). Layout:
    W1, b1, then the output layer's W2, V, b2."""
    net = Network(D)
    h = net.add_layer(M, activation, inputs=[net.input])
    net.add_layer(K, output, inputs=[h, net.input], output=True)
    return net


def _better(candidate: float, best: float, tol: float) -> bool:
    """Whether a larger model's log evidence beats the best so far. The
    evidence loop stops once the log evidence moves by less than tol *
    max(1, |ln p|) in a cycle, so smaller differences are not resolved
    (e.g. a candidate whose hidden units are all switched off differs from
    the linear model by that much): such a tie goes to the smaller model."""
    return candidate - best > tol * max(1.0, abs(best))


def _search_goes_on(misses: int, helped: bool, unused: bool) -> bool:
    """Whether hidden="auto" tries the next size after ``misses`` successive
    candidates that did not beat the best. A miss ends the search if a
    hidden layer has beaten the linear model (the evidence has passed its
    peak) or if the candidate used its hidden units and still lost (more
    units cost more Occam factor). A candidate that left its units unused
    (``unused``: less than one well-determined parameter more than the
    linear model) ties with the linear model and says nothing about a
    larger one: the next size is tried, and a second such miss ends it."""
    return not helped and unused and misses < 2


def _units_unused(candidate, linear) -> bool:
    """Whether a skip-layer candidate's evidence fit left its hidden units
    unused: less than one well-determined parameter (gamma, PRML eq.
    5.179) more than the linear model's."""
    return bool(candidate.gamma < linear.gamma + 1.0)


def _warm_start(net: Network, linear_w: Array):
    """init_weights(seed) of a skip-layer network whose skip weights and
    output biases are those of the fitted linear model (V, b2 = its W, b)."""
    def init_weights(seed):
        w = net.init_weights(seed=seed)
        out = net.unpack(w)[-1]
        out.weights[1][...] = linear_w[:out.weights[1].size].reshape(out.weights[1].shape)
        out.bias[...] = linear_w[out.weights[1].size:]
        return w
    return init_weights


def _layers_in_user_units(net: Network, params, x_mean: Array, x_scale: Array,
                          y_mean: Array, y_scale: Array):
    """coefs_, intercepts_ and skip_coef_ of a network fitted on standardised
    inputs (X - x_mean) / x_scale and targets (t - y_mean) / y_scale,
    rewritten to act on the user's X and give the user's units: weights
    from the inputs are divided by x_scale (their biases take up the
    centring), the output layer is multiplied by y_scale and its bias
    shifted by y_mean. scikit-learn's orientation (fan_in, fan_out)."""
    coefs, intercepts, skip = [], [], None
    last = len(net.layers) - 1
    for l, (layer, lp) in enumerate(zip(net.layers, params)):
        weights, bias = [W.copy() for W in lp.weights], lp.bias.copy()
        for i, src in enumerate(layer.sources):
            if src.index == 0:                 # (fan_out, fan_in): columns are inputs
                bias -= weights[i] @ (x_mean / x_scale)
                weights[i] /= x_scale
        if l == last:
            weights = [y_scale[:, None] * W for W in weights]
            bias = y_scale * bias + y_mean
        coefs.append(weights[0].T.copy())
        intercepts.append(bias)
        if len(weights) > 1:
            skip = weights[1].T.copy()
    return coefs, intercepts, skip


# ------------------------------------------------------------------- base
class _BayesianMLPBase(BaseEstimator):
    """Parameters and the evidence fit shared by the regressor and the
    classifier. Subclasses define ``__init__`` and ``_loss``."""

    _parameter_constraints: dict = {
        "hidden": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left"),
                   list, tuple, np.ndarray],
        "activation": [StrOptions(set(ACTIVATIONS) - {"softmax"}), Activation, tuple],
        "alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "groups": [StrOptions(set(GROUPINGS))],
        "n_restarts": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_cycles": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "hessian": [StrOptions({"exact", "gauss_newton"})],
        "clip_negative": ["boolean"],
        "method": [StrOptions(set(METHODS))],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "inference": [StrOptions({"laplace", "sampling"})],
        "n_draws": [Interval(numbers.Integral, MIN_DRAWS, None, closed="left")],
        "n_warmup": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_chains": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "hyperprior": [StrOptions({"gamma"}), None],
        "structure": [StrOptions(set(STRUCTURES)), StructureSpec],
    }

    alpha_ = renamed_property("alpha_", "prior_precision_")
    n_iter_ = renamed_property("n_iter_", "n_cycles_")

    def __setstate__(self, state: dict) -> None:
        # a pickle from before the renames: its attributes under their new
        # names; from before n_jobs: its default (the chains' draws do not
        # depend on it)
        state = rename_fitted_attributes(state)
        state.setdefault("n_jobs", None)
        super().__setstate__(state)

    def _store_params(self, params: dict) -> None:
        """``__init__``'s arguments stored unchanged, one attribute each
        (scikit-learn's rule: no validation or conversion in ``__init__``)."""
        for name, value in params.items():
            if name != "self":
                setattr(self, name, value)

    def _seed(self) -> int:
        """Restart r starts from ``init_weights(seed=seed + r)``: an int
        random_state is the seed itself, None or a RandomState draws one."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def _standardise_X(self, X: Array, fit: bool = False) -> Array:
        """(X - x_mean_) / x_scale_, column by column; ``fit`` sets the two
        from X first. The network only ever sees standardised inputs, so
        its fit does not depend on the units of X's columns."""
        if fit:
            self.x_mean_, self.x_scale_ = _column_scaling(X)
        if not hasattr(self, "x_mean_"):    # a fit saved before inputs were
            return X                        # standardised: its network takes X
        return (X - self.x_mean_) / self.x_scale_

    def _evidence(self, X: Array, T: Array, output: str, beta0: float | None,
                  shift: float = 0.0) -> None:
        """Evidence fits of the network (or, for hidden="auto", of each
        candidate in turn) on standardised X and T; keep the best; set the
        fitted attributes. ``shift`` is added to every reported log
        evidence (the Jacobian of the targets' standardisation)."""
        activation = _check_activation(self.activation)
        D, K = X.shape[1], T.shape[1]
        if isinstance(self.hidden, str):           # "auto", by the constraints
            _check_auto_structure(self.structure)
            net, best, runs, scores = self._select_hidden(X, T, output, beta0, activation)
        else:
            hidden = _check_hidden(self.hidden, type(self).__name__)
            net = mlp([D, *hidden, K], hidden=activation, output=output)
            best, runs = self._restarts(net, X, T, self.alpha, beta0, net.init_weights)
            scores = {}
        if not best.converged:
            warnings.warn(f"{type(self).__name__}: the evidence iterations did not "
                          f"settle within max_cycles={self.max_cycles} (tol="
                          f"{self.tol:g}); increase max_cycles.", ConvergenceWarning,
                          stacklevel=4)
        self._set_fitted(net, best, np.array(runs) + shift, shift)
        self.evidence_by_hidden_ = {m: v + shift for m, v in scores.items()}

    def _select_hidden(self, X, T, output, beta0, activation):
        """hidden="auto": the linear model, then one tanh layer of M = 2, 4,
        8, ... units beside a linear skip-layer connection (so each network
        contains the linear model), while the log evidence grows (PRML sec.
        5.7.2; MacKay 1992); see :func:`_search_goes_on` for when it stops.
        The ln(M! 2^M) of the weight-space symmetries is left out: units the
        evidence switches off make those modes coincide, and the term would
        reward unused units. Cost: one evidence fit per candidate tried."""
        D, K = X.shape[1], T.shape[1]
        net = mlp([D, K], output=output)
        best, runs = self._restarts(net, X, T, self.alpha, beta0, net.init_weights)
        chosen, scores = (net, best, runs), {0: float(best.log_evidence)}
        linear, misses, helped = best, 0, False
        for M in AUTO_HIDDEN:
            net = skip_layer_network(D, M, K, activation, output)
            cand, cand_runs = self._fit_candidate(net, X, T, linear, beta0)
            scores[M] = float(cand.log_evidence)
            if self.verbose:
                print(f"{type(self).__name__}: hidden=({M},) with skip layer, "
                      f"log evidence {scores[M]:.6g}", flush=True)
            if _better(scores[M], float(chosen[1].log_evidence), self.tol):
                chosen, misses, helped = (net, cand, cand_runs), 0, True
                continue
            misses += 1
            if not _search_goes_on(misses, helped, _units_unused(cand, linear)):
                break
        return (*chosen, scores)

    def _fit_candidate(self, net, X, T, linear, beta0):
        """Evidence fits of a skip-layer candidate: its skip weights, output
        biases and beta start at the linear fit's, alpha first at the linear
        fit's (geometric mean over groups; cheap, and the units settle where
        the linear model leaves off). That alpha is huge when the linear
        model explains nothing, and from it the first cycle shrinks the
        hidden units to tanh(0) = 0, where their gradient vanishes and the
        loop keeps them off: if it ends with them unused, the candidate is
        fitted again from the estimator's own alpha and the run with the
        higher log evidence kept."""
        beta = linear.beta if linear.beta is not None else beta0
        init = _warm_start(net, linear.w)
        alpha_lin = float(np.exp(np.mean(np.log(linear.alpha))))
        cand, runs = self._restarts(net, X, T, alpha_lin, beta, init)
        if not _units_unused(cand, linear) or alpha_lin == self.alpha:
            return cand, runs
        if self.verbose:
            print(f"  hidden units unused: again from alpha={self.alpha:g}", flush=True)
        fresh, fresh_runs = self._restarts(net, X, T, self.alpha, beta, init)
        return (fresh, fresh_runs) if fresh.log_evidence > cand.log_evidence else (cand, runs)

    def _restarts(self, net, X, T, alpha0, beta0, init_weights):
        """Evidence fits from n_restarts starts init_weights(seed=s + r),
        alpha and beta starting at alpha0 and beta0: the one with the
        highest log evidence, and every run's."""
        seed0, verbose = self._seed(), bool(self.verbose)
        best, runs, failure = None, [], None
        for r in range(self.n_restarts):
            seed = seed0 + r
            if verbose:
                print(f"{type(self).__name__}: restart {r + 1}/{self.n_restarts} "
                      f"(seed {seed})", flush=True)
            try:
                res = self._fit_once(net, X, T, alpha0, beta0, init_weights(seed=seed))
            except NotPositiveDefiniteError as err:
                # a non-PD precision (exact Hessian, clip_negative=False, training
                # stopped at a saddle) is a failure of this restart only
                failure = str(err)
                runs.append(np.nan)
                warnings.warn(f"{type(self).__name__}: restart {r + 1} (seed {seed}) "
                              f"failed: {failure}", RuntimeWarning, stacklevel=5)
                continue
            runs.append(res.log_evidence)
            if verbose:
                print(f"  restart {r + 1}: {res.n_cycles} cycles, log evidence "
                      f"{res.log_evidence:.6g}{'' if res.converged else ' (not converged)'}",
                      flush=True)
            if best is None or res.log_evidence > best.log_evidence:
                best = res
        if best is None:
            raise ValueError(f"{type(self).__name__}: all {self.n_restarts} restart(s) "
                             f"failed; the last with: {failure}")
        return best, runs

    def _fit_once(self, net, X, T, alpha0, beta0, w0):
        """One evidence fit from w0, alpha0, beta0. If it ends with every
        weight switched off (the fixed point a too strong start falls into,
        where evidence_fit warns), a second from the same w0 and the
        default start for standardised data, alpha = ALPHA_START and beta
        = 1 (noise variance = the targets' variance), and the one of the two
        with the higher log evidence. On pure-noise targets the second run
        prunes too, or has the lower evidence, and the first is kept."""
        start = (ALPHA_START, None if beta0 is None else 1.0)
        res = self._evidence_fit(net, X, T, alpha0, beta0, w0)
        if not all_pruned(res) or (alpha0, beta0) == start:
            return res
        if self.verbose:
            print(f"  every weight switched off: again from alpha={start[0]:g}"
                  + ("" if beta0 is None else " and beta=1 (standardised targets)"),
                  flush=True)
        retry = self._evidence_fit(net, X, T, *start, w0)
        return retry if retry.log_evidence > res.log_evidence else res

    def _evidence_fit(self, net, X, T, alpha0, beta0, w0):
        """sopt.bayes.evidence_fit with the estimator's settings; its
        AllPrunedWarning is handled by :meth:`_fit_once`."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AllPrunedWarning)
                return evidence_fit(
                    net, X, T, loss=self._loss(T.shape[1]), w0=w0, alpha=alpha0,
                    beta=beta0, groups=self.groups, max_cycles=self.max_cycles,
                    tol=self.tol, structure=self.structure, hessian=self.hessian,
                    clip_negative=self.clip_negative, method=self.method,
                    options={"maxiter": self.max_iter}, verbose=bool(self.verbose))
        except MemoryError as err:
            raise MemoryError(
                f"{type(self).__name__}: {err}. The estimator keeps the default "
                "limit: use fewer hidden units, or call sopt.bayes.evidence_fit "
                "with max_bytes=") from None

    def _set_fitted(self, net, best, runs: Array, shift: float) -> None:
        self.network_ = net
        self.posterior_ = best.posterior
        self.w_ = best.w.copy()
        # the hyperparameters the kept posterior was computed with
        alpha = np.array(best.alpha, dtype=float)
        self.prior_precision_ = float(alpha[0]) if self.groups == "single" else alpha
        self.group_names_ = list(best.group_names)
        self.gamma_ = float(best.gamma)
        self.log_evidence_ = float(best.log_evidence) + shift
        self.n_cycles_ = int(best.n_cycles)
        self.converged_ = bool(best.converged)
        self.history_ = best.history
        self.restarts_log_evidence_ = runs
        self.evidence_result_ = best
        self.coefs_, self.intercepts_, self.skip_coef_ = _layers_in_user_units(
            net, net.unpack(self.w_), self.x_mean_, self.x_scale_,
            *self._output_scaling(net.n_outputs))
        self.hidden_ = tuple(layer.size for layer in net.layers[:-1])

    def _output_scaling(self, n_outputs: int) -> tuple[Array, Array]:
        """Mean and scale that take the network's outputs to the user's:
        none for the classifier's logits."""
        return np.zeros(n_outputs), np.ones(n_outputs)

    def _infer(self, X: Array, T: Array) -> None:
        """inference="sampling": draws of the weights by dynamic HMC
        (:func:`sample_posterior`) on the standardised problem the evidence
        fit saw, started at w_MAP with the kept Laplace posterior as metric
        and its alpha (and beta) as the prior's (hyperprior=None) or as the
        start of their draws ("gamma"); sets ``sampled_posterior_``,
        ``rhat_``, ``ess_`` and ``n_divergent_``. With "laplace" it removes
        them, so that a refit does not predict from an earlier fit's draws.
        Cost: n_chains (n_warmup + n_draws) iterations of about
        2^tree_depth gradients, O(N W) each."""
        for name in ("sampled_posterior_", "rhat_", "ess_", "n_divergent_"):
            self.__dict__.pop(name, None)
        if self.inference == "laplace":
            return
        if self.verbose:
            print(f"{type(self).__name__}: sampling {self.n_chains} chain(s) of "
                  f"{self.n_warmup} + {self.n_draws} iterations", flush=True)
        with warnings.catch_warnings():
            # warned below in the estimator's words and class
            warnings.simplefilter("ignore", SamplingWarning)
            sp = sample_posterior(
                self.network_, X, T, self.w_, loss=self._loss(T.shape[1]),
                posterior=self.posterior_, n_draws=self.n_draws,
                n_warmup=self.n_warmup, n_chains=self.n_chains, seed=self._seed(),
                hyperprior=self.hyperprior, groups=self.groups,
                progress=bool(self.verbose), n_jobs=self.n_jobs)
        self.sampled_posterior_ = sp
        self.rhat_, self.ess_ = sp.max_rhat, sp.min_ess
        self.n_divergent_ = sp.n_divergent
        if self.verbose:
            print(f"  max R-hat {self.rhat_:.4g}, min bulk ESS {self.ess_:.0f}, "
                  f"{self.n_divergent_} divergent, {sp.fit_time:.3g} s", flush=True)
        problems = convergence_problems(sp)
        if problems:
            warnings.warn(f"{type(self).__name__}: the posterior draws may not have "
                          f"converged: {'; '.join(problems)}. Increase n_warmup and "
                          "n_draws.", SamplingConvergenceWarning, stacklevel=4)

    def _validate_predict_X(self, X) -> Array:
        """X checked against the fit, and standardised as in fit."""
        check_is_fitted(self, "posterior_")
        X = validate_data(self, check_estimator_data(X, "X"), dtype=np.float64,
                          reset=False)
        return self._standardise_X(X)


# -------------------------------------------------------------- regressor
class BayesianMLPRegressor(RegressorMixin, _BayesianMLPBase):
    """Bayesian MLP regression: Laplace posterior with the evidence framework.

    Sum-of-squares error with Gaussian noise of precision beta and a
    Gaussian prior of precision alpha on the weights (PRML sec. 5.7.1);
    alpha and beta re-estimated from the data (eqs. 5.178, 5.180) in
    alternation with retraining.

    Parameters
    ----------
    hidden : "auto", int, or list, tuple or 1-D array of int, default "auto"
        Hidden layer sizes M_1, ..., M_L of a layered perceptron (an int is
        one layer; ``()`` gives the linear model). "auto" lets the evidence
        choose: the linear model, then one hidden layer of 2, 4, 8, 16
        units beside a linear skip-layer connection, each started from the
        linear fit (and fitted again from ``alpha`` if its hidden units end
        unused), stopping at the first size whose log evidence does not beat
        the best by more than the evidence loop resolves (tol * max(1,
        |ln p|); a tie keeps the smaller model), or, while no hidden layer
        has beaten the linear model and the candidate's units are unused,
        at the second such size in a row (``hidden_`` is the choice,
        ``evidence_by_hidden_`` the comparison).
    activation : str, default "tanh"
        Hidden activation ("tanh", "logistic", "softplus", "relu", ...).
    alpha : float, default 0.01
        Initial prior precision of the weights of the standardised problem.
    beta : float or None, default None
        Initial noise precision of y (in y's units); None starts at 1/var(y).
    groups : {"single", "layers", "inputs"}, default "single"
        One alpha for all weights; one per layer edge's weights and per
        layer's biases; or, in addition, one per input unit for the weights
        leaving it (automatic relevance determination: irrelevant inputs
        get large alphas). A group with no well-determined parameter is
        switched off (its alpha capped at 1e12). If every group ends
        switched off from a start other than the default (alpha=0.01,
        beta=1/var(y)), the fit is repeated from the default start and the
        run with the higher log evidence kept.
    n_restarts : int, default 1
        Evidence fits from this many random initial weights; the one with
        the highest log evidence is kept. A restart whose Laplace precision
        is not positive definite (possible with hessian="exact" and
        clip_negative=False) is skipped with a RuntimeWarning; if all fail,
        fit raises that ValueError.
    max_cycles, tol : evidence cycles at most, and the relative change of
        alpha, beta and log evidence that counts as settled.
    hessian : {"gauss_newton", "exact"}, default "gauss_newton"
        Curvature of the Laplace precision: the Gauss-Newton matrix (PSD;
        what the default's error bars were chosen on:
        ``experiments/curvature_choice.py``), or the exact Hessian.
    clip_negative : bool, default True
        With hessian="exact": clip negative data-Hessian eigenvalues
        (Netlab's remedy).
    structure : str or sopt.bayes.StructureSpec, default "dense"
        How the posterior holds the curvature (:func:`sopt.bayes.laplace`):
        "dense" (W x W), "diagonal", "kfac", "lowrank", "last_layer", ...;
        the others trade accuracy of the predictive for memory and time on
        large networks (see ``experiments/bench_bayes.py``).
    method, max_iter : training method of :func:`sopt.optimize.minimize`
        (default "newton": damped Newton on the exact Hessian; each cycle
        starts from the last w_MAP) and its iteration limit per cycle.
    random_state : int, RandomState or None, default 0
        Restart r starts from ``net.init_weights(seed=s + r)`` with s the
        int random_state (None or a RandomState draws s); with
        inference="sampling" it also seeds the sampler (the int itself, or
        a further draw), so one random_state makes the whole fit repeatable.
    verbose : bool or int, default False
        If true, print one line per restart and per evidence cycle (and,
        sampling, the chains' progress to stderr and their diagnostics).
    inference : {"laplace", "sampling"}, default "laplace"
        What the predictions average over. "laplace": the Laplace posterior
        at w_MAP (linearised error bars, moderated probabilities).
        "sampling": after the same evidence fit, draws of the weights by
        dynamic HMC (:func:`sopt.bayes.sample_posterior`) on the
        standardised problem, the Laplace precision as metric, started at
        w_MAP and the evidence's alpha (and beta); predictions average over
        the draws. Closer to the exact posterior and, with the hyperprior,
        better held-out NLL on near-separable classes (wine 0.043 against
        0.082, digits 0.119 against 0.196), but 20-100 times slower than
        "laplace" on small sets, and minutes on digits
        (``experiments/bench_bayes.py``).
    n_draws, n_warmup, n_chains : int, default 1000, 500, 2
        inference="sampling": recorded iterations per chain (at least 4),
        warm-up iterations (step size and metric adaptation), and chains. A
        ``SamplingConvergenceWarning`` (scikit-learn's and sopt's
        ConvergenceWarning) when R-hat >= 1.01, the bulk ESS < 100 per chain
        or a transition diverged.
    n_jobs : int or None, default None
        inference="sampling": processes the chains run in (forked, one
        BLAS thread each); None: one per chain up to the CPUs available on
        Linux, outside threaded pools (else in turn); the draws do not
        depend on it.
    hyperprior : None or "gamma", default "gamma"
        inference="sampling": "gamma" puts Gamma(1, 1e-3) (shape, rate) on
        each alpha group (``groups``) and on beta and integrates them out by
        sampling them with the weights; None keeps alpha (and beta) at the
        evidence values (the exact posterior at the evidence alpha: wine
        0.072, where the evidence alpha is too large for near-separable
        classes).

    Units: X's columns and y's columns are standardised inside ``fit``
    (a constant column is only centred), so predictions scale and shift
    with y and do not depend on the units of X. Invalid parameters
    raise scikit-learn's ``InvalidParameterError`` (a ValueError and a
    TypeError) at ``fit``; X or y of strings or complex numbers, or None,
    raise ``sopt._validation.DataTypeError``, also both (a TypeError by
    sopt's rule, a ValueError by scikit-learn's). Object arrays of numbers
    are accepted, as scikit-learn does.

    Attributes
    ----------
    In the user's units:

    noise_precision_ : beta, the noise precision of y, float (one output)
        or (K,) array (one per column of y, each 1 / its noise variance)
    log_evidence_ : float, ln p(y | alpha, beta) of the kept run; the
        targets' density, so y in units s times larger gives N K ln s less
        (the standardised problem's value is ``history_["log_evidence"]``)
    restarts_log_evidence_ : (n_restarts,) log evidence of every run
        (NaN for a failed one)
    evidence_by_hidden_ : dict {M: log evidence} of hidden="auto"'s
        candidates (M = 0: the linear model); empty otherwise
    coefs_, intercepts_ : per layer (fan_in, fan_out) weights from the
        previous layer, and biases, of the network written for the user's
        X and y (weights from the inputs divided by ``x_scale_``, the
        output layer times ``y_scale_`` plus ``y_mean_``)
    skip_coef_ : (D, K) weights of the skip-layer connection, or None
    x_mean_, x_scale_ : (D,) the standardisation of X's columns
    y_mean_, y_scale_ : (K,) the standardisation of y's columns

    Of the standardised problem, (X - x_mean_) / x_scale_ and
    (y - y_mean_) / y_scale_:

    prior_precision_ : alpha, float (groups="single") or (n_groups,) array,
        the prior precision of the (standardised) weights
    gamma_ : float, effective number of well-determined parameters (no units)
    history_ : dict of per-cycle lists (alpha, beta, gamma, log_evidence, ...)
    posterior_ : LaplacePosterior; network_ : Network; w_ : (W,) w_MAP;
        evidence_result_ : the kept sopt.bayes.evidence_fit result

    With inference="sampling" only:

    sampled_posterior_ : SampledPosterior, the draws of the standardised
        problem's weights and their diagnostics
    rhat_ : float, the largest rank-normalised split R-hat (over the weights,
        the log density and, with a hyperprior, the log precisions)
    ess_ : float, the smallest bulk ESS over the same quantities
    n_divergent_ : int, divergent transitions

    Other:

    n_cycles_ : int, evidence cycles of the kept run (each re-estimates
        alpha and beta after a whole training run)
    alpha_, beta_, n_iter_ : deprecated names of prior_precision_,
        noise_precision_ and n_cycles_
    hidden_ : tuple, the hidden layer sizes fitted
    converged_ : bool, whether the kept run settled within max_cycles
    n_features_in_ : int
    feature_names_in_ : names of the columns when X was a DataFrame
    """

    _parameter_constraints: dict = {
        **_BayesianMLPBase._parameter_constraints,
        "beta": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(self, hidden="auto", activation="tanh", alpha=ALPHA_START, beta=None,
                 groups="single", n_restarts=1, max_cycles=50, tol=1e-4,
                 hessian="gauss_newton", clip_negative=True, method="newton",
                 max_iter=200, random_state=0, verbose=False, inference="laplace",
                 n_draws=1000, n_warmup=500, n_chains=2, hyperprior="gamma",
                 structure="dense", n_jobs=None):
        self._store_params(locals())

    beta_ = renamed_property("beta_", "noise_precision_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @staticmethod
    def _loss(n_outputs: int) -> str:
        return "sse"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit to X (N, D) and real targets y, (N,) or (N, K). Returns self."""
        X, y = validate_data(self, check_estimator_data(X, "X"),
                             check_estimator_data(y, "y"), dtype=np.float64,
                             y_numeric=True, multi_output=True)
        T = y.reshape(len(y), -1)
        Xs = self._standardise_X(X, fit=True)
        self.y_mean_, self.y_scale_ = _column_scaling(T)
        scale2 = self.y_scale_ ** 2
        beta = 1.0 if self.beta is None else self._standardised_beta(scale2)
        # ln p(t) = ln p(t_std) - N sum_k ln y_scale_k
        shift = -len(T) * float(np.sum(np.log(self.y_scale_)))
        Ts = (T - self.y_mean_) / self.y_scale_
        self._evidence(Xs, Ts, "identity", beta, shift)
        self._infer(Xs, Ts)
        self._y_1d = y.ndim == 1
        noise = self.posterior_.beta / scale2           # in the user's units
        self.noise_precision_ = float(noise[0]) if len(noise) == 1 else noise
        self.n_outputs_ = T.shape[1]
        return self

    def _output_scaling(self, n_outputs: int) -> tuple[Array, Array]:
        return self.y_mean_, self.y_scale_

    def _standardised_beta(self, scale2: Array) -> float:
        """The initial beta of the standardised targets: the user's noise
        precision times y's variance (for several outputs, the geometric
        mean variance); a ValueError naming ``beta`` if that leaves the
        floats."""
        var = float(np.exp(np.mean(np.log(scale2))))
        beta = self.beta * var
        # evidence_fit caps beta at BETA_MAX over the targets' mean square
        # (1 when standardised): a start beyond it is noise-free
        # interpolation, and beyond the floats no start at all
        if not (np.isfinite(beta) and 0 < beta <= BETA_MAX):
            raise ValueError(
                f"beta: {self.beta:g} is out of scale for y (variance {var:g}): "
                f"beta * var(y) must be in (0, {BETA_MAX:g}]; pass a noise "
                f"precision near 1 / var(y) = {1 / var:g}, or beta=None")
        return beta

    def predict(self, X, return_std: bool = False):
        """Predictive mean y(x, w_MAP), (N,) for 1-D y else (N, K); with
        ``return_std`` also the predictive standard deviation
        sqrt(1/beta + g^T A^{-1} g) (PRML eq. 5.173, noise included as in
        scikit-learn's BayesianRidge). Cost O(N K W^2) with std. Fitted with
        inference="sampling": the mean of y(x, w_s) over the draws, and the
        standard deviation of y(x, w_s) across them with the mean noise
        variance added, cost O(S N W) for S draws in all."""
        X = self._validate_predict_X(X)
        # a fit saved before targets were standardised has neither attribute
        y_mean, y_scale = getattr(self, "y_mean_", 0.0), getattr(self, "y_scale_", 1.0)
        sampled = getattr(self, "sampled_posterior_", None)
        if sampled is not None:
            mean, var = sampled.predict(X)
            std = np.sqrt(var) * y_scale
        elif return_std:
            mean, var = self.posterior_.predict(X)
            std = np.sqrt(var) * y_scale
        else:
            mean = self.network_.forward(self.w_, X)
        mean = mean * y_scale + y_mean
        if self._y_1d:
            mean = mean[:, 0]
            if return_std:
                std = std[:, 0]
        return (mean, std) if return_std else mean


# ------------------------------------------------------------- classifier
class BayesianMLPClassifier(ClassifierMixin, _BayesianMLPBase):
    """Bayesian MLP classification: Laplace posterior, evidence framework
    for alpha (PRML sec. 5.7.3) and moderated outputs.

    Two classes: one logistic output with cross-entropy; K > 2 classes:
    softmax outputs with cross-entropy. ``predict_proba`` returns the
    moderated probabilities sigma(kappa(s^2) a_MAP) (PRML eqs. 4.153-4.155,
    5.190); for softmax each logit is scaled by its own kappa (an
    approximation; ``method="mc"`` averages over the linearised logits
    instead). Labels can be any values; they are kept in ``classes_``.

    Parameters are those of :class:`BayesianMLPRegressor` without ``beta``
    (with inference="sampling", ``predict_proba`` averages the network's
    probabilities over the draws, never its logits).
    X's columns are standardised inside ``fit``, so the probabilities do not
    depend on their units.

    Attributes
    ----------
    classes_ : (n_classes,) the sorted labels
    prior_precision_, gamma_, log_evidence_, n_cycles_, history_, posterior_,
    network_, w_, restarts_log_evidence_, x_mean_, x_scale_, n_features_in_ :
        as for :class:`BayesianMLPRegressor` (no targets to standardise:
        the log evidence is that of the labels)
    coefs_, intercepts_ : as for the regressor, for the user's X; the
        output layer gives the logits
    sampled_posterior_, rhat_, ess_, n_divergent_ : inference="sampling"
        only, as for the regressor
    """

    def __init__(self, hidden="auto", activation="tanh", alpha=ALPHA_START,
                 groups="single", n_restarts=1, max_cycles=50, tol=1e-4,
                 hessian="gauss_newton", clip_negative=True, method="newton",
                 max_iter=200, random_state=0, verbose=False, inference="laplace",
                 n_draws=1000, n_warmup=500, n_chains=2, hyperprior="gamma",
                 structure="dense", n_jobs=None):
        self._store_params(locals())

    @staticmethod
    def _loss(n_outputs: int) -> str:
        return "binary_ce" if n_outputs == 1 else "softmax_ce"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit to X (N, D) and class labels y (N,) of any values. Returns self."""
        X, y = validate_data(self, check_estimator_data(X, "X"), y, dtype=np.float64)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y: needs samples of at least 2 classes, got "
                             f"{len(classes)} class ({classes[0]!r})")
        if len(classes) == 2:
            T, output = labels.astype(float)[:, None], "logistic"
        else:
            T, output = np.eye(len(classes))[labels], "softmax"
        self.classes_ = classes
        Xs = self._standardise_X(X, fit=True)
        self._evidence(Xs, T, output, None)
        self._infer(Xs, T)
        return self

    def predict_proba(self, X, method: str | None = None) -> Array:
        """Class probabilities, (N, n_classes) in ``classes_`` order (two
        classes: columns [1 - p, p]). Laplace: the moderated ones;
        ``method`` "probit" (None: the default) or "mc" (softmax outputs
        only, 1000 draws of the linearised logits), cost O(N K W^2).
        inference="sampling": the probabilities averaged over the draws
        (``method`` must be None), cost O(S N W) for S draws in all."""
        X = self._validate_predict_X(X)
        sampled = getattr(self, "sampled_posterior_", None)
        if sampled is not None:
            if method is not None:
                raise ValueError(f"method: {method!r} is for the Laplace posterior; "
                                 "fitted with inference='sampling', predict_proba "
                                 "averages over the draws (leave method=None)")
            P = sampled.predict_proba(X)
        else:
            method = "probit" if method is None else method
            P = self.posterior_.predict_proba(X, method=method)
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - P[:, 0], P[:, 0]])
        return P

    def predict(self, X) -> Array:
        """The most probable class label for each row of X, (N,)."""
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]


register_estimators(BayesianMLPRegressor, BayesianMLPClassifier)
