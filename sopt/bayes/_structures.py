"""The registry of posterior structures: one line per structure, naming
the module and the spec class (see :mod:`sopt.bayes._structure` for what a
structure provides; docs/DESIGN.md, "Posterior structures")."""
import importlib

from ._structure import STRUCTURES


def _spec(module: str, name: str) -> type:
    """The spec class ``name`` of this package's module ``module``."""
    return getattr(importlib.import_module(f".{module}", __package__), name)


STRUCTURES.update({
    "dense": _spec("_dense", "Dense"),
    "diagonal": _spec("_diagonal", "Diagonal"),
    "kfac": _spec("_kfac", "KFAC"),
    "last_layer": _spec("_subset", "LastLayer"),
    "lowrank": _spec("_lowrank", "LowRank"),
    "subset": _spec("_subset", "Subset"),
})
