"""sopt: second-order optimisation and Bayesian inference for feed-forward
neural networks, built on exact backpropagation of first and second
derivatives."""
from . import activations, bayes, finite_diff, losses, optimize, spectral, testing
from .activations import Activation
from .losses import Loss
from .network import Network, Node, mlp
from .objective import Objective
from .saving import load, save

__version__ = "0.1.0"

__all__ = ["Activation", "Loss", "Network", "Node", "Objective", "mlp", "save", "load",
           "activations", "bayes", "finite_diff", "losses", "optimize", "spectral",
           "testing", "__version__"]
