"""Levenberg-Marquardt with the Gauss-Newton (outer-product) matrix.

Solves (G + mu I) p = -g; a step that lowers E is taken and mu divided by
``mu_dec``; otherwise mu is multiplied by ``mu_inc`` and the step recomputed
from the same G. Where the predicted decrease is below E's round-off, a step
that halves |g|_inf counts as a decrease (the endgame of Newton's line
search). Defaults follow MATLAB's trainlm: mu = 0.005, mu_dec = 0.1,
mu_inc = 10, mu_max = 1e10 (Hagan & Menhaj, IEEE Trans. Neural Networks 5,
1994; Marquardt, SIAM J. Appl. Math. 11, 1963).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._loop import MAX_DAMPING_RAISES, StepFailure, require_finite
from ._newton import gradient_halved, round_off_of

EPS = np.finfo(float).eps


class LevenbergMarquardtStep:
    def __init__(self, problem, mu: float = 0.005, mu_dec: float = 0.1,
                 mu_inc: float = 10.0, mu_max: float = 1e10):
        if problem.gauss_newton is None:
            raise ValueError("gauss_newton: method 'lm' needs the Gauss-Newton "
                             "matrix (gauss_newton=callable, or an Objective)")
        if not mu <= mu_max:       # the other checks: minimize's option table
            raise ValueError(f"mu, mu_max: expected mu <= mu_max, got "
                             f"{mu:g} > {mu_max:g}")
        self.problem, self.damping = problem, float(mu)
        self.mu_dec, self.mu_inc, self.mu_max = mu_dec, mu_inc, mu_max

    def wants_more(self, w, f, g) -> bool:
        return False

    def step(self, w, f, g):
        G = require_finite(self.problem.G(w), "Gauss-Newton matrix")
        I = np.eye(len(w))
        # mu below macheps max|G_ii| changes nothing in G + mu I: raises start
        # there at least (mu may have underflowed to 0 after many successes)
        floor = EPS * max(1.0, float(np.max(np.abs(np.diag(G)))))
        for _ in range(MAX_DAMPING_RAISES + 1):
            if not self.damping <= self.mu_max:
                break
            try:
                p = -cho_solve(cho_factor(G + self.damping * I), g)
            except LinAlgError:
                self.damping = max(self.damping * self.mu_inc, floor)
                continue
            w_new = w + p
            f_new = require_finite(self.problem.f(w_new), "value of f at a trial point")
            if f_new < f or self._endgame(w_new, f, g, p):
                mu = self.damping
                self.damping *= self.mu_dec
                return w_new, f_new, {"damping": mu}
            self.damping = max(self.damping * self.mu_inc, floor)
        raise StepFailure(4, f"Damping exceeded mu_max = {self.mu_max:g} (or "
                             f"{MAX_DAMPING_RAISES} raises) without a decrease of f.")

    def _endgame(self, w_new, f, g, p) -> bool:
        """Where the predicted decrease -g^T p is below f's round-off, f
        cannot tell the points apart: the step is taken if |g|_inf at least
        halves, as in Newton's line search (:func:`~._newton.armijo`)."""
        return -float(g @ p) < round_off_of(f) and gradient_halved(self.problem, w_new, g)
