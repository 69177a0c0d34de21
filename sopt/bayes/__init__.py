"""Bayesian neural networks by the Laplace approximation: the posterior,
its evidence, predictive error bars and moderated outputs (PRML sec. 5.7;
MacKay 1992), and estimators in scikit-learn's conventions.

The estimators (and scikit-learn with them) are imported on first use:
``import sopt`` does not import scikit-learn."""
from ._evidence import (AllPrunedWarning, EvidenceResult, evidence_fit, optimize_prior,
                        weight_groups)
from ._moderation import kappa, moderated_logistic, moderated_softmax
from ._posterior import (LaplacePosterior, NotAtMinimumWarning,
                         NotPositiveDefiniteError,
                         clip_negative_eigenvalues, laplace)
from ._dense import Dense
from ._diagonal import Diagonal
from ._kfac import KFAC
from ._lowrank import LowRank
from ._sampled import SampledPosterior, SamplingWarning
from ._structure import Curvature, Precision, StructureSpec
from ._structures import STRUCTURES
from ._subset import LastLayer, Subset
from ._sampling import sample_posterior

from ._storage import register_all as _register_all

_register_all()

__all__ = ["laplace", "LaplacePosterior", "evidence_fit", "EvidenceResult",
           "weight_groups", "kappa", "moderated_logistic", "moderated_softmax",
           "clip_negative_eigenvalues", "BayesianMLPRegressor",
           "BayesianMLPClassifier", "NotFittedError", "NotAtMinimumWarning",
           "NotPositiveDefiniteError", "AllPrunedWarning", "sample_posterior",
           "SampledPosterior", "SamplingWarning", "optimize_prior", "STRUCTURES", "StructureSpec",
           "Curvature", "Precision", "Dense", "Diagonal", "KFAC", "LowRank", "LastLayer", "Subset"]

_ESTIMATOR_NAMES = ("BayesianMLPRegressor", "BayesianMLPClassifier", "NotFittedError")


def __getattr__(name: str):
    if name in _ESTIMATOR_NAMES:
        from . import _estimators
        return getattr(_estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ESTIMATOR_NAMES))
