"""The registry of posterior structures: one line per structure
(see :mod:`sopt.bayes._structure` for what a structure provides)."""
from ._dense import Dense
from ._diagonal import Diagonal
from ._kfac import KFAC
from ._lowrank import LowRank
from ._structure import STRUCTURES
from ._subset import LastLayer, Subset

STRUCTURES.update({
    "dense": Dense,
    "diagonal": Diagonal,
    "kfac": KFAC,
    "last_layer": LastLayer,
    "lowrank": LowRank,
    "subset": Subset,
})
