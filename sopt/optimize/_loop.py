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


#: Most raises of the damping (mu of Newton or Levenberg-Marquardt) within one
#: step, whatever mu_min and mu_max: a tenfold raise from 1e-8 reaches 1e10
#: in 18, so 100 only stops damping that could never help (and a loop that
#: would otherwise be bounded only by mu_max).
MAX_DAMPING_RAISES = 100


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance (a UserWarning, as
    scikit-learn's ConvergenceWarning is; the estimators of sopt.bayes warn
    with a subclass of both, so scikit-learn's filters apply to them)."""


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


#: what each own method's ``damping`` is, as disp prints it
DAMPING_NAMES = {"newton": "mu", "lm": "mu", "gd": "lr"}


class Trace:
    """The history of one run (per iteration: fun, grad_inf, step, damping,
    time), and with ``disp`` one printed line per iteration and one for the
    result. O(1) per iteration."""

    def __init__(self, method: str, disp: bool = False):
        self.method, self.disp, self.t0 = method, disp, time.perf_counter()
        self.history = {"fun": [], "grad_inf": [], "step": [], "damping": [], "time": []}

    @property
    def nit(self) -> int:
        return len(self.history["fun"]) - 1

    def record(self, f: float, g, step: float, damping: float = np.nan) -> None:
        h = self.history
        h["fun"].append(f)
        h["grad_inf"].append(float(np.max(np.abs(g))) if np.size(g) else 0.0)
        h["step"].append(step)
        h["damping"].append(damping)
        h["time"].append(time.perf_counter() - self.t0)
        if self.disp:
            name = DAMPING_NAMES.get(self.method)
            tail = f"  {name} = {damping:.3e}" if name else ""
            print(f"{self.method}: iter {self.nit:4d}  E = {f:.8e}  |g|_inf = "
                  f"{h['grad_inf'][-1]:.3e}  step = {step:.3e}{tail}", flush=True)

    def report(self, res) -> None:
        if self.disp:
            print(f"{self.method}: {res.message} ({res.nit} iterations, "
                  f"E = {res.fun:.8e}, nfev = {res.nfev})", flush=True)


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


def resolve_gtol(gtol: float, gtol_rel: float, g0) -> float:
    """The threshold on |g|_inf: gtol, or gtol_rel |g(w0)|_inf if larger
    (whichever is met first stops), so a sum over N patterns need not have
    its gtol rescaled with N by hand."""
    return max(gtol, gtol_rel * float(np.max(np.abs(g0))))


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
               method: str = "", disp: bool = False,
               gtol_rel: float = 0.0) -> OptimizeResult:
    """Iterate ``rule.step`` from w0 until |g|_inf <= gtol (see
    :func:`resolve_gtol`) or a limit."""
    trace = Trace(method, disp)
    w = w0.copy()
    f, g = problem.f(w), problem.g(w)
    trace.record(f, g, 0.0, getattr(rule, "damping", np.nan))
    if not all_finite(f, g):
        return finish(problem, w, f, g, 5, trace, NON_FINITE_START)
    gtol = resolve_gtol(gtol, gtol_rel, g)
    if hasattr(rule, "gtol"):       # Newton's saddle test uses the same threshold
        rule.gtol = gtol
    status, message = 1, limit_message(maxiter)
    for nit in range(1, maxiter + 1):
        try:
            if np.max(np.abs(g)) <= gtol and not rule.wants_more(w, f, g):
                status, message = 0, None
                break
            w_new, f, g, info = _iterate(problem, rule, w, f, g)
        except StepFailure as failure:
            status, message = failure.status, failure.message
            break
        step = float(np.linalg.norm(w_new - w))
        w = w_new
        trace.record(f, g, step, info.get("damping", np.nan))
        if callback is not None and call_callback(callback, w, f, g, nit):
            status, message = 2, None
            break
    else:
        if np.max(np.abs(g)) <= gtol:
            status, message = 0, None
    return finish(problem, w, f, g, status, trace, message)


def finish(problem, w, f, g, status, trace, message=None, nit=None):
    """The OptimizeResult; nit defaults to the iterations recorded, and a
    failure other than the callback's stop is a ConvergenceWarning."""
    success = status == 0
    res = OptimizeResult(
        x=w, fun=f, jac=g, nit=trace.nit if nit is None else nit, success=success,
        status=status, message=message or MESSAGES.get(status, ""),
        history=trace.history, method=trace.method, **problem.counts)
    trace.report(res)
    if not success and status != 2:
        warnings.warn(f"{trace.method}: {res.message} |g|_inf = "
                      f"{np.max(np.abs(g)):.3g} after {res.nit} iterations",
                      ConvergenceWarning, stacklevel=4)   # the caller of minimize
    return res
