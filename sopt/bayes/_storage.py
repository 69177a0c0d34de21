"""How :func:`sopt.load` rebuilds the objects of sopt.bayes: the attributes
read from a file are checked against the network they belong to (shapes and
dtypes of what the methods use: a crafted file is a ValueError at load, not
a numpy error later), and the state of an older file format is upgraded so
that every documented attribute exists.

Each check takes the dict of attributes read and returns it, upgraded;
it costs O(W) besides one pass over each stored array's shape.
"""
from __future__ import annotations

import functools
import inspect
import numbers

import numpy as np

from .. import saving
from ..network import Network
from ._evidence import EvidenceResult
from ..losses import LIKELIHOODS, LOSSES
from ._posterior import POSTERIOR_STATE_VERSION, LaplacePosterior
from ._structure import CURVATURE_CLASSES
from ._sampled import SampledPosterior


def _array(state: dict, owner: str, name: str, kinds: str, shape: tuple) -> np.ndarray:
    """state[name], which must be an array of one of the dtype ``kinds`` and
    of ``shape`` (None: any length on that axis)."""
    a = state.get(name)
    if not (isinstance(a, np.ndarray) and a.dtype.kind in kinds and a.ndim == len(shape)
            and all(n is None or n == m for n, m in zip(shape, a.shape))):
        raise ValueError(f"{owner}.{name}: expected an array of shape {shape} "
                         f"(dtype kind {kinds!r}) for its network, got "
                         f"{_what(a)}")
    return a


def _what(a) -> str:
    if isinstance(a, np.ndarray):
        return f"shape {a.shape}, dtype {a.dtype}"
    return type(a).__name__


def _optional_array(state: dict, owner: str, name: str, shape: tuple) -> None:
    """state[name] absent (an older file: set to None), None, or a float
    array of ``shape``."""
    if state.setdefault(name, None) is not None:
        _array(state, owner, name, "f", shape)


def _number(state: dict, owner: str, name: str, kind=numbers.Real) -> None:
    v = state.get(name)
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ValueError(f"{owner}.{name}: expected a number, got {type(v).__name__}")


def _network(state: dict, owner: str, name: str) -> Network:
    net = state.get(name)
    if not isinstance(net, Network):
        raise ValueError(f"{owner}.{name}: expected a Network, got {type(net).__name__}")
    return net


def encode_posterior(post: LaplacePosterior, enc) -> dict:
    return enc.value(post.state(), "LaplacePosterior")


def decode_posterior(node, dec) -> LaplacePosterior:
    """A posterior from its :meth:`LaplacePosterior.state`, checked; a file
    written before the state existed (its attributes, file format 1 or 2)
    is read as a dense posterior with every documented attribute."""
    state = dec.value(node)
    if not isinstance(state, dict):
        raise ValueError("LaplacePosterior: expected a dict")
    if "curvature" not in state:
        state = _dense_state_of_attributes(check_posterior(state))
    state = check_posterior_state(state)
    try:
        return LaplacePosterior.from_state(state)
    except np.linalg.LinAlgError:
        raise ValueError("LaplacePosterior: its precision is not positive "
                         "definite") from None
    except (KeyError, TypeError, ValueError) as err:
        # a curvature's own message starts with its field's name
        raise ValueError(f"LaplacePosterior.curvature.{err}") from None


_STATE_KEYS = ("version", "net", "loss", "likelihood", "w_map", "alpha", "beta",
               "n_data", "data_error", "data_gradient", "structure",
               "curvature_class", "curvature")


def check_posterior_state(state: dict) -> dict:
    """A :meth:`LaplacePosterior.state` dict against its network: shapes,
    dtypes, the loss and beta, the curvature's class and its own check."""
    owner = "LaplacePosterior"
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"{owner}: the file lacks {missing[0]!r}")
    if state.get("version") != POSTERIOR_STATE_VERSION:
        raise ValueError(f"{owner}: state version {str(state.get('version'))[:20]!r}, "
                         f"this sopt reads {POSTERIOR_STATE_VERSION}")
    net = _network(state, owner, "net")
    W = net.n_weights
    _array(state, owner, "w_map", "f", (W,))
    alpha = _array(state, owner, "alpha", "f", (W,))
    if not np.all(alpha > 0):
        raise ValueError(f"{owner}.alpha: expected prior precisions > 0")
    for name in ("data_error",):
        _number(state, owner, name)
    _number(state, owner, "n_data", numbers.Integral)
    _check_loss(state, owner)
    if not isinstance(state.get("structure"), str) or \
            state.get("curvature_class") not in CURVATURE_CLASSES:
        raise ValueError(f"{owner}: unknown curvature structure "
                         f"{str(state.get('curvature_class'))[:30]!r}")
    curvature = state["curvature"]
    if not isinstance(curvature, dict):
        raise ValueError(f"{owner}.curvature: expected a dict")
    used = np.flatnonzero(net.used_weight_mask())
    covered = _array(curvature, owner + ".curvature", "covered", "iu", (None,))
    if not (np.all(np.isin(covered, used)) and np.all(np.diff(covered) > 0)):
        raise ValueError(f"{owner}.curvature.covered: not increasing weights in use")
    g = state.get("data_gradient")
    if g is not None and not (isinstance(g, np.ndarray) and g.shape == covered.shape):
        raise ValueError(f"{owner}.data_gradient: {_what(g)} for the {len(covered)} "
                         f"weights of {owner}.curvature.covered")
    _optional_array(state, owner, "data_gradient", (len(covered),))
    return state


def _dense_state_of_attributes(state: dict) -> dict:
    """The state of a posterior stored as its attributes (format 1, 2)."""
    curvature = {"covered": state["used"], "kind": "unrecorded",
                 "H": state["data_hessian"]}
    return {"version": POSTERIOR_STATE_VERSION, "structure": "dense",
            "curvature_class": "DenseCurvature", "curvature": curvature,
            **{k: state[k] for k in ("net", "loss", "likelihood", "w_map", "alpha",
                                     "beta", "n_data", "data_error")},
            "data_gradient": state.get("data_gradient")}


def check_posterior(state: dict) -> dict:
    """A LaplacePosterior's attributes, as files of format 1 and 2 stored
    them. Format 1 stored no ``gradient``, ``data_gradient`` or
    ``newton_decrement`` (they need the training data, which the file does
    not hold): they are set to None."""
    owner = "LaplacePosterior"
    net = _network(state, owner, "net")
    W = net.n_weights
    _array(state, owner, "w_map", "f", (W,))        # first: bounds what follows
    _array(state, owner, "alpha", "f", (W,))
    used = np.flatnonzero(net.used_weight_mask())
    if not np.array_equal(_array(state, owner, "used", "iu", (None,)), used):
        raise ValueError(f"{owner}.used: not the weights in use of its network")
    Wu = (len(used), len(used))
    for name in ("precision", "data_hessian"):
        _array(state, owner, name, "f", Wu)
    factor = state.get("_factor")
    if not (isinstance(factor, tuple) and len(factor) == 2 and isinstance(factor[1], bool)):
        raise ValueError(f"{owner}._factor: expected (Cholesky factor, lower)")
    _array({"_factor": factor[0]}, owner, "_factor", "f", Wu)
    _optional_array(state, owner, "_covariance", Wu)
    _array(state, owner, "gamma_per_weight", "f", Wu[:1])
    for name in ("log_det", "gamma", "data_error", "weight_error", "log_evidence"):
        _number(state, owner, name)
    _number(state, owner, "n_data", numbers.Integral)
    _check_loss(state, owner)
    for name in ("data_gradient", "gradient"):
        _optional_array(state, owner, name, Wu[:1])
    if state.setdefault("newton_decrement", None) is not None:
        _number(state, owner, "newton_decrement")
    return state


def _check_loss(state: dict, owner: str) -> None:
    """The likelihood is a known one (a file from before it was stored: that
    of the built-in loss named), and beta fits it: a built-in loss has a
    noise precision > 0 exactly when its Loss says so; another loss may
    have one if its likelihood admits one."""
    loss, beta = state.get("loss"), state.get("beta")
    built_in = LOSSES.get(loss) if isinstance(loss, str) else None
    if built_in is not None:
        state.setdefault("likelihood", built_in.likelihood)
    likelihood = state.get("likelihood")
    known = isinstance(likelihood, str) and likelihood in LIKELIHOODS
    if built_in is not None:
        ok = likelihood == built_in.likelihood and (beta is not None) == built_in.noise_precision
    else:
        ok = isinstance(loss, str) and known and (
            beta is None or LIKELIHOODS[likelihood].noise_precision)
    if not ok:
        raise ValueError(f"{owner}: loss {str(loss)[:30]!r} ({str(likelihood)[:30]} "
                         f"likelihood) with beta {beta!r}")
    if beta is not None:
        _number(state, owner, "beta")
        if not beta > 0:
            raise ValueError(f"{owner}.beta: expected a noise precision > 0, got {beta}")


def check_sampled(state: dict) -> dict:
    """A SampledPosterior's attributes: the draws and every per-draw record
    of M chains of S draws, against its network's weights in use."""
    owner = "SampledPosterior"
    net = _network(state, owner, "net")
    W = net.n_weights
    _array(state, owner, "w_map", "f", (W,))
    _array(state, owner, "prior_alpha", "f", (W,))
    used = np.flatnonzero(net.used_weight_mask())
    if not np.array_equal(_array(state, owner, "used", "iu", (None,)), used):
        raise ValueError(f"{owner}.used: not the weights in use of its network")
    M, S, _ = _array(state, owner, "draws", "f", (None, None, W)).shape
    if M < 1 or S < 4:
        raise ValueError(f"{owner}.draws: expected at least 1 chain of 4 draws, "
                         f"got {M} of {S}")
    for name, kinds in (("log_density", "f"), ("accept_stat", "f"), ("tree_depth", "iu"),
                        ("n_steps", "iu"), ("divergent", "b")):
        _array(state, owner, name, kinds, (M, S))
    _array(state, owner, "step_size", "f", (M,))
    for name in ("rhat", "ess"):
        _array(state, owner, name, "f", (len(used),))
    for name in ("rhat_log_density", "ess_log_density", "fit_time"):
        _number(state, owner, name)
    _number(state, owner, "n_gradients", numbers.Integral)
    _check_sampled_hyper(state, owner, M, S)
    return state


def _check_sampled_hyper(state: dict, owner: str, M: int, S: int) -> None:
    """The loss is a built-in one; beta per draw exactly when it has a noise
    precision; alpha per draw and the hyperparameters' diagnostics exactly
    under a hyperprior, one per group (and one for beta)."""
    loss = LOSSES.get(state.get("loss")) if isinstance(state.get("loss"), str) else None
    if loss is None:
        raise ValueError(f"{owner}.loss: expected a built-in loss name")
    if (state.get("beta") is not None) != loss.noise_precision:
        raise ValueError(f"{owner}.beta: per-draw noise precisions exactly for a "
                         f"loss with one ({loss.name!r})")
    if loss.noise_precision:
        _array(state, owner, "beta", "f", (M, S))
    names, hierarchical = state.get("group_names"), state.get("hierarchical")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{owner}.group_names: expected a list of names")
    if not isinstance(hierarchical, bool):
        raise ValueError(f"{owner}.hierarchical: expected True or False")
    n_hyper = len(names) + int(loss.noise_precision)
    for name, shape in (("alpha", (M, S, len(names))), ("rhat_hyper", (n_hyper,)),
                        ("ess_hyper", (n_hyper,))):
        if hierarchical:
            _array(state, owner, name, "f", shape)
        elif state.get(name) is not None:
            raise ValueError(f"{owner}.{name}: expected None without a hyperprior")


def check_evidence_result(state: dict) -> dict:
    owner = "EvidenceResult"
    post = state.get("posterior")
    if not isinstance(post, LaplacePosterior):
        raise ValueError(f"{owner}.posterior: expected a LaplacePosterior")
    W = post.net.n_weights
    _array(state, owner, "w", "f", (W,))
    _array(state, owner, "alpha", "f", (None,))
    _array(state, owner, "groups", "iu", (W,))
    return state


#: Fitted attributes of the estimators renamed since files were written:
#: old name -> new name.
RENAMED_FITTED_ATTRIBUTES = {"alpha_": "prior_precision_", "beta_": "noise_precision_",
                             "n_iter_": "n_cycles_"}


def rename_fitted_attributes(state: dict) -> dict:
    """An estimator's attributes with the old names of
    :data:`RENAMED_FITTED_ATTRIBUTES` replaced by the new ones (a value
    already under the new name is kept), for unpickling; ``state`` is
    changed and returned. (sopt.load renames them itself.)"""
    for old, new in RENAMED_FITTED_ATTRIBUTES.items():
        if old in state:
            state.setdefault(new, state.pop(old))
    return state


def check_estimator(state: dict, scaled_outputs: bool = False,
                    defaults: dict | None = None) -> dict:
    """A fitted estimator's network, weights and posterior agree. Format 1
    lacked attributes that are recovered here: ``hidden_`` and
    ``skip_coef_`` from the network and weights; ``evidence_by_hidden_ =
    {}`` (format 1 could not store the int keys of hidden="auto", so its
    estimators had explicit sizes); and the standardisation of X (and of y,
    ``scaled_outputs``), which its fits did not have: mean 0 and scale 1,
    which leave every prediction as it was. A parameter added since the
    file was written takes its default (``defaults``: the constructor's),
    which is what the older fit did, so get_params and clone work."""
    for name, value in (defaults or {}).items():
        state.setdefault(name, value)
    if "posterior_" not in state:          # not fitted
        return state
    owner = "estimator"
    net = _network(state, owner, "network_")
    post = state["posterior_"]
    if not isinstance(post, LaplacePosterior) or post.net.n_weights != net.n_weights \
            or post.net.n_inputs != net.n_inputs:
        raise ValueError(f"{owner}.posterior_: expected a LaplacePosterior of network_")
    w = _array(state, owner, "w_", "f", (net.n_weights,))
    if "classes_" in state:
        _check_classes(state, net)
    _unscaled(state, "x", net.n_inputs)
    if scaled_outputs:
        _unscaled(state, "y", net.n_outputs)
    if "hidden_" not in state:
        state["hidden_"] = tuple(layer.size for layer in net.layers[:-1])
    if "skip_coef_" not in state:
        zero, one = np.zeros(net.n_outputs), np.ones(net.n_outputs)
        from ._estimators import _layers_in_user_units
        state["skip_coef_"] = _layers_in_user_units(
            net, net.unpack(w), state["x_mean_"], state["x_scale_"], zero, one)[2]
    state.setdefault("evidence_by_hidden_", {})
    _check_estimator_draws(state, net)
    return state


def _check_estimator_draws(state: dict, net: Network) -> None:
    """inference="sampling": the draws are of network_, and the diagnostics
    read from them are numbers."""
    if "sampled_posterior_" not in state:
        return
    sp = state["sampled_posterior_"]
    if not (isinstance(sp, SampledPosterior) and sp.net.n_weights == net.n_weights
            and sp.net.n_inputs == net.n_inputs and sp.net.n_outputs == net.n_outputs):
        raise ValueError("estimator.sampled_posterior_: expected a SampledPosterior "
                         "of network_")
    for name in ("rhat_", "ess_"):
        _number(state, "estimator", name)
    _number(state, "estimator", "n_divergent_", numbers.Integral)


def _unscaled(state: dict, which: str, size: int) -> None:
    """{which}_mean_ = 0 and {which}_scale_ = 1 if absent (a fit from before
    standardisation), else checked: (size,) floats."""
    for name, fill in ((f"{which}_mean_", np.zeros), (f"{which}_scale_", np.ones)):
        state.setdefault(name, fill(size))
        _array(state, "estimator", name, "f", (size,))


def _constructor_defaults(cls: type) -> dict:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()}


def _check_classes(state: dict, net: Network) -> None:
    """One label per output, or two for one logistic output."""
    classes = _array(state, "classifier", "classes_", "biufUO", (None,))
    if len(classes) != max(2, net.n_outputs):
        raise ValueError(f"classifier.classes_: {len(classes)} labels for a network "
                         f"of {net.n_outputs} output(s)")


def register_all() -> None:
    """Make the objects of sopt.bayes storable by sopt.save; the estimators
    when their module is imported (it imports scikit-learn)."""
    saving.register("LaplacePosterior", LaplacePosterior, encode=encode_posterior,
                    decode=decode_posterior)
    for cls, check in ((EvidenceResult, check_evidence_result),
                       (SampledPosterior, check_sampled)):
        saving.register(cls.__name__, cls, check=check)
    for tag in ("BayesianMLPRegressor", "BayesianMLPClassifier"):
        saving.register_on_import(tag, "sopt.bayes._estimators")


def register_estimators(regressor: type, classifier: type) -> None:
    """Called by the estimators' module once its classes exist."""
    saving.register(regressor.__name__, regressor, check=functools.partial(
        check_estimator, scaled_outputs=True, defaults=_constructor_defaults(regressor)),
        renamed=RENAMED_FITTED_ATTRIBUTES)
    saving.register(classifier.__name__, classifier, check=functools.partial(
        check_estimator, defaults=_constructor_defaults(classifier)),
        renamed=RENAMED_FITTED_ATTRIBUTES)
