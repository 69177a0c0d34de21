"""Second-order training: damped Newton, Levenberg-Marquardt, scipy's
trust-region family, and first-order baselines, behind one ``minimize``.

The solvers see only fun/jac/hess/hessp/gauss_newton callables, so they work
on a sopt Objective and on any plain function alike. Every method returns a
``scipy.optimize.OptimizeResult`` with ``x, fun, jac, nit, nfev, njev, nhev,
success, status, message`` and ``history`` (per iteration: fun, grad_inf,
step, damping, time). Failure to converge is ``success=False`` and a
:class:`ConvergenceWarning`, never an exception.

Options
-------
``gtol`` (default 1e-6, on |g|_inf, > 0) is absolute, and E is a sum over
patterns, so |g| grows with N; ``gtol_rel`` (default 0, in [0, 1)) also
stops once |g|_inf <= gtol_rel |g(w0)|_inf, a test that needs no rescaling
with N (the threshold is the larger of the two, fixed at w0). ``maxiter``
(default 1000, an integer >= 0). ``disp`` (default False) prints one line
per iteration, the start included: iteration, E, |g|_inf, step length and
for newton and lm the damping mu, for gd the learning rate; then one line
with the result's message (scipy's own printing is not used).

Per method: newton ``mu_min`` (1e-8) and ``mu_max`` (1e10), both finite > 0
with mu_min <= mu_max, ``c1`` (1e-4, in (0, 1)), ``mu_inc`` (10, > 1: the
factor of each raise of mu, see :mod:`._newton`); lm ``mu`` (0.005),
``mu_max`` (1e10), finite > 0 with mu <= mu_max, ``update`` ("gain", mu
following the gain ratio, or "tenfold", trainlm's rule), ``mu_dec`` (0.1,
in (0, 1)) and ``mu_inc`` (10, > 1) with update="tenfold" only (a
ValueError otherwise), ``hybrid`` (True: switch to newton on the exact
Hessian where the residuals are large, see :mod:`._lm`; needs the
Hessian, ignored without one); gd ``lr`` (0.01, finite > 0); for scipy's
methods the options in :data:`OPTIONS` (trust radii, ``eta``,
``c1``/``c2``, ``maxcor``, ...), passed on to scipy, in scipy's domains:
0 <= eta < 1/4, initial_trust_radius < max_trust_radius and c1 < c2
(scipy's defaults standing in for the one not given).

Every value is checked before f is first evaluated: TypeError for a wrong
type (bool is not a number), ValueError for a value outside its domain,
naming the option. Keys a method does not know are warned about
(``OptimizeWarning``, as scipy does) and ignored, for every method alike.
Whatever the values, the damping loops of newton and lm stop at mu_max or
after ``MAX_DAMPING_RAISES`` (100) raises within one step, whichever comes
first.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import OptimizeResult

from .._deprecation import renamed_attributes
from .._validation import as_float_array, check_choice, check_finite
from ._gd import GradientDescentStep
from ._lm import LevenbergMarquardtStep
from ._loop import ConvergenceWarning, outer_loop
from ._newton import NewtonStep
from ._options import OPTIONS, check_options
from ._problem import make_problem
from ._scipy import FIRST_ORDER, SECOND_ORDER, run_scipy

#: The methods sopt runs in its own outer loop: name -> step rule class.
STEP_RULES = {"newton": NewtonStep, "lm": LevenbergMarquardtStep,
              "gd": GradientDescentStep}
METHODS = tuple(STEP_RULES) + tuple(SECOND_ORDER) + FIRST_ORDER

__all__ = ["minimize", "check_method_options", "ConvergenceWarning", "METHODS", "OPTIONS"]


def _check_w0(w0, n: int | None) -> np.ndarray:
    """w0 as a finite, non-empty float vector (of length n if known)."""
    w0 = as_float_array(w0, "w0", bool_ok=False)
    if w0.ndim != 1 or (n is not None and w0.shape != (n,)) or w0.size == 0:
        raise ValueError(f"w0: expected shape ({n if n is not None else 'W'},) "
                         f"with at least one weight, got {w0.shape}")
    check_finite(w0, "w0")
    return w0


def check_method_options(method, options) -> tuple[str, dict]:
    """``method`` (case-insensitive) and a validated copy of ``options`` for
    it, checked as :func:`minimize` checks them (TypeError / ValueError
    naming the option; unknown keys warned about and dropped), for callers
    that use an option before passing them on."""
    method = check_choice(method.lower() if isinstance(method, str) else method,
                          "method", METHODS)
    return method, check_options(method, options)


def minimize(obj, w0, method: str = "newton", options: dict | None = None,
             callback=None, jac=None, hess=None, hessp=None,
             gauss_newton=None) -> OptimizeResult:
    """Minimise E(w) from w0.

    Parameters
    ----------
    obj : Objective or callable
        A :class:`sopt.Objective`, a
        :class:`sopt.distributed.ShardedObjective` (anything with
        :class:`sopt.objective.ObjectiveProtocol`), or a plain f(w) with ``jac`` (and
        ``hess``/``hessp``/``gauss_newton`` as the method needs).
    w0 : (W,) array
    method : str
        ``"newton"`` (exact Hessian, Cholesky-damped, Armijo line search),
        ``"lm"`` (Levenberg-Marquardt on the Gauss-Newton matrix, turning
        to newton where the residuals stay large), ``"gd"``;
        scipy's ``"trust-exact"``, ``"trust-ncg"``, ``"trust-krylov"``,
        ``"newton-cg"``, ``"dogleg"`` (positive definite Hessians only),
        ``"bfgs"``, ``"l-bfgs-b"``, ``"cg"``.
    options : dict
        See "Options" in the module docstring (checked before f is used).
    callback : callable(OptimizeResult) -> bool or None, optional
        Called after each iteration, for every method alike, with copies of
        the iterate's ``x``, ``fun``, ``jac`` and ``nit`` (editing them
        cannot change the solver's state). Returning True stops (status 2);
        None or False goes on; anything else is a TypeError.
    jac, hess, hessp, gauss_newton : callable, optional
        The gradient g(w), Hessian H(w), Hessian-vector product H(w) p and
        Gauss-Newton matrix G(w). A plain f needs ``jac`` and whichever the
        method uses; with an objective, each one given replaces the
        objective's own (as scipy uses whatever it is given). A method
        ignores those it does not use (gd and scipy's first-order methods
        use ``jac`` only, lm ``gauss_newton``, newton, trust-exact and
        dogleg ``hess``, trust-ncg, trust-krylov and newton-cg ``hessp``).

    Returns
    -------
    OptimizeResult
        ``status``: 0 converged, 1 maxiter reached (``maxiter=0`` returns
        w0), 2 stopped by the callback, 3 no further decrease (or scipy's
        own test met before gtol), 4 damping exceeded, 5 the first NaN or
        inf in f, g or the curvature (trial points included): x is the
        last point where f and g were finite.
    """
    method, options = check_method_options(method, options)
    problem = make_problem(obj, jac, hess, hessp, gauss_newton)
    w0 = _check_w0(w0, getattr(getattr(obj, "net", None), "n_weights", None))
    if callback is not None and not callable(callback):
        raise TypeError("callback: expected a callable")
    gtol = options.pop("gtol", 1e-6)
    maxiter = options.pop("maxiter", 1000)
    disp = options.pop("disp", False)
    gtol_rel = options.pop("gtol_rel", 0.0)
    if method in STEP_RULES:
        kwargs = {"gtol": gtol} if method == "newton" else {}
        rule = STEP_RULES[method](problem, **kwargs, **options)
        return outer_loop(problem, w0, rule, gtol, maxiter, callback, method,
                          disp, gtol_rel)
    return run_scipy(problem, w0, method, gtol, maxiter, callback, options,
                     disp, gtol_rel)


__getattr__ = renamed_attributes(__name__, {"OWN": "STEP_RULES"})
