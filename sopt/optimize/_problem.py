"""What a solver sees: fun/jac/hess/hessp/gauss_newton callables with
evaluation counts. Built from a sopt Objective or from plain callables, so
the solvers know nothing about networks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


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
        return float(self.fun(w))

    def g(self, w):
        self.counts["njev"] += 1
        return np.asarray(self.jac(w), dtype=float)

    def H(self, w):
        self.counts["nhev"] += 1
        return np.asarray(self.hess(w), dtype=float)

    def Hp(self, w, p):
        self.counts["nhev"] += 1
        return np.asarray(self.hessp(w, p), dtype=float)

    def G(self, w):
        self.counts["nhev"] += 1
        return np.asarray(self.gauss_newton(w), dtype=float)


def make_problem(obj, jac=None, hess=None, hessp=None, gauss_newton=None) -> Problem:
    """A Problem from a sopt Objective (anything with fun/jac/hess/hessp and
    ``hessian(w, method="gauss_newton")``) or from a plain callable."""
    if hasattr(obj, "fun") and hasattr(obj, "jac") and callable(getattr(obj, "fun")):
        gn = gauss_newton or (lambda w: obj.hessian(w, method="gauss_newton"))
        return Problem(obj.fun, obj.jac, hess or obj.hess, hessp or obj.hessp, gn)
    if not callable(obj):
        raise TypeError(f"obj: expected a sopt Objective or a callable f(w), "
                        f"got {type(obj).__name__}")
    if jac is None:
        raise ValueError("jac: a plain callable needs its gradient, jac=callable")
    for name, f in (("hess", hess), ("hessp", hessp), ("gauss_newton", gauss_newton)):
        if f is not None and not callable(f):
            raise TypeError(f"{name}: expected a callable, got {type(f).__name__}")
    return Problem(obj, jac, hess, hessp, gauss_newton)
