"""The one outer loop shared by sopt's own solvers (Newton, Levenberg-
Marquardt, gradient descent): stopping tests, history, callback, result.

A solver is a *step rule*: ``step(w, f, g) -> (w_new, f_new, info)`` that
never increases f (beyond f's round-off), or raises :class:`StepFailure` with a status and message.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import OptimizeResult
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning


#: Most raises of the damping (mu of Newton or Levenberg-Marquardt) within one
#: step, whatever mu_min and mu_max: a tenfold raise from 1e-8 reaches 1e10
#: in 18, so 100 only stops damping that could never help (and a loop that
#: would otherwise be bounded only by mu_max).
MAX_DAMPING_RAISES = 100


class ConvergenceWarning(SklearnConvergenceWarning):
    """A solver stopped before reaching its tolerance (a scikit-learn
    ConvergenceWarning, so one warnings filter serves both)."""


class StepFailure(Exception):
    """A step rule could not make progress (numerical failure)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


MESSAGES = {
    0: "Converged: |g|_inf <= gtol.",
    1: "Maximum number of iterations reached.",
    2: "Stopped by the callback.",
    3: "No decrease of f could be found (line search or damping failed).",
    4: "Damping exceeded its maximum.",
    5: "Non-finite value of f, its gradient or its curvature.",
}


def new_history() -> dict:
    return {"fun": [], "grad_inf": [], "step": [], "damping": [], "time": []}


def record(history: dict, t0: float, f: float, g, step: float, damping: float) -> None:
    history["fun"].append(f)
    history["grad_inf"].append(float(np.max(np.abs(g))) if np.size(g) else 0.0)
    history["step"].append(step)
    history["damping"].append(damping)
    history["time"].append(time.perf_counter() - t0)


NON_FINITE_START = "Non-finite f or gradient at w0."


def all_finite(*values) -> bool:
    return all(np.all(np.isfinite(v)) for v in values)


def require_finite(value, what: str):
    """value, or :class:`StepFailure` (status 5) if it holds NaN or inf.

    Every solver stops at the first non-finite f, gradient or curvature,
    trial points included: backtracking or damping around a NaN only burns
    evaluations (hundreds of them) before failing under a wrong reason."""
    if not all_finite(value):
        raise StepFailure(5, f"Non-finite {what} (NaN or inf): stopped at the "
                             "last point where f and its gradient were finite.")
    return value


def limit_message(maxiter: int) -> str:
    """Status 1's message; maxiter = 0 says that x is w0."""
    if maxiter == 0:
        return "maxiter = 0: no iteration taken, x is w0."
    return MESSAGES[1]


def call_callback(callback, w, f: float, g, nit: int) -> bool:
    """The user's callback on copies of the iterate, so that editing them
    cannot change the solver's state; True if it asks to stop."""
    stop = callback(OptimizeResult(x=w.copy(), fun=float(f), jac=g.copy(), nit=nit))
    if stop is None or isinstance(stop, (bool, np.bool_)):
        return bool(stop)
    raise TypeError(f"callback: must return None, False or True (to stop), got "
                    f"{type(stop).__name__}")


def _iterate(problem, rule, w, f, g):
    """One step of ``rule`` with the gradient at the new point: (w, f, g,
    info). StepFailure leaves the caller's w, f, g untouched."""
    w_new, f_new, info = rule.step(w, f, g)
    g_new = require_finite(problem.g(w_new), "gradient")
    return w_new, f_new, g_new, info


def outer_loop(problem, w0, rule, gtol: float, maxiter: int, callback=None,
               method: str = "") -> OptimizeResult:
    """Iterate ``rule.step`` from w0 until |g|_inf <= gtol or a limit."""
    t0 = time.perf_counter()
    w = w0.copy()
    f, g = problem.f(w), problem.g(w)
    history = new_history()
    record(history, t0, f, g, 0.0, getattr(rule, "damping", np.nan))
    if not all_finite(f, g):
        return finish(problem, w, f, g, 0, 5, history, method, NON_FINITE_START)
    status, nit, message = 1, 0, limit_message(maxiter)
    for nit in range(1, maxiter + 1):
        try:
            if np.max(np.abs(g)) <= gtol and not rule.wants_more(w, f, g):
                status, nit, message = 0, nit - 1, None
                break
            w_new, f, g, info = _iterate(problem, rule, w, f, g)
        except StepFailure as failure:
            status, nit, message = failure.status, nit - 1, failure.message
            break
        step = float(np.linalg.norm(w_new - w))
        w = w_new
        record(history, t0, f, g, step, info.get("damping", np.nan))
        if callback is not None and call_callback(callback, w, f, g, nit):
            status, message = 2, None
            break
    else:
        if np.max(np.abs(g)) <= gtol:
            status, nit, message = 0, maxiter, None
    return finish(problem, w, f, g, nit, status, history, method, message)


def finish(problem, w, f, g, nit, status, history, method, message=None):
    success = status == 0
    res = OptimizeResult(
        x=w, fun=f, jac=g, nit=nit, success=success, status=status,
        message=message or MESSAGES.get(status, ""), history=history,
        method=method, **problem.counts)
    if not success and status != 2:
        warnings.warn(f"{method}: {res.message} |g|_inf = "
                      f"{np.max(np.abs(g)):.3g} after {nit} iterations",
                      ConvergenceWarning, stacklevel=4)   # the caller of minimize
    return res
