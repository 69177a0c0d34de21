"""scipy.optimize's methods run on sopt's derivatives, with sopt's history."""
from __future__ import annotations

import numpy as np
import scipy.optimize
from scipy.linalg import LinAlgError, cho_factor

from ._loop import (NON_FINITE_START, StepFailure, Trace, all_finite, call_callback,
                    finish, limit_message, require_finite, resolve_gtol)

#: which of sopt's second derivatives each scipy method takes
SECOND_ORDER = {"trust-exact": "hess", "dogleg": "hess", "trust-ncg": "hessp",
                "trust-krylov": "hessp", "newton-cg": "hessp"}
FIRST_ORDER = ("bfgs", "l-bfgs-b", "cg")


def _finite(f, what: str):
    """f, stopping scipy's loop (StepFailure) at its first non-finite value."""
    def checked(*args):
        return require_finite(f(*args), what)
    return checked


def _derivatives(problem, method: str, w0) -> dict:
    """The second-derivative keyword scipy's ``method`` takes, checked."""
    need = SECOND_ORDER.get(method)
    if need is not None and getattr(problem, need) is None:
        what = "the Hessian" if need == "hess" else "Hessian-vector products"
        raise ValueError(f"{need}: method {method!r} needs {what}")
    if method == "dogleg":
        try:
            cho_factor(problem.H(w0))
        except LinAlgError:
            raise ValueError("dogleg: the Hessian at w0 is not positive definite; "
                             "use 'trust-exact', 'trust-ncg' or 'newton'") from None
    if need == "hess":
        return {"hess": _finite(problem.H, "Hessian")}
    if need == "hessp":
        return {"hessp": _finite(problem.Hp, "Hessian-vector product")}
    return {}


def _scipy_options(method: str, gtol: float, maxiter: int, extra: dict) -> dict:
    options = {"maxiter": maxiter, **extra}
    if method == "newton-cg":          # scipy's newton-cg stops on the step only
        options.setdefault("xtol", 1e-14)
    else:
        options.setdefault("gtol", gtol)
    if method == "l-bfgs-b":           # stop on the gradient, as the others do
        options.setdefault("ftol", 0.0)
    return options


def _outcome(res, g, gtol: float, maxiter: int, method: str):
    """(status, message) of scipy's result judged by sopt's test |g|_inf <=
    gtol: the message never claims success when gtol was not met."""
    if np.isfinite(res.fun) and all_finite(g) and np.max(np.abs(g)) <= gtol:
        return 0, f"Converged: |g|_inf <= gtol ({res.message})"
    if not np.isfinite(res.fun):
        return 5, res.message
    if res.nit >= maxiter:
        return 1, res.message
    gap = f"|g|_inf = {np.max(np.abs(g)):.3g} > gtol = {gtol:g}"
    if res.success:         # scipy's own test (xtol, ftol) stopped it first
        return 3, (f"Stopped before gtol was met ({gap}): scipy's {method} "
                   f"met its own stopping test instead.")
    return 3, f"{res.message} ({gap})"


def run_scipy(problem, w0, method: str, gtol: float, maxiter: int, callback,
              extra: dict, disp: bool = False, gtol_rel: float = 0.0):
    kwargs = _derivatives(problem, method, w0)
    trace = Trace(method, disp)
    f0, g0 = problem.f(w0), problem.g(w0)
    trace.record(f0, g0, 0.0)
    if not all_finite(f0, g0):
        return finish(problem, w0.copy(), f0, g0, 5, trace, NON_FINITE_START)
    gtol = resolve_gtol(gtol, gtol_rel, g0)
    options = _scipy_options(method, gtol, maxiter, extra)
    if np.max(np.abs(g0)) <= gtol or maxiter == 0:   # scipy would take a step
        status = 0 if np.max(np.abs(g0)) <= gtol else 1
        return finish(problem, w0.copy(), f0, g0, status, trace,
                      None if status == 0 else limit_message(maxiter))
    last = {"x": w0, "fun": f0, "jac": g0}      # the last finite iterate
    stopped = {"by_user": False}

    def cb(intermediate_result):
        x, f = np.array(intermediate_result.x), float(intermediate_result.fun)
        g = require_finite(problem.jac(x), "gradient")   # not counted: scipy has it
        trace.record(f, g, float(np.linalg.norm(x - last["x"])))
        last.update(x=x, fun=f, jac=g)
        if callback is not None and call_callback(callback, x, f, g, trace.nit):
            stopped["by_user"] = True
            raise StopIteration

    try:
        res = scipy.optimize.minimize(
            _finite(problem.f, "value of f"), w0, method=method,
            jac=_finite(problem.g, "gradient"), callback=cb, options=options, **kwargs)
    except (LinAlgError, StepFailure) as err:   # e.g. dogleg meeting an indefinite H
        message = (err.message if isinstance(err, StepFailure)
                   else f"Linear algebra failure: {err}")
        return finish(problem, last["x"], last["fun"], last["jac"], 5, trace, message)
    g = problem.jac(res.x)
    status, message = ((2, None) if stopped["by_user"]
                       else _outcome(res, g, gtol, maxiter, method))
    return finish(problem, res.x, float(res.fun), g, status, trace, message,
                  nit=int(res.nit))
