"""sopt: second-order optimisation and Bayesian inference for feed-forward
neural networks, built on exact backpropagation of first and second
derivatives."""
import importlib

from . import activations, losses
from .activations import Activation
from .losses import Loss
from .network import Network, Node, mlp
from .objective import Objective
from .saving import load, save

__version__ = "0.1.0"

#: Subpackages loaded on first use (``sopt.bayes`` ...), so that ``import
#: sopt`` stays light: scipy.optimize and scipy.special alone took 0.6 s.
_LAZY = ("bayes", "finite_diff", "optimize", "spectral", "testing")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sopt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Activation", "Loss", "Network", "Node", "Objective", "mlp", "save", "load",
           "activations", "bayes", "finite_diff", "losses", "optimize", "spectral",
           "testing", "__version__"]
