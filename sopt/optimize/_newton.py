"""Newton's method with the exact Hessian, made safe for non-convex E.

Each iteration solves (H + mu I) p = -g with the smallest mu in
{0, mu_min, mu_inc mu_min, mu_inc^2 mu_min, ...} (``mu_inc`` 10 by default)
for which a Cholesky factorisation succeeds (Nocedal & Wright 2006,
Algorithm 3.3, "Cholesky with added multiple of the identity", which
doubles mu: ``mu_inc=2`` overshoots the smallest such mu by at most 2x
instead of 10x, for longer steps where H is indefinite at the price of more
factorisations), mu starting from a tenth of the last successful value as in
Levenberg-Marquardt; then a backtracking Armijo line search (c1 = 1e-4,
Nocedal & Wright eq. 3.4), so E never increases, except by round-off in the
last steps, where E can no longer tell points apart and the gradient decides
(see :func:`sopt.optimize._line_search.armijo`). Where the gradient is below
tolerance but H is not positive definite (a saddle), the step follows the
eigenvector of the most negative eigenvalue instead of stopping there.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh

# the line search's names stay importable from here, where they lived
from ._line_search import (ROUND_OFF_MESSAGE, RoundOff, armijo,  # noqa: F401
                           gradient_halved, round_off_of)
from ._loop import MAX_DAMPING_RAISES, StepFailure, require_finite

EPS = np.finfo(float).eps


class NewtonStep:
    """Step rule of damped Newton; ``damping`` is the last mu used."""

    def __init__(self, problem, gtol: float, mu_min: float = 1e-8,
                 mu_max: float = 1e10, c1: float = 1e-4, mu_inc: float = 10.0):
        if problem.hess is None:
            raise ValueError("hess: method 'newton' needs the Hessian (hess=callable)")
        if not mu_min <= mu_max:
            raise ValueError(f"mu_min, mu_max: expected mu_min <= mu_max, "
                             f"got {mu_min:g} > {mu_max:g}")
        self.problem, self.gtol = problem, gtol
        self.mu_min, self.mu_max, self.c1, self.mu_inc = mu_min, mu_max, c1, mu_inc
        self.damping = 0.0
        self._w = self._H = self._work = None

    def _hessian(self, w):
        if self._w is None or not np.array_equal(w, self._w):
            self._w, self._H = w.copy(), require_finite(self.problem.H(w), "Hessian")
        return self._H

    def _shifted_factor(self, H, mu: float):
        """cho_factor of H + mu I (LinAlgError where it is not positive
        definite), made in place in a Fortran-ordered work array kept
        between steps: no W x W temporaries (H + mu I, the identity, LAPACK's
        Fortran copy), which cost page faults on every call at W of a few
        hundred, and no second check for NaN (H is finite). The same
        factor, to the bit, as cho_factor(H + mu * np.eye(W))."""
        if self._work is None or self._work.shape != H.shape:
            self._work = np.empty(H.shape, order="F")
        np.copyto(self._work, H)
        self._work.flat[::len(H) + 1] += mu
        return cho_factor(self._work, overwrite_a=True, check_finite=False)

    def _has_negative_curvature(self, H) -> bool:
        """An eigenvalue below -sqrt(macheps) max|lambda|: a saddle, not the
        round-off of a singular positive semi-definite H at a minimum."""
        try:
            self._shifted_factor(H, 0.0)
            return False
        except LinAlgError:
            lam = np.linalg.eigvalsh(H)
            return lam[0] < -np.sqrt(EPS) * max(1.0, np.abs(lam).max())

    def wants_more(self, w, f, g) -> bool:
        """At a small gradient, go on only if H has negative curvature."""
        return self._has_negative_curvature(self._hessian(w))

    def _ladder(self, mu: float, scale: float):
        """mu, then max(mu_inc mu, mu_min scale), ... up to mu_max scale,
        and at most MAX_DAMPING_RAISES raises whatever mu_min and mu_max."""
        for _ in range(MAX_DAMPING_RAISES + 1):
            if not mu <= self.mu_max * scale:
                return
            yield mu
            mu = max(self.mu_inc * mu, self.mu_min * scale)

    @staticmethod
    def _negative_curvature(H, g):
        """Unit eigenvector of the most negative eigenvalue, pointing downhill."""
        d = eigh(H, subset_by_index=[0, 0])[1][:, 0]
        return -d if g @ d > 0 else d

    def step(self, w, f, g):
        H = self._hessian(w)
        scale = max(1.0, float(np.max(np.abs(np.diag(H)))))
        mu = 0.1 * self.damping
        mu = 0.0 if mu < self.mu_min * scale else mu
        at_saddle = (np.max(np.abs(g)) <= self.gtol
                     and self._has_negative_curvature(H))
        for mu in self._ladder(mu, scale):
            try:
                factor = self._shifted_factor(H, mu)
            except LinAlgError:
                continue
            p = (self._negative_curvature(H, g) if at_saddle and mu > 0
                 else -cho_solve(factor, g))
            try:
                found = armijo(self.problem, w, f, g, p, self.c1)
            except RoundOff:
                raise StepFailure(3, ROUND_OFF_MESSAGE) from None
            if found is not None:
                self.damping = mu
                return found[0], found[1], {"damping": mu}
            # no decrease: raise mu for shorter, steeper steps
        raise StepFailure(4, f"Damping exceeded its maximum (mu_max = "
                             f"{self.mu_max:g} times max|H_ii|, or "
                             f"{MAX_DAMPING_RAISES} raises): no mu made H + mu I "
                             "positive definite with a decrease of f.")
