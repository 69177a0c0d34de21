"""The options of every method, as a table of checks: one validating function
for all of them, run before any evaluation of f.

A wrong type is a TypeError and a wrong value a ValueError, each naming the
option and its domain; pairs that scipy needs in order (trust radii, the
Wolfe constants c1 < c2) are checked after each option's own. Options not
in a method's table are warned about (``OptimizeWarning``, as scipy does)
and dropped, so scipy never sees them.
Defaults stay where they are used (the step rules' signatures, scipy's).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import partial

from scipy.optimize import OptimizeWarning

from .._validation import check_bool, check_choice, check_int, check_real
from ._lm import UPDATES

POSITIVE = partial(check_real, low=0.0, low_open=True)            # finite > 0
NONNEGATIVE = partial(check_real, low=0.0)
UNIT = partial(check_real, low=0.0, high=1.0, low_open=True, high_open=True)
ABOVE_ONE = partial(check_real, low=1.0, low_open=True)
COUNT = partial(check_int, low=0)
POSITIVE_COUNT = partial(check_int, low=1)


def _norm(value, name):
    """scipy's ``norm``: the order of the vector norm, inf allowed."""
    if value in (float("inf"), float("-inf")) and not isinstance(value, bool):
        return float(value)
    return check_real(value, name)


COMMON = {"gtol": POSITIVE, "maxiter": COUNT, "disp": check_bool,
          "gtol_rel": partial(check_real, low=0.0, high=1.0, high_open=True)}
# trust-region radii and the acceptance ratio eta in [0, 1/4) (scipy's
# _trustregion.py, Nocedal & Wright Algorithm 4.1)
TRUST = {"initial_trust_radius": POSITIVE, "max_trust_radius": POSITIVE,
         "eta": partial(check_real, low=0.0, high=0.25, high_open=True),
         "return_all": check_bool}
# Wolfe line search constants of scipy's quasi-Newton and CG methods
WOLFE = {"c1": UNIT, "c2": UNIT, "return_all": check_bool}

OPTIONS = {
    "newton": {"mu_min": POSITIVE, "mu_max": POSITIVE, "c1": UNIT, "mu_inc": ABOVE_ONE},
    "lm": {"mu": POSITIVE, "mu_dec": UNIT, "mu_inc": ABOVE_ONE, "mu_max": POSITIVE,
           "update": partial(check_choice, choices=UPDATES), "hybrid": check_bool},
    "gd": {"lr": POSITIVE},
    "trust-exact": TRUST, "dogleg": TRUST, "trust-ncg": TRUST,
    "trust-krylov": {**TRUST, "inexact": check_bool},
    "newton-cg": {**WOLFE, "xtol": POSITIVE},
    "bfgs": {**WOLFE, "norm": _norm, "xrtol": NONNEGATIVE},
    "cg": {**WOLFE, "norm": _norm},
    "l-bfgs-b": {"maxcor": POSITIVE_COUNT, "ftol": NONNEGATIVE,
                 "maxfun": POSITIVE_COUNT, "maxls": POSITIVE_COUNT},
}


def _in_order(low: str, high: str, defaults: tuple):
    """A check that option ``low`` < option ``high``, scipy's defaults
    standing in for those not given (max_trust_radius=0.5 alone clashes
    with the default initial radius 1), before scipy raises its own error
    after f has been evaluated."""
    def check(options: dict) -> None:
        a, b = options.get(low, defaults[0]), options.get(high, defaults[1])
        if not a < b:
            raise ValueError(f"{low}, {high}: expected {low} < {high} (scipy's "
                             f"defaults: {defaults[0]:g} and {defaults[1]:g}), "
                             f"got {a:g} >= {b:g}")
    return check


# scipy's defaults: _trustregion.py and the Wolfe constants of _optimize.py
RADII = _in_order("initial_trust_radius", "max_trust_radius", (1.0, 1000.0))
#: checks between options, after each option's own
JOINT = {"trust-exact": RADII, "dogleg": RADII, "trust-ncg": RADII,
         "trust-krylov": RADII, "bfgs": _in_order("c1", "c2", (1e-4, 0.9)),
         "newton-cg": _in_order("c1", "c2", (1e-4, 0.9)),
         "cg": _in_order("c1", "c2", (1e-4, 0.4))}


def check_options(method: str, options) -> dict:
    """Validated copy of ``options`` for ``method`` (unknown keys dropped
    with an OptimizeWarning)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options: expected a dict of option names and values, "
                        f"got {type(options).__name__}")
    table = {**COMMON, **OPTIONS[method]}
    unknown = sorted(str(k) for k in options if k not in table)
    if unknown:
        warnings.warn(f"options: unknown for {method!r}, ignored: {unknown}; "
                      f"known: {sorted(table)}", OptimizeWarning, stacklevel=4)
    checked = {k: table[k](v, k) for k, v in options.items() if k in table}
    JOINT.get(method, lambda opts: None)(checked)
    return checked
