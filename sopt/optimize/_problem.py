"""What a solver sees: fun/jac/hess/hessp/gauss_newton callables with
evaluation counts. Built from a sopt Objective or from plain callables, so
the solvers know nothing about networks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..objective import ObjectiveProtocol, missing_members


@dataclass
class Problem:
    fun: Callable
    jac: Callable
    hess: Callable | None = None
    hessp: Callable | None = None
    gauss_newton: Callable | None = None
    counts: dict = field(default_factory=lambda: dict(nfev=0, njev=0, nhev=0))

    def f(self, w):
        self.counts["nfev"] += 1
        return _scalar(self.fun(w), "obj")

    def g(self, w):
        self.counts["njev"] += 1
        return _shaped(self.jac(w), "jac", w.shape)

    def H(self, w):
        self.counts["nhev"] += 1
        return _shaped(self.hess(w), "hess", w.shape * 2)

    def Hp(self, w, p):
        self.counts["nhev"] += 1
        return _shaped(self.hessp(w, p), "hessp", w.shape)

    def G(self, w):
        self.counts["nhev"] += 1
        return _shaped(self.gauss_newton(w), "gauss_newton", w.shape * 2)


def _real(value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: must return real numbers, got "
                        f"{type(value).__name__}")
    return arr


def _scalar(value, name: str) -> float:
    """f(w) as a float (a size-1 array is accepted, as scipy does)."""
    arr = _real(value, name)
    if arr.size != 1:
        raise ValueError(f"{name}: must return a scalar f(w), got an array "
                         f"of shape {arr.shape}")
    return float(arr.reshape(()))


def _shaped(value, name: str, shape: tuple) -> np.ndarray:
    arr = _real(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name}: returned shape {arr.shape}, expected {shape} "
                         f"for w of shape {shape[:1]}")
    return arr.astype(float, copy=False)


def make_problem(obj, jac=None, hess=None, hessp=None, gauss_newton=None) -> Problem:
    """A Problem from an objective or from a plain callable.

    An objective is a :class:`sopt.objective.ObjectiveProtocol` (e.g. a
    :class:`sopt.Objective` or a :class:`sopt.distributed.ShardedObjective`);
    its fun/jac/hess/hessp and ``hessian(w, kind="gauss_newton")`` are
    used. Derivatives passed explicitly replace the objective's own, each of
    them alike (as scipy uses whatever it is given). An object that is
    neither an objective nor callable is a TypeError naming what it lacks."""
    given = {"jac": jac, "hess": hess, "hessp": hessp, "gauss_newton": gauss_newton}
    for name, f in given.items():
        if f is not None and not callable(f):
            raise TypeError(f"{name}: expected a callable, got {type(f).__name__}")
    if isinstance(obj, ObjectiveProtocol):
        # the kind positionally: a user's objective written when the
        # argument was called method works unchanged
        own = {"jac": obj.jac, "hess": obj.hess, "hessp": obj.hessp,
               "gauss_newton": lambda w: obj.hessian(w, "gauss_newton")}
        return Problem(obj.fun, **{k: own[k] if f is None else f
                                   for k, f in given.items()})
    if not callable(obj):
        raise TypeError(f"obj: expected a sopt Objective (ObjectiveProtocol) or "
                        f"a callable f(w), got {type(obj).__name__} (no "
                        f"{', '.join(missing_members(obj))})")
    if jac is None:
        raise ValueError("jac: a plain callable needs its gradient, jac=callable")
    return Problem(obj, **given)
