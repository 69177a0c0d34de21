"""Levenberg-Marquardt with the Gauss-Newton (outer-product) matrix, and a
switch to damped Newton where the residuals are large.

Each step solves (G + mu I) p = -g and is taken if it lowers E; otherwise
mu is raised and the step recomputed from the same G. Where the predicted
decrease is below E's round-off, a step that halves |g|_inf counts as a
decrease (the endgame of Newton's line search).

Damping (``update``):

- ``"gain"`` (default): mu follows the gain ratio rho = (actual decrease) /
  (decrease predicted by the Gauss-Newton model), mu *= max(1/3,
  1 - (2 rho - 1)^3) on success and mu *= nu, nu *= 2 on failure (Nielsen,
  IMM-REP-1999-05; Madsen, Nielsen & Tingleff, "Methods for non-linear
  least squares problems", 2004, eq. 2.21). mu = 0.005 to start.
- ``"tenfold"``: mu divided by ``mu_dec`` on success and multiplied by
  ``mu_inc`` on failure, as MATLAB's trainlm: mu = 0.005, mu_dec = 0.1,
  mu_inc = 10 (Hagan & Menhaj, IEEE Trans. Neural Networks 5, 1994;
  Marquardt, SIAM J. Appl. Math. 11, 1963).

Hybrid (``hybrid``, default True when the Hessian is available): G omits
the residual term sum_n r_n Hess(r_n) of the Hessian, so where the
residuals stay large at the minimum LM converges only linearly, and
slowly. Following the LM / quasi-Newton hybrid of Madsen, Nielsen &
Tingleff (2004), three consecutive iterates with |g|_inf < 0.02 E (a
gradient small beside E: large residuals) switch the method for good to
damped Newton on the exact Hessian (:class:`~._newton.NewtonStep`), whose
convergence is quadratic there. (Their hybrid switches to a BFGS
approximation and back when the gradient stops falling; with the exact
Hessian, switching back whenever Newton needed damping or |g|_inf rose
was measured to cost iterations: 136 against 116 on the friedman3 case of
experiments/bench_lm_endgame.py, and friedman2 unconverged after 1000
against 455.)
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._loop import MAX_DAMPING_RAISES, StepFailure, require_finite
from ._line_search import gradient_halved, round_off_of
from ._newton import NewtonStep

EPS = np.finfo(float).eps

#: the hybrid's large-residual test |g|_inf < SMALL_GRADIENT E, met on
#: SWITCH_AFTER consecutive iterates (Madsen, Nielsen & Tingleff 2004)
SMALL_GRADIENT = 0.02
SWITCH_AFTER = 3

UPDATES = ("gain", "tenfold")


class LevenbergMarquardtStep:
    """Step rule of Levenberg-Marquardt; ``damping`` is the mu to try next
    (Newton's last mu after the hybrid's switch), ``newton`` the Newton
    rule once switched (None before)."""

    def __init__(self, problem, mu: float = 0.005, mu_dec: float | None = None,
                 mu_inc: float | None = None, mu_max: float = 1e10,
                 update: str = "gain", hybrid: bool = True):
        if problem.gauss_newton is None:
            raise ValueError("gauss_newton: method 'lm' needs the Gauss-Newton "
                             "matrix (gauss_newton=callable, or an Objective)")
        if not mu <= mu_max:       # the other checks: minimize's option table
            raise ValueError(f"mu, mu_max: expected mu <= mu_max, got "
                             f"{mu:g} > {mu_max:g}")
        if update != "tenfold" and (mu_dec is not None or mu_inc is not None):
            raise ValueError("mu_dec, mu_inc: used by update='tenfold' only "
                             f"(update={update!r} follows the gain ratio)")
        self.problem, self.damping, self.mu_max = problem, float(mu), mu_max
        self.mu_dec = 0.1 if mu_dec is None else mu_dec
        self.mu_inc = 10.0 if mu_inc is None else mu_inc
        self.update, self.nu = update, 2.0
        self.hybrid = hybrid and problem.hess is not None
        self.newton, self._small_gradients, self._rejected = None, 0, False

    def wants_more(self, w, f, g) -> bool:
        return False

    def step(self, w, f, g):
        if self.hybrid and self.newton is None and self._large_residuals(f, g):
            # LM stops at gtol without a saddle test, so Newton's is off
            self.newton = NewtonStep(self.problem, gtol=0.0)
        if self.newton is not None:
            w_new, f_new, info = self.newton.step(w, f, g)
            self.damping = info["damping"]
            return w_new, f_new, info
        return self._lm_step(w, f, g)

    def _large_residuals(self, f: float, g) -> bool:
        """Count the iterates with |g|_inf < 0.02 E in a row (a step that
        needed a raise of mu restarts the count, as a failed step does in
        Madsen-Nielsen-Tingleff); True at the third. O(W)."""
        if self._rejected:
            self._small_gradients = 0
        small = np.max(np.abs(g)) < SMALL_GRADIENT * f
        self._small_gradients = self._small_gradients + 1 if small else 0
        return self._small_gradients >= SWITCH_AFTER

    def _lm_step(self, w, f, g):
        """One Levenberg-Marquardt step: one G and one Cholesky per mu tried,
        O(W^3) each, plus one f per mu."""
        G = require_finite(self.problem.G(w), "Gauss-Newton matrix")
        I = np.eye(len(w))
        # mu below macheps max|G_ii| changes nothing in G + mu I: raises start
        # there at least (mu may have underflowed to 0 after many successes)
        floor = EPS * max(1.0, float(np.max(np.abs(np.diag(G)))))
        self._rejected = False
        for _ in range(MAX_DAMPING_RAISES + 1):
            if not self.damping <= self.mu_max:
                break
            try:
                p = -cho_solve(cho_factor(G + self.damping * I), g)
            except LinAlgError:
                self._raise(floor)
                continue
            w_new = w + p
            f_new = require_finite(self.problem.f(w_new), "value of f at a trial point")
            if f_new < f or self._endgame(w_new, f, g, p):
                mu = self.damping
                self._lower(self._gain_ratio(f, f_new, g, p))
                return w_new, f_new, {"damping": mu}
            self._raise(floor)
        raise StepFailure(4, f"Damping exceeded mu_max = {self.mu_max:g} (or "
                             f"{MAX_DAMPING_RAISES} raises) without a decrease of f.")

    def _gain_ratio(self, f: float, f_new: float, g, p) -> float:
        """rho = (f - f_new) / (L(0) - L(p)), the Gauss-Newton model's
        decrease being 1/2 p^T (mu p - g) since (G + mu I) p = -g
        (Madsen, Nielsen & Tingleff 2004, eq. 2.20). Where f cannot resolve
        the decrease (the round-off endgame) rho is taken as 1: the halved
        gradient shows that the model holds."""
        predicted = 0.5 * (self.damping * float(p @ p) - float(g @ p))
        if f_new >= f or not predicted > 0:
            return 1.0
        return (f - f_new) / predicted

    def _lower(self, rho: float) -> None:
        """mu after a successful step (the gain rule raises it for rho < 1/2)."""
        if self.update == "tenfold":
            self.damping *= self.mu_dec
        else:   # rho above 1 gives 1/3 as rho = 1 does (and cannot overflow)
            self.damping *= max(1 / 3, 1 - (2 * min(rho, 1.0) - 1) ** 3)
            self.nu = 2.0

    def _raise(self, floor: float) -> None:
        """mu after a failed trial: times mu_inc (tenfold) or nu, nu doubling
        (gain); at least ``floor``."""
        self._rejected = True
        factor = self.mu_inc if self.update == "tenfold" else self.nu
        if self.update != "tenfold":
            self.nu *= 2
        self.damping = max(self.damping * factor, floor)

    def _endgame(self, w_new, f, g, p) -> bool:
        """Where the predicted decrease -g^T p is below f's round-off, f
        cannot tell the points apart: the step is taken if |g|_inf at least
        halves, as in Newton's line search (:func:`~._newton.armijo`)."""
        return -float(g @ p) < round_off_of(f) and gradient_halved(self.problem, w_new, g)
