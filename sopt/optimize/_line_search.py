"""The backtracking line search of damped Newton and gradient descent.

Along a descent direction p the first t in 1, 1/2, 1/4, ... that satisfies
the Armijo (sufficient decrease) condition f(w + t p) <= f + c1 t g^T p is
taken, c1 = 1e-4 by default (Nocedal & Wright, Numerical Optimization, 2nd
ed. 2006, eq. 3.4 and Algorithm 3.1). Where the predicted decrease is below
the round-off of f, f can no longer tell the points apart and the gradient
decides (see :func:`armijo`); Levenberg-Marquardt uses the same endgame
test (:func:`gradient_halved`).
"""
from __future__ import annotations

import numpy as np

from ._loop import require_finite

EPS = np.finfo(float).eps


class RoundOff(Exception):
    """The predicted decrease of f is below the round-off of f: no step can
    be shown to lower E, so none is taken."""


def round_off_of(f: float) -> float:
    """What f's evaluation cannot resolve: 8 macheps |f| (a sum over
    patterns carries more error still)."""
    return 8 * EPS * abs(f)


def gradient_halved(problem, w_new, g) -> bool:
    """|g(w_new)|_inf <= |g|_inf / 2: the merit test where f cannot rank
    two points (see :func:`armijo`)."""
    g_new = require_finite(problem.g(w_new), "gradient at a trial point")
    return np.max(np.abs(g_new)) <= 0.5 * np.max(np.abs(g))


def armijo(problem, w, f, g, p, c1: float = 1e-4, max_halvings: int = 40):
    """Backtracking line search along p: the first t in 1, 1/2, 1/4, ... with
    f(w + t p) <= f + c1 t g^T p; None if none is found.

    Where the predicted decrease -t g^T p is below the round-off of f
    (8 macheps |f|, and the true evaluation error of a sum over patterns is
    larger still), f cannot rank the points, so the gradient is the merit
    function: w + t p is taken if f(w + t p) <= f or if |g|_inf at least
    halves there (a Newton step at a minimum still shrinks g quadratically,
    and is too short to leave the basin; requiring a halving stops the
    search once g is down to its own round-off). If no t passes,
    :class:`RoundOff` is raised. A non-finite f or gradient at a trial
    point stops the search (:class:`StepFailure`, status 5).
    """
    gp = float(g @ p)
    round_off = round_off_of(f)
    below_round_off = False
    t = 1.0
    for _ in range(max_halvings):
        w_new = w + t * p
        if np.array_equal(w_new, w):
            break
        f_new = require_finite(problem.f(w_new), "value of f at a trial point")
        if f_new <= f + c1 * t * gp:
            return w_new, f_new, t
        if -t * gp < round_off:
            below_round_off = True
            if f_new <= f or gradient_halved(problem, w_new, g):
                return w_new, f_new, t
        t *= 0.5
    if below_round_off:
        raise RoundOff
    return None


ROUND_OFF_MESSAGE = ("E cannot be lowered measurably: the predicted decrease is "
                     "below the round-off of E (gtol is tighter than E's "
                     "precision allows).")
