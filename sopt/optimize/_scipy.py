"""scipy.optimize's methods run on sopt's derivatives, with sopt's history."""
from __future__ import annotations

import time

import numpy as np
import scipy.optimize
from scipy.linalg import LinAlgError, cho_factor

from ._loop import finish, new_history, record

#: which of sopt's second derivatives each scipy method takes
SECOND_ORDER = {"trust-exact": "hess", "dogleg": "hess", "trust-ncg": "hessp",
                "trust-krylov": "hessp", "newton-cg": "hessp"}
FIRST_ORDER = ("bfgs", "l-bfgs-b", "cg")


class _NonFinite(Exception):
    """fun, jac or the curvature returned NaN or inf inside scipy's loop."""


def _finite(f, what: str):
    def checked(*args):
        value = f(*args)
        if not np.all(np.isfinite(value)):
            raise _NonFinite(f"Non-finite {what} during the iterations.")
        return value
    return checked


def run_scipy(problem, w0, method: str, gtol: float, maxiter: int, callback,
              extra: dict):
    need = SECOND_ORDER.get(method)
    kwargs = {}
    if need == "hess":
        if problem.hess is None:
            raise ValueError(f"hess: method {method!r} needs the Hessian")
        kwargs["hess"] = _finite(problem.H, "Hessian")
    elif need == "hessp":
        if problem.hessp is None:
            raise ValueError(f"hessp: method {method!r} needs Hessian-vector products")
        kwargs["hessp"] = _finite(problem.Hp, "Hessian-vector product")
    if method == "dogleg":
        try:
            cho_factor(problem.H(w0))
        except LinAlgError:
            raise ValueError("dogleg: the Hessian at w0 is not positive definite; "
                             "use 'trust-exact', 'trust-ncg' or 'newton'") from None
    options = {"maxiter": maxiter, **extra}
    if method == "newton-cg":          # scipy's newton-cg stops on the step only
        options.setdefault("xtol", 1e-14)
    else:
        options.setdefault("gtol", gtol)
    if method == "l-bfgs-b":           # stop on the gradient, as the others do
        options.setdefault("ftol", 0.0)

    t0 = time.perf_counter()
    history = new_history()
    f0, g0 = problem.f(w0), problem.g(w0)
    record(history, t0, f0, g0, 0.0, np.nan)
    if np.isfinite(f0) and np.all(np.isfinite(g0)) and np.max(np.abs(g0)) <= gtol:
        return finish(problem, w0.copy(), f0, g0, 0, 0, history, method)
    last = {"x": w0}
    stopped = {"by_user": False}

    def cb(intermediate_result):
        x = intermediate_result.x
        g = problem.jac(x)           # for the history only: not counted
        record(history, t0, float(intermediate_result.fun), g,
               float(np.linalg.norm(x - last["x"])), np.nan)
        last["x"] = x.copy()
        if callback is not None and callback(intermediate_result):
            stopped["by_user"] = True
            raise StopIteration

    try:
        res = scipy.optimize.minimize(
            _finite(problem.f, "function value"), w0, method=method,
            jac=_finite(problem.g, "gradient"), callback=cb, options=options, **kwargs)
    except (LinAlgError, _NonFinite) as err:   # e.g. dogleg meeting an indefinite H
        x = last["x"]
        kind = "Linear algebra failure" if isinstance(err, LinAlgError) else "Stopped"
        return finish(problem, x, problem.fun(x), problem.jac(x), len(history["fun"]) - 1,
                      5, history, method, f"{kind}: {err}")
    g = problem.jac(res.x)
    converged = bool(np.isfinite(res.fun) and np.all(np.isfinite(g))
                     and np.max(np.abs(g)) <= gtol)
    status = (2 if stopped["by_user"] else 0 if converged
              else 5 if not np.isfinite(res.fun) else 1 if res.nit >= maxiter else 3)
    message = res.message if status != 0 else f"Converged: |g|_inf <= gtol ({res.message})"
    return finish(problem, res.x, float(res.fun), g, int(res.nit), status,
                  history, method, message)
